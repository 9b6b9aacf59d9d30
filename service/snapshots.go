package service

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/internal/mysqlerr"
	"github.com/rowcast/rowcast/source"
)

// snapshots runs the snapshots of the master a publisher reads (the
// initial one, those `rowcast snapshot` requests, those a crash cut short)
// and records their progress in the master's snapshots table once Kafka
// has acknowledged it. A nil *snapshots does nothing: the master's
// bookkeeping schema could not be used.
type snapshots struct {
	p      *Publisher
	reader *source.Reader
	db     *sql.DB
	store  *checkpoint.MySQL
	topic  string
	log    zerolog.Logger

	mu      sync.Mutex
	reports []source.SnapshotProgress // from the reader, not recorded yet
	jobs    map[int64]*checkpoint.Snapshot
}

// pollEvery is how often the reader looks for requested snapshots.
const pollEvery = time.Second

// newSnapshots opens the master's bookkeeping schema and creates the
// snapshots table when absent; need says a failure is an error, else it
// is logged and snapshots are off.
func (p *Publisher) newSnapshots(ctx context.Context, reader *source.Reader, src source.Config, need bool) (*snapshots, error) {
	store := checkpoint.NewMySQL(src.BookkeepingSchema)
	if store.Schema() == "" {
		store = checkpoint.NewMySQL("rowcast")
	}
	db, err := source.OpenDB(src)
	if err == nil {
		if err = store.InitSnapshots(ctx, db); err != nil {
			db.Close()
		}
	}
	if err != nil {
		err = fmt.Errorf("snapshots need the %s.%s table on the master, with SELECT, INSERT, UPDATE and CREATE on %s for %s: %w",
			store.Schema(), checkpoint.SnapshotsTable, store.Schema(), src.User, err)
		if need {
			return nil, err
		}
		p.log.Warn().Err(err).Msg("snapshots are off for this master")
		return nil, nil
	}
	return &snapshots{p: p, reader: reader, db: db, store: store, topic: p.cfg.Kafka.Topic,
		log: p.log, jobs: map[int64]*checkpoint.Snapshot{}}, nil
}

// close ends the snapshots of a master the publisher no longer reads: a
// promotion cancels its running snapshot (the new master has no row of it).
func (sn *snapshots) close(promoted bool) {
	if sn == nil {
		return
	}
	if promoted {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := sn.store.CancelSnapshots(ctx, sn.db, sn.topic, "a promotion: the new master goes on without this snapshot; request it again",
			checkpoint.SnapshotRequested, checkpoint.SnapshotRunning)
		cancel()
		if err != nil {
			sn.log.Warn().Err(err).Msg("the old master's snapshots could not be marked cancelled")
		}
	}
	sn.p.metrics.snapshotRunning.Set(0)
	sn.db.Close()
}

// initial queues the snapshot of every included table for an empty topic
// and returns the GTID set the stream starts from: its read view's. ""
// when there is nothing to snapshot.
func (sn *snapshots) initial(ctx context.Context) (string, error) {
	tables, err := sn.reader.IncludedTables(ctx)
	if err != nil || len(tables) == 0 {
		return "", err
	}
	// Rows of an earlier topic of the same name: nothing of them is in
	// this one.
	if err := sn.store.CancelSnapshots(ctx, sn.db, sn.topic, "the topic was empty: the initial snapshot replaces it", checkpoint.SnapshotRunning); err != nil {
		return "", err
	}
	row := checkpoint.Snapshot{Topic: sn.topic, Tables: tables, State: checkpoint.SnapshotRunning, RowsTotal: sn.estimate(ctx, tables)}
	if row.ID, err = sn.store.InsertSnapshot(ctx, sn.db, row); err != nil {
		return "", err
	}
	job := sn.job(&row, true)
	set, err := sn.reader.PrepareSnapshot(ctx, job)
	if err != nil {
		sn.fail(ctx, &row, err)
		return "", err
	}
	sn.submit(&row, job)
	sn.log.Info().Int64("snapshot", row.ID).Int("tables", len(tables)).Int64("rows_estimate", row.RowsTotal).Str("gtid_set", set).
		Msg("the topic is empty: snapshotting every included table, then streaming from the snapshot's position")
	return set, nil
}

// resume queues again the snapshots a crash cut short: the rest of each in
// new read views, as the resumed stream reaches them.
func (sn *snapshots) resume(ctx context.Context) error {
	if sn == nil {
		return nil
	}
	running, err := sn.store.Snapshots(ctx, sn.db, sn.topic, checkpoint.SnapshotRunning)
	if err != nil {
		return err
	}
	for i := range running {
		row := &running[i]
		sn.submit(row, sn.job(row, true))
		sn.log.Info().Int64("snapshot", row.ID).Str("table", row.CurrentTable).Str("after_key", row.LastKey).
			Msg("resuming a snapshot cut short")
	}
	return nil
}

