package source

import (
	"crypto/tls"
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

// VersionsTable is the bookkeeping table of row versions (sink/mysql).
const VersionsTable = "row_versions"

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
	// TLS, when set, encrypts every connection to the master alike: the
	// binlog stream, the checks and the snapshots. Its ServerName defaults
	// to Addr's host. Default nil: plaintext.
	TLS *tls.Config
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
	// Its rows and its DDL are never published, nor are those of the system
	// schemas (mysql, information_schema, performance_schema, sys).
	// Default "rowcast".
	BookkeepingSchema string
	// PublishVersions publishes the rows of the bookkeeping schema's
	// VersionsTable: on a master of a master-master set whose conflicts are
	// resolved by version, each data row's version follows it.
	PublishVersions bool
	// ReplicateAccounts publishes account and privilege statements
	// (CREATE/ALTER/DROP/RENAME USER, GRANT, REVOKE, SET PASSWORD, roles),
	// their clear-text passwords replaced by the mysql_native_password hash;
	// one with a password that cannot be hashed so is still withheld.
	// Default false: none is published, each is logged (cut before its
	// first literal) and counted (Reader.AccountStatementsWithheld,
	// OnWithheld).
	ReplicateAccounts bool

	// HeartbeatPeriod is the master heartbeat period requested from the
	// master: when the binlog is idle the master sends a heartbeat this often,
	// and OnHeartbeat is called. Default 1 s.
	HeartbeatPeriod time.Duration
	// ReadTimeout ends Run with ErrStream when the reader waited this long
	// for the master and nothing (not even a heartbeat) arrived. Time spent
	// in emit does not count. Must exceed HeartbeatPeriod. Default 30 s.
	ReadTimeout time.Duration
	// HoldReads, when set, is asked once the reader has read a MiB past a
	// big rows event it published (8 MiB or more): while it reports true,
	// up to 10 s (a third of ReadTimeout at most), the reader reads no
	// further from the master. `rowcast run` sets it to tell that a sink
	// worker of the process applies that big row (docs/DESIGN.md, "Large
	// rows"). It runs on go-mysql's goroutine and must not block.
	HoldReads func() bool
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

	// SkipGTID names one source transaction (MariaDB "d-s-n", MySQL
	// "uuid:n") that Run leaves out of the topic when it meets it, once,
	// recording the skip (a heartbeat with a pipeline.SkipRecord): the
	// operator's way past a transaction rowcast refuses. A transaction
	// already before the start position is not skipped (a warning says so).
	// Default "".
	SkipGTID string

	// OnHeartbeat, when set, is called between transactions when the master
	// sends a heartbeat, and after every transaction of which nothing was
	// published (all its rows filtered out), with the master's clock (the
	// heartbeat's header timestamp, or the local receive time when the master
	// leaves it zero; the commit time of a filtered transaction) and the
	// master's executed GTID set after the last transaction read (published
	// or filtered out). file is the binlog file of the filtered transaction,
	// "" for a heartbeat: the reader waits at the end of the binlog. It runs
	// on the reader's goroutine.
	OnHeartbeat func(serverTime time.Time, gtidSet, file string)
	// OnWithheld, when set, is called for every account statement that is
	// not published (see ReplicateAccounts), on the reader's goroutine.
	OnWithheld func()
}

func (c *Config) setDefaults() {
	setDefault(&c.Addr, "127.0.0.1:3306")
	setDefault(&c.User, "rowcast")
	setDefault(&c.ServerID, DefaultServerID)
	setDefault(&c.BookkeepingSchema, "rowcast")
	setDefault(&c.HeartbeatPeriod, time.Second)
	setDefault(&c.ReadTimeout, 30*time.Second)
	setDefault(&c.EventBuffer, 64)
}

// setDefault sets *field to def when it holds the zero value.
func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// Validate reports the first invalid field, naming it and the fix. It checks
// the config as given; Run applies the defaults first.
func (c *Config) Validate() error {
	if err := c.validateMaster(); err != nil {
		return err
	}
	if err := c.validateTables(); err != nil {
		return err
	}
	return c.validateTiming()
}

// validateMaster checks how rowcast connects to the master.
func (c *Config) validateMaster() error {
	if err := validateAddr(c.Addr); err != nil {
		return err
	}
	switch {
	case c.User == "":
		return fmt.Errorf("%w: User is empty: set the replication user", ErrConfig)
	case c.ServerID == 0:
		return fmt.Errorf("%w: ServerID is 0: set a server_id unique among the master's replicas", ErrConfig)
	case c.Flavor != "" && c.Flavor != FlavorMySQL && c.Flavor != FlavorMariaDB:
		return fmt.Errorf("%w: Flavor %q: use \"mysql\", \"mariadb\" or \"\" to detect", ErrConfig, c.Flavor)
	}
	return nil
}

// validateAddr checks a host:port.
func validateAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return fmt.Errorf("%w: Addr %q is not host:port (e.g. 127.0.0.1:3306)", ErrConfig, addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%w: Addr %q has no valid port (1-65535)", ErrConfig, addr)
	}
	return nil
}

// validateTables checks which tables are published.
func (c *Config) validateTables() error {
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
	return nil
}

// validateTiming checks the heartbeats, the read timeout and the event
// buffer.
func (c *Config) validateTiming() error {
	switch {
	case c.HeartbeatPeriod <= 0 || c.HeartbeatPeriod > time.Hour:
		return fmt.Errorf("%w: HeartbeatPeriod %v: use a period between 1ms and 1h (default 1s)", ErrConfig, c.HeartbeatPeriod)
	case c.ReadTimeout <= c.HeartbeatPeriod:
		return fmt.Errorf("%w: ReadTimeout %v must exceed HeartbeatPeriod %v, or an idle master looks dead", ErrConfig, c.ReadTimeout, c.HeartbeatPeriod)
	case c.EventBuffer < 1:
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
