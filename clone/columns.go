package clone

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// kind is how a column's values travel: what the reader selects, how the
// text of a value is written for LOAD DATA, and how a key value is written
// back into the next chunk's WHERE. Values go as the server's own text, raw
// bytes for strings (the sessions read them with character_set_results
// binary and load them with CHARACTER SET binary: no conversion at all).
type kind uint8

const (
	kindText     kind = iota // CHAR, VARCHAR, TEXT: raw bytes in the column's character set
	kindBinary               // BINARY, VARBINARY, BLOB, spatial types: raw bytes
	kindInt                  // integer types: the driver's int64 or uint64
	kindYear                 // YEAR: written with four digits ('0' would load as 2000)
	kindDecimal              // DECIMAL: exact text
	kindTemporal             // DATE, DATETIME, TIMESTAMP (UTC sessions), TIME: text with every fractional digit
	kindFloat                // FLOAT, DOUBLE: read as CAST(c AS DOUBLE), whose text is exact (FLOAT's own is rounded to 6 digits)
	kindBit                  // BIT: read as CAST(c AS UNSIGNED), loaded with CAST(@v AS UNSIGNED)
	kindEnum                 // ENUM: its text; the invalid value '' (index 0) loads with a warning
	kindJSON                 // MySQL's JSON: loaded with CONVERT(@v USING utf8mb4)
	kindTyped                // INET4, INET6, UUID, ...: types without a character set, whose text loads through CONVERT(@v USING utf8mb4) (as binary it would be their stored bytes)
	kindOther                // SET and others with a character set: their text
)

// kinds maps information_schema.COLUMNS.DATA_TYPE to a kind; anything else
// is kindOther.
var kinds = map[string]kind{
	"char": kindText, "varchar": kindText, "tinytext": kindText, "text": kindText, "mediumtext": kindText, "longtext": kindText,
	"binary": kindBinary, "varbinary": kindBinary, "tinyblob": kindBinary, "blob": kindBinary, "mediumblob": kindBinary,
	"longblob": kindBinary, "geometry": kindBinary, "point": kindBinary, "linestring": kindBinary, "polygon": kindBinary,
	"multipoint": kindBinary, "multilinestring": kindBinary, "multipolygon": kindBinary, "geometrycollection": kindBinary,
	"geomcollection": kindBinary,
	"tinyint":        kindInt, "smallint": kindInt, "mediumint": kindInt, "int": kindInt, "integer": kindInt, "bigint": kindInt,
	"year": kindYear, "decimal": kindDecimal, "numeric": kindDecimal,
	"date": kindTemporal, "datetime": kindTemporal, "timestamp": kindTemporal, "time": kindTemporal,
	"float": kindFloat, "double": kindFloat, "real": kindFloat, "double precision": kindFloat,
	"bit": kindBit, "enum": kindEnum, "json": kindJSON,
}

// column is one stored column of a table.
type column struct {
	name    string
	kind    kind
	charset string // kindText: its character set, for key literals
	// emptyMember: an ENUM that has '' among its members, so that '' is a
	// valid value and loads without a warning.
	emptyMember bool
}

// tableDef is what the copy needs of a table: its stored columns (generated
// ones follow from them and cannot be written), and the columns of its
// primary key, by position in cols, when chunks can walk it.
type tableDef struct {
	name tableName
	cols []column
	key  []int // nil: read the table in one statement
}

// describe reads a table's columns and primary key.
func describe(ctx context.Context, q queryer, t tableName) (*tableDef, error) {
	d := &tableDef{name: t}
	if err := d.readColumns(ctx, q); err != nil {
		return nil, err
	}
	if err := d.readKey(ctx, q); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *tableDef) readColumns(ctx context.Context, q queryer) error {
	rows, err := q.QueryContext(ctx, "SELECT COLUMN_NAME, LOWER(DATA_TYPE), COLUMN_TYPE, COALESCE(CHARACTER_SET_NAME,'') "+
		"FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=? AND TABLE_NAME=? AND COALESCE(GENERATION_EXPRESSION,'')='' "+
		"ORDER BY ORDINAL_POSITION", d.name.db, d.name.name)
	if err != nil {
		return fmt.Errorf("read the columns of %s: %w", d.name, err)
	}
	defer rows.Close()
	for rows.Next() {
		c, err := scanColumn(rows)
		if err != nil {
			return fmt.Errorf("read the columns of %s: %w", d.name, err)
		}
		d.cols = append(d.cols, c)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the columns of %s: %w", d.name, err)
	}
	if len(d.cols) == 0 {
		return fmt.Errorf("%w: %s has no columns that can be written", ErrTable, d.name)
	}
	return nil
}

// scanColumn reads one row of readColumns' query.
func scanColumn(rows *sql.Rows) (column, error) {
	var c column
	var dataType, colType string
	if err := rows.Scan(&c.name, &dataType, &colType, &c.charset); err != nil {
		return c, err
	}
	c.kind = kindOf(dataType)
	if c.kind == kindOther && c.charset == "" {
		c.kind = kindTyped
	}
	c.emptyMember = c.kind == kindEnum && hasEmptyMember(colType)
	return c, nil
}

func kindOf(dataType string) kind {
	if k, ok := kinds[dataType]; ok {
		return k
	}
	return kindOther
}

