package source

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/internal/mysqlerr"
)

// errDefChanged marks a table whose definition changed between a read
// view's start and the read of its rows: the chunk is read again in a new
// view.
var errDefChanged = errors.New("table definition changed during the snapshot")

// maxFailures is how many failed chunk reads in a row a job retries before
// it fails.
const maxFailures = 10

// jobRun is a SnapshotJob being emitted by the stream.
type jobRun struct {
	job    *SnapshotJob
	q      *snapQueue
	log    zerolog.Logger
	flavor string
	db     *sql.DB // the job's connections, opened on first use
	view   *readView
	// oneView: the view is PrepareSnapshot's, at the stream's start, and
	// every chunk reads it until one fails.
	oneView bool

	i         int    // the table being emitted
	after     []any  // key of Tables[i]'s last row emitted; nil: none yet
	afterJSON string // after as JSON
	resumeKey string // job.After, until Tables[0] is described
	marked    []bool // start marker emitted, by table
	// markView is the view each start marker was emitted with (nil: none):
	// rows of a table without a key are inserts, so they go out in the
	// view of their start marker, or after a new one.
	markView []*readView
	// defs holds each table's definition when the view opened; descs the
	// tables as last described.
	defs      map[string]string
	descs     map[string]*snapTable
	notBefore time.Time
	failures  int // failed reads in a row
}

func newJobRun(job *SnapshotJob, q *snapQueue) *jobRun {
	if j := job.prepared; j != nil {
		job.prepared = nil
		return j
	}
	if job.ChunkRows <= 0 {
		job.ChunkRows = defaultChunkRows
	}
	j := &jobRun{job: job, q: q, flavor: q.flavor, log: q.log.With().Int64("snapshot", job.ID).Logger(),
		marked: make([]bool, len(job.Tables)), markView: make([]*readView, len(job.Tables)), defs: map[string]string{}, descs: map[string]*snapTable{}}
	if job.After != "" && len(job.Tables) > 0 {
		j.marked[0], j.resumeKey = true, job.After
	}
	return j
}

// pool is the job's connection pool.
func (j *jobRun) pool() (*sql.DB, error) {
	if j.db != nil {
		return j.db, nil
	}
	db, err := openSnapshotDB(j.q.cfg)
	j.db = db
	return db, err
}

// close ends the job's view and connections.
func (j *jobRun) close() {
	if j == nil {
		return
	}
	j.closeView()
	if j.db != nil {
		j.db.Close()
		j.db = nil
	}
}

func (j *jobRun) closeView() {
	j.view.close()
	j.view = nil
}

// prepare describes every table, then opens the view, and checks that no
// definition changed in between: the definitions are those at the view.
func (j *jobRun) prepare(ctx context.Context) error {
	j.closeView()
	db, err := j.pool()
	if err != nil {
		return err
	}
	for _, name := range j.job.Tables {
		t, err := describeTable(ctx, db, j.flavor, j.q.cfg.RawUnsupportedCharsets, name)
		if err != nil && !errors.Is(err, errTableGone) {
			return err
		}
		if t != nil {
			j.descs[name], j.defs[name] = t, t.def
		}
	}
	if j.view, err = openView(ctx, db, j.flavor); err != nil {
		return err
	}
	for name, def := range j.defs {
		schema, table, _ := splitTable(name)
		now, err := showCreate(ctx, db, schema, table)
		if err != nil || !sameDefinition(now, def) {
			return fmt.Errorf("%s: %w", name, errors.Join(err, errDefChanged))
		}
	}
	j.oneView = true
	return nil
}

