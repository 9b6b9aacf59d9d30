// Package verify proves that a replica holds the master's rows, and repairs
// the rows where it does not. Table by table, in chunks of the key, both
// sides sum up the same key range in one statement; a chunk that differs is
// checked again once the replica has reached the master's position, then row
// by row, and a difference counts only once confirmed under a shared lock on
// the master's rows. docs/DESIGN.md, "Verify", has how and why.
package verify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/rowcast/rowcast/checkpoint"
)

// Config configures a verification. ReplicaDSN is required, and either
// Locate or MasterDSN.
type Config struct {
	// MasterName and ReplicaName name the nodes in reports and errors.
	MasterName, ReplicaName string
	// Locate finds the current master, which verify compares with instead
	// of MasterName and MasterDSN: after a promotion, the master a config
	// file names is an old one (its data may lag, or hold transactions the
	// topic never got), and repairing a replica from it would be wrong. New
	// calls it once; an error fails New with ErrMasterUnknown. A replica
	// whose checkpoint shows a newer master generation than the master's
	// (a promotion since) fails with ErrMasterMoved; Continuous then calls
	// Locate again. Nil: MasterName is the master, of generation
	// MasterEpoch.
	Locate func(ctx context.Context) (Master, error)
	// MasterEpoch is the master generation of MasterName when Locate is
	// nil. Default 1: the configured master before any promotion.
	MasterEpoch uint64
	// MasterDSN and ReplicaDSN are go-sql-driver DSNs. The replica's user
	// must be able to write through read_only for Repair (rowcast's user
	// has READ_ONLY ADMIN).
	MasterDSN, ReplicaDSN string
	// Filter selects the tables.
	Filter Filter
	// Topic is the changelog topic whose checkpoint the replica holds (in
	// Filter.Bookkeeping, default "rowcast"): how far it has applied.
	Topic string
	// NoWait compares the replica as it is, without waiting for it to reach
	// the master's position: for a replica whose sink is stopped.
	// A replica without a checkpoint for Topic is always compared so.
	NoWait bool
	// ChunkRows is the number of rows per chunk. Default DefaultChunkRows.
	ChunkRows int
	// Parallel is the number of chunks hashed at once, per side. Default
	// DefaultParallel.
	Parallel int
	// KeysetBounds finds every chunk's upper bound on the master as the key
	// of its ChunkRows-th row, also for a table walked by one integer
	// column, whose bounds are otherwise stepped without reading the master
	// (see stepper): for comparisons.
	KeysetBounds bool
	// RowsPerSecond limits the rows read per second on each side; 0: no
	// limit.
	RowsPerSecond int
	// WaitTimeout bounds each wait for the replica to reach the master's
	// position, and so how long a lock may be held on the master. Default
	// 30s.
	WaitTimeout time.Duration
	// LockWaitTimeout is the master's innodb_lock_wait_timeout for the
	// locking confirmation. Default 5s.
	LockWaitTimeout time.Duration
	// Repair rewrites the rows that differ on the replica from the master.
	Repair bool
	// Quiet leaves the rows' values out of the report (keys only).
	Quiet bool
	// MaxDiffs bounds the differences listed per table (all are counted,
	// and all are repaired). Default 100.
	MaxDiffs int
	// Hash forces a hash function (HashCRC32, HashCRC or HashMD5; see
	// there for what each detects); default: the fastest both servers
	// have, HashCRC32 on MariaDB 10.8 and later, else HashMD5.
	Hash string
	// LogDiffs logs each confirmed difference at warn, with its table and
	// key (never the row's values): for continuous verification, whose only
	// report is the log and the metrics.
	LogDiffs bool
	// Progress, when set, is called after each chunk, from one goroutine at
	// a time.
	Progress func(Progress)
	// Log receives warnings and progress. Default: none.
	Log zerolog.Logger
}

// Progress is where the verification of one table stands.
type Progress struct {
	Table string
	Rows  int64 // rows compared so far
	// Estimate is the master's estimate of the table's rows
	// (information_schema), 0 when unknown.
	Estimate int64
	Done     bool
}

