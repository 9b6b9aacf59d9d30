package clickhouse

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
)

// chTable is a table as ClickHouse holds it: column types by name, and the
// sorting key's columns.
type chTable struct {
	types map[string]string
	key   []string
}

// describe reads a table's columns from system.columns; nil when the table
// does not exist.
func (t *Target) describe(ctx context.Context, db, table string) (*chTable, error) {
	rows, err := t.cl.query(ctx, fmt.Sprintf("SELECT name, type, is_in_sorting_key FROM system.columns WHERE database = %s AND table = %s",
		quoteString(db), quoteString(table)))
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", qualified(db, table), classify(err))
	}
	if len(rows) == 0 {
		return nil, nil
	}
	ct := &chTable{types: map[string]string{}}
	for _, r := range rows {
		if len(r) < 3 {
			continue
		}
		ct.types[r[0]] = r[1]
		if r[2] == "1" {
			ct.key = append(ct.key, r[0])
		}
	}
	return ct, nil
}

// columnTypes maps a table's columns; key columns are not Nullable.
func columnTypes(tbl *pipeline.Table) ([]colType, error) {
	isKey := map[int]bool{}
	for _, i := range tbl.PrimaryKey {
		isKey[i] = true
	}
	types := make([]colType, len(tbl.Columns))
	for i, c := range tbl.Columns {
		ct, err := mapColumn(c, !isKey[i])
		if err != nil {
			return nil, err
		}
		types[i] = ct
	}
	return types, nil
}

// noKey is the refusal of a keyless table.
func noKey(db, table string) error {
	return sink.WithAdvice(fmt.Errorf("%w: %s cannot be replicated to ClickHouse", ErrNoKey, qualified(db, table)),
		"add a primary key to the table on the master (ALTER TABLE ... ADD PRIMARY KEY), or exclude it from replication with source.exclude")
}

// createSQL is the CREATE TABLE of a source table: ReplacingMergeTree by
// _version, ordered by the primary key; in history mode with the operation
// and commit time, ordered by the key and _version.
func createSQL(tbl *pipeline.Table, types []colType, history bool) (string, error) {
	if len(tbl.PrimaryKey) == 0 {
		return "", noKey(tbl.Database, tbl.Name)
	}
	var b strings.Builder
	b.WriteString("CREATE TABLE IF NOT EXISTS " + qualified(tbl.Database, tbl.Name) + " (")
	for i, c := range tbl.Columns {
		b.WriteString(quoteIdent(c.Name) + " " + types[i].String() + ", ")
	}
	b.WriteString("`_version` UInt64, `_deleted` UInt8")
	if history {
		b.WriteString(", `_op` String, `_commit_time` DateTime('UTC')")
	}
	b.WriteString(") ENGINE = ReplacingMergeTree(`_version`) ORDER BY (")
	var key []string
	for _, k := range sortingKey(tbl, history) {
		key = append(key, quoteIdent(k))
	}
	b.WriteString(strings.Join(key, ", ") + ")")
	return b.String(), nil
}

// ensureTable makes the ClickHouse table hold every column of tbl: it
// creates the table when missing (a table the master had before rowcast,
// or whose CREATE TABLE the sink could not read) and adds missing columns.
// A column of another type stops the worker: retyping on its own could
// narrow values.
func (t *Target) ensureTable(ctx context.Context, tbl *pipeline.Table, types []colType) error {
	if err := t.ensureDatabase(ctx, tbl.Database); err != nil {
		return err
	}
	have, err := t.describe(ctx, tbl.Database, tbl.Name)
	if err != nil {
		return err
	}
	if have == nil {
		q, err := createSQL(tbl, types, t.cfg.History)
		if err != nil {
			return err
		}
		return t.run(ctx, q)
	}
	if err := checkKey(tbl, have, t.cfg.History); err != nil {
		return err
	}
	for i, c := range tbl.Columns {
		if err := t.ensureColumn(ctx, tbl, c.Name, types[i].String(), have); err != nil {
			return err
		}
	}
	return nil
}

// ensureColumn adds a missing column, and refuses one of another type.
func (t *Target) ensureColumn(ctx context.Context, tbl *pipeline.Table, col, want string, have *chTable) error {
	name := qualified(tbl.Database, tbl.Name)
	got, ok := have.types[col]
	switch {
	case !ok:
		return t.run(ctx, "ALTER TABLE "+name+" ADD COLUMN "+quoteIdent(col)+" "+want)
	case got != want:
		return sink.WithAdvice(fmt.Errorf("%w: column %s of %s is %s in ClickHouse, but the changelog's rows map to %s",
			pipeline.ErrUnsupported, col, name, got, want),
			"retype the column in ClickHouse (ALTER TABLE "+name+" MODIFY COLUMN "+quoteIdent(col)+" "+want+") if that keeps its values, or drop the table and snapshot it again; then restart the worker")
	}
	return nil
}

// sortingKey names the columns a source table is ordered by: its primary
// key, and in history mode _version after it.
func sortingKey(tbl *pipeline.Table, history bool) []string {
	var key []string
	for _, k := range tbl.PrimaryKey {
		key = append(key, tbl.Columns[k].Name)
	}
	if history {
		key = append(key, "_version")
	}
	return key
}

// checkKey refuses rows whose primary key is not the table's sorting key:
// ClickHouse cannot change a sorting key's columns. A table of the other
// mode (history or not) differs in _version.
func checkKey(tbl *pipeline.Table, have *chTable, history bool) error {
	if len(tbl.PrimaryKey) == 0 {
		return noKey(tbl.Database, tbl.Name)
	}
	want := sortingKey(tbl, history)
	if sameSet(want, have.key) {
		return nil
	}
	return sink.WithAdvice(fmt.Errorf("%w: %s is ordered by (%s) in ClickHouse, but its rows need (%s) (the master's primary key, and _version in history mode)",
		pipeline.ErrUnsupported, qualified(tbl.Database, tbl.Name), strings.Join(have.key, ", "), strings.Join(want, ", ")),
		"ClickHouse cannot change a table's sorting key: drop the table in ClickHouse and re-seed it with a snapshot (rowcast snapshot), then resume the worker")
}

func (t *Target) ensureDatabase(ctx context.Context, db string) error {
	if t.dbs[db] {
		return nil
	}
	if err := t.run(ctx, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(db)); err != nil {
		return err
	}
	t.dbs[db] = true
	return nil
}

// run executes a statement, naming it in the error.
func (t *Target) run(ctx context.Context, stmt string) error {
	if err := t.cl.exec(ctx, stmt); err != nil {
		return fmt.Errorf("%s: %w", truncate(stmt, 300), classify(err))
	}
	return nil
}

// sameSet reports whether a and b hold the same names (system.columns
// lists the sorting key's columns in table order, not key order).
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}