// job is the reader's job for the rest of row: from its current table on,
// after its last key.
func (sn *snapshots) job(row *checkpoint.Snapshot, markFirst bool) *source.SnapshotJob {
	tables := row.Tables
	if i := slices.Index(tables, row.CurrentTable); i > 0 {
		tables = tables[i:]
	}
	after := row.LastKey
	if row.CurrentTable == "" {
		after = ""
	}
	return &source.SnapshotJob{ID: row.ID, Tables: tables, After: after, Throttle: row.Throttle,
		MarkFirst: markFirst, Progress: sn.report}
}

// submit hands a job to the reader.
func (sn *snapshots) submit(row *checkpoint.Snapshot, job *source.SnapshotJob) {
	sn.mu.Lock()
	sn.jobs[row.ID] = row
	n := len(sn.jobs)
	sn.mu.Unlock()
	sn.p.metrics.snapshotRunning.Set(float64(n))
	sn.reader.Snapshot(job)
}

// report runs on the reader's goroutine: it only queues.
func (sn *snapshots) report(p source.SnapshotProgress) {
	sn.mu.Lock()
	sn.reports = append(sn.reports, p)
	sn.mu.Unlock()
}

// run records progress as Kafka acknowledges it and starts requested
// snapshots, until ctx ends.
func (sn *snapshots) run(ctx context.Context) {
	if sn == nil {
		return
	}
	record := time.NewTicker(50 * time.Millisecond)
	defer record.Stop()
	lastPoll := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-record.C:
		}
		sn.record(ctx)
		if time.Since(lastPoll) >= pollEvery {
			lastPoll = time.Now()
			sn.poll(ctx)
		}
	}
}

// record writes the reports whose messages Kafka has acknowledged, in
// order; a failed write is tried again at the next tick.
func (sn *snapshots) record(ctx context.Context) {
	for {
		sn.mu.Lock()
		if len(sn.reports) == 0 {
			sn.mu.Unlock()
			return
		}
		p := sn.reports[0]
		sn.mu.Unlock()
		if !sn.acked(p.TxnSeq) || sn.apply(ctx, p) != nil {
			return
		}
		sn.mu.Lock()
		sn.reports = sn.reports[1:]
		sn.mu.Unlock()
	}
}

// acked reports whether Kafka acknowledged transaction seq.
func (sn *snapshots) acked(seq uint64) bool {
	a := sn.p.Acked()
	return seq == 0 || a != nil && a.Pos.TxnSeq >= seq
}

// apply records one report in its job's row.
func (sn *snapshots) apply(ctx context.Context, p source.SnapshotProgress) error {
	sn.mu.Lock()
	row := sn.jobs[p.JobID]
	sn.mu.Unlock()
	if row == nil {
		return nil
	}
	next := *row
	advance(&next, p)
	if err := sn.store.UpdateSnapshot(ctx, sn.db, next); err != nil {
		sn.log.Warn().Err(err).Int64("snapshot", row.ID).Msg("snapshot progress not recorded; retrying")
		return err
	}
	*row = next
	sn.count(p)
	if p.Done {
		sn.ended(row)
	}
	return nil
}

// advance moves row past what p reports.
func advance(row *checkpoint.Snapshot, p source.SnapshotProgress) {
	row.RowsDone += int64(p.Rows)
	switch {
	case p.Done && p.Err != nil:
		row.State, row.Error = checkpoint.SnapshotFailed, p.Err.Error()
	case p.Done, p.TableDone && nextTable(row.Tables, p.Table) == "":
		row.State, row.CurrentTable, row.LastKey = checkpoint.SnapshotDone, "", ""
	case p.TableDone:
		row.CurrentTable, row.LastKey = nextTable(row.Tables, p.Table), ""
	default:
		row.CurrentTable, row.LastKey = p.Table, p.LastKey
	}
}

// nextTable is the table after t in tables, "" after the last.
func nextTable(tables []string, t string) string {
	if i := slices.Index(tables, t); i >= 0 && i+1 < len(tables) {
		return tables[i+1]
	}
	return ""
}

// count updates the metrics of a recorded report.
func (sn *snapshots) count(p source.SnapshotProgress) {
	if p.Rows > 0 {
		sn.p.metrics.snapshotRows.WithLabelValues(p.Table).Add(float64(p.Rows))
		sn.p.metrics.snapshotChunk.Observe(p.Duration.Seconds())
	}
}

// ended forgets a finished job.
func (sn *snapshots) ended(row *checkpoint.Snapshot) {
	sn.mu.Lock()
	delete(sn.jobs, row.ID)
	n := len(sn.jobs)
	sn.mu.Unlock()
	sn.p.metrics.snapshotRunning.Set(float64(n))
	ev := sn.log.Info()
	if row.State == checkpoint.SnapshotFailed {
		ev = sn.log.Error().Str("error", row.Error)
	}
	ev.Int64("snapshot", row.ID).Str("state", row.State).Int64("rows", row.RowsDone).Msg("snapshot ended")
}