// Defaults of Config.ChunkRows and Config.Parallel, chosen with
// `scripts/bench verify` (docs/BENCHMARKS.md): each chunk costs the servers
// a fixed part beside its rows, so large chunks cost less per row, and two
// chunks in flight keep each side busy while the other's answer is on its
// way.
const (
	DefaultChunkRows = 20000
	DefaultParallel  = 2
)

func (c *Config) setDefaults() {
	if c.ChunkRows <= 0 {
		c.ChunkRows = DefaultChunkRows
	}
	if c.Parallel <= 0 {
		c.Parallel = DefaultParallel
	}
	if c.WaitTimeout <= 0 {
		c.WaitTimeout = 30 * time.Second
	}
	if c.LockWaitTimeout <= 0 {
		c.LockWaitTimeout = 5 * time.Second
	}
	if c.MaxDiffs <= 0 {
		c.MaxDiffs = 100
	}
	if c.Filter.Bookkeeping == "" {
		c.Filter.Bookkeeping = "rowcast"
	}
	if c.MasterName == "" {
		c.MasterName = "master"
	}
	if c.MasterEpoch == 0 {
		c.MasterEpoch = 1
	}
	if c.ReplicaName == "" {
		c.ReplicaName = "replica"
	}
}

// Master is the node that takes writes, as Config.Locate finds it.
type Master struct {
	// Name is the node's name, DSN its go-sql-driver DSN.
	Name, DSN string
	// Epoch is its master generation: 1 before any promotion.
	Epoch uint64
	// From says where the answer comes from, for the report ("config",
	// "epoch record").
	From string
}

// Verifier compares one replica with the master.
type Verifier struct {
	cfg     Config
	master  *sql.DB
	replica *sql.DB
	pos     *positions
	hash    string
	thr     *throttle
	log     zerolog.Logger
	note    string
	from    string // where the master's name comes from (Master.From)
}

// sessionDSN pins what both sides must agree on to hash alike (time_zone for
// TIMESTAMP, the connection character set) and what repairs need (the sink's
// sql_mode: strict, zero dates and explicit zeros in AUTO_INCREMENT columns
// accepted; no foreign key checks, as the sink).
func sessionDSN(dsn string, lockWait time.Duration, write bool) (string, error) {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", err
	}
	c.InterpolateParams = true
	c.ParseTime = false
	c.MultiStatements = false
	c.Collation = "utf8mb4_general_ci"
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Params == nil {
		c.Params = map[string]string{}
	}
	c.Params["time_zone"] = "'+00:00'"
	c.Params["innodb_lock_wait_timeout"] = strconv.Itoa(max(1, int(lockWait.Seconds())))
	if write {
		c.Params["sql_mode"] = "'" + strictSQLMode + "'"
		c.Params["foreign_key_checks"] = "0"
	}
	return c.FormatDSN(), nil
}

func open(ctx context.Context, name, dsn string, cfg Config, write bool) (*sql.DB, string, error) {
	d, err := sessionDSN(dsn, cfg.LockWaitTimeout, write)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %s: DSN: %v", ErrConfig, name, err)
	}
	db, err := sql.Open("mysql", d)
	if err != nil {
		return nil, "", err
	}
	db.SetMaxOpenConns(2*cfg.Parallel + 4)
	db.SetMaxIdleConns(2*cfg.Parallel + 4)
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		db.Close()
		return nil, "", fmt.Errorf("connect to %s: %w", name, err)
	}
	return db, version, nil
}

