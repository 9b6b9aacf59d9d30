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

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
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
		if e == "" {
			e = "CAST(%s AS CHAR)"
		}
		exprs = append(exprs, fmt.Sprintf(e, "`"+c.name+"`"))
	}
	return readText(t, db, "SELECT "+strings.Join(exprs, ", ")+" FROM "+table, len(typeCols))
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
			w := fmt.Sprintf("%#v", want[i])
			if b, ok := want[i].([]byte); ok && len(b) > 64 {
				w = fmt.Sprintf("%d bytes %x... equal=%v", len(b), b[:32], bytes.Equal(b, asBytes(got[i])))
			}
			t.Errorf("%s: column %s = %s (%T), want %s (%T)", what, name, shortValue(got[i]), got[i], w, want[i])
		}
	}
}

func asBytes(v any) []byte { b, _ := v.([]byte); return b }

// shortValue formats v for a message, long bytes and strings cut.
func shortValue(v any) string {
	switch x := v.(type) {
	case []byte:
		if len(x) > 64 {
			return fmt.Sprintf("%d bytes %x...", len(x), x[:32])
		}
	case string:
		if len(x) > 64 {
			return fmt.Sprintf("%d chars %q...", len(x), x[:32])
		}
	}
	return fmt.Sprintf("%#v", v)
}

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

	conn := looseSession(t, db)
	lits := matrixLiterals()
	for id := 1; id <= 5; id++ {
		execConn(t, conn, fmt.Sprintf("INSERT INTO tm VALUES (%d, %s)", id, strings.Join(lits[id-1], ", ")))
	}
	m := matrixCheck{t: t, seq: start.NextTxnSeq, first: readRows(t, db, "tm")}
	// Update every row to the values of the next one (row 5 is all NULL).
	for id := 1; id <= 5; id++ {
		var sets []string
		for i, col := range typeCols {
			sets = append(sets, fmt.Sprintf("`%s` = %s", col.name, lits[id%5][i]))
		}
		execConn(t, conn, fmt.Sprintf("UPDATE tm SET %s WHERE id = %d", strings.Join(sets, ", "), id))
	}
	m.second = readRows(t, db, "tm")
	testenv.Exec(t, db, "DELETE FROM tm ORDER BY id")
	m.info = columnTypes(t, db, dbName, "tm")

	for id := int64(1); id <= 5; id++ {
		m.check(pipeline.OpInsert, id, c.txn(t)[0])
	}
	for id := int64(1); id <= 5; id++ {
		m.check(pipeline.OpUpdate, id, c.txn(t)[0])
	}
	del := c.txn(t)
	if len(del) != 5 {
		t.Fatalf("delete transaction has %d messages, want 5", len(del))
	}
	for i, ev := range del {
		m.seq = start.NextTxnSeq + 10
		if ev.Pos.Row != uint64(i) || ev.Pos.Last != (i == 4) {
			t.Errorf("delete message %d at %s", i, ev.Pos)
		}
		ev.Pos.Row, ev.Pos.Last = 0, true
		m.check(pipeline.OpDelete, int64(i+1), ev)
	}
}

// looseSession returns a connection without strict mode, in UTC: zero dates
// and an invalid ENUM value are stored as the server stores them in such
// sessions, and the binlog must say the same.
func looseSession(t *testing.T, db *sql.DB) *sql.Conn {
	t.Helper()
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	execConn(t, conn, "SET SESSION sql_mode='NO_ENGINE_SUBSTITUTION', time_zone='+00:00'")
	return conn
}

func execConn(t *testing.T, conn *sql.Conn, q string) {
	t.Helper()
	if _, err := conn.ExecContext(t.Context(), q); err != nil {
		t.Fatalf("%.80s: %v", q, err)
	}
}

// matrixLiterals are the values of the matrix's five rows, as SQL literals:
// the four of each column, then NULLs.
func matrixLiterals() [][]string {
	lits := make([][]string, 5)
	for row := range lits {
		lits[row] = make([]string, len(typeCols))
		for i, col := range typeCols {
			lits[row][i] = "NULL"
			if row < 4 {
				lits[row][i] = col.vals[row]
			}
		}
	}
	return lits
}

// columnTypes reads COLUMN_TYPE of the columns of db.table.
func columnTypes(t *testing.T, db *sql.DB, dbName, table string) map[string]string {
	t.Helper()
	rows, err := db.Query("SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", dbName, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	info := map[string]string{}
	for rows.Next() {
		var n, ct string
		if err := rows.Scan(&n, &ct); err != nil {
			t.Fatal(err)
		}
		info[n] = ct
	}
	return info
}

// matrixCheck checks the matrix's row events against the rows the master
// returns: first after the inserts, second after the updates.
type matrixCheck struct {
	t             *testing.T
	seq           uint64 // TxnSeq of the next event
	cols          []pipeline.Column
	info          map[string]string // COLUMN_TYPE by column
	first, second map[int64][]sql.NullString
}

func (m *matrixCheck) check(op pipeline.Op, id int64, ev *pipeline.Event) {
	t := m.t
	t.Helper()
	if ev.Kind != pipeline.KindRow || ev.Op != op {
		t.Fatalf("event %s is %s/%s, want row/%s", ev.Pos, ev.Kind, ev.Op, op)
	}
	if ev.Pos != (pipeline.Position{Epoch: 3, TxnSeq: m.seq, Row: 0, Last: true}) {
		t.Errorf("position %s, want e3/t%d/r0/last", ev.Pos, m.seq)
	}
	m.seq++
	if m.cols == nil {
		m.cols = ev.Table.Columns
		m.checkTable(ev.Table)
	}
	switch op {
	case pipeline.OpInsert:
		compareImage(t, fmt.Sprintf("insert %d after", id), ev.After, expected(t, id, m.first[id]))
	case pipeline.OpUpdate:
		compareImage(t, fmt.Sprintf("update %d before", id), ev.Before, expected(t, id, m.first[id]))
		compareImage(t, fmt.Sprintf("update %d after", id), ev.After, expected(t, id, m.second[id]))
	case pipeline.OpDelete:
		compareImage(t, fmt.Sprintf("delete %d before", id), ev.Before, expected(t, id, m.second[id]))
	}
}

// checkTable checks the kinds and the types of the table's columns.
func (m *matrixCheck) checkTable(tab *pipeline.Table) {
	t := m.t
	t.Helper()
	for i, col := range tab.Columns {
		if i > 0 && col.Kind != typeCols[i-1].kind {
			t.Errorf("column %s kind %s, want %s", col.Name, col.Kind, typeCols[i-1].kind)
		}
		if col.SQLType != m.info[col.Name] {
			t.Errorf("column %s SQLType %q, want %q", col.Name, col.SQLType, m.info[col.Name])
		}
	}
	if !reflect.DeepEqual(tab.PrimaryKey, []int{0}) {
		t.Errorf("primary key %v, want [0]", tab.PrimaryKey)
	}
}
