package checkpoint

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Bootstrap modes: how a table of a replica is being loaded.
const (
	// ModeSnapshot: a snapshot in the changelog is loading the table, from its
	// start marker to its end marker. Its row events are applied leniently
	// meanwhile (a delete of a missing row is a no-op), since the snapshot's
	// rows bring the table to the master's state at their position.
	ModeSnapshot = "snapshot"
	// ModeClone: rowcast clone copied the table as of FloorOffset; messages of
	// the table at offsets <= FloorOffset are already in its rows.
	ModeClone = "clone"
)

// Bootstrap is one table of a replica still being loaded.
type Bootstrap struct {
	Topic       string
	DB, Table   string
	Mode        string
	FloorOffset int64 // ModeClone only; -1 otherwise
	Since       time.Time
}

// Key is "db.table".
func (b Bootstrap) Key() string { return b.DB + "." + b.Table }

// Rows is what LoadBootstrap reads with: *sql.Tx, *sql.Conn and *sql.DB.
type Rows interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// SaveBootstrap records b, replacing the table's earlier entry, inside the
// caller's transaction when ex is one.
func (m *MySQL) SaveBootstrap(ctx context.Context, ex Execer, b Bootstrap) error {
	if b.Mode != ModeClone {
		b.FloorOffset = -1
	}
	if b.Since.IsZero() {
		b.Since = time.Now()
	}
	_, err := ex.ExecContext(ctx, "REPLACE INTO "+m.Table(BootstrapTable)+
		" (`topic`,`db`,`tbl`,`mode`,`floor_offset`,`since`) VALUES (?,?,?,?,?,?)",
		b.Topic, b.DB, b.Table, b.Mode, b.FloorOffset, formatTime(b.Since))
	if err != nil {
		return fmt.Errorf("record bootstrap of %s in %s: %w", b.Key(), m.schema, err)
	}
	return nil
}

// DeleteBootstrap ends the bootstrap of db.table.
func (m *MySQL) DeleteBootstrap(ctx context.Context, ex Execer, topic, db, table string) error {
	_, err := ex.ExecContext(ctx, "DELETE FROM "+m.Table(BootstrapTable)+
		" WHERE `topic`=? AND `db`=? AND `tbl`=?", topic, db, table)
	if err != nil {
		return fmt.Errorf("end bootstrap of %s.%s in %s: %w", db, table, m.schema, err)
	}
	return nil
}

// LoadBootstrap lists the tables of topic still being loaded, by "db.table".
func (m *MySQL) LoadBootstrap(ctx context.Context, q Rows, topic string) (map[string]Bootstrap, error) {
	rows, err := q.QueryContext(ctx, "SELECT `db`,`tbl`,`mode`,`floor_offset`,CAST(`since` AS CHAR) FROM "+
		m.Table(BootstrapTable)+" WHERE `topic`=?", topic)
	if err != nil {
		return nil, fmt.Errorf("read bootstrap tables from %s: %w", m.schema, err)
	}
	defer rows.Close()
	out := map[string]Bootstrap{}
	for rows.Next() {
		b := Bootstrap{Topic: topic}
		var since string
		if err := rows.Scan(&b.DB, &b.Table, &b.Mode, &b.FloorOffset, &since); err != nil {
			return nil, fmt.Errorf("read bootstrap tables from %s: %w", m.schema, err)
		}
		if b.Since, err = parseTime(since); err != nil {
			return nil, fmt.Errorf("read bootstrap tables from %s: since %q: %w", m.schema, since, err)
		}
		out[b.Key()] = b
	}
	return out, rows.Err()
}
