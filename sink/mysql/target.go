// Package mysql is the sink.Target of MySQL and MariaDB replicas.
//
// It applies row events as multi-row statements on one dedicated connection,
// inside transactions that end with the checkpoint row (checkpoint.MySQL), so
// a replica's data and its position commit together. The session is pinned
// to what faithful replay needs: time_zone '+00:00' (TIMESTAMP values travel
// in UTC), sql_mode STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION
// (strict, so a value the replica cannot hold stops the worker instead of
// being truncated; zero dates accepted because the master accepted them; an
// explicit 0 in an AUTO_INCREMENT column stays 0), foreign_key_checks=0 (the
// master checked them when it ran the transaction; the replica applies the
// result, possibly without tables excluded from replication, and a check
// here could only refuse a change the master made) and utf8mb4.
//
// Statements are sent with client-side interpolation (interpolateParams):
// one round trip per statement and no prepared-statement cache to manage on
// a connection that may be killed; values are always placeholders. Large
// upsert batches of plain tables (no other unique key, no trigger, not
// referenced by a foreign key) go through LOAD DATA LOCAL INFILE ... REPLACE
// instead, which costs the server about half as much per row: see load.go.
// On MariaDB, when the sink's user may run BINLOG statements, rows of tables
// with a primary key go as binary row events instead: see binlog.go.
//
// The SQL is MariaDB 10.11's. MySQL 8.0.20+ deprecates VALUES() in
// ON DUPLICATE KEY UPDATE in favour of a row alias, but still accepts it.
package mysql

import (
	"context"
	"database/sql"
	"fmt"
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
}