// mariaDBAtLeast reports whether version is MariaDB major.minor or later.
func mariaDBAtLeast(version string, major, minor int) bool {
	if !strings.Contains(version, "MariaDB") {
		return false
	}
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// New finds the master (Config.Locate), connects to both sides, picks the
// hash function and reads the replica's checkpoint.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	cfg.setDefaults()
	from, err := locate(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	v := &Verifier{cfg: cfg, log: cfg.Log, from: from}
	var mver, rver string
	if v.master, mver, err = open(ctx, "master "+cfg.MasterName, cfg.MasterDSN, cfg, false); err != nil {
		return nil, err
	}
	if v.replica, rver, err = open(ctx, "replica "+cfg.ReplicaName, cfg.ReplicaDSN, cfg, true); err != nil {
		v.master.Close()
		return nil, err
	}
	if err := v.pickHash(mver, rver); err != nil {
		v.Close()
		return nil, err
	}
	if err := v.startPositions(ctx, mver); err != nil {
		v.Close()
		return nil, err
	}
	v.thr = newThrottle(cfg.RowsPerSecond, cfg.ChunkRows)
	return v, nil
}

// locate sets cfg's master to the current one, when cfg.Locate finds it,
// and returns where the answer comes from.
func locate(ctx context.Context, cfg *Config) (string, error) {
	if cfg.Locate == nil {
		return "", nil
	}
	m, err := cfg.Locate(ctx)
	if err != nil {
		return "", fmt.Errorf("%w: %v: verify compares a replica with the current master only; check that Kafka and the mysql nodes answer (rowcast status)",
			ErrMasterUnknown, err)
	}
	if m.Name == cfg.ReplicaName {
		return "", fmt.Errorf("%w: %s is the current master (epoch %d, from the %s): name one of its replicas",
			ErrConfig, m.Name, m.Epoch, m.From)
	}
	if m.DSN == "" || m.Epoch == 0 {
		return "", fmt.Errorf("%w: the current master %q (epoch %d) has no DSN", ErrMasterUnknown, m.Name, m.Epoch)
	}
	cfg.MasterName, cfg.MasterDSN, cfg.MasterEpoch = m.Name, m.DSN, m.Epoch
	return m.From, nil
}

// pickHash picks the configured hash function, or the fastest both servers
// have.
func (v *Verifier) pickHash(mver, rver string) error {
	crc32c := mariaDBAtLeast(mver, 10, 8) && mariaDBAtLeast(rver, 10, 8) // CRC32C arrived in MariaDB 10.8
	v.hash = HashMD5
	if crc32c {
		v.hash = HashCRC32
	}
	switch v.cfg.Hash {
	case "":
	case HashCRC32, HashCRC:
		if !crc32c {
			return fmt.Errorf("%w: hash %s needs CRC32C, MariaDB 10.8 or later on both sides (master %s, replica %s): use %s",
				ErrConfig, v.cfg.Hash, mver, rver, HashMD5)
		}
		v.hash = v.cfg.Hash
	case HashMD5:
		v.hash = v.cfg.Hash
	default:
		return fmt.Errorf("%w: hash %q: use %s, %s or %s", ErrConfig, v.cfg.Hash, HashCRC32, HashCRC, HashMD5)
	}
	return nil
}

// startPositions reads the replica's checkpoint: without one (or with
// NoWait, or no topic) the replica is compared as it is, static.
func (v *Verifier) startPositions(ctx context.Context, mver string) error {
	cfg := v.cfg
	flavor := gomysql.MySQLFlavor
	if strings.Contains(mver, "MariaDB") {
		flavor = gomysql.MariaDBFlavor
	}
	v.pos = &positions{flavor: flavor, master: v.master, replica: v.replica,
		store: checkpoint.NewMySQL(cfg.Filter.Bookkeeping), topic: cfg.Topic,
		timeout: cfg.WaitTimeout, poll: 50 * time.Millisecond,
		masterName: cfg.MasterName, epoch: cfg.MasterEpoch}
	switch {
	case cfg.NoWait:
		v.pos.static = true
		v.note = "--no-wait: the replica is compared as it is, without waiting for it to reach the master's position; a difference may be replication lag"
		return nil
	case cfg.Topic == "":
		v.pos.static = true
		v.note = "no topic given: the replica is compared as it is"
		return nil
	}
	st, found, err := v.pos.applied(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("read the checkpoint of replica %s: %w", cfg.ReplicaName, err)
	case !found:
		v.pos.static = true
		v.note = fmt.Sprintf("replica %s holds no rowcast checkpoint for topic %s in schema %s: it is compared as it is, without waiting for replication",
			cfg.ReplicaName, cfg.Topic, cfg.Filter.Bookkeeping)
		return nil
	}
	if err := v.pos.sameMaster(st); err != nil {
		return err
	}
	if _, err := gomysql.ParseGTIDSet(flavor, st.GTIDSet); err != nil {
		return fmt.Errorf("replica %s: checkpoint GTID set %q is not a %s GTID set: %v", cfg.ReplicaName, st.GTIDSet, flavor, err)
	}
	return nil
}

// Close closes both connections.
func (v *Verifier) Close() {
	if v.master != nil {
		v.master.Close()
	}
	if v.replica != nil {
		v.replica.Close()
	}
}

// Static reports whether the replica is compared without waiting for it.
func (v *Verifier) Static() bool { return v.pos.static }

// Tables lists the tables the configuration selects.
func (v *Verifier) Tables(ctx context.Context) ([]string, error) {
	return listTables(ctx, v.master, v.cfg.Filter)
}

// Run verifies every selected table. An error is returned only when nothing
// could be verified (the tables cannot be listed, ctx ended); a table that
// fails has its Error set and the others are still verified.
func (v *Verifier) Run(ctx context.Context) (*Report, error) {
	rep := &Report{Master: v.cfg.MasterName, MasterEpoch: v.cfg.MasterEpoch, MasterFrom: v.from,
		Replica: v.cfg.ReplicaName, Hash: v.hash, Static: v.pos.static, Note: v.note, Started: time.Now()}
	names, err := v.Tables(ctx)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		tr := v.Table(ctx, name)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		rep.Tables = append(rep.Tables, tr)
	}
	rep.Seconds = time.Since(rep.Started).Seconds()
	return rep, nil
}

