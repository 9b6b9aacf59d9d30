package checkpoint

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Snapshot states, as the snapshots table spells them.
const (
	SnapshotRequested = "requested" // waits for the reader
	SnapshotRunning   = "running"   // the reader emits it
	SnapshotDone      = "done"
	SnapshotFailed    = "failed"
	SnapshotCancelled = "cancelled" // a promotion or an operator ended it
)

// Snapshot is one row of the master's snapshots table: a request for a
// snapshot of some tables into a topic, and how far the reader got. The
// reader records progress only once Kafka has acknowledged it, so the row
// may lag the topic, never lead it.
type Snapshot struct {
	ID       int64
	Topic    string
	Tables   []string // "db.table", in order
	Throttle int      // rows per second, 0: no limit
	State    string
	// CurrentTable is the table being copied; LastKey the JSON primary key
	// of its last row in the topic ("" for none).
	CurrentTable string
	LastKey      string
	RowsDone     int64
	RowsTotal    int64 // an estimate
	Error        string
	RequestedAt  time.Time
	UpdatedAt    time.Time
	FinishedAt   time.Time // zero while not finished
}

// Finished reports a snapshot that will not run any more.
func (s Snapshot) Finished() bool {
	return s.State == SnapshotDone || s.State == SnapshotFailed || s.State == SnapshotCancelled
}

const snapshotCols = "`id`,`topic`,`tables`,`throttle`,`state`,IFNULL(`current_table`,''),IFNULL(`last_key`,'')," +
	"`rows_done`,`rows_total`,IFNULL(`error`,''),CAST(`requested_at` AS CHAR),CAST(`updated_at` AS CHAR),IFNULL(CAST(`finished_at` AS CHAR),'')"

// InsertSnapshot adds s (its ID is ignored) and returns its ID.
func (m *MySQL) InsertSnapshot(ctx context.Context, ex Execer, s Snapshot) (int64, error) {
	tables, err := json.Marshal(s.Tables)
	if err != nil {
		return 0, err
	}
	now := formatTime(time.Now())
	res, err := ex.ExecContext(ctx, "INSERT INTO "+m.Table(SnapshotsTable)+
		" (`topic`,`tables`,`throttle`,`state`,`rows_total`,`requested_at`,`updated_at`) VALUES (?,?,?,?,?,?,?)",
		s.Topic, string(tables), s.Throttle, s.State, s.RowsTotal, now, now)
	if err != nil {
		return 0, fmt.Errorf("record a snapshot of %d tables in %s: %w", len(s.Tables), m.schema, err)
	}
	return res.LastInsertId()
}

// UpdateSnapshot writes s's state and progress; a finished state sets
// finished_at.
func (m *MySQL) UpdateSnapshot(ctx context.Context, ex Execer, s Snapshot) error {
	var finished any
	if s.Finished() {
		finished = formatTime(time.Now())
	}
	_, err := ex.ExecContext(ctx, "UPDATE "+m.Table(SnapshotsTable)+" SET `state`=?,`current_table`=NULLIF(?,''),"+
		"`last_key`=NULLIF(?,''),`rows_done`=?,`rows_total`=?,`error`=NULLIF(?,''),`updated_at`=?,"+
		"`finished_at`=IFNULL(`finished_at`,?) WHERE `id`=?",
		s.State, s.CurrentTable, s.LastKey, s.RowsDone, s.RowsTotal, s.Error, formatTime(time.Now()), finished, s.ID)
	if err != nil {
		return fmt.Errorf("record the progress of snapshot %d in %s: %w", s.ID, m.schema, err)
	}
	return nil
}

