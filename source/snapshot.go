package source

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// SnapshotJob asks the reader to emit the rows of some tables inside its
// binlog stream, each chunk of rows at the exact point of the stream whose
// state it shows (docs/DESIGN.md, "Snapshots"). Per table it emits a start
// marker (with the table's definition), the rows in chunks of one pseudo
// transaction each, and an end marker.
type SnapshotJob struct {
	// ID names the job in its SnapshotProgress.
	ID int64
	// Tables are "db.table" names, snapshotted in this order.
	Tables []string
	// After resumes Tables[0] after the row of this key (a LastKey of an
	// earlier run, whose start marker was published); "" starts Tables[0]
	// with its start marker.
	After string
	// ChunkRows is the most rows one chunk reads. Default 10000.
	ChunkRows int
	// Throttle caps the snapshot's rows per second (chunks of at most that
	// many rows, a pause after each); 0: no limit.
	Throttle int
	// MarkFirst emits the start markers of every table that starts from
	// its beginning before anything else, so that sinks load all of them
	// leniently from there: for the initial snapshot, and for a job resumed
	// after a crash (its tables' rows in the binlog come before their rows).
	MarkFirst bool
	// Progress is called on the reader's goroutine after each chunk or end
	// marker is queued (not yet acknowledged), and once when the job ends.
	// It must not block.
	Progress func(SnapshotProgress)

	prepared *jobRun // PrepareSnapshot's view and table definitions
}

// SnapshotProgress reports what a job emitted.
type SnapshotProgress struct {
	JobID int64
	// Table is the "db.table" the chunk belongs to.
	Table string
	// Rows is the number of rows of this chunk.
	Rows int
	// LastKey is the JSON key of the table's last row emitted so far ("":
	// none, or a table without a usable key): where a resumed job goes on.
	LastKey string
	// TableDone: the table's end marker was emitted.
	TableDone bool
	// Done: the job ended, with Err when it failed.
	Done bool
	Err  error
	// TxnSeq is the transaction of the last message emitted: once Kafka
	// acknowledged it, the progress may be recorded. 0: nothing emitted.
	TxnSeq uint64
	// Duration is the time the chunk took to read and queue.
	Duration time.Duration
}

// defaultChunkRows is how many rows a chunk reads when the job does not
// say.
const defaultChunkRows = 10000

// snapQueue holds a reader's snapshot jobs and wakes its stream when one is
// due. The running job is the stream goroutine's.
type snapQueue struct {
	cfg *Config
	log zerolog.Logger

	mu      sync.Mutex
	pending []*SnapshotJob
	active  atomic.Bool // a job is pending or running: checked after every commit

	run    *jobRun // stream goroutine only
	flavor string  // of the master the stream reads
	// beforeRead, set by tests before the reader runs, is called with a
	// table's name in its read view, before anything of it is read there.
	beforeRead func(table string)

	wakeMu sync.Mutex
	wctx   context.Context // the stream's wait ends when it is cancelled
	wstop  context.CancelFunc
	timer  *time.Timer
}

func newSnapQueue(cfg *Config, log zerolog.Logger) *snapQueue {
	return &snapQueue{cfg: cfg, log: log, wctx: context.Background()}
}

// Snapshot queues a job; the stream runs jobs one at a time, in order. Safe
// from any goroutine.
func (r *Reader) Snapshot(job *SnapshotJob) {
	q := r.snaps
	q.mu.Lock()
	q.pending = append(q.pending, job)
	q.active.Store(true)
	q.mu.Unlock()
	q.wake()
}

// CloseSnapshots ends the reader's snapshot jobs without a word to their
// Progress, closing their read views. Call it once Run has returned, when
// the reader is no longer used.
func (r *Reader) CloseSnapshots() {
	q := r.snaps
	q.mu.Lock()
	pending := q.pending
	q.pending = nil
	q.mu.Unlock()
	for _, j := range pending {
		j.prepared.close()
	}
	q.run.close()
	q.run = nil
	q.active.Store(false)
	q.stopTimer()
}