// execer is the one path every statement of the Target takes, so that tests
// can record the exact SQL sequence. *sql.Conn implements it.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Target applies the changelog to one MySQL or MariaDB replica. It is driven
// by one sink.Worker and is not safe for concurrent use.
type Target struct {
	cfg   Config
	log   zerolog.Logger
	store *checkpoint.MySQL

	db      *sql.DB
	conn    *sql.Conn
	ex      execer
	connID  int64
	inited  bool
	mariadb bool
	inTx    bool

	// saved is the checkpoint as last loaded or written; maxSeq the highest
	// TxnSeq ever applied. Transactions at or below maxSeq are replays.
	saved  checkpoint.State
	maxSeq uint64

	sql  sqlCache
	args []any

	// LOAD DATA (load.go): allowed on this replica; the driver's reader
	// name; the batch being sent; statements and table checks.
	loadOK    bool
	loadName  string
	loadBuf   []byte
	loadStmts map[*pipeline.Table]string
	tables    map[string]tableInfo

	// Binary apply (binlog.go): this session ran the format description;
	// the tables' row-event encodings (nil: as SQL); the replica's
	// server_id, the size where a row event is cut, the last table id, the
	// event buffer.
	binOK      bool
	binWarned  bool
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
	return &Target{cfg: cfg, log: log, store: checkpoint.NewMySQL(cfg.Schema)}, nil
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

// Open connects (again, after a failure), creates the bookkeeping schema,
// protects the replica if configured, and loads the checkpoint.
func (t *Target) Open(ctx context.Context) (checkpoint.State, bool, error) {
	if t.db == nil {
		dsn, err := sessionDSN(t.cfg.DSN)
		if err != nil {
			return checkpoint.State{}, false, fmt.Errorf("DSN: %w", err)
		}
		if t.db, err = sql.Open("mysql", dsn); err != nil {
			return checkpoint.State{}, false, err
		}
		t.db.SetMaxOpenConns(2)
		t.db.SetConnMaxIdleTime(time.Minute)
	}
	if t.conn != nil {
		t.conn.Close() // a broken connection is discarded by the pool
		t.conn = nil
	}
	t.inTx = false
	conn, err := t.db.Conn(ctx)
	if err != nil {
		return checkpoint.State{}, false, fmt.Errorf("connect: %w", err)
	}
	t.conn, t.ex = conn, conn
	if t.wrap != nil {
		t.ex = t.wrap(conn)
	}
	var version string
	if err := t.ex.QueryRowContext(ctx, "SELECT CONNECTION_ID(), VERSION()").Scan(&t.connID, &version); err != nil {
		return checkpoint.State{}, false, fmt.Errorf("connect: %w", err)
	}
	t.mariadb = isMariaDB(version)
	t.forgetTables()
	t.loadOK = false
	if t.mariadb && !t.cfg.NoLoadData {
		var local int
		if err := t.ex.QueryRowContext(ctx, "SELECT @@local_infile").Scan(&local); err != nil {
			return checkpoint.State{}, false, fmt.Errorf("connect: %w", err)
		}
		t.loadOK = local == 1
		if t.loadOK {
			t.registerReader()
		}
	}
	if err := t.binInit(ctx, version); err != nil {
		return checkpoint.State{}, false, err
	}
	if !t.inited {
		if err := t.store.Init(ctx, t.ex); err != nil {
			return checkpoint.State{}, false, err
		}
		if t.cfg.Protect {
			if err := t.protect(ctx); err != nil {
				return checkpoint.State{}, false, err
			}
		}
		t.inited = true
	}
	st, found, err := t.store.Load(ctx, t.ex, t.cfg.Topic, t.cfg.Partition)
	if err != nil {
		return checkpoint.State{}, false, err
	}
	t.saved, t.maxSeq = st, st.MaxTxnSeq
	return st, found, nil
}

// Begin starts a transaction on the apply connection.
func (t *Target) Begin(ctx context.Context) error {
	if _, err := t.ex.ExecContext(ctx, "BEGIN"); err != nil {
		return err
	}
	t.inTx = true
	return nil
}

// Commit writes the checkpoint in the open transaction, then commits: the
// rows and the position become durable together.
func (t *Target) Commit(ctx context.Context, st checkpoint.State) error {
	if err := t.store.Save(ctx, t.ex, st); err != nil {
		return err
	}
	t.inTx = false // COMMIT ends the transaction even when it fails
	if _, err := t.ex.ExecContext(ctx, "COMMIT"); err != nil {
		return err
	}
	t.saved = st
	t.maxSeq = max(t.maxSeq, st.TxnSeq, st.MaxTxnSeq)
	return nil
}

// Rollback abandons the open transaction.
func (t *Target) Rollback(ctx context.Context) error {
	if !t.inTx || t.ex == nil {
		return nil
	}
	t.inTx = false
	_, err := t.ex.ExecContext(ctx, "ROLLBACK")
	return err
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

// protect makes the replica read-only for everyone but the sink, so that
// nothing but rowcast writes to it (a write elsewhere would make it diverge
// from the master, silently until a key collides).
//
// read_only=ON blocks every user without the privilege to write through it:
// READ_ONLY ADMIN on MariaDB 10.5.2 and later (SUPER no longer implies it
// from 10.11), CONNECTION_ADMIN or SUPER on MySQL 8 (which also has
// super_read_only, blocking even those; rowcast does not set it). Setting
// read_only needs the same privilege on MariaDB, SYSTEM_VARIABLES_ADMIN on
// MySQL 8. After setting it, Open checks with a write that cannot change
// anything that the sink's user can still write, and otherwise says exactly
// which privilege to grant.
func (t *Target) protect(ctx context.Context) error {
	adminPriv, setPriv := "READ_ONLY ADMIN", "READ_ONLY ADMIN"
	if !t.mariadb {
		adminPriv, setPriv = "CONNECTION_ADMIN", "SYSTEM_VARIABLES_ADMIN"
	}
	if _, err := t.ex.ExecContext(ctx, "SET GLOBAL read_only=ON"); err != nil {
		return fmt.Errorf("protect replica: SET GLOBAL read_only=ON: %w; GRANT %s ON *.* to the sink's user, or set sink.protect_replicas: false", err, setPriv)
	}
	probe := "UPDATE " + quoteIdent(t.cfg.Schema) + ".`checkpoint` SET `next_offset`=`next_offset` WHERE 1=0"
	if _, err := t.ex.ExecContext(ctx, probe); err != nil {
		if isCode(err, 1290) || isCode(err, 1836) {
			return fmt.Errorf("protect replica: the replica is now read-only, but the sink's user cannot write through read_only: "+
				"GRANT %s ON *.* to it (and keep super_read_only off): %w", adminPriv, err)
		}
		return fmt.Errorf("protect replica: write check: %w", err)
	}
	t.log.Info().Str("schema", t.cfg.Schema).
		Msgf("replica protected: read_only=ON; only users with %s (the rowcast sink) can write to it", adminPriv)
	return nil
}