// step advances the job as far as the stream's position allows. more says
// that the job ended and another may be due now.
func (j *jobRun) step(ctx context.Context, s *stream) (more bool, err error) {
	if d := time.Until(j.notBefore); d > 0 {
		j.q.wakeIn(d)
		return false, nil
	}
	if j.job.MarkFirst {
		marked, err := j.markFirst(ctx, s)
		if err != nil {
			return j.failed(ctx, s, err)
		}
		if !marked {
			return false, nil // the stream has not reached the markers' view yet
		}
		j.job.MarkFirst = false
	}
	for j.view == nil {
		if j.i >= len(j.job.Tables) {
			return j.finish(s, nil), nil
		}
		err := j.open(ctx)
		if errors.Is(err, errTableGone) {
			if err := j.skipTable(ctx, s); err != nil {
				return j.failed(ctx, s, err)
			}
			continue
		}
		if err != nil {
			return j.failed(ctx, s, err)
		}
	}
	if !s.set.Contain(j.view.set) {
		return false, nil // the stream has not reached the view yet
	}
	return j.emitChunks(ctx, s)
}

// open takes the current table's definition, then opens a view for its
// next chunk.
func (j *jobRun) open(ctx context.Context) error {
	if err := j.define(ctx, j.job.Tables[j.i]); err != nil {
		return err
	}
	return j.startView(ctx)
}

// define takes a table's definition before a view opens: viewTable
// compares it with the one in the view.
func (j *jobRun) define(ctx context.Context, name string) error {
	db, table, err := splitTable(name)
	if err != nil {
		return err
	}
	pool, err := j.pool()
	if err != nil {
		return err
	}
	def, err := showCreate(ctx, pool, db, table)
	if err == nil {
		j.defs[name] = def
	}
	return err
}

// startView opens the job's next read view.
func (j *jobRun) startView(ctx context.Context) error {
	pool, err := j.pool()
	if err != nil {
		return err
	}
	j.view, err = openView(ctx, pool, j.flavor)
	return err
}

// emitChunks emits chunks in the view: all of the job's in its one view,
// else one.
func (j *jobRun) emitChunks(ctx context.Context, s *stream) (bool, error) {
	for {
		start := time.Now()
		rows, err := j.chunk(ctx, s)
		if err != nil {
			return j.failed(ctx, s, err)
		}
		j.failures = 0
		if j.i >= len(j.job.Tables) {
			return j.finish(s, nil), nil
		}
		if !j.oneView {
			j.closeView()
			j.pace(start, rows)
			j.q.wake() // the next chunk's view opens at the stream's next boundary
			return false, nil
		}
	}
}

// pace sets when the next chunk may start, for the throttle.
func (j *jobRun) pace(start time.Time, rows int) {
	if j.job.Throttle > 0 {
		j.notBefore = start.Add(time.Duration(float64(rows) / float64(j.job.Throttle) * float64(time.Second)))
	}
}

// limit is the most rows a chunk reads.
func (j *jobRun) limit() int {
	if j.job.Throttle > 0 && !j.oneView {
		return min(j.job.ChunkRows, j.job.Throttle)
	}
	return j.job.ChunkRows
}

// failed handles a failed step: a failure to emit ends Run, a read is
// retried in a new view a few times, then the job fails.
func (j *jobRun) failed(ctx context.Context, s *stream, err error) (bool, error) {
	var ee emitError
	if errors.As(err, &ee) || ctx.Err() != nil {
		j.closeView()
		return false, errors.Join(err, ctx.Err())
	}
	j.closeView()
	j.oneView = false
	if !permanent(err) && j.failures < maxFailures {
		j.failures++
		backoff := min(time.Duration(j.failures)*200*time.Millisecond, 5*time.Second)
		j.notBefore = time.Now().Add(backoff)
		j.q.wakeIn(backoff)
		j.log.Warn().Err(err).Int("attempt", j.failures).Dur("backoff", backoff).Msg("snapshot chunk failed; reading it again in a new read view")
		return false, nil
	}
	return j.finish(s, err), nil
}

// permanent reports an error that reading again does not cure.
func permanent(err error) bool {
	return errors.Is(err, ErrUnsupported) || errors.Is(err, ErrConfig) || errors.Is(err, ErrPrivilege) || errors.Is(err, ErrRefused) ||
		errors.Is(err, ErrMasterSetup) || mysqlerr.Is(err, mysql.ER_TABLEACCESS_DENIED_ERROR,
		mysql.ER_COLUMNACCESS_DENIED_ERROR, mysql.ER_DBACCESS_DENIED_ERROR, mysql.ER_SPECIFIC_ACCESS_DENIED_ERROR)
}

