// Package mysql is the sink.Target of MySQL and MariaDB replicas: row events
// applied on one dedicated connection, in transactions that end with the
// checkpoint row (checkpoint.MySQL), so that a replica's data and its
// position commit together. The session is pinned to what faithful replay
// needs (UTC, strict sql_mode, no foreign key checks, utf8mb4); rows go as
// SQL (sqlgen.go, rows.go), LOAD DATA (load.go) or row events (binlog.go).
// docs/DESIGN.md, "MySQL target session", says why each setting.
package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
)

// Config configures a Target.
type Config struct {
	// DSN is the go-sql-driver DSN of the replica, user:password@tcp(host:port)/.
	// Session settings and interpolateParams are added by the Target.
	DSN string
	// Schema is the bookkeeping schema holding the checkpoint. Default "rowcast".
	Schema string
	// Topic and Partition key the checkpoint row.
	Topic     string
	Partition int32
	// Node is the replica's name in the cluster's config: protection leaves
	// a node the epoch index names as the master alone (protect.go).
	Node string
	// Protect makes the replica read-only (SET GLOBAL read_only=ON) at Open,
	// for everyone but users that may write through it, like rowcast's.
	Protect bool
	// NoLoadData keeps every upsert an INSERT ... ON DUPLICATE KEY UPDATE.
	// By default large upsert batches of plain tables go through LOAD DATA
	// LOCAL INFILE ... REPLACE on MariaDB replicas that allow it (see
	// load.go).
	NoLoadData bool
	// NoBinlog applies every row as SQL. By default rows of tables with a
	// primary key go as row events in BINLOG statements on MariaDB replicas
	// where the sink's user may run them (see binlog.go).
	NoBinlog bool
	// KeepDigests keeps a digest of each applied transaction with the
	// checkpoint (checkpoint.AppliedTable), so that the worker can tell a
	// duplicate that differs from what was applied (sink.DigestStore).
	KeepDigests bool
	// AllowNonTransactional applies rows to replica tables whose engine
	// cannot roll back (MyISAM, Aria, MEMORY, ...), with a warning, instead
	// of stopping: their rows are not exactly-once (engine.go).
	AllowNonTransactional bool
	// OriginDomain, set on a master of a master-master topology, is the
	// GTID domain of the master whose topic it applies: each transaction
	// is applied under its origin GTID (origin.go).
	OriginDomain *uint32
	// Resolve, on such a master, is the conflict resolution of a table;
	// nil or Policy "stop" for every table: a conflict stops the worker
	// (versions.go).
	Resolve func(db, table string) Resolution
	// MasterDomains are the masters' GTID domains in the config's order:
	// of two versions with the same time, the earlier master's wins.
	MasterDomains []uint32
}

// execer is the one path every statement of the Target takes, so that tests
// can record the exact SQL sequence. *sql.Conn implements it.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Target applies the changelog to one MySQL or MariaDB replica. It is driven
// by one sink.Worker and is not safe for concurrent use.
type Target struct {
	cfg   Config
	log   zerolog.Logger
	store *checkpoint.MySQL

	db     *sql.DB
	conn   *sql.Conn
	ex     execer
	connID int64
	inited bool
	// protectChecked is when read_only was last read (protect.go);
	// readOnly is what it was, for ReadOnlyState from any goroutine.
	protectChecked time.Time
	readOnly       atomic.Int32
	mariadb        bool
	inTx           bool
	origin         originState
	txnOrigin      *gtid // the origin GTID of the open transaction
	// held are rows of versioned tables waiting for their versions, and
	// conflicts counts the conflicts versions resolved (versions.go).
	held                          []*pipeline.Event
	conflicts, committedConflicts int

	// saved is the checkpoint as last loaded or written; maxSeq the highest
	// TxnSeq ever applied. Transactions at or below maxSeq are replays.
	saved  checkpoint.State
	maxSeq uint64
	// boot are the bootstrap entries Open read; fresh until the next
	// transaction, Bootstrap hands them out without reading them again.
	boot      map[string]checkpoint.Bootstrap
	bootFresh bool
	// ro holds the replica read-only while tables are bootstrapping:
	// booting are their "db.table" names as committed, ending those the
	// open transaction deletes.
	ro      *ReadOnly
	booting map[string]bool
	ending  []string

	sql  sqlCache
	args []any

	// LOAD DATA (load.go): allowed on this replica; the driver's reader
	// name; the batch being sent; statements and table checks.
	loadOK    bool
	loadName  string
	loadBuf   []byte
	loadStmts map[*pipeline.Table]string
	tables    map[string]tableInfo

	// Table engines (engine.go): which commit with InnoDB, by name; the
	// tables warned about.
	engines      map[string]bool
	engineWarned map[string]bool

	// Binary apply (binlog.go): this session ran the format description;
	// the tables' row-event encodings (nil: as SQL); the replica's
	// server_id, the size where a row event is cut, the last table id, the
	// event buffer.
	binOK      bool
	binWarned  bool
	binWhy     string // why the replica's error settings keep rows as SQL (execmode.go)
	binTables  map[*pipeline.Table]*binTable
	serverID   uint32
	binLimit   int
	binTableID uint64
	binSends   [2]binSend

	wrap func(execer) execer // tests: record statements
}

