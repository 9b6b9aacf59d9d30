package checkpoint

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// States of a table in clone_progress.
const (
	// CloneCopying: the table's copy began and did not end; a clone that
	// resumes copies it again from scratch.
	CloneCopying = "copying"
	// CloneDone: the table holds the source's rows as of View.
	CloneDone = "done"
)

// CloneTable is one table of a node that rowcast clone fills: how far its
// copy is, and the source's checkpoint read in the same read view as its
// rows, which says exactly which messages of the topic the rows hold.
type CloneTable struct {
	Topic     string
	DB, Table string
	State     string // CloneCopying or CloneDone
	Source    string // the node copied from
	View      State  // the source's checkpoint in the read view
	Rows      int64
	StartedAt time.Time
	UpdatedAt time.Time
}

// Key is "db.table".
func (c CloneTable) Key() string { return c.DB + "." + c.Table }

const cloneCols = "`topic`,`db`,`tbl`,`state`,`source`,`view_offset`,`view_epoch`,`view_txn_seq`," +
	"`view_max_txn_seq`,`view_gtid_set`,`view_commit_time`,`rows_copied`,`started_at`,`updated_at`"

// SaveCloneTable records c, replacing the table's earlier entry, inside the
// caller's transaction when ex is one. A zero StartedAt or UpdatedAt means
// now.
func (m *MySQL) SaveCloneTable(ctx context.Context, ex Execer, c CloneTable) error {
	now := time.Now()
	if c.StartedAt.IsZero() {
		c.StartedAt = now
	}
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = now
	}
	var commit any
	if !c.View.CommitTime.IsZero() {
		commit = formatTime(c.View.CommitTime)
	}
	_, err := ex.ExecContext(ctx, "REPLACE INTO "+m.Table(CloneProgressTable)+" ("+cloneCols+
		") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
		c.Topic, c.DB, c.Table, c.State, c.Source, c.View.Offset, c.View.Epoch, c.View.TxnSeq,
		max(c.View.MaxTxnSeq, c.View.TxnSeq), c.View.GTIDSet, commit, c.Rows, formatTime(c.StartedAt), formatTime(c.UpdatedAt))
	if err != nil {
		return fmt.Errorf("record the clone of %s in %s: %w", c.Key(), m.schema, err)
	}
	return nil
}

// LoadCloneTables lists the tables of topic that a clone began, by
// "db.table".
func (m *MySQL) LoadCloneTables(ctx context.Context, q Rows, topic string) (map[string]CloneTable, error) {
	rows, err := q.QueryContext(ctx, "SELECT `db`,`tbl`,`state`,`source`,`view_offset`,`view_epoch`,`view_txn_seq`,"+
		"`view_max_txn_seq`,`view_gtid_set`,CAST(`view_commit_time` AS CHAR),`rows_copied`,"+
		"CAST(`started_at` AS CHAR),CAST(`updated_at` AS CHAR) FROM "+m.Table(CloneProgressTable)+" WHERE `topic`=?", topic)
	if err != nil {
		return nil, fmt.Errorf("read the clone's progress from %s: %w", m.schema, err)
	}
	defer rows.Close()
	out := map[string]CloneTable{}
	for rows.Next() {
		c, err := scanCloneTable(rows, topic)
		if err != nil {
			return nil, fmt.Errorf("read the clone's progress from %s: %w", m.schema, err)
		}
		out[c.Key()] = c
	}
	return out, rows.Err()
}

// scanCloneTable reads one row of LoadCloneTables' query.
func scanCloneTable(rows *sql.Rows, topic string) (CloneTable, error) {
	c := CloneTable{Topic: topic, View: State{Topic: topic}}
	var commit sql.NullString
	var started, updated string
	err := rows.Scan(&c.DB, &c.Table, &c.State, &c.Source, &c.View.Offset, &c.View.Epoch, &c.View.TxnSeq,
		&c.View.MaxTxnSeq, &c.View.GTIDSet, &commit, &c.Rows, &started, &updated)
	if err != nil {
		return c, err
	}
	for _, t := range []struct {
		dst *time.Time
		s   string
	}{{&c.View.CommitTime, commit.String}, {&c.StartedAt, started}, {&c.UpdatedAt, updated}} {
		if t.s == "" {
			continue
		}
		if *t.dst, err = parseTime(t.s); err != nil {
			return c, fmt.Errorf("%s: time %q: %w", c.Key(), t.s, err)
		}
	}
	return c, nil
}

// DeleteCloneTables forgets every table of topic's clone: the clone ended,
// or starts over.
func (m *MySQL) DeleteCloneTables(ctx context.Context, ex Execer, topic string) error {
	_, err := ex.ExecContext(ctx, "DELETE FROM "+m.Table(CloneProgressTable)+" WHERE `topic`=?", topic)
	if err != nil {
		return fmt.Errorf("clear the clone's progress in %s: %w", m.schema, err)
	}
	return nil
}