// next returns the running job, or starts the next pending one; nil when
// there is none.
func (q *snapQueue) next() *jobRun {
	if q.run != nil {
		return q.run
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 {
		q.active.Store(false)
		return nil
	}
	job := q.pending[0]
	q.pending = q.pending[1:]
	q.run = newJobRun(job, q)
	return q.run
}

// finished drops the running job.
func (q *snapQueue) finished() {
	q.run.close()
	q.run = nil
}

// arm makes the stream's next waits end at a wake, until ctx ends.
func (q *snapQueue) arm(ctx context.Context) {
	q.wakeMu.Lock()
	q.wctx, q.wstop = context.WithCancel(ctx)
	q.wakeMu.Unlock()
}

// disarm ends the wake context of a Run.
func (q *snapQueue) disarm() {
	q.wakeMu.Lock()
	if q.wstop != nil {
		q.wstop()
	}
	q.wctx, q.wstop = context.Background(), nil
	q.wakeMu.Unlock()
	q.stopTimer()
}

// waitCtx is the context the stream waits for the master under.
func (q *snapQueue) waitCtx() context.Context { return q.wctx }

// rearm reports whether the last wait ended by a wake, and if so arms the
// next one.
func (q *snapQueue) rearm(ctx context.Context) bool {
	if q.wctx.Err() == nil || ctx.Err() != nil {
		return false
	}
	q.arm(ctx)
	return true
}

// wake ends the stream's wait for the master, so that due snapshot work
// runs even when the master is idle.
func (q *snapQueue) wake() {
	q.wakeMu.Lock()
	if q.wstop != nil {
		q.wstop()
	}
	q.wakeMu.Unlock()
}

// wakeIn wakes the stream after d.
func (q *snapQueue) wakeIn(d time.Duration) {
	q.wakeMu.Lock()
	defer q.wakeMu.Unlock()
	if q.timer != nil {
		q.timer.Stop()
	}
	q.timer = time.AfterFunc(d, q.wake)
}

func (q *snapQueue) stopTimer() {
	q.wakeMu.Lock()
	defer q.wakeMu.Unlock()
	if q.timer != nil {
		q.timer.Stop()
		q.timer = nil
	}
}

// snapshotsDue runs the snapshot work that the stream's position allows.
// It is called between transactions only.
func (s *stream) snapshotsDue(ctx context.Context) error {
	q := s.snaps
	if q == nil || !q.active.Load() || s.open {
		return nil
	}
	for {
		j := q.next()
		if j == nil {
			return nil
		}
		more, err := j.step(ctx, s)
		if err != nil || !more {
			return err
		}
	}
}

// PrepareSnapshot opens job's one read view for the stream's start, with
// the definitions of its tables, and returns the view's GTID set: Run from
// that set, with the job queued, emits the whole job before any binlog
// event (unless a table changes meanwhile, see docs/DESIGN.md). It retries
// while a table's definition changes under it.
func (r *Reader) PrepareSnapshot(ctx context.Context, job *SnapshotJob) (string, error) {
	db, flavor, err := r.connect(ctx)
	if err != nil {
		return "", err
	}
	db.Close()
	j := newJobRun(job, r.snaps)
	j.flavor = flavor
	for attempt := 1; ; attempt++ {
		err = j.prepare(ctx)
		if err == nil || attempt == 5 || ctx.Err() != nil {
			break
		}
		r.log.Warn().Err(err).Int("attempt", attempt).Msg("snapshot: a table changed while its read view opened; retrying")
	}
	if err != nil {
		j.close()
		return "", fmt.Errorf("prepare the snapshot of %d tables: %w", len(job.Tables), err)
	}
	job.prepared = j
	return j.view.set.String(), nil
}

// systemSchemas are never published nor snapshotted: copying the master's
// accounts or statistics over a replica's would break it, and mysql holds
// password hashes.
var systemSchemas = map[string]bool{"mysql": true, "information_schema": true, "performance_schema": true, "sys": true}

// IncludedTables lists, as sorted "db.table", the master's base tables that
// the reader publishes (Config.Include and Exclude), the bookkeeping and
// system schemas aside: what the initial snapshot copies.
func (r *Reader) IncludedTables(ctx context.Context) ([]string, error) {
	all, err := r.baseTables(ctx)
	if err != nil {
		return nil, err
	}
	f, err := newFilter(&r.cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	var out []string
	for _, name := range all {
		db, table, _ := strings.Cut(name, ".")
		if !systemSchemas[db] && f.table(db, table) {
			out = append(out, name)
		}
	}
	return out, nil
}

// CheckTables refuses, naming each, the tables a snapshot cannot copy:
// names that are not db.table, tables the reader does not publish, system
// tables, and tables that do not exist or are not base tables.
func (r *Reader) CheckTables(ctx context.Context, tables []string) error {
	if len(tables) == 0 {
		return fmt.Errorf("%w: no table to snapshot", ErrRefused)
	}
	all, err := r.baseTables(ctx)
	if err != nil {
		return err
	}
	exists := make(map[string]bool, len(all))
	for _, name := range all {
		exists[name] = true
	}
	f, err := newFilter(&r.cfg)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	var problems []error
	for _, name := range tables {
		if err := checkTable(f, exists, name); err != nil {
			problems = append(problems, err)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %w", ErrRefused, errors.Join(problems...))
	}
	return nil
}

// checkTable is CheckTables for one table.
func checkTable(f *filter, exists map[string]bool, name string) error {
	db, table, err := splitTable(name)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not db.table", name)
	case systemSchemas[db] || db == f.bookkeeping:
		return fmt.Errorf("%s is a system table: rowcast does not snapshot it", name)
	case !f.table(db, table):
		return fmt.Errorf("%s is not in the scope of source.include/source.exclude: rowcast does not publish it", name)
	case !exists[name]:
		return fmt.Errorf("%s: no such base table on the master (a view, a sequence, a system-versioned table or a typo?)", name)
	}
	return nil
}

// baseTables lists the master's base tables as "db.table", sorted.
func (r *Reader) baseTables(ctx context.Context) ([]string, error) {
	db, err := openDB(&r.cfg)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_SCHEMA, TABLE_NAME")
	if err != nil {
		return nil, fmt.Errorf("list the tables of %s: %w", r.cfg.Addr, connectError(r.cfg.Addr, err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var db, table string
		if err := rows.Scan(&db, &table); err != nil {
			return nil, err
		}
		out = append(out, db+"."+table)
	}
	return out, rows.Err()
}
