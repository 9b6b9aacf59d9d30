package mysql

import (
	"regexp"
	"strings"

	"github.com/rowcast/rowcast/pipeline"
)

// quoteIdent quotes an identifier with backticks, doubling any inside.
func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func qualified(t *pipeline.Table) string { return quoteIdent(t.Database) + "." + quoteIdent(t.Name) }

// Statement kinds of the SQL cache.
const (
	stmtUpsert     = iota + 1 // INSERT ... ON DUPLICATE KEY UPDATE, n rows
	stmtInsert                // plain INSERT, n rows (tables without a primary key)
	stmtDeletePK              // DELETE ... WHERE pk IN (...), n keys
	stmtUpdateRow             // UPDATE ... WHERE <whole before image> LIMIT 1
	stmtDeleteRow             // DELETE ... WHERE <whole before image> LIMIT 1
	maxCachedStmts = 4096
)

type sqlKey struct {
	t    *pipeline.Table // events of one table share a *Table until its shape changes
	kind uint8
	n    int
	json bool // MySQL: compare JSON through CAST(? AS JSON)
}

// sqlCache keeps generated statements per (table, kind, batch size). Batches
// mostly have MaxBatchRows rows or one, so it stays small; it is cleared when
// it reaches maxCachedStmts.
type sqlCache map[sqlKey]string

func (c *sqlCache) get(k sqlKey) string {
	if s, ok := (*c)[k]; ok {
		return s
	}
	if *c == nil || len(*c) >= maxCachedStmts {
		*c = sqlCache{}
	}
	s := build(k)
	(*c)[k] = s
	return s
}

func build(k sqlKey) string {
	var b strings.Builder
	switch k.kind {
	case stmtUpsert, stmtInsert:
		writeInsert(&b, k)
	case stmtDeletePK:
		writeDeleteKeys(&b, k)
	case stmtUpdateRow:
		writeUpdateRow(&b, k)
	case stmtDeleteRow:
		b.WriteString("DELETE FROM ")
		b.WriteString(qualified(k.t))
		writeRowMatch(&b, k.t, k.json)
	}
	return b.String()
}

// writeInsert writes an INSERT of k.n rows, an upsert for stmtUpsert.
func writeInsert(b *strings.Builder, k sqlKey) {
	t := k.t
	b.WriteString("INSERT INTO ")
	b.WriteString(qualified(t))
	b.WriteString(" (")
	for i, c := range t.Columns {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(quoteIdent(c.Name))
	}
	b.WriteString(") VALUES ")
	writeRepeated(b, "("+strings.TrimSuffix(strings.Repeat("?,", len(t.Columns)), ",")+")", k.n)
	if k.kind == stmtUpsert {
		writeOnDuplicate(b, t)
	}
}

// writeOnDuplicate assigns every non-key column; a table of key columns only
// needs a no-op assignment.
func writeOnDuplicate(b *strings.Builder, t *pipeline.Table) {
	var set []string
	for i, c := range t.Columns {
		if !isKey(t, i) {
			set = append(set, quoteIdent(c.Name))
		}
	}
	if len(set) == 0 {
		set = append(set, quoteIdent(t.Columns[t.PrimaryKey[0]].Name))
	}
	b.WriteString(" ON DUPLICATE KEY UPDATE ")
	for i, q := range set {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(q + "=VALUES(" + q + ")")
	}
}

// writeDeleteKeys writes a DELETE of k.n primary keys.
func writeDeleteKeys(b *strings.Builder, k sqlKey) {
	t := k.t
	b.WriteString("DELETE FROM ")
	b.WriteString(qualified(t))
	b.WriteString(" WHERE ")
	if len(t.PrimaryKey) == 1 {
		c := t.Columns[t.PrimaryKey[0]]
		b.WriteString(quoteIdent(c.Name) + " IN (")
		writeRepeated(b, placeholder(c, k.json), k.n)
		b.WriteString(")")
		return
	}
	var names, row strings.Builder
	for i, ci := range t.PrimaryKey {
		if i > 0 {
			names.WriteByte(',')
			row.WriteByte(',')
		}
		names.WriteString(quoteIdent(t.Columns[ci].Name))
		row.WriteString(placeholder(t.Columns[ci], k.json))
	}
	b.WriteString("(" + names.String() + ") IN (")
	writeRepeated(b, "("+row.String()+")", k.n)
	b.WriteString(")")
}

// writeUpdateRow writes an UPDATE of every column of the one row equal to
// the before image.
func writeUpdateRow(b *strings.Builder, k sqlKey) {
	b.WriteString("UPDATE ")
	b.WriteString(qualified(k.t))
	b.WriteString(" SET ")
	for i, c := range k.t.Columns {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(quoteIdent(c.Name) + "=?")
	}
	writeRowMatch(b, k.t, k.json)
}

// writeRepeated writes s n times, separated by commas.
func writeRepeated(b *strings.Builder, s string, n int) {
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s)
	}
}

// writeRowMatch matches a row of a table without a primary key on its whole
// before image, as native row-based replication does: NULL-safe equality on
// every column, one row (LIMIT 1: identical rows are interchangeable). Text
// is matched byte for byte (exactMatch).
func writeRowMatch(b *strings.Builder, t *pipeline.Table, json bool) {
	b.WriteString(" WHERE ")
	for i, c := range t.Columns {
		if i > 0 {
			b.WriteString(" AND ")
		}
		q := quoteIdent(c.Name)
		b.WriteString(q + "<=>" + placeholder(c, json))
		if exactMatch(c, json) {
			b.WriteString(" AND CAST(CONVERT(" + q + " USING utf8mb4) AS BINARY)<=>CAST(? AS BINARY)")
		}
	}
	b.WriteString(" LIMIT 1")
}

// exactMatch reports a column whose values writeRowMatch compares twice:
// by the column's collation, which an index can serve, then as bytes, which
// decides. A collation calls 'a' and 'A' equal (_ci), or 'a' and 'a '
// (PAD SPACE, _bin included); the before image names one row exactly.
// Text converted to utf8mb4 is the changelog's UTF-8. MySQL's binary JSON
// is compared as JSON, not as text.
func exactMatch(c pipeline.Column, json bool) bool {
	return c.Kind == pipeline.VString || c.Kind == pipeline.VJSON && !json
}

var decimalType = regexp.MustCompile(`^(?i)decimal\((\d+),(\d+)\)`)

// placeholder is a value's placeholder in a comparison. A DECIMAL compared
// with a string is compared as a double, which loses digits: cast the
// parameter to the column's own DECIMAL type instead. MySQL's binary JSON
// compares with a JSON value, not its text (MariaDB's JSON is text).
func placeholder(c pipeline.Column, json bool) string {
	switch c.Kind {
	case pipeline.VDecimal:
		if m := decimalType.FindStringSubmatch(c.SQLType); m != nil {
			return "CAST(? AS DECIMAL(" + m[1] + "," + m[2] + "))"
		}
		return "CAST(? AS DECIMAL(65,30))"
	case pipeline.VJSON:
		if json {
			return "CAST(? AS JSON)"
		}
	}
	return "?"
}

func isKey(t *pipeline.Table, col int) bool {
	for _, k := range t.PrimaryKey {
		if k == col {
			return true
		}
	}
	return false
}

func isMariaDB(version string) bool { return strings.Contains(strings.ToLower(version), "mariadb") }