// poll starts the oldest requested snapshot when none runs.
func (sn *snapshots) poll(ctx context.Context) {
	sn.mu.Lock()
	busy := len(sn.jobs) > 0
	sn.mu.Unlock()
	if busy {
		return
	}
	reqs, err := sn.store.Snapshots(ctx, sn.db, sn.topic, checkpoint.SnapshotRequested)
	if err != nil || len(reqs) == 0 {
		if err != nil && ctx.Err() == nil {
			sn.log.Warn().Err(err).Msg("cannot read snapshot requests")
		}
		return
	}
	sn.start(ctx, &reqs[0])
}

// start checks and claims a requested snapshot, and queues it.
func (sn *snapshots) start(ctx context.Context, row *checkpoint.Snapshot) {
	if err := sn.reader.CheckTables(ctx, row.Tables); err != nil {
		sn.fail(ctx, row, err)
		return
	}
	claimed, err := sn.store.ClaimSnapshot(ctx, sn.db, row.ID)
	if err != nil || !claimed {
		return
	}
	row.State, row.RowsTotal = checkpoint.SnapshotRunning, sn.estimate(ctx, row.Tables)
	row.CurrentTable = row.Tables[0]
	if err := sn.store.UpdateSnapshot(ctx, sn.db, *row); err != nil {
		sn.log.Warn().Err(err).Int64("snapshot", row.ID).Msg("snapshot start not recorded")
	}
	sn.log.Info().Int64("snapshot", row.ID).Strs("tables", row.Tables).Int("throttle", row.Throttle).
		Int64("rows_estimate", row.RowsTotal).Msg("snapshot requested: starting")
	sn.submit(row, sn.job(row, false))
}

// fail records a snapshot that could not start.
func (sn *snapshots) fail(ctx context.Context, row *checkpoint.Snapshot, err error) {
	row.State, row.Error = checkpoint.SnapshotFailed, err.Error()
	sn.log.Error().Err(err).Int64("snapshot", row.ID).Msg("snapshot refused")
	if uerr := sn.store.UpdateSnapshot(ctx, sn.db, *row); uerr != nil {
		sn.log.Warn().Err(errors.Join(err, uerr)).Int64("snapshot", row.ID).Msg("snapshot failure not recorded")
	}
}

// estimate is the tables' row count as information_schema estimates it.
func (sn *snapshots) estimate(ctx context.Context, tables []string) int64 {
	return EstimateRows(ctx, sn.db, tables)
}

// EstimateRows sums information_schema's row estimates of "db.table"
// names; 0 when it cannot be read.
func EstimateRows(ctx context.Context, db *sql.DB, tables []string) int64 {
	var total int64
	for _, t := range tables {
		var n sql.NullInt64
		schema, name, _ := strings.Cut(t, ".")
		db.QueryRowContext(ctx, "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA=? AND TABLE_NAME=?", schema, name).Scan(&n)
		total += n.Int64
	}
	return total
}

// SnapshotStatus is one snapshot as `rowcast status` shows it.
type SnapshotStatus struct {
	ID           int64     `json:"id"`
	State        string    `json:"state"`
	Tables       []string  `json:"tables"`
	CurrentTable string    `json:"current_table,omitempty"`
	RowsDone     int64     `json:"rows_done"`
	RowsTotal    int64     `json:"rows_total_estimate"`
	Throttle     int       `json:"throttle,omitempty"`
	Error        string    `json:"error,omitempty"`
	RequestedAt  time.Time `json:"requested_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	FinishedAt   time.Time `json:"finished_at,omitzero"`
}

// statusShown is how many finished snapshots `rowcast status` shows.
const statusShown = 5

// SnapshotsOf reads the topic's snapshots from a master: the running and
// requested ones, then the newest finished ones. None when the master has
// no snapshots table.
func SnapshotsOf(ctx context.Context, db *sql.DB, store *checkpoint.MySQL, topic string) ([]SnapshotStatus, error) {
	active, err := store.Snapshots(ctx, db, topic, checkpoint.SnapshotRunning, checkpoint.SnapshotRequested)
	if mysqlerr.Missing(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	recent, err := store.RecentSnapshots(ctx, db, topic, statusShown)
	if err != nil {
		return nil, err
	}
	var out []SnapshotStatus
	for _, s := range active {
		out = append(out, snapshotStatus(s))
	}
	for _, s := range recent {
		if s.Finished() {
			out = append(out, snapshotStatus(s))
		}
	}
	return out, nil
}

func snapshotStatus(s checkpoint.Snapshot) SnapshotStatus {
	return SnapshotStatus{ID: s.ID, State: s.State, Tables: s.Tables, CurrentTable: s.CurrentTable, RowsDone: s.RowsDone,
		RowsTotal: s.RowsTotal, Throttle: s.Throttle, Error: s.Error, RequestedAt: s.RequestedAt, UpdatedAt: s.UpdatedAt,
		FinishedAt: s.FinishedAt}
}