// Table verifies (and, if configured, repairs) one table, "db.table".
func (v *Verifier) Table(ctx context.Context, name string) TableReport {
	start := time.Now()
	tr := TableReport{Table: name}
	err := v.table(ctx, name, &tr)
	if err != nil {
		tr.Error = err.Error()
	}
	tr.Seconds = time.Since(start).Seconds()
	return tr
}

// prepare describes a table on both sides. It returns the walk of a table
// with a usable key and the same definition on both sides; the Table alone
// for one without a usable key; neither when the replica lacks the table or
// defines it differently (tr then holds the difference).
func (v *Verifier) prepare(ctx context.Context, name string, tr *TableReport) (*walk, *Table, error) {
	schema, tname, _ := strings.Cut(name, ".")
	t, err := describe(ctx, v.master, schema, tname)
	if err != nil {
		return nil, nil, fmt.Errorf("master %s: %w", v.cfg.MasterName, err)
	}
	rt, err := describe(ctx, v.replica, schema, tname)
	if errors.Is(err, ErrNoTable) {
		tr.Differences = 1
		tr.Note = fmt.Sprintf("table missing on replica %s: create it there or re-seed the replica; verify cannot repair DDL", v.cfg.ReplicaName)
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("replica %s: %w", v.cfg.ReplicaName, err)
	}
	tr.Key = t.KeyColumns()
	if d := sameShape(t, rt); d != "" {
		tr.Differences = 1
		tr.Note = "the table's definition differs, its rows were not compared: " + d
		return nil, nil, nil
	}
	if len(t.key) == 0 {
		return nil, t, nil
	}
	return &walk{v: v, t: t, tr: tr, repair: v.cfg.Repair}, t, nil
}

func (v *Verifier) table(ctx context.Context, name string, tr *TableReport) error {
	w, t, err := v.prepare(ctx, name, tr)
	switch {
	case err != nil:
		return err
	case t == nil:
		return nil
	case w == nil:
		return v.retry(ctx, t, func() error { return v.whole(ctx, t, tr) })
	}
	if err := w.run(ctx); err != nil {
		return err
	}
	if v.cfg.Repair && tr.Differences > 0 {
		// Verify again what differed: the same chunks, from their first hash.
		again := &walk{v: v, t: t, tr: &TableReport{Table: name}, repair: false}
		again.step = newStepper(again)
		if err := again.chunks(ctx, w.differed); err != nil {
			return fmt.Errorf("verify again after the repair: %w", err)
		}
		rem := again.tr.Differences
		tr.Remaining = &rem
	}
	return nil
}

// hashResult sums up a chunk on one side (see Table.aggregates).
type hashResult struct {
	rows int64
	sum  string
}