// finish ends the job, reports it and lets the next one start.
func (j *jobRun) finish(s *stream, err error) bool {
	p := SnapshotProgress{Done: true, Err: err, TxnSeq: s.seq - 1}
	if j.i < len(j.job.Tables) {
		p.Table = j.job.Tables[j.i]
	}
	if err != nil {
		j.log.Error().Err(err).Str("table", p.Table).Msg("snapshot failed")
	} else {
		j.log.Info().Int("tables", len(j.job.Tables)).Msg("snapshot done")
	}
	j.report(p)
	j.q.finished()
	return true
}

func (j *jobRun) report(p SnapshotProgress) {
	if j.job.Progress != nil {
		p.JobID = j.job.ID
		j.job.Progress(p)
	}
}

// markFirst emits the start marker of every table not marked yet, with its
// definition at its point of the stream: a prepared job's view's; else, as
// a resumed job's stream may be behind the master, in a view of the
// markers' own once the stream reached it, each definition checked as a
// chunk's (docs/DESIGN.md, "Snapshots"). The first chunk opens a new view.
func (j *jobRun) markFirst(ctx context.Context, s *stream) (bool, error) {
	if j.oneView {
		return true, j.markAll(ctx, s, j.described)
	}
	if j.view == nil {
		if err := j.openMarkers(ctx); err != nil {
			return false, err
		}
	}
	if !s.set.Contain(j.view.set) {
		return false, nil
	}
	err := j.markAll(ctx, s, j.viewTable)
	j.closeView()
	return err == nil, err
}

// openMarkers takes the definitions of the tables not marked yet, then
// opens the view their markers go out in.
func (j *jobRun) openMarkers(ctx context.Context) error {
	for i, name := range j.job.Tables {
		if j.marked[i] {
			continue
		}
		if err := j.define(ctx, name); err != nil && !errors.Is(err, errTableGone) {
			return err
		}
	}
	return j.startView(ctx)
}

// markAll emits the start marker of every table not marked yet, as
// describe gives it.
func (j *jobRun) markAll(ctx context.Context, s *stream, describe func(context.Context, string) (*snapTable, error)) error {
	for i, name := range j.job.Tables {
		if j.marked[i] {
			continue
		}
		t, err := describe(ctx, name)
		if errors.Is(err, errTableGone) {
			continue // skipped when its turn comes
		}
		if err != nil {
			return err
		}
		if err := j.emitMarker(ctx, s, t, "start"); err != nil {
			return err
		}
		j.marked[i], j.markView[i] = true, j.view
	}
	return nil
}

// described is the table as PrepareSnapshot described it, or as it is now.
func (j *jobRun) described(ctx context.Context, name string) (*snapTable, error) {
	if t := j.descs[name]; t != nil {
		return t, nil
	}
	pool, err := j.pool()
	if err != nil {
		return nil, err
	}
	t, err := describeTable(ctx, pool, j.flavor, j.q.cfg.RawUnsupportedCharsets, name)
	if err == nil {
		j.descs[name] = t
	}
	return t, err
}

// skipTable passes over a table that no longer exists, with its end marker
// when its start marker went out.
func (j *jobRun) skipTable(ctx context.Context, s *stream) error {
	name := j.job.Tables[j.i]
	j.log.Warn().Str("table", name).Msg("snapshot: the table no longer exists; skipped")
	if t := j.descs[name]; t != nil && j.marked[j.i] {
		if err := j.emitMarker(ctx, s, t, "end"); err != nil {
			return err
		}
	}
	j.report(SnapshotProgress{Table: name, TableDone: true, TxnSeq: s.seq - 1})
	j.nextTable()
	return nil
}

func (j *jobRun) nextTable() {
	j.i++
	j.after, j.afterJSON, j.resumeKey = nil, "", ""
}

