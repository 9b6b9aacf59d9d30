package source

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// DefaultServerID is the replica server_id rowcast registers with when
// Config.ServerID is zero: 0x52435354, "RCST" in ASCII, chosen to be far from
// the small numbers operators give their own servers.
const DefaultServerID uint32 = 0x52435354

// Flavors, spelled as go-mysql spells them.
const (
	FlavorMySQL   = mysql.MySQLFlavor   // "mysql"
	FlavorMariaDB = mysql.MariaDBFlavor // "mariadb"
)

// Config says where the master is and what to read from it. Zero values take
// the defaults given on each field.
type Config struct {
	// Addr is the master's host:port. Default "127.0.0.1:3306".
	Addr string
	// User is the account rowcast connects as. It needs REPLICATION SLAVE,
	// BINLOG MONITOR (MariaDB) or REPLICATION CLIENT (MySQL), and SELECT on
	// the replicated tables. Default "rowcast".
	User string
	// Password of User. Default empty. Take it from the environment.
	Password string
	// ServerID is the replica server_id rowcast uses on the master. It must be
	// unique among all replicas of the master: a second connection with the
	// same id makes the master drop the first one. Default DefaultServerID.
	ServerID uint32
	// Flavor is "mysql" or "mariadb". Default "": detected from
	// SELECT VERSION() (a version containing "MariaDB" is mariadb).
	Flavor string

	// Include holds regular expressions matched against "db.table"; a row
	// is published when one matches. Empty means every table. Default empty.
	Include []string
	// Exclude holds regular expressions matched against "db.table"; a match
	// wins over Include. Default empty.
	//
	// DDL is matched by "db.table" when the statement names a table that a
	// cheap parse finds (CREATE/ALTER/DROP/TRUNCATE/RENAME TABLE, CREATE/DROP
	// INDEX), otherwise by "db." with an empty table name (CREATE DATABASE,
	// GRANT, ...), db being the statement's qualifier or the session schema.
	Exclude []string
	// BookkeepingSchema is rowcast's own schema on the nodes (checkpoints).
	// Its rows and its DDL are never published. Default "rowcast".
	BookkeepingSchema string

	// HeartbeatPeriod is the master heartbeat period requested from the
	// master: when the binlog is idle the master sends a heartbeat this often,
	// and OnHeartbeat is called. Default 1 s.
	HeartbeatPeriod time.Duration
	// ReadTimeout ends Run with ErrStream when the reader waited this long
	// for the master and nothing (not even a heartbeat) arrived. Time spent
	// in emit does not count. Must exceed HeartbeatPeriod. Default 30 s.
	ReadTimeout time.Duration
	// EventBuffer is how many decoded binlog events go-mysql may read ahead
	// of the decoder. Memory is bounded by EventBuffer times the largest
	// event (a rows event is ~8 KiB, or one row when a row is bigger).
	// Default 64.
	EventBuffer int

	// RawUnsupportedCharsets publishes text columns in character sets other
	// than utf8mb4, utf8mb3, ascii and latin1 as their raw bytes (VBytes)
	// instead of stopping with ErrUnsupported. A sink writing those bytes to
	// a column of the same charset reproduces them exactly. Default false:
	// fail closed. Text of the supported charsets is always converted to
	// UTF-8 (latin1 is MySQL's latin1, i.e. cp1252).
	RawUnsupportedCharsets bool

	// OnHeartbeat, when set, is called between transactions when the master
	// sends a heartbeat, and after every transaction of which nothing was
	// published (all its rows filtered out), with the master's clock (the
	// heartbeat's header timestamp, or the local receive time when the master
	// leaves it zero; the commit time of a filtered transaction) and the
	// master's executed GTID set after the last transaction read (published
	// or filtered out). It runs on the reader's goroutine.
	OnHeartbeat func(serverTime time.Time, gtidSet string)
}

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:3306"
	}
	if c.User == "" {
		c.User = "rowcast"
	}
	if c.ServerID == 0 {
		c.ServerID = DefaultServerID
	}
	if c.BookkeepingSchema == "" {
		c.BookkeepingSchema = "rowcast"
	}
	if c.HeartbeatPeriod == 0 {
		c.HeartbeatPeriod = time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 30 * time.Second
	}
	if c.EventBuffer == 0 {
		c.EventBuffer = 64
	}
}

// Validate reports the first invalid field, naming it and the fix. It checks
// the config as given; Run applies the defaults first.
func (c *Config) Validate() error {
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil || host == "" {
		return fmt.Errorf("%w: Addr %q is not host:port (e.g. 127.0.0.1:3306)", ErrConfig, c.Addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%w: Addr %q has no valid port (1-65535)", ErrConfig, c.Addr)
	}
	if c.User == "" {
		return fmt.Errorf("%w: User is empty: set the replication user", ErrConfig)
	}
	if c.ServerID == 0 {
		return fmt.Errorf("%w: ServerID is 0: set a server_id unique among the master's replicas", ErrConfig)
	}
	switch c.Flavor {
	case "", FlavorMySQL, FlavorMariaDB:
	default:
		return fmt.Errorf("%w: Flavor %q: use \"mysql\", \"mariadb\" or \"\" to detect", ErrConfig, c.Flavor)
	}
	for _, list := range []struct {
		name string
		res  []string
	}{{"Include", c.Include}, {"Exclude", c.Exclude}} {
		for i, re := range list.res {
			if _, err := regexp.Compile(re); err != nil {
				return fmt.Errorf("%w: %s[%d] %q is not a regular expression: %v", ErrConfig, list.name, i, re, err)
			}
		}
	}
	if c.BookkeepingSchema == "" {
		return fmt.Errorf("%w: BookkeepingSchema is empty: name rowcast's own schema (default \"rowcast\")", ErrConfig)
	}
	if c.HeartbeatPeriod <= 0 || c.HeartbeatPeriod > time.Hour {
		return fmt.Errorf("%w: HeartbeatPeriod %v: use a period between 1ms and 1h (default 1s)", ErrConfig, c.HeartbeatPeriod)
	}
	if c.ReadTimeout <= c.HeartbeatPeriod {
		return fmt.Errorf("%w: ReadTimeout %v must exceed HeartbeatPeriod %v, or an idle master looks dead", ErrConfig, c.ReadTimeout, c.HeartbeatPeriod)
	}
	if c.EventBuffer < 1 {
		return fmt.Errorf("%w: EventBuffer %d: use at least 1 (default 64)", ErrConfig, c.EventBuffer)
	}
	return nil
}

// Start is where Run begins.
type Start struct {
	// GTIDSet is the master's executed GTID set after the last transaction
	// that was published in full (the GTIDSet of its last message). Run reads
	// the transactions after it. Empty reads from the oldest binlog, which
	// CheckResume refuses when anything was purged.
	GTIDSet string
	// NextTxnSeq is the TxnSeq of the first transaction Run publishes: the
	// last published TxnSeq plus one, read back from the topic.
	NextTxnSeq uint64
	// Epoch is stamped on every message (Position.Epoch).
	Epoch uint64
}
