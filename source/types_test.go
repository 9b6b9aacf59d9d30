package source

import (
	"bytes"
	"database/sql"
	"encoding/hex"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/pipeline/testenv"
)

// typeCol is one column of the type matrix: its definition, the kind it must
// decode to, how to read it back from the master as text, and four literal
// values (minimum/empty, maximum, typical, large or edge).
type typeCol struct {
	name, def string
	kind      pipeline.ValueKind
	readback  string // SQL expression with %s for the column; "" = CAST(%s AS CHAR)
	vals      [4]string
}

const bigJSON = `CONCAT('{"k": "', REPEAT('x', 1000000), '", "n": [1, 2.5, -3e10]}')`

var typeCols = []typeCol{
	{"ti", "TINYINT", pipeline.VInt, "", [4]string{"-128", "127", "5", "0"}},
	{"tiu", "TINYINT UNSIGNED", pipeline.VUint, "", [4]string{"0", "255", "7", "128"}},
	{"bo", "BOOL", pipeline.VInt, "", [4]string{"0", "1", "TRUE", "-1"}},
	{"si", "SMALLINT", pipeline.VInt, "", [4]string{"-32768", "32767", "-2", "0"}},
	{"siu", "SMALLINT UNSIGNED", pipeline.VUint, "", [4]string{"0", "65535", "2", "32768"}},
	{"mi", "MEDIUMINT", pipeline.VInt, "", [4]string{"-8388608", "8388607", "-3", "0"}},
	{"miu", "MEDIUMINT UNSIGNED", pipeline.VUint, "", [4]string{"0", "16777215", "3", "8388608"}},
	{"i", "INT", pipeline.VInt, "", [4]string{"-2147483648", "2147483647", "-4", "0"}},
	{"iu", "INT UNSIGNED", pipeline.VUint, "", [4]string{"0", "4294967295", "4", "2147483648"}},
	{"bi", "BIGINT", pipeline.VInt, "", [4]string{"-9223372036854775808", "9223372036854775807", "-5", "0"}},
	{"biu", "BIGINT UNSIGNED", pipeline.VUint, "", [4]string{"0", "18446744073709551615", "5", "9223372036854775808"}},
	{"dec1", "DECIMAL(10,4)", pipeline.VDecimal, "", [4]string{"-999999.9999", "999999.9999", "-12.34", "0"}},
	{"dec2", "DECIMAL(65,30)", pipeline.VDecimal, "", [4]string{
		"-99999999999999999999999999999999999.999999999999999999999999999999",
		"99999999999999999999999999999999999.999999999999999999999999999999", "0.000000000000000000000000000001", "-0.5"}},
	{"dec3", "DECIMAL(5,0) UNSIGNED", pipeline.VDecimal, "", [4]string{"0", "99999", "42", "1"}},
	{"dec4", "NUMERIC(3,3)", pipeline.VDecimal, "", [4]string{"-0.999", "0.999", "0.001", "0"}},
	{"f", "FLOAT", pipeline.VFloat, "CAST(%s+0e0 AS CHAR)", [4]string{"-1.5", "16777216", "0.1", "1.1754943508222875e-38"}},
	{"d", "DOUBLE", pipeline.VDouble, "", [4]string{"-1.7976931348623157e308", "1.7976931348623157e308", "0.1", "5e-324"}},
	{"b1", "BIT(1)", pipeline.VBit, "CAST(%s+0 AS CHAR)", [4]string{"b'0'", "b'1'", "1", "0"}},
	{"b10", "BIT(10)", pipeline.VBit, "CAST(%s+0 AS CHAR)", [4]string{"0", "b'1111111111'", "b'1010'", "512"}},
	{"b64", "BIT(64)", pipeline.VBit, "CAST(%s+0 AS CHAR)", [4]string{"0", "b'1111111111111111111111111111111111111111111111111111111111111111'", "1", "b'1000000000000000000000000000000000000000000000000000000000000000'"}},
	{"dt", "DATE", pipeline.VDate, "", [4]string{"'0000-00-00'", "'9999-12-31'", "'2024-02-29'", "'1000-01-01'"}},
	{"dtm", "DATETIME", pipeline.VDateTime, "", [4]string{"'0000-00-00 00:00:00'", "'9999-12-31 23:59:59'", "'2024-05-06 07:08:09'", "'1000-01-01 00:00:00'"}},
	{"dtm3", "DATETIME(3)", pipeline.VDateTime, "", [4]string{"'0000-00-00 00:00:00.000'", "'9999-12-31 23:59:59.999'", "'2020-02-29 12:34:56.789'", "'2001-01-01 00:00:00'"}},
	{"dtm6", "DATETIME(6)", pipeline.VDateTime, "", [4]string{"'0000-00-00 00:00:00'", "'9999-12-31 23:59:59.999999'", "'2024-05-06 07:08:09.123456'", "'2024-05-06 07:08:09.000001'"}},
	{"ts", "TIMESTAMP NULL", pipeline.VTimestamp, "", [4]string{"'1970-01-01 00:00:01'", "'2038-01-19 03:14:07'", "'2024-05-06 07:08:09'", "'0000-00-00 00:00:00'"}},
	{"ts6", "TIMESTAMP(6) NULL", pipeline.VTimestamp, "", [4]string{"'0000-00-00 00:00:00'", "'2038-01-19 03:14:07.999999'", "'2024-05-06 07:08:09.000001'", "'2001-09-09 01:46:40.5'"}},
	{"tm", "TIME", pipeline.VTime, "", [4]string{"'-838:59:59'", "'838:59:59'", "'-01:02:03'", "'00:00:00'"}},
	{"tm2", "TIME(2)", pipeline.VTime, "", [4]string{"'-00:00:00.50'", "'12:00:00'", "'100:00:00.99'", "'-00:00:01.01'"}},
	{"tm6", "TIME(6)", pipeline.VTime, "", [4]string{"'-838:59:59.000000'", "'838:59:59.000000'", "'-00:00:00.000001'", "'00:00:00'"}},
	{"yr", "YEAR", pipeline.VYear, "", [4]string{"0", "2155", "2024", "1901"}},
	{"ch", "CHAR(10)", pipeline.VString, "%s", [4]string{"''", "'abc   '", "'  lead'", "'😀x'"}},
	{"vc", "VARCHAR(100)", pipeline.VString, "%s", [4]string{"''", "'😀 4-byte 𝄞 ñ'", "'trail   '", "'a''b\\\\c'"}},
	{"vcl", "VARCHAR(50) CHARACTER SET latin1", pipeline.VString, "%s", [4]string{"''", "'é€‚ÿ'", "'plain'", "'Ærøskøbing'"}},
	{"chl", "CHAR(5) CHARACTER SET latin1", pipeline.VString, "%s", [4]string{"''", "'ÿé  '", "'abc'", "'ß'"}},
	{"asc", "VARCHAR(10) CHARACTER SET ascii", pipeline.VString, "%s", [4]string{"''", "'~!@'", "'x'", "' '"}},
	{"u3", "VARCHAR(10) CHARACTER SET utf8mb3", pipeline.VString, "%s", [4]string{"''", "'ñ中'", "'y'", "'€'"}},
	{"tt", "TINYTEXT", pipeline.VString, "%s", [4]string{"''", "REPEAT('t', 255)", "'x'", "'é'"}},
	{"tx", "TEXT", pipeline.VString, "%s", [4]string{"''", "'trailing spaces   '", "'😀'", "REPEAT('ab', 1000)"}},
	{"mt", "MEDIUMTEXT", pipeline.VString, "%s", [4]string{"''", "'m'", "'mm'", "REPEAT('m', 70000)"}},
	{"lt", "LONGTEXT", pipeline.VString, "%s", [4]string{"''", "'l'", "'ll'", "'𝄞'"}},
	{"txl", "TEXT CHARACTER SET latin1", pipeline.VString, "%s", [4]string{"''", "'Ærøskøbing €'", "'é'", "'\\0x'"}},
	{"bn", "BINARY(8)", pipeline.VBytes, "HEX(%s)", [4]string{"''", "0x0102", "0x0000000000000001", "0x0100000000000000"}},
	{"vb", "VARBINARY(20)", pipeline.VBytes, "HEX(%s)", [4]string{"''", "0x00FF00", "0xDEADBEEF", "0x00"}},
	{"tb", "TINYBLOB", pipeline.VBytes, "HEX(%s)", [4]string{"''", "0x00", "0x01", "REPEAT(0xFF, 255)"}},
	{"bl", "BLOB", pipeline.VBytes, "HEX(%s)", [4]string{"''", "0xDEADBEEF00", "0x00", "REPEAT(0x7F, 65535)"}},
	{"mb", "MEDIUMBLOB", pipeline.VBytes, "HEX(%s)", [4]string{"''", "0x00", "0x80", "REPEAT(0x00, 70000)"}},
	{"lb", "LONGBLOB", pipeline.VBytes, "HEX(%s)", [4]string{"''", "0x01", "0x0203", "REPEAT(UNHEX('00FF7F80'), 262144)"}},
	{"en", "ENUM('a','b','ç')", pipeline.VEnum, "%s", [4]string{"'a'", "'ç'", "'b'", "'not a member'"}},
	{"st", "SET('x','y','z')", pipeline.VSet, "%s", [4]string{"''", "'x,y,z'", "'z,x'", "'y'"}},
	{"js", "JSON", pipeline.VJSON, "%s", [4]string{"'{}'", `'{"a": [1, 2.5, "é", null, true], "b": {"c": "😀"}}'`, "'[]'", bigJSON}},
	{"g", "GEOMETRY", pipeline.VGeometry, "HEX(%s)", [4]string{"ST_GeomFromText('POINT(0 0)')", "ST_GeomFromText('LINESTRING(0 0,1 1)', 4326)", "ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))')", "ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 2))')"}},
	{"pt", "POINT", pipeline.VGeometry, "HEX(%s)", [4]string{"POINT(0, 0)", "POINT(-1.7976931348623157e308, 1e-300)", "POINT(1.5, 2.5)", "ST_GeomFromText('POINT(3 4)', 3857)"}},
	{"pg", "POLYGON", pipeline.VGeometry, "HEX(%s)", [4]string{"ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0))')", "ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0),(2 2,3 2,3 3,2 2))')", "ST_GeomFromText('POLYGON((1 1,2 1,2 2,1 1))')", "ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))')"}},
	{"ls", "LINESTRING", pipeline.VGeometry, "HEX(%s)", [4]string{"ST_GeomFromText('LINESTRING(0 0,1 1)')", "ST_GeomFromText('LINESTRING(0 0,1 1,2 2)')", "ST_GeomFromText('LINESTRING(5 5,6 6)')", "ST_GeomFromText('LINESTRING(0 0,0 1)')"}},
	{"mpg", "MULTIPOLYGON", pipeline.VGeometry, "HEX(%s)", [4]string{"ST_GeomFromText('MULTIPOLYGON(((0 0,1 0,1 1,0 0)))')", "ST_GeomFromText('MULTIPOLYGON(((0 0,1 0,1 1,0 0)),((5 5,6 5,6 6,5 5)))')", "ST_GeomFromText('MULTIPOLYGON(((0 0,2 0,2 2,0 0)))')", "ST_GeomFromText('MULTIPOLYGON(((0 0,3 0,3 3,0 0)))')"}},
	{"gc", "GEOMETRYCOLLECTION", pipeline.VGeometry, "HEX(%s)", [4]string{"ST_GeomFromText('GEOMETRYCOLLECTION(POINT(0 0))')", "ST_GeomFromText('GEOMETRYCOLLECTION(POINT(0 0),LINESTRING(0 0,1 1))')", "ST_GeomFromText('GEOMETRYCOLLECTION EMPTY')", "ST_GeomFromText('GEOMETRYCOLLECTION(POINT(9 9))')"}},
	{"i6", "INET6", pipeline.VString, "", [4]string{"'::'", "'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'", "'2001:db8:0:1:1:1:1:1'", "'1::'"}},
	{"i6b", "INET6", pipeline.VString, "", [4]string{"'::1.2.3.4'", "'::ffff:1.2.3.4'", "'fe80::1:0:0:0'", "'1:0:0:1:0:0:0:1'"}},
	{"i4", "INET4", pipeline.VString, "", [4]string{"'0.0.0.0'", "'255.255.255.255'", "'192.168.1.1'", "'10.0.0.0'"}},
	{"u", "UUID", pipeline.VString, "", [4]string{"'00000000-0000-0000-0000-000000000000'", "'ffffffff-ffff-ffff-ffff-ffffffffffff'", "'6ccd780c-baba-1026-9564-5b8c656024db'", "'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c00'"}},
	{"u7", "UUID", pipeline.VString, "", [4]string{"'0192d4e6-2f2b-7c6e-8a1f-9b1c1d1e1f20'", "'123e4567-e89b-12d3-a456-426614174000'", "'f81d4fae-7dec-11d0-a765-00a0c91e6bf6'", "'00000000-0000-1000-8000-000000000000'"}},
}