// chunk emits the current table's next chunk in the view, with the start
// marker before the table's first rows and the end marker after its last.
func (j *jobRun) chunk(ctx context.Context, s *stream) (int, error) {
	t, err := j.chunkTable(ctx, s)
	if t == nil || err != nil {
		return 0, err
	}
	start, limit := time.Now(), j.limit()
	n, err := j.readRows(ctx, s, t, limit)
	if err == nil && j.oneView {
		err = j.view.release(ctx)
	}
	done := err == nil && (t.key == nil || n < limit)
	if done {
		err = j.emitMarker(ctx, s, t, "end")
	}
	if n > 0 || done {
		j.chunkDone(s, n, done, time.Since(start))
	}
	return n, err
}

// chunkTable is the current table as the view shows it, after its start
// marker; nil when it no longer exists (and was skipped).
func (j *jobRun) chunkTable(ctx context.Context, s *stream) (*snapTable, error) {
	t, err := j.viewTable(ctx, j.job.Tables[j.i])
	if errors.Is(err, errTableGone) {
		return nil, j.skipTable(ctx, s)
	}
	if err == nil {
		err = j.resume(t)
	}
	if err == nil && j.needsMarker(t) {
		err = j.emitMarker(ctx, s, t, "start")
		j.marked[j.i], j.markView[j.i] = err == nil, j.view
	}
	return t, err
}

// needsMarker reports whether the current table's chunk needs a start
// marker before it: its first, or, for a table without a key (whose rows
// sinks insert), a chunk in another view than the marker's, since rows may
// have been applied between the two.
func (j *jobRun) needsMarker(t *snapTable) bool {
	return !j.marked[j.i] || len(t.table.PrimaryKey) == 0 && j.markView[j.i] != j.view
}

// chunkDone reports and logs a chunk, and moves to the next table after
// the last.
func (j *jobRun) chunkDone(s *stream, n int, done bool, d time.Duration) {
	name := j.job.Tables[j.i]
	j.report(SnapshotProgress{Table: name, Rows: n, LastKey: j.afterJSON, TableDone: done, TxnSeq: s.seq - 1, Duration: d})
	j.log.Debug().Str("table", name).Int("rows", n).Str("last_key", j.afterJSON).Dur("took", d).Str("view", j.view.String()).Msg("snapshot chunk")
	if done {
		j.log.Info().Str("table", name).Msg("snapshot of the table done")
		j.nextTable()
	}
}

// resume decodes the resume key once the table is described; a table
// without a usable key starts over.
func (j *jobRun) resume(t *snapTable) error {
	if j.resumeKey == "" {
		return nil
	}
	key := j.resumeKey
	j.resumeKey = ""
	if t.key == nil {
		j.marked[j.i] = false
		return nil
	}
	after, err := decodeKey(key, t)
	if err != nil {
		return err
	}
	j.after, j.afterJSON = after, key
	return nil
}

// viewTable locks the table's definition for the rest of the view's
// transaction (a statement's metadata lock) and checks that it is the one
// taken before the view opened: an instant ALTER since then would show the
// view's rows in the new shape.
func (j *jobRun) viewTable(ctx context.Context, name string) (*snapTable, error) {
	db, table, err := splitTable(name)
	if err != nil {
		return nil, err
	}
	if hook := j.q.beforeRead; hook != nil {
		hook(name)
	}
	if _, err := j.view.conn.ExecContext(ctx, "SELECT 1 FROM "+quoteName(db)+"."+quoteName(table)+" LIMIT 1"); err != nil {
		if mysqlerr.Missing(err) {
			return nil, fmt.Errorf("%s: %w", name, errTableGone)
		}
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	def, err := showCreate(ctx, j.view.conn, db, table)
	if err != nil {
		return nil, err
	}
	if !sameDefinition(def, j.defs[name]) {
		return nil, fmt.Errorf("%s: %w", name, errDefChanged)
	}
	if t := j.descs[name]; t != nil && sameDefinition(t.def, def) {
		return t, nil
	}
	t, err := describeTable(ctx, j.view.conn, j.flavor, j.q.cfg.RawUnsupportedCharsets, name)
	if err == nil {
		j.descs[name] = t
	}
	return t, err
}
