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

// typeKinds gives, for each column of testenv.TypeMatrix, the value kind the
// reader must emit and how to read the value back as text ("" = CAST AS CHAR).
var typeKinds = map[string]struct {
	kind     pipeline.ValueKind
	readback string
}{
	"ti":   {pipeline.VInt, ""},
	"tiu":  {pipeline.VUint, ""},
	"bo":   {pipeline.VInt, ""},
	"si":   {pipeline.VInt, ""},
	"siu":  {pipeline.VUint, ""},
	"mi":   {pipeline.VInt, ""},
	"miu":  {pipeline.VUint, ""},
	"i":    {pipeline.VInt, ""},
	"iu":   {pipeline.VUint, ""},
	"bi":   {pipeline.VInt, ""},
	"biu":  {pipeline.VUint, ""},
	"dec1": {pipeline.VDecimal, ""},
	"dec2": {pipeline.VDecimal, ""},
	"dec3": {pipeline.VDecimal, ""},
	"dec4": {pipeline.VDecimal, ""},
	"f":    {pipeline.VFloat, "CAST(%s+0e0 AS CHAR)"},
	"d":    {pipeline.VDouble, ""},
	"b1":   {pipeline.VBit, "CAST(%s+0 AS CHAR)"},
	"b10":  {pipeline.VBit, "CAST(%s+0 AS CHAR)"},
	"b64":  {pipeline.VBit, "CAST(%s+0 AS CHAR)"},
	"dt":   {pipeline.VDate, ""},
	"dtm":  {pipeline.VDateTime, ""},
	"dtm3": {pipeline.VDateTime, ""},
	"dtm6": {pipeline.VDateTime, ""},
	"ts":   {pipeline.VTimestamp, ""},
	"ts6":  {pipeline.VTimestamp, ""},
	"tm":   {pipeline.VTime, ""},
	"tm2":  {pipeline.VTime, ""},
	"tm6":  {pipeline.VTime, ""},
	"yr":   {pipeline.VYear, ""},
	"ch":   {pipeline.VString, "%s"},
	"vc":   {pipeline.VString, "%s"},
	"vcl":  {pipeline.VString, "%s"},
	"chl":  {pipeline.VString, "%s"},
	"asc":  {pipeline.VString, "%s"},
	"u3":   {pipeline.VString, "%s"},
	"tt":   {pipeline.VString, "%s"},
	"tx":   {pipeline.VString, "%s"},
	"mt":   {pipeline.VString, "%s"},
	"lt":   {pipeline.VString, "%s"},
	"txl":  {pipeline.VString, "%s"},
	"bn":   {pipeline.VBytes, "HEX(%s)"},
	"vb":   {pipeline.VBytes, "HEX(%s)"},
	"tb":   {pipeline.VBytes, "HEX(%s)"},
	"bl":   {pipeline.VBytes, "HEX(%s)"},
	"mb":   {pipeline.VBytes, "HEX(%s)"},
	"lb":   {pipeline.VBytes, "HEX(%s)"},
	"en":   {pipeline.VEnum, "%s"},
	"st":   {pipeline.VSet, "%s"},
	"js":   {pipeline.VJSON, "%s"},
	"g":    {pipeline.VGeometry, "HEX(%s)"},
	"pt":   {pipeline.VGeometry, "HEX(%s)"},
	"pg":   {pipeline.VGeometry, "HEX(%s)"},
	"ls":   {pipeline.VGeometry, "HEX(%s)"},
	"mpg":  {pipeline.VGeometry, "HEX(%s)"},
	"gc":   {pipeline.VGeometry, "HEX(%s)"},
	"i6":   {pipeline.VString, ""},
	"i6b":  {pipeline.VString, ""},
	"i4":   {pipeline.VString, ""},
	"u":    {pipeline.VString, ""},
	"u7":   {pipeline.VString, ""},
}

var typeCols = func() []typeCol {
	out := make([]typeCol, len(testenv.TypeMatrix))
	for i, c := range testenv.TypeMatrix {
		k, ok := typeKinds[c.Name]
		if !ok {
			panic("typeKinds lacks column " + c.Name)
		}
		out[i] = typeCol{name: c.Name, def: c.Def, kind: k.kind, readback: k.readback, vals: c.Values}
	}
	return out
}()

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