// hasEmptyMember reports whether an ENUM's COLUMN_TYPE, enum('a',”,...),
// lists ”.
func hasEmptyMember(colType string) bool {
	open := strings.IndexByte(colType, '(')
	if open < 0 {
		return false
	}
	s := colType[open+1:]
	for len(s) > 0 && s[0] == '\'' {
		member, rest := quotedMember(s[1:])
		if member == "" {
			return true
		}
		s = strings.TrimPrefix(rest, ",")
	}
	return false
}

// quotedMember reads a member up to its closing quote (” is a quote
// inside it) and returns what follows.
func quotedMember(s string) (member, rest string) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\'' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '\'' {
			b.WriteByte('\'')
			i++
			continue
		}
		return b.String(), s[i+1:]
	}
	return b.String(), ""
}

// readKey finds the primary key's columns. A key the chunks cannot walk
// exactly (no primary key, a prefix of a column, a type whose order in SQL
// is not the order of its text) leaves key nil: the table is read in one
// statement.
func (d *tableDef) readKey(ctx context.Context, q queryer) error {
	rows, err := q.QueryContext(ctx, "SELECT COLUMN_NAME, SUB_PART IS NOT NULL FROM information_schema.STATISTICS "+
		"WHERE TABLE_SCHEMA=? AND TABLE_NAME=? AND INDEX_NAME='PRIMARY' ORDER BY SEQ_IN_INDEX", d.name.db, d.name.name)
	if err != nil {
		return fmt.Errorf("read the primary key of %s: %w", d.name, err)
	}
	defer rows.Close()
	var key []int
	walkable := true
	for rows.Next() {
		var name string
		var prefix bool
		if err := rows.Scan(&name, &prefix); err != nil {
			return fmt.Errorf("read the primary key of %s: %w", d.name, err)
		}
		i := d.index(name)
		walkable = walkable && !prefix && i >= 0 && keyKinds[d.cols[i].kind]
		key = append(key, i)
	}
	if walkable && len(key) > 0 {
		d.key = key
	}
	return rows.Err()
}

// keyKinds are the kinds whose values a WHERE can compare exactly, in the
// order of the key's index.
var keyKinds = map[kind]bool{kindText: true, kindBinary: true, kindInt: true, kindYear: true, kindDecimal: true, kindTemporal: true}

func (d *tableDef) index(name string) int {
	for i, c := range d.cols {
		if c.name == name {
			return i
		}
	}
	return -1
}

// selectList is what the reader selects, column by column.
func (d *tableDef) selectList() string {
	parts := make([]string, len(d.cols))
	for i, c := range d.cols {
		switch c.kind {
		case kindFloat:
			parts[i] = "CAST(" + qi(c.name) + " AS DOUBLE)"
		case kindBit:
			parts[i] = "CAST(" + qi(c.name) + " AS UNSIGNED)"
		default:
			parts[i] = qi(c.name)
		}
	}
	return strings.Join(parts, ",")
}

// chunkSQL selects the next rows after the key literals after (nil: from
// the start), at most n; without a key, the whole table.
func (d *tableDef) chunkSQL(after []string, n int) string {
	q := "SELECT " + d.selectList() + " FROM " + d.name.quoted()
	if d.key == nil {
		return q
	}
	q += " FORCE INDEX (PRIMARY)"
	if after != nil {
		q += " WHERE " + d.afterKey(after)
	}
	order := make([]string, len(d.key))
	for i, k := range d.key {
		order[i] = qi(d.cols[k].name)
	}
	return q + " ORDER BY " + strings.Join(order, ",") + " LIMIT " + strconv.Itoa(n)
}

// afterKey is the condition "key > after", expanded column by column so
// that the server reads it as a range of the primary key:
// (a > x) OR (a = x AND b > y) OR ...
func (d *tableDef) afterKey(after []string) string {
	var or []string
	for i := range d.key {
		var and []string
		for j := 0; j < i; j++ {
			and = append(and, qi(d.cols[d.key[j]].name)+" = "+after[j])
		}
		and = append(and, qi(d.cols[d.key[i]].name)+" > "+after[i])
		or = append(or, "("+strings.Join(and, " AND ")+")")
	}
	return strings.Join(or, " OR ")
}

// keyLiteral writes a key value read by the text protocol as an SQL literal
// that compares with the column exactly: numbers as numbers (a DECIMAL
// compared with a string would be compared as a double), strings as hex in
// their own character set (so that the column's collation orders them),
// dates and times as strings, which the server converts to the column's
// type.
func keyLiteral(c column, v driver.Value) (string, error) {
	switch v := v.(type) {
	case int64:
		return strconv.FormatInt(v, 10), nil
	case uint64:
		return strconv.FormatUint(v, 10), nil
	case []byte:
		return bytesLiteral(c, v), nil
	}
	return "", fmt.Errorf("%w: key column %s: value of type %T", ErrTable, c.name, v)
}

func bytesLiteral(c column, v []byte) string {
	switch c.kind {
	case kindText:
		return "_" + c.charset + " X'" + hex.EncodeToString(v) + "'"
	case kindBinary:
		return "X'" + hex.EncodeToString(v) + "'"
	case kindDecimal, kindInt, kindYear:
		return string(v)
	}
	return "'" + strings.ReplaceAll(string(v), "'", "''") + "'"
}