// ClaimSnapshot moves a requested snapshot to running; false when it is
// no longer requested (another reader took it, or it was cancelled).
func (m *MySQL) ClaimSnapshot(ctx context.Context, ex Execer, id int64) (bool, error) {
	res, err := ex.ExecContext(ctx, "UPDATE "+m.Table(SnapshotsTable)+" SET `state`=?,`updated_at`=? WHERE `id`=? AND `state`=?",
		SnapshotRunning, formatTime(time.Now()), id, SnapshotRequested)
	if err != nil {
		return false, fmt.Errorf("start snapshot %d in %s: %w", id, m.schema, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// CancelSnapshots cancels the topic's snapshots in the given states, with
// why as their error.
func (m *MySQL) CancelSnapshots(ctx context.Context, ex Execer, topic, why string, states ...string) error {
	if len(states) == 0 {
		return nil
	}
	now := formatTime(time.Now())
	args := []any{SnapshotCancelled, why, now, now, topic}
	for _, s := range states {
		args = append(args, s)
	}
	_, err := ex.ExecContext(ctx, "UPDATE "+m.Table(SnapshotsTable)+" SET `state`=?,`error`=?,`updated_at`=?,`finished_at`=?"+
		" WHERE `topic`=? AND `state` IN (?"+strings.Repeat(",?", len(states)-1)+")", args...)
	if err != nil {
		return fmt.Errorf("cancel the snapshots of %s in %s: %w", topic, m.schema, err)
	}
	return nil
}

// Snapshots lists the topic's snapshots in the given states (all when
// none), oldest first.
func (m *MySQL) Snapshots(ctx context.Context, q Rows, topic string, states ...string) ([]Snapshot, error) {
	query := "SELECT " + snapshotCols + " FROM " + m.Table(SnapshotsTable) + " WHERE `topic`=?"
	args := []any{topic}
	if len(states) > 0 {
		query += " AND `state` IN (?" + strings.Repeat(",?", len(states)-1) + ")"
		for _, s := range states {
			args = append(args, s)
		}
	}
	return m.querySnapshots(ctx, q, query+" ORDER BY `id`", args...)
}

// RecentSnapshots lists the topic's newest snapshots, at most limit, newest
// first.
func (m *MySQL) RecentSnapshots(ctx context.Context, q Rows, topic string, limit int) ([]Snapshot, error) {
	return m.querySnapshots(ctx, q, "SELECT "+snapshotCols+" FROM "+m.Table(SnapshotsTable)+
		" WHERE `topic`=? ORDER BY `id` DESC LIMIT ?", topic, limit)
}

// SnapshotByID reads one snapshot; found is false when there is none.
func (m *MySQL) SnapshotByID(ctx context.Context, q Rows, id int64) (s Snapshot, found bool, err error) {
	list, err := m.querySnapshots(ctx, q, "SELECT "+snapshotCols+" FROM "+m.Table(SnapshotsTable)+" WHERE `id`=?", id)
	if err != nil || len(list) == 0 {
		return Snapshot{}, false, err
	}
	return list[0], true, nil
}

func (m *MySQL) querySnapshots(ctx context.Context, q Rows, query string, args ...any) ([]Snapshot, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read the snapshots table of %s: %w", m.schema, err)
	}
	defer rows.Close()
	var out []Snapshot
	for rows.Next() {
		s, err := scanSnapshot(rows)
		if err != nil {
			return nil, fmt.Errorf("read the snapshots table of %s: %w", m.schema, err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// scanSnapshot reads one row of snapshotCols.
func scanSnapshot(rows *sql.Rows) (Snapshot, error) {
	var s Snapshot
	var tables, requested, updated, finished string
	if err := rows.Scan(&s.ID, &s.Topic, &tables, &s.Throttle, &s.State, &s.CurrentTable, &s.LastKey,
		&s.RowsDone, &s.RowsTotal, &s.Error, &requested, &updated, &finished); err != nil {
		return s, err
	}
	if err := json.Unmarshal([]byte(tables), &s.Tables); err != nil {
		return s, fmt.Errorf("snapshot %d: tables %q: %w", s.ID, tables, err)
	}
	return s, parseTimes(&s, requested, updated, finished)
}

// parseTimes fills in s's times.
func parseTimes(s *Snapshot, requested, updated, finished string) error {
	var errs []error
	var err error
	s.RequestedAt, err = parseTime(requested)
	errs = append(errs, err)
	s.UpdatedAt, err = parseTime(updated)
	errs = append(errs, err)
	if finished != "" {
		s.FinishedAt, err = parseTime(finished)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("snapshot %d: %w", s.ID, err)
	}
	return nil
}
