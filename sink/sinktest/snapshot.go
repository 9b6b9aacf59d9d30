package sinktest

import (
	"slices"
	"strings"

	"github.com/rowcast/rowcast/pipeline"
)

// Snapshots in a Script, as the reader publishes them (docs/FORMAT.md): a
// table's start marker with its definition, chunks of op 'r' rows read from
// the model in key order, an end marker; each a transaction of its own,
// without a GTID. Stream changes may come between them.

// Hidden runs f with its changes made to the model (the master) but not
// published: a table the reader did not replicate for a while, which a
// snapshot then brings back.
func (s *Script) Hidden(f func()) {
	s.hidden = true
	defer func() { s.hidden = false }()
	f()
}

// SnapshotStart appends the start marker of a snapshot of table, carrying
// its definition: a CREATE TABLE of the model's columns (their SQLType), as
// SHOW CREATE TABLE names it, without its database.
func (s *Script) SnapshotStart(table string) {
	s.Commit()
	t := s.tables[table].t
	if s.cursor == nil {
		s.cursor = map[string]string{}
	}
	delete(s.cursor, table)
	s.open = []*pipeline.Event{{Kind: pipeline.KindSnapshot, Snapshot: "start", Table: t, Database: t.Database,
		Statement: Definition(t)}}
	s.commit(false)
}

// SnapshotChunk appends the next chunk of table's snapshot: up to n rows of
// the model, in key order after the previous chunk's last key, as op 'r'
// rows of one transaction. It reports whether any row was left.
func (s *Script) SnapshotChunk(table string, n int) bool {
	s.Commit()
	m := s.tables[table]
	last, started := s.cursor[table]
	var keys []string
	for k := range m.rows {
		if !started || k > last {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if len(keys) == 0 {
		return false
	}
	for _, k := range keys[:min(n, len(keys))] {
		s.open = append(s.open, &pipeline.Event{Kind: pipeline.KindRow, Table: m.t, Op: pipeline.OpRead,
			After: slices.Clone(m.rows[k])})
		s.cursor[table] = k
	}
	s.commit(false)
	return true
}

// SnapshotEnd appends the end marker of table's snapshot.
func (s *Script) SnapshotEnd(table string) {
	s.Commit()
	t := s.tables[table].t
	s.open = []*pipeline.Event{{Kind: pipeline.KindSnapshot, Snapshot: "end", Table: t, Database: t.Database}}
	s.commit(false)
}

// Snapshot appends a whole snapshot of table, in chunks of n rows, with no
// change between them.
func (s *Script) Snapshot(table string, n int) {
	s.SnapshotStart(table)
	for s.SnapshotChunk(table, n) {
	}
	s.SnapshotEnd(table)
}

// Definition is a CREATE TABLE statement of t's columns and primary key,
// from their SQLType: key columns NOT NULL, the others NULL.
func Definition(t *pipeline.Table) string {
	var b strings.Builder
	b.WriteString("CREATE TABLE " + quote(t.Name) + " (")
	for i, c := range t.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		null := " NULL"
		if slices.Contains(t.PrimaryKey, i) {
			null = " NOT NULL"
		}
		b.WriteString(quote(c.Name) + " " + c.SQLType + null)
	}
	if len(t.PrimaryKey) > 0 {
		names := make([]string, len(t.PrimaryKey))
		for i, c := range t.PrimaryKey {
			names[i] = quote(t.Columns[c].Name)
		}
		b.WriteString(", PRIMARY KEY (" + strings.Join(names, ",") + ")")
	}
	b.WriteString(") ENGINE=InnoDB")
	return b.String()
}

func quote(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }
