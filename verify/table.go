package verify

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// systemSchemas are never verified: they differ between servers by design.
var systemSchemas = map[string]bool{"mysql": true, "information_schema": true, "performance_schema": true, "sys": true}

// kind says how a column's values travel: how they are passed back as
// placeholders (key bounds, repairs) and how they enter the row hash.
type kind uint8

const (
	kindText    kind = iota // character strings, ENUM, SET, JSON: compared and written as text
	kindBinary              // BINARY, VARBINARY, BLOB, BIT, spatial: raw bytes
	kindInt                 // integer types: placeholders are Go integers (exact beyond 2^53)
	kindUint                // unsigned integer types
	kindDecimal             // DECIMAL: placeholders are CAST to the column's type (exact)
	kindFloat               // FLOAT, DOUBLE: read through CAST(c AS DOUBLE), the exact value
	kindOther               // dates and times, YEAR: their text is exact
)

// column is one stored column of a table.
type column struct {
	Name     string
	DataType string // information_schema DATA_TYPE
	Type     string // COLUMN_TYPE, e.g. decimal(12,2) unsigned
	Nullable bool
	Charset  string // "" for non-character types
	kind     kind
}

// Table is one table to verify, as the master describes it.
type Table struct {
	Schema, Name string
	cols         []column
	// key holds indexes into cols of the key the table is walked by: the
	// primary key, else the first unique key whose columns are all NOT NULL.
	// Empty: the table has no usable key and is compared as a whole.
	key     []int
	keyName string
	// why the table has no usable key (for the report), when key is empty
	noKeyReason string
}

// String is db.table.
func (t *Table) String() string { return t.Schema + "." + t.Name }

// KeyColumns names the columns of the key the table is walked by.
func (t *Table) KeyColumns() []string {
	out := make([]string, len(t.key))
	for i, k := range t.key {
		out[i] = t.cols[k].Name
	}
	return out
}

func qi(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func (t *Table) quoted() string { return qi(t.Schema) + "." + qi(t.Name) }

func kindOf(dataType, columnType string) kind {
	switch dataType {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint":
		if strings.Contains(columnType, "unsigned") {
			return kindUint
		}
		return kindInt
	case "decimal", "numeric":
		return kindDecimal
	case "float", "double", "real":
		return kindFloat
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit",
		"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
		"multipolygon", "geometrycollection":
		return kindBinary
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json":
		return kindText
	default:
		return kindOther
	}
}

// Filter selects tables as the reader does: regular expressions against
// "db.table", Exclude winning over Include, an empty Include admitting all;
// the bookkeeping schema and the system schemas are never selected. Tables,
// when not empty, narrows the selection to these "db.table" names.
type Filter struct {
	Include, Exclude []string
	Bookkeeping      string
	Tables           []string
}

// listTables returns the base tables of the master that f selects, in name
// order. A table named in f.Tables that the master lacks, or that the
// replication filters exclude, is an error.
func listTables(ctx context.Context, db *sql.DB, f Filter) ([]string, error) {
	sel, err := newSelector(f)
	if err != nil {
		return nil, err
	}
	all, err := baseTables(ctx, db)
	if err != nil {
		return nil, err
	}
	var out []string
	if len(f.Tables) == 0 {
		out = sel.all(all)
	} else if out, err = sel.named(f.Tables, all); err != nil {
		return nil, err
	}
	sort.Strings(out)
	return out, nil
}

// selector is a Filter with its expressions compiled.
type selector struct {
	inc, exc    []*regexp.Regexp
	bookkeeping string
}

func newSelector(f Filter) (*selector, error) {
	inc, err := compileAll("include", f.Include)
	if err != nil {
		return nil, err
	}
	exc, err := compileAll("exclude", f.Exclude)
	if err != nil {
		return nil, err
	}
	return &selector{inc: inc, exc: exc, bookkeeping: f.Bookkeeping}, nil
}

func compileAll(what string, exprs []string) ([]*regexp.Regexp, error) {
	var out []*regexp.Regexp
	for _, s := range exprs {
		re, err := regexp.Compile(s)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", what, s, err)
		}
		out = append(out, re)
	}
	return out, nil
}

// replicated reports whether the reader replicates the table "db.table".
func (s *selector) replicated(name string) bool {
	db, _, _ := strings.Cut(name, ".")
	if systemSchemas[strings.ToLower(db)] || db == s.bookkeeping {
		return false
	}
	ok := len(s.inc) == 0
	for _, re := range s.inc {
		ok = ok || re.MatchString(name)
	}
	for _, re := range s.exc {
		if re.MatchString(name) {
			return false
		}
	}
	return ok
}

// all selects the replicated ones of the tables.
func (s *selector) all(tables map[string]bool) []string {
	var out []string
	for name := range tables {
		if s.replicated(name) {
			out = append(out, name)
		}
	}
	return out
}

// named checks the tables an operator named, once each, against the
// master's tables and the filters.
func (s *selector) named(names []string, tables map[string]bool) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, name := range names {
		switch {
		case seen[name]:
			continue
		case !strings.Contains(name, "."):
			return nil, fmt.Errorf("table %q: write it as db.table", name)
		case !tables[name]:
			return nil, fmt.Errorf("table %s: no such base table on the master", name)
		case !s.replicated(name):
			return nil, fmt.Errorf("table %s is not replicated (source.include/exclude, the bookkeeping schema or a system schema): there is nothing to verify", name)
		}
		seen[name] = true
		out = append(out, name)
	}
	return out, nil
}