var _ sink.Target = (*Target)(nil)

// New returns a Target; it connects at Open.
func New(cfg Config, log zerolog.Logger) (*Target, error) {
	if cfg.Schema == "" {
		cfg.Schema = "rowcast"
	}
	if cfg.Topic == "" {
		return nil, fmt.Errorf("mysql sink: Topic is required")
	}
	if _, err := mysql.ParseDSN(cfg.DSN); err != nil {
		return nil, fmt.Errorf("mysql sink: DSN: %w", err)
	}
	return &Target{cfg: cfg, log: log, store: checkpoint.NewMySQL(cfg.Schema), ro: NewReadOnly(cfg.Schema, log)}, nil
}

// sessionDSN is the configured DSN with the session the sink needs.
func sessionDSN(dsn string) (string, error) {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", err
	}
	c.InterpolateParams = true
	c.ClientFoundRows = true // an UPDATE that matches an identical row reports 1
	c.ParseTime = false
	c.MultiStatements = false
	c.Loc = time.UTC
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Params == nil {
		c.Params = map[string]string{}
	}
	c.Params["time_zone"] = "'+00:00'"
	c.Params["sql_mode"] = "'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'"
	c.Params["foreign_key_checks"] = "0"
	c.Collation = "utf8mb4_general_ci"
	return c.FormatDSN(), nil
}

// Open connects (again, after a failure), takes the worker lock (lock.go),
// creates the bookkeeping schema, protects the replica if configured, and
// loads the bootstrap entries and the checkpoint.
func (t *Target) Open(ctx context.Context) (checkpoint.State, bool, error) {
	version, err := t.connect(ctx)
	if err != nil {
		return checkpoint.State{}, false, err
	}
	if err := Lock(ctx, t.ex, t.cfg.Schema, t.cfg.Topic, t.cfg.Partition); err != nil {
		return checkpoint.State{}, false, err
	}
	t.forgetTables()
	if err := t.loadInit(ctx); err != nil {
		return checkpoint.State{}, false, err
	}
	if err := t.binInit(ctx, version); err != nil {
		return checkpoint.State{}, false, err
	}
	if err := t.loadOrigin(ctx); err != nil {
		return checkpoint.State{}, false, err
	}
	if err := t.prepare(ctx); err != nil {
		return checkpoint.State{}, false, err
	}
	if err := t.protect(ctx); err != nil {
		return checkpoint.State{}, false, err
	}
	if t.boot, err = t.store.LoadBootstrap(ctx, t.ex, t.cfg.Topic); err != nil {
		return checkpoint.State{}, false, err
	}
	t.bootFresh = true
	t.trackBoot(t.boot)
	if err := t.holdWhileBooting(ctx, len(t.booting) > 0, false); err != nil {
		return checkpoint.State{}, false, err
	}
	st, found, err := t.store.Load(ctx, t.ex, t.cfg.Topic, t.cfg.Partition)
	if err != nil {
		return checkpoint.State{}, false, err
	}
	t.saved, t.maxSeq = st, st.MaxTxnSeq
	return st, found, nil
}

// connect takes a new connection from the pool (opened on first use; a
// broken connection is discarded by it) and returns the server's version.
func (t *Target) connect(ctx context.Context) (string, error) {
	if err := t.openPool(); err != nil {
		return "", err
	}
	t.dropConn()
	t.inTx = false
	conn, err := t.db.Conn(ctx)
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	t.conn, t.ex = conn, conn
	if t.wrap != nil {
		t.ex = t.wrap(conn)
	}
	var version string
	if err := t.ex.QueryRowContext(ctx, "SELECT CONNECTION_ID(), VERSION()").Scan(&t.connID, &version); err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	t.mariadb = isMariaDB(version)
	return version, nil
}

// dropConn closes the apply connection for good: back in the pool, its
// session would keep the worker lock (lock.go) and whatever else it set.
func (t *Target) dropConn() {
	if t.conn == nil {
		return
	}
	t.conn.Raw(func(any) error { return driver.ErrBadConn }) // makes database/sql close it
	t.conn.Close()
	t.conn = nil
}