// whole compares a table without a usable key as one hash per side: first
// both at once, then, if they differ, again once the replica has reached the
// master's position, and finally under a shared lock on the master's whole
// table (held at most WaitTimeout) that confirms the difference.
func (v *Verifier) whole(ctx context.Context, t *Table, tr *TableReport) error {
	tr.Note = t.noKeyReason + ": compared as a whole (row count and hash); a difference cannot be located or repaired: add a primary key to verify it row by row"
	tr.Chunks = 1
	if err := v.thr.take(ctx, v.cfg.ChunkRows); err != nil {
		return err
	}
	var m, r hashResult
	var pos string
	g, _ := errgroup.WithContext(ctx)
	g.Go(func() (err error) { m, pos, err = v.hashMaster(ctx, t, v.master, false); return err })
	g.Go(func() (err error) { r, err = v.hashReplica(ctx, t); return err })
	if err := g.Wait(); err != nil {
		return err
	}
	if m != r && !v.pos.static {
		tr.Rechecked++
		var err error
		if m, r, err = v.recheckWhole(ctx, t, pos); err != nil {
			return err
		}
	}
	tr.Rows = m.rows
	if m != r {
		tr.Differences = 1
		tr.Note += fmt.Sprintf("; it differs: master %d rows, replica %d rows", m.rows, r.rows)
	}
	v.progress(Progress{Table: t.String(), Rows: m.rows, Estimate: m.rows, Done: true})
	return nil
}

// recheckWhole hashes a table that differed again once the replica has
// reached pos, and if it still differs, under a shared lock on the master's
// table until the replica has reached the master's position again.
func (v *Verifier) recheckWhole(ctx context.Context, t *Table, pos string) (m, r hashResult, err error) {
	for _, lock := range []bool{false, true} {
		if m, r, pos, err = v.hashAfter(ctx, t, pos, lock); err != nil || m == r {
			return m, r, err
		}
	}
	return m, r, nil
}

// hashAfter hashes the table on the master (under a shared lock, with lock)
// once the replica has reached pos, then on the replica once it has reached
// the master's position read after that hash, which it returns.
func (v *Verifier) hashAfter(ctx context.Context, t *Table, pos string, lock bool) (m, r hashResult, next string, err error) {
	if err := v.pos.wait(ctx, pos); err != nil {
		return m, r, "", fmt.Errorf("%s differs: %w", t, err)
	}
	var q queryer = v.master
	if lock {
		tx, err := v.master.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
		if err != nil {
			return m, r, "", err
		}
		defer tx.Rollback()
		q = tx
	}
	if m, next, err = v.hashMaster(ctx, t, q, lock); err != nil {
		return m, r, "", err
	}
	if err := v.pos.wait(ctx, next); err != nil {
		return m, r, "", fmt.Errorf("%s differs: %w", t, err)
	}
	r, err = v.hashReplica(ctx, t)
	return m, r, next, err
}

// hashMaster sums up the whole table on the master through q and reads the
// master's position after it.
func (v *Verifier) hashMaster(ctx context.Context, t *Table, q queryer, lock bool) (m hashResult, pos string, err error) {
	if err = q.QueryRowContext(ctx, t.wholeSQL(v.hash, false, lock)).Scan(&m.rows, &m.sum); err != nil {
		return m, "", fmt.Errorf("hash %s on the master: %w", t, err)
	}
	pos, err = v.pos.masterPos(ctx, q)
	return m, pos, err
}

func (v *Verifier) hashReplica(ctx context.Context, t *Table) (r hashResult, err error) {
	if err = v.replica.QueryRowContext(ctx, t.wholeSQL(v.hash, false, false)).Scan(&r.rows, &r.sum); err != nil {
		return r, fmt.Errorf("hash %s on the replica: %w", t, err)
	}
	return r, nil
}

// HashQuery is the statement that sums up a whole table as verify sums up a
// chunk, with the given hash (HashCRC32, HashCRC or HashMD5): for
// benchmarks.
func HashQuery(ctx context.Context, db *sql.DB, table, hash string) (string, error) {
	schema, name, _ := strings.Cut(table, ".")
	t, err := describe(ctx, db, schema, name)
	if err != nil {
		return "", err
	}
	return t.wholeSQL(hash, len(t.key) > 0, false), nil
}

var progressMu sync.Mutex

func (v *Verifier) progress(p Progress) {
	if v.cfg.Progress == nil {
		return
	}
	progressMu.Lock()
	defer progressMu.Unlock()
	v.cfg.Progress(p)
}