// baseTables lists the master's base tables as "db.table".
func baseTables(ctx context.Context, db *sql.DB) (map[string]bool, error) {
	rows, err := db.QueryContext(ctx, "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE'")
	if err != nil {
		return nil, fmt.Errorf("list the master's tables: %w", err)
	}
	defer rows.Close()
	all := map[string]bool{}
	for rows.Next() {
		var s, n string
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		all[s+"."+n] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list the master's tables: %w", err)
	}
	return all, nil
}

// describe reads a table's stored columns and its key from one server.
// Generated columns are left out: they follow from the others, and cannot be
// written.
func describe(ctx context.Context, db *sql.DB, schema, name string) (*Table, error) {
	t := &Table{Schema: schema, Name: name}
	byName, err := t.readColumns(ctx, db)
	if err != nil {
		return nil, err
	}
	keys, err := t.readKeys(ctx, db, byName)
	if err != nil {
		return nil, err
	}
	t.pickKey(keys)
	return t, nil
}

// readColumns reads the table's stored columns and returns their indexes by
// lower-case name.
func (t *Table) readColumns(ctx context.Context, db *sql.DB) (map[string]int, error) {
	rows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE = 'YES',
		IFNULL(CHARACTER_SET_NAME, ''), EXTRA FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, t.Schema, t.Name)
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", t, err)
	}
	defer rows.Close()
	byName := map[string]int{}
	for rows.Next() {
		var c column
		var extra string
		if err := rows.Scan(&c.Name, &c.DataType, &c.Type, &c.Nullable, &c.Charset, &extra); err != nil {
			return nil, fmt.Errorf("describe %s: %w", t, err)
		}
		if strings.Contains(strings.ToUpper(extra), "GENERATED") {
			continue
		}
		c.DataType, c.Type = strings.ToLower(c.DataType), strings.ToLower(c.Type)
		c.kind = kindOf(c.DataType, c.Type)
		byName[strings.ToLower(c.Name)] = len(t.cols)
		t.cols = append(t.cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("describe %s: %w", t, err)
	}
	if len(t.cols) == 0 {
		return nil, fmt.Errorf("describe %s: %w", t, ErrNoTable)
	}
	return byName, nil
}

// candidateKey is a unique key of the table, usable when the table can be
// walked by it.
type candidateKey struct {
	name   string
	cols   []int
	usable bool
}

// readKeys reads the table's unique keys, PRIMARY first, then by name.
func (t *Table) readKeys(ctx context.Context, db *sql.DB, byName map[string]int) ([]*candidateKey, error) {
	rows, err := db.QueryContext(ctx, `SELECT INDEX_NAME, COLUMN_NAME, SUB_PART IS NOT NULL FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0
		ORDER BY INDEX_NAME <> 'PRIMARY', INDEX_NAME, SEQ_IN_INDEX`, t.Schema, t.Name)
	if err != nil {
		return nil, fmt.Errorf("read the keys of %s: %w", t, err)
	}
	defer rows.Close()
	var keys []*candidateKey
	for rows.Next() {
		var idx, col string
		var prefix bool
		if err := rows.Scan(&idx, &col, &prefix); err != nil {
			return nil, err
		}
		if len(keys) == 0 || keys[len(keys)-1].name != idx {
			keys = append(keys, &candidateKey{name: idx, usable: true})
		}
		k := keys[len(keys)-1]
		i, ok := byName[strings.ToLower(col)]
		if !ok || prefix {
			k.usable = false // a generated column or a prefix: not a key we can walk
			continue
		}
		k.usable = k.usable && walkable(t.cols[i])
		k.cols = append(k.cols, i)
	}
	return keys, rows.Err()
}

// walkable reports a column a key can be walked by: NULLs repeat in a
// unique key; ENUM and SET sort by index but compare as text, so range
// bounds would not match the order.
func walkable(c column) bool {
	return !c.Nullable && c.DataType != "enum" && c.DataType != "set" && !(c.kind == kindBinary && c.DataType == "bit")
}

// pickKey walks the table by its first usable key, or says why it has none.
func (t *Table) pickKey(keys []*candidateKey) {
	for _, k := range keys {
		if k.usable {
			t.key, t.keyName = k.cols, k.name
			return
		}
	}
	t.noKeyReason = "no primary key, and no unique key of NOT NULL, walkable columns"
	if len(keys) == 0 {
		t.noKeyReason = "no primary key"
	}
}

// sameShape reports how the replica's copy of a table differs in its columns
// or key from the master's, "" when it does not.
func sameShape(m, r *Table) string {
	mc, rc := colList(m), colList(r)
	if mc != rc {
		return fmt.Sprintf("columns differ: master (%s), replica (%s)", mc, rc)
	}
	if strings.Join(m.KeyColumns(), ",") != strings.Join(r.KeyColumns(), ",") {
		return fmt.Sprintf("keys differ: master walks %s (%s), replica %s (%s)",
			m.keyName, strings.Join(m.KeyColumns(), ","), r.keyName, strings.Join(r.KeyColumns(), ","))
	}
	return ""
}

func colList(t *Table) string {
	s := make([]string, len(t.cols))
	for i, c := range t.cols {
		s[i] = c.Name + " " + c.Type
		if c.Nullable {
			s[i] += " null"
		}
	}
	return strings.Join(s, ", ")
}