func (t *Target) openPool() error {
	if t.db != nil {
		return nil
	}
	dsn, err := sessionDSN(t.cfg.DSN)
	if err != nil {
		return fmt.Errorf("DSN: %w", err)
	}
	if t.db, err = sql.Open("mysql", dsn); err != nil {
		return err
	}
	t.db.SetMaxOpenConns(2)
	t.db.SetConnMaxIdleTime(time.Minute)
	return nil
}

// prepare creates the bookkeeping schema, once.
func (t *Target) prepare(ctx context.Context) error {
	if t.inited {
		return nil
	}
	err := t.store.Init(ctx, t.ex)
	if err == nil && t.cfg.KeepDigests {
		err = t.store.InitDigests(ctx, t.ex)
	}
	if err == nil {
		err = t.installWaitFor(ctx)
	}
	if err != nil {
		if refusedByReadOnly(err) {
			return fmt.Errorf("the replica is read-only and the sink's user cannot write through read_only: GRANT %s ON *.* to it: %w",
				writePrivilege(t.mariadb), err)
		}
		return err
	}
	t.inited = true
	return nil
}

// Begin starts a transaction on the apply connection.
func (t *Target) Begin(ctx context.Context) error {
	t.bootFresh = false
	t.txnOrigin = t.takeOrigin()
	if err := t.sessionGTID(ctx, t.txnOrigin); err != nil {
		return err
	}
	// On a master of a master-master set, a transaction without an origin
	// GTID holds only the checkpoint: left out of the binlog, it takes no
	// GTID of the master's own domain, which counts its own writes.
	if err := t.binlogged(ctx, t.cfg.OriginDomain == nil || t.txnOrigin != nil); err != nil {
		return err
	}
	if _, err := t.ex.ExecContext(ctx, "BEGIN"); err != nil {
		return err
	}
	t.inTx = true
	return nil
}

// Commit writes the checkpoint in the open transaction, then commits: the
// rows and the position become durable together.
func (t *Target) Commit(ctx context.Context, st checkpoint.State) error {
	if err := t.applyUnversioned(ctx); err != nil {
		return err
	}
	if err := t.store.Save(ctx, t.ex, st); err != nil {
		return err
	}
	t.inTx = false // COMMIT ends the transaction even when it fails
	if _, err := t.ex.ExecContext(ctx, "COMMIT"); err != nil {
		return err
	}
	t.saved = st
	t.committedConflicts += t.conflicts
	t.conflicts = 0
	t.maxSeq = max(t.maxSeq, st.TxnSeq, st.MaxTxnSeq)
	t.appliedOrigin(t.txnOrigin)
	t.txnOrigin = nil
	t.afterCommit(ctx)
	return nil
}

// Rollback abandons the open transaction.
func (t *Target) Rollback(ctx context.Context) error {
	t.ending = t.ending[:0]
	t.held, t.conflicts = nil, 0
	t.txnOrigin = nil
	if !t.inTx || t.ex == nil {
		return nil
	}
	t.inTx = false
	_, err := t.ex.ExecContext(ctx, "ROLLBACK")
	return err
}

// RecordDigests records the digests of applied transactions in the open
// transaction (sink.DigestStore).
func (t *Target) RecordDigests(ctx context.Context, ds []checkpoint.TxnDigest, pruneBelow uint64) error {
	if !t.cfg.KeepDigests {
		return nil
	}
	return t.store.SaveDigests(ctx, t.ex, t.cfg.Topic, t.cfg.Partition, ds, pruneBelow)
}

// Digest reads the digest recorded for transaction seq (sink.DigestStore).
func (t *Target) Digest(ctx context.Context, seq uint64) (uint64, bool, error) {
	if !t.cfg.KeepDigests {
		return 0, false, nil
	}
	return t.store.LoadDigest(ctx, t.ex, t.cfg.Topic, t.cfg.Partition, seq)
}

// RecordSkip records an operator skip in the open transaction.
func (t *Target) RecordSkip(ctx context.Context, s checkpoint.Skip) error {
	return t.store.RecordSkip(ctx, t.ex, s)
}

// Close releases the connection and the pool.
func (t *Target) Close() error {
	t.deregisterReader()
	if t.conn != nil {
		t.conn.Close()
		t.conn = nil
	}
	if t.db != nil {
		err := t.db.Close()
		t.db = nil
		return err
	}
	return nil
}

// saveAlone stores a checkpoint in a transaction of its own (around DDL).
func (t *Target) saveAlone(ctx context.Context, st checkpoint.State) error {
	if err := t.Begin(ctx); err != nil {
		return err
	}
	if err := t.Commit(ctx, st); err != nil {
		t.Rollback(ctx)
		return err
	}
	return nil
}