// readRows reads every row of the matrix table back as text, by id.
func readRows(t *testing.T, db *sql.DB, table string) map[int64][]sql.NullString {
	t.Helper()
	exprs := []string{"id"}
	for _, c := range typeCols {
		e := c.readback
		switch e {
		case "":
			e = "CAST(%s AS CHAR)"
		}
		exprs = append(exprs, fmt.Sprintf(e, "`"+c.name+"`"))
	}
	rows, err := db.Query("SELECT " + strings.Join(exprs, ", ") + " FROM " + table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64][]sql.NullString{}
	for rows.Next() {
		var id int64
		vals := make([]sql.NullString, len(typeCols))
		dest := []any{&id}
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		out[id] = vals
	}
	return out
}

// expected turns a row read back as text into the values the reader must
// emit.
func expected(t *testing.T, id int64, vals []sql.NullString) []any {
	t.Helper()
	out := []any{int64(id)}
	for i, c := range typeCols {
		v := vals[i]
		if !v.Valid {
			out = append(out, nil)
			continue
		}
		var x any
		var err error
		switch c.kind {
		case pipeline.VInt, pipeline.VYear:
			x, err = strconv.ParseInt(v.String, 10, 64)
		case pipeline.VUint, pipeline.VBit:
			x, err = strconv.ParseUint(v.String, 10, 64)
		case pipeline.VFloat, pipeline.VDouble:
			x, err = strconv.ParseFloat(v.String, 64)
		case pipeline.VBytes, pipeline.VGeometry:
			x, err = hex.DecodeString(v.String)
		default:
			x = v.String
		}
		if err != nil {
			t.Fatalf("column %s: parse %q: %v", c.name, v.String, err)
		}
		out = append(out, x)
	}
	return out
}

