package source

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/rowcast/rowcast/internal/mysqlerr"
	"github.com/rowcast/rowcast/pipeline"
)

// errTableGone marks a table that no longer exists when a snapshot reads it.
var errTableGone = errors.New("table does not exist")

// snapTable is what reading a table's rows in chunks needs: its pipeline
// shape (the same as the binlog's for the same table), the converter of each
// column from the text the server prints, and its keyset.
type snapTable struct {
	db, name string
	def      string // SHOW CREATE TABLE
	table    *pipeline.Table
	conv     []fromText
	selects  string   // the select list
	key      []keyCol // the keyset, in key order; nil: the table is read in one chunk
}

// keyCol is one column of the keyset: its index and how its value is
// written in the WHERE clause.
type keyCol struct {
	col  int
	name string
	lit  string // "?", or a CAST of it that compares exactly
}

// qualified is `db`.`table`.
func (t *snapTable) qualified() string { return quoteName(t.db) + "." + quoteName(t.name) }

func quoteName(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// splitTable splits "db.table" at its first dot.
func splitTable(name string) (db, table string, err error) {
	db, table, ok := strings.Cut(name, ".")
	if !ok || db == "" || table == "" {
		return "", "", fmt.Errorf("%w: table %q is not db.table", ErrConfig, name)
	}
	return db, table, nil
}

// describeTable reads the table's definition, columns and key.
func describeTable(ctx context.Context, q queryer, flavor string, rawBytes bool, name string) (*snapTable, error) {
	db, table, err := splitTable(name)
	if err != nil {
		return nil, err
	}
	def, err := showCreate(ctx, q, db, table)
	if err != nil {
		return nil, err
	}
	cols, err := (&sqlLoader{db: q, flavor: flavor}).columns(ctx, db, table)
	if err != nil {
		return nil, err
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("%s: %w", name, errTableGone)
	}
	pk, whole, err := primaryKey(ctx, q, db, table, cols)
	if err != nil {
		return nil, err
	}
	t := &snapTable{db: db, name: table, def: def}
	if err := t.build(cols, pk, flavor, rawBytes); err != nil {
		return nil, err
	}
	if !whole {
		t.key = nil
	}
	return t, nil
}

// build fills in the shape, the converters, the select list and the keyset.
func (t *snapTable) build(cols []colInfo, pk []int, flavor string, rawBytes bool) error {
	t.table = &pipeline.Table{Database: t.db, Name: t.name, Columns: make([]pipeline.Column, len(cols)), PrimaryKey: pk}
	t.conv = make([]fromText, len(cols))
	sel := make([]string, len(cols))
	for i := range cols {
		c := snapColumn{info: &cols[i], flavor: flavor, rawBytes: rawBytes}
		var err error
		if t.table.Columns[i], t.conv[i], err = c.build(); err != nil {
			return fmt.Errorf("column %s.%s.%s: %w", t.db, t.name, cols[i].Name, err)
		}
		sel[i] = c.selectExpr(t.table.Columns[i].Kind)
	}
	t.selects = strings.Join(sel, ",")
	t.key = keyset(t.table, cols)
	return nil
}

// keyset is the table's key as a keyset, nil when the table has no key or a
// key column whose order the server's comparison with a literal does not
// follow (ENUM and SET sort by index; JSON and geometry do not sort).
func keyset(t *pipeline.Table, cols []colInfo) []keyCol {
	if len(t.PrimaryKey) == 0 {
		return nil
	}
	out := make([]keyCol, len(t.PrimaryKey))
	for i, c := range t.PrimaryKey {
		lit, ok := keyLiteral(t.Columns[c].Kind, &cols[c])
		if !ok {
			return nil
		}
		out[i] = keyCol{col: c, name: quoteName(t.Columns[c].Name), lit: lit}
	}
	return out
}

// decimalType reads the precision and scale of a DECIMAL column type.
var decimalType = regexp.MustCompile(`^decimal\((\d+),(\d+)\)`)

// keyLiteral is how a key value of kind k is written in the keyset's WHERE
// clause; false when the column cannot be a keyset column.
func keyLiteral(k pipeline.ValueKind, c *colInfo) (string, bool) {
	switch k {
	case pipeline.VInt, pipeline.VUint, pipeline.VYear, pipeline.VBit, pipeline.VFloat, pipeline.VDouble,
		pipeline.VDate, pipeline.VDateTime, pipeline.VTimestamp, pipeline.VTime:
		return "?", true
	case pipeline.VDecimal:
		// A string compared with a DECIMAL is compared as a double.
		if m := decimalType.FindStringSubmatch(c.ColumnType); m != nil {
			return "CAST(? AS DECIMAL(" + m[1] + "," + m[2] + "))", true
		}
	case pipeline.VString:
		return "?", true
	case pipeline.VBytes:
		// Raw text of a charset rowcast does not convert would compare as
		// binary, not in the column's collation.
		return "?", c.Charset == ""
	}
	return "", false
}

// showCreate is the table's SHOW CREATE TABLE; errTableGone when there is
// no such table.
func showCreate(ctx context.Context, q queryer, db, table string) (string, error) {
	rows, err := q.QueryContext(ctx, "SHOW CREATE TABLE "+quoteName(db)+"."+quoteName(table))
	if mysqlerr.Missing(err) {
		return "", fmt.Errorf("%s.%s: %w", db, table, errTableGone)
	}
	if err != nil {
		return "", fmt.Errorf("SHOW CREATE TABLE %s.%s: %w", db, table, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if len(cols) != 2 || !rows.Next() {
		return "", fmt.Errorf("%w: %s.%s is not a base table", ErrConfig, db, table)
	}
	var name, def string
	if err := rows.Scan(&name, &def); err != nil {
		return "", err
	}
	return def, rows.Err()
}

// autoIncrement is the AUTO_INCREMENT counter of SHOW CREATE TABLE, which
// inserts move: not part of the definition.
var autoIncrement = regexp.MustCompile(` AUTO_INCREMENT=\d+`)

// sameDefinition compares two SHOW CREATE TABLE texts, counters aside.
func sameDefinition(a, b string) bool {
	return a == b || autoIncrement.ReplaceAllString(a, "") == autoIncrement.ReplaceAllString(b, "")
}

// indexPart is one row of SHOW INDEX.
type indexPart struct {
	key, column string
	unique      bool
	partial     bool // a prefix of the column, or an expression
	nullable    bool
}

// primaryKey is the key the server treats as the primary key, as the
// binlog's TABLE_MAP names it: PRIMARY, else the first unique key whose
// columns are all NOT NULL and whole (SHOW INDEX lists keys in the server's
// order, PRIMARY first, then such keys). whole is false for a PRIMARY KEY
// on a prefix of a column, which cannot serve as a keyset.
func primaryKey(ctx context.Context, q queryer, db, table string, cols []colInfo) (key []int, whole bool, err error) {
	parts, err := showIndex(ctx, q, db, table)
	if err != nil {
		return nil, false, err
	}
	byName := make(map[string]int, len(cols))
	for i, c := range cols {
		byName[c.Name] = i
	}
	var order []string
	seen := map[string]bool{}
	for _, p := range parts {
		if !seen[p.key] {
			seen[p.key] = true
			order = append(order, p.key)
		}
	}
	for _, k := range order {
		key, whole := keyColumns(parts, k, byName)
		if k == "PRIMARY" || whole {
			return key, whole, nil
		}
	}
	return nil, false, nil
}

// keyColumns returns the column indexes of key, and whether it identifies
// rows by whole NOT NULL columns as a primary key does.
func keyColumns(parts []indexPart, key string, byName map[string]int) (idx []int, whole bool) {
	whole = true
	for _, p := range parts {
		if p.key != key {
			continue
		}
		i, ok := byName[p.column]
		if ok {
			idx = append(idx, i)
		}
		whole = whole && ok && p.unique && !p.partial && !p.nullable
	}
	return idx, whole && len(idx) > 0
}

// showIndex reads SHOW INDEX, in its order.
func showIndex(ctx context.Context, q queryer, db, table string) ([]indexPart, error) {
	rows, err := q.QueryContext(ctx, "SHOW INDEX FROM "+quoteName(db)+"."+quoteName(table))
	if err != nil {
		return nil, fmt.Errorf("SHOW INDEX FROM %s.%s: %w", db, table, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []indexPart
	for rows.Next() {
		row, err := scanNamed(rows, cols)
		if err != nil {
			return nil, err
		}
		out = append(out, indexPart{key: row["Key_name"].String, column: row["Column_name"].String,
			unique: row["Non_unique"].String == "0", partial: row["Sub_part"].Valid || !row["Column_name"].Valid,
			nullable: row["Null"].String != ""})
	}
	return out, rows.Err()
}

// scanNamed scans the current row as column name -> value.
func scanNamed(rows *sql.Rows, cols []string) (map[string]sql.NullString, error) {
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	out := make(map[string]sql.NullString, len(cols))
	for i, c := range cols {
		out[c] = vals[i]
	}
	return out, nil
}

// snapColumn is one column as information_schema describes it.
type snapColumn struct {
	info     *colInfo
	flavor   string
	rawBytes bool
}

// numericKinds are the kinds of the types that need no character set.
var numericKinds = map[string]pipeline.ValueKind{
	"tinyint": pipeline.VInt, "smallint": pipeline.VInt, "mediumint": pipeline.VInt, "int": pipeline.VInt,
	"bigint": pipeline.VInt, "decimal": pipeline.VDecimal, "float": pipeline.VFloat, "double": pipeline.VDouble,
	"bit": pipeline.VBit, "date": pipeline.VDate, "datetime": pipeline.VDateTime, "timestamp": pipeline.VTimestamp,
	"time": pipeline.VTime, "year": pipeline.VYear, "json": pipeline.VJSON,
	"binary": pipeline.VBytes, "varbinary": pipeline.VBytes, "tinyblob": pipeline.VBytes, "blob": pipeline.VBytes,
	"mediumblob": pipeline.VBytes, "longblob": pipeline.VBytes,
	"geometry": pipeline.VGeometry, "point": pipeline.VGeometry, "linestring": pipeline.VGeometry,
	"polygon": pipeline.VGeometry, "multipoint": pipeline.VGeometry, "multilinestring": pipeline.VGeometry,
	"multipolygon": pipeline.VGeometry, "geometrycollection": pipeline.VGeometry, "geomcollection": pipeline.VGeometry,
	"inet4": pipeline.VString, "inet6": pipeline.VString, "uuid": pipeline.VString,
}

// textKinds are the types whose values are text in the column's character
// set.
var textKinds = map[string]pipeline.ValueKind{
	"char": pipeline.VString, "varchar": pipeline.VString, "tinytext": pipeline.VString, "text": pipeline.VString,
	"mediumtext": pipeline.VString, "longtext": pipeline.VString, "enum": pipeline.VEnum, "set": pipeline.VSet,
}

// build returns the column and its converter, with the kinds the binlog
// path gives the same column (values.go), or ErrUnsupported.
func (c snapColumn) build() (pipeline.Column, fromText, error) {
	ci := c.info
	col := pipeline.Column{Name: ci.Name, SQLType: ci.ColumnType}
	if k, ok := numericKinds[ci.DataType]; ok {
		if k == pipeline.VInt && strings.Contains(ci.ColumnType, "unsigned") {
			k = pipeline.VUint
		}
		col.Kind = k
		return col, numericConvs[k], nil
	}
	if k, ok := textKinds[ci.DataType]; ok {
		return c.text(col, k)
	}
	if ci.DataType == "vector" {
		return col, nil, fmt.Errorf("%w: VECTOR columns are not supported yet: exclude the table (Config.Exclude)", ErrUnsupported)
	}
	return col, nil, fmt.Errorf("%w: unknown column type %q: exclude the table (Config.Exclude) or upgrade rowcast", ErrUnsupported, ci.ColumnType)
}

// text handles the columns of a character set, as textColumn and
// decodeMembers do for the binlog.
func (c snapColumn) text(col pipeline.Column, k pipeline.ValueKind) (pipeline.Column, fromText, error) {
	dec := decoderFor(c.info.Charset)
	switch {
	case dec != nil:
	case !c.rawBytes:
		return col, nil, fmt.Errorf("%w: character set %q: rowcast converts utf8mb4, utf8mb3, ascii and latin1 to UTF-8; convert the column (ALTER TABLE ... CONVERT TO CHARACTER SET utf8mb4), exclude the table, or set RawUnsupportedCharsets to publish its bytes", ErrUnsupported, c.info.Charset)
	case k == pipeline.VString:
		col.Kind = pipeline.VBytes
		return col, bytesText, nil
	default:
		dec = func(s string) string { return s }
	}
	col.Kind = k
	if c.info.JSON && c.info.DataType == "longtext" && c.flavor == FlavorMariaDB {
		col.Kind = pipeline.VJSON
	}
	return col, decodedText(dec), nil
}

// selectExpr is how the column is read: FLOAT and DOUBLE as DOUBLE, which
// the server prints exactly (a FLOAT column prints 6 digits).
func (c snapColumn) selectExpr(k pipeline.ValueKind) string {
	if k == pipeline.VFloat || k == pipeline.VDouble {
		return "CAST(" + quoteName(c.info.Name) + " AS DOUBLE)"
	}
	return quoteName(c.info.Name)
}
