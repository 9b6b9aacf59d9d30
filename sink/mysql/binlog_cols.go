package mysql

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/rowcast/rowcast/pipeline"
)

// Which replica tables get row events, and how each column is encoded:
// from the replica's own definition (information_schema), so that the
// server never converts a type.

// binRefusal says why a table's rows cannot go as row events, "" when they
// can. A failed row-event statement must be rolled back alone, so that its
// rows can go again as SQL: only InnoDB does that. A system-versioned table
// has row_start/row_end columns information_schema.COLUMNS does not list;
// row events that lack them write no history.
func binRefusal(info tableInfo) string {
	switch {
	case info.triggers:
		return "has triggers"
	case info.tableType == "":
		return "not found" // the SQL path reports it
	case info.tableType != "BASE TABLE":
		return strings.ToLower(info.tableType)
	case !strings.EqualFold(info.engine, "InnoDB"):
		return "engine " + info.engine + " (row events go only to InnoDB tables)"
	}
	return ""
}

// colDef is a replica column as information_schema.COLUMNS describes it.
type colDef struct {
	name, dataType, colType, nullable, charset, extra, key string
	maxChars, octets, prec, scale, fsp                     int64
}

// columnDefs reads the replica's definition of tbl's columns, in order.
func (t *Target) columnDefs(ctx context.Context, tbl *pipeline.Table) ([]colDef, error) {
	rows, err := t.conn.QueryContext(ctx, "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, "+
		"COALESCE(CHARACTER_MAXIMUM_LENGTH,0), COALESCE(CHARACTER_OCTET_LENGTH,0), COALESCE(NUMERIC_PRECISION,0), "+
		"COALESCE(NUMERIC_SCALE,0), COALESCE(DATETIME_PRECISION,0), COALESCE(CHARACTER_SET_NAME,''), EXTRA, COLUMN_KEY "+
		"FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=? AND TABLE_NAME=? ORDER BY ORDINAL_POSITION",
		tbl.Database, tbl.Name)
	if err != nil {
		return nil, fmt.Errorf("read the definition of %s on the replica: %w", qualified(tbl), err)
	}
	defer rows.Close()
	var defs []colDef
	for rows.Next() {
		var d colDef
		if err := rows.Scan(&d.name, &d.dataType, &d.colType, &d.nullable, &d.maxChars, &d.octets, &d.prec, &d.scale, &d.fsp,
			&d.charset, &d.extra, &d.key); err != nil {
			return nil, fmt.Errorf("read the definition of %s on the replica: %w", qualified(tbl), err)
		}
		defs = append(defs, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the definition of %s on the replica: %w", qualified(tbl), err)
	}
	return defs, nil
}

// newBinTable builds the row-event encoding of tbl from the replica's
// columns, or says why there is none.
func newBinTable(tbl *pipeline.Table, defs []colDef) (*binTable, string) {
	bt := &binTable{db: tbl.Database, name: tbl.Name}
	for i, d := range defs {
		c, why := binColumnFor(tbl, i, d)
		if why != "" {
			return nil, why
		}
		if d.key == "PRI" {
			bt.key = append(bt.key, i)
		}
		bt.cols = append(bt.cols, c)
	}
	if len(bt.cols) != len(tbl.Columns) {
		return nil, "columns differ from the events'"
	}
	// The before images of updates and deletes carry the primary key alone
	// when the replica's is the events': the server finds the row by it and
	// reads no other column of the before image. Otherwise they are full.
	if !sameSet(bt.key, tbl.PrimaryKey) {
		bt.key = nil
	}
	bt.buildMap()
	return bt, ""
}

// binColumnFor checks the replica's column i against the events' column i
// and returns its encoding, or why it has none.
func binColumnFor(tbl *pipeline.Table, i int, d colDef) (binCol, string) {
	if i >= len(tbl.Columns) || !strings.EqualFold(tbl.Columns[i].Name, d.name) {
		return binCol{}, "columns differ from the events'"
	}
	if up := strings.ToUpper(d.extra); strings.Contains(up, "GENERATED") || strings.Contains(up, "ROW START") || strings.Contains(up, "ROW END") {
		return binCol{}, "generated or system-versioning column " + d.name
	}
	kind := tbl.Columns[i].Kind
	c, ok := binColumn(kind, d)
	if !ok {
		return binCol{}, fmt.Sprintf("column %s: %s holding %s values", d.name, d.colType, kind)
	}
	c.nullable = d.nullable == "YES"
	return c, ""
}

// binType is how the columns of one data type are written in row events:
// the type code, the changelog kinds they take, for integers and TEXT/BLOB
// the bytes of a value or of its length, and setup, which completes the
// column from its definition and reports whether rowcast writes it (nil:
// always).
type binType struct {
	typ   byte
	kinds []pipeline.ValueKind
	width int
	setup func(c *binCol, d colDef) bool
}

var (
	intKinds  = []pipeline.ValueKind{pipeline.VInt, pipeline.VUint}
	textKinds = []pipeline.ValueKind{pipeline.VString, pipeline.VJSON}
	byteKinds = []pipeline.ValueKind{pipeline.VBytes}
	strKinds  = []pipeline.ValueKind{pipeline.VString}
)

// binTypes are the data types rowcast writes as row events.
var binTypes = map[string]binType{
	"tinyint":    {typ: tTiny, kinds: intKinds, width: 1, setup: intColumn},
	"smallint":   {typ: tShort, kinds: intKinds, width: 2, setup: intColumn},
	"mediumint":  {typ: tInt24, kinds: intKinds, width: 3, setup: intColumn},
	"int":        {typ: tLong, kinds: intKinds, width: 4, setup: intColumn},
	"bigint":     {typ: tLongLong, kinds: intKinds, width: 8, setup: intColumn},
	"float":      {typ: tFloat, kinds: []pipeline.ValueKind{pipeline.VFloat}, setup: floatColumn},
	"double":     {typ: tDouble, kinds: []pipeline.ValueKind{pipeline.VDouble}, setup: floatColumn},
	"decimal":    {typ: tDecimalNew, kinds: []pipeline.ValueKind{pipeline.VDecimal}, setup: decimalColumn},
	"char":       {typ: tString, kinds: strKinds, setup: charColumn},
	"binary":     {typ: tString, kinds: byteKinds, setup: charColumn},
	"varchar":    {typ: tVarchar, kinds: strKinds, setup: varcharColumn},
	"varbinary":  {typ: tVarchar, kinds: byteKinds, setup: varcharColumn},
	"tinytext":   {typ: tBlob, kinds: textKinds, width: 1, setup: blobColumn},
	"text":       {typ: tBlob, kinds: textKinds, width: 2, setup: blobColumn},
	"mediumtext": {typ: tBlob, kinds: textKinds, width: 3, setup: blobColumn},
	"longtext":   {typ: tBlob, kinds: textKinds, width: 4, setup: blobColumn},
	"tinyblob":   {typ: tBlob, kinds: byteKinds, width: 1, setup: blobColumn},
	"blob":       {typ: tBlob, kinds: byteKinds, width: 2, setup: blobColumn},
	"mediumblob": {typ: tBlob, kinds: byteKinds, width: 3, setup: blobColumn},
	"longblob":   {typ: tBlob, kinds: byteKinds, width: 4, setup: blobColumn},
	"date":       {typ: tDate, kinds: []pipeline.ValueKind{pipeline.VDate}},
	"datetime":   {typ: tDatetime2, kinds: []pipeline.ValueKind{pipeline.VDateTime}, setup: fracColumn},
	"timestamp":  {typ: tTimestamp2, kinds: []pipeline.ValueKind{pipeline.VTimestamp}, setup: fracColumn},
	"time":       {typ: tTime2, kinds: []pipeline.ValueKind{pipeline.VTime}, setup: fracColumn},
	"year":       {typ: tYear, kinds: []pipeline.ValueKind{pipeline.VYear}},
	"bit":        {typ: tBit, kinds: []pipeline.ValueKind{pipeline.VBit}, setup: bitColumn},
	"enum":       {typ: tString, kinds: []pipeline.ValueKind{pipeline.VEnum}, setup: enumColumn},
	"set":        {typ: tString, kinds: []pipeline.ValueKind{pipeline.VSet}, setup: setColumn},
}

// binColumn maps a replica column holding values of kind to its row-event
// encoding; ok is false when rowcast does not write it as a row event.
func binColumn(kind pipeline.ValueKind, d colDef) (binCol, bool) {
	ty, known := binTypes[d.dataType]
	if !known || !slices.Contains(ty.kinds, kind) {
		return binCol{}, false
	}
	c := binCol{name: d.name, kind: kind, typ: ty.typ, width: ty.width, mb3: d.charset != "utf8mb4"}
	if ty.setup == nil {
		return c, true
	}
	return c, ty.setup(&c, d)
}

// utf8Text reports a column in a character set whose values the changelog's
// UTF-8 strings are written in as they are.
func utf8Text(d colDef) bool {
	return d.charset == "utf8mb4" || d.charset == "utf8mb3" || d.charset == "utf8"
}

func intColumn(c *binCol, d colDef) bool {
	c.unsigned = strings.Contains(strings.ToLower(d.colType), "unsigned")
	return true
}

// floatColumn takes FLOAT and DOUBLE as they are, without a precision
// (FLOAT(7,3) rounds) or UNSIGNED.
func floatColumn(c *binCol, d colDef) bool {
	c.meta = []byte{4}
	if c.typ == tDouble {
		c.meta = []byte{8}
	}
	return strings.ToLower(d.colType) == d.dataType
}

func decimalColumn(c *binCol, d colDef) bool {
	c.meta, c.prec, c.scale = []byte{byte(d.prec), byte(d.scale)}, int(d.prec), int(d.scale)
	return d.prec > 0 && d.prec <= 65 && d.scale <= 38
}

// lengthBytes is the bytes of a CHAR or VARCHAR value's length prefix.
func lengthBytes(octets int64) int {
	if octets < 256 {
		return 1
	}
	return 2
}

func charColumn(c *binCol, d colDef) bool {
	c.width, c.maxBytes, c.maxChars = lengthBytes(d.octets), int(d.octets), int(d.maxChars)
	c.meta = []byte{byte(tString ^ ((d.octets & 0x300) >> 4)), byte(d.octets)}
	if d.dataType == "binary" {
		return d.octets <= 255
	}
	return utf8Text(d) && d.octets <= 1020
}

func varcharColumn(c *binCol, d colDef) bool {
	c.width, c.maxBytes, c.maxChars = lengthBytes(d.octets), int(d.octets), int(d.maxChars)
	c.meta = []byte{byte(d.octets), byte(d.octets >> 8)}
	return (d.dataType == "varbinary" || utf8Text(d)) && d.octets < 65536
}

// blobColumn: c.width is the bytes of the value's length.
func blobColumn(c *binCol, d colDef) bool {
	c.meta = []byte{byte(c.width)}
	c.maxBytes = int(min(int64(1)<<(8*c.width)-1, 1<<30))
	return strings.HasSuffix(d.dataType, "blob") || utf8Text(d)
}

// fracColumn is a temporal column with fractional seconds.
func fracColumn(c *binCol, d colDef) bool {
	c.meta, c.scale = []byte{byte(d.fsp)}, int(d.fsp)
	return true
}

func bitColumn(c *binCol, d colDef) bool {
	c.prec, c.width = int(d.prec), int(d.prec+7)/8
	c.meta = []byte{byte(d.prec % 8), byte(d.prec / 8)}
	return d.prec >= 1 && d.prec <= 64
}

func enumColumn(c *binCol, d colDef) bool {
	members, ok := parseMembers(d.colType)
	if !ok {
		return false
	}
	c.members, c.width = members, 1
	if len(members) > 255 {
		c.width = 2
	}
	c.meta = []byte{tEnum, byte(c.width)}
	return len(members) <= 65535
}

func setColumn(c *binCol, d colDef) bool {
	members, ok := parseMembers(d.colType)
	if !ok {
		return false
	}
	c.members, c.width = members, (len(members)+7)/8
	if c.width > 4 {
		c.width = 8
	}
	c.meta = []byte{tSet, byte(c.width)}
	return len(members) <= 64
}

// parseMembers reads the members of "enum('a','b')" or "set(...)" as
// information_schema spells them (” for a quote). ok is false on anything
// else (a backslash, say), and the table then goes as SQL.
func parseMembers(colType string) ([]string, bool) {
	open := strings.IndexByte(colType, '(')
	if open < 0 || !strings.HasSuffix(colType, ")") || strings.Contains(colType, `\`) {
		return nil, false
	}
	s := colType[open+1 : len(colType)-1]
	var out []string
	for len(s) > 0 {
		m, rest, ok := cutMember(s)
		if !ok {
			return nil, false
		}
		out = append(out, m)
		s = rest
	}
	return out, len(out) > 0
}

// cutMember reads the quoted member that starts s, and the comma after it.
func cutMember(s string) (member, rest string, ok bool) {
	if s[0] != '\'' {
		return "", "", false
	}
	var m strings.Builder
	i := 1
	for ; i < len(s); i++ {
		if s[i] != '\'' {
			m.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '\'' {
			m.WriteByte('\'')
			i++
			continue
		}
		break
	}
	if i >= len(s) {
		return "", "", false // no closing quote
	}
	rest = s[i+1:]
	if len(rest) > 0 {
		if rest[0] != ',' {
			return "", "", false
		}
		rest = rest[1:]
	}
	return m.String(), rest, true
}

// sameSet reports whether a and b hold the same column indexes.
func sameSet(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for _, i := range a {
		if !slices.Contains(b, i) {
			return false
		}
	}
	return true
}