func compareImage(t *testing.T, what string, got, want []any) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		name := "id"
		if i > 0 {
			name = typeCols[i-1].name
		}
		if !reflect.DeepEqual(got[i], want[i]) {
			g, w := fmt.Sprintf("%#v", got[i]), fmt.Sprintf("%#v", want[i])
			if b, ok := got[i].([]byte); ok && len(b) > 64 {
				g = fmt.Sprintf("%d bytes %x...", len(b), b[:32])
			}
			if s, ok := got[i].(string); ok && len(s) > 64 {
				g = fmt.Sprintf("%d chars %q...", len(s), s[:32])
			}
			if b, ok := want[i].([]byte); ok && len(b) > 64 {
				w = fmt.Sprintf("%d bytes %x... equal=%v", len(b), b[:32], bytes.Equal(b, asBytes(got[i])))
			}
			t.Errorf("%s: column %s = %s (%T), want %s (%T)", what, name, g, got[i], w, want[i])
		}
	}
}

func asBytes(v any) []byte { b, _ := v.([]byte); return b }

// TestTypeMatrix writes every column type MariaDB 10.11 offers with edge
// values, updates and deletes the rows, and checks every decoded value against
// what the master returns for it.
func TestTypeMatrix(t *testing.T) {
	dbName := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, dbName)
	defs := []string{"id INT PRIMARY KEY"}
	for _, c := range typeCols {
		defs = append(defs, "`"+c.name+"` "+c.def)
	}
	testenv.Exec(t, db, "CREATE TABLE tm ("+strings.Join(defs, ", ")+")")
	start := Start{GTIDSet: binlogPos(t, db), NextTxnSeq: 100, Epoch: 3}
	c := startReader(t, testConfig(t, dbName), start)

	lits := make([][]string, 5)
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// No strict mode: zero dates and an invalid ENUM value are stored as the
	// server stores them in such sessions, and the binlog must say the same.
	if _, err := conn.ExecContext(t.Context(), "SET SESSION sql_mode='NO_ENGINE_SUBSTITUTION', time_zone='+00:00'"); err != nil {
		t.Fatal(err)
	}
	insert := func(id int, vals []string) {
		t.Helper()
		q := fmt.Sprintf("INSERT INTO tm VALUES (%d, %s)", id, strings.Join(vals, ", "))
		if _, err := conn.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("insert row %d: %v", id, err)
		}
	}
	for row := 0; row < 4; row++ {
		lits[row] = make([]string, len(typeCols))
		for i, col := range typeCols {
			lits[row][i] = col.vals[row]
		}
	}
	lits[4] = make([]string, len(typeCols))
	for i := range lits[4] {
		lits[4][i] = "NULL"
	}
	for id := 1; id <= 5; id++ {
		insert(id, lits[id-1])
	}
	first := readRows(t, db, "tm")

	// Update every row to the values of the next one (row 5 is all NULL).
	for id := 1; id <= 5; id++ {
		src := lits[id%5]
		var sets []string
		for i, col := range typeCols {
			sets = append(sets, fmt.Sprintf("`%s` = %s", col.name, src[i]))
		}
		if _, err := conn.ExecContext(t.Context(), fmt.Sprintf("UPDATE tm SET %s WHERE id = %d", strings.Join(sets, ", "), id)); err != nil {
			t.Fatalf("update row %d: %v", id, err)
		}
	}
	second := readRows(t, db, "tm")
	testenv.Exec(t, db, "DELETE FROM tm ORDER BY id")

	var cols []pipeline.Column
	info := map[string]string{}
	rows, err := db.Query("SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'tm'", dbName)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n, ct string
		if err := rows.Scan(&n, &ct); err != nil {
			t.Fatal(err)
		}
		info[n] = ct
	}
	rows.Close()

	seq := start.NextTxnSeq
	check := func(op pipeline.Op, id int64, ev *pipeline.Event) {
		t.Helper()
		if ev.Kind != pipeline.KindRow || ev.Op != op {
			t.Fatalf("event %s is %s/%s, want row/%s", ev.Pos, ev.Kind, ev.Op, op)
		}
		if ev.Pos != (pipeline.Position{Epoch: 3, TxnSeq: seq, Row: 0, Last: true}) {
			t.Errorf("position %s, want e3/t%d/r0/last", ev.Pos, seq)
		}
		seq++
		if cols == nil {
			cols = ev.Table.Columns
			for i, col := range cols {
				if i > 0 && col.Kind != typeCols[i-1].kind {
					t.Errorf("column %s kind %s, want %s", col.Name, col.Kind, typeCols[i-1].kind)
				}
				if col.SQLType != info[col.Name] {
					t.Errorf("column %s SQLType %q, want %q", col.Name, col.SQLType, info[col.Name])
				}
			}
			if !reflect.DeepEqual(ev.Table.PrimaryKey, []int{0}) {
				t.Errorf("primary key %v, want [0]", ev.Table.PrimaryKey)
			}
		}
		switch op {
		case pipeline.OpInsert:
			compareImage(t, fmt.Sprintf("insert %d after", id), ev.After, expected(t, id, first[id]))
		case pipeline.OpUpdate:
			compareImage(t, fmt.Sprintf("update %d before", id), ev.Before, expected(t, id, first[id]))
			compareImage(t, fmt.Sprintf("update %d after", id), ev.After, expected(t, id, second[id]))
		case pipeline.OpDelete:
			compareImage(t, fmt.Sprintf("delete %d before", id), ev.Before, expected(t, id, second[id]))
		}
	}
	for id := int64(1); id <= 5; id++ {
		check(pipeline.OpInsert, id, c.txn(t)[0])
	}
	for id := int64(1); id <= 5; id++ {
		check(pipeline.OpUpdate, id, c.txn(t)[0])
	}
	del := c.txn(t)
	if len(del) != 5 {
		t.Fatalf("delete transaction has %d messages, want 5", len(del))
	}
	for i, ev := range del {
		seq = start.NextTxnSeq + 10
		if ev.Pos.Row != uint64(i) || ev.Pos.Last != (i == 4) {
			t.Errorf("delete message %d at %s", i, ev.Pos)
		}
		ev.Pos.Row, ev.Pos.Last = 0, true
		check(pipeline.OpDelete, int64(i+1), ev)
	}
}
