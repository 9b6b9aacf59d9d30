package pipeline

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

var testTime = time.UnixMilli(1700000000000).UTC()

func ordersTable() *Table {
	return &Table{
		Database: "shop",
		Name:     "orders",
		Columns: []Column{
			{Name: "id", Kind: VUint, SQLType: "bigint(20) unsigned"},
			{Name: "name", Kind: VString, SQLType: "varchar(20)"},
		},
		PrimaryKey: []int{0},
	}
}

func ordersInsert() *Event {
	return &Event{
		Kind:       KindRow,
		Pos:        Position{Epoch: 1, TxnSeq: 42, Row: 0, Last: true},
		GTID:       "0-1-42",
		GTIDSet:    "0-1-42",
		Flavor:     "mariadb",
		ServerID:   1,
		CommitTime: testTime,
		File:       "mysql-bin.000003",
		Offset:     1234,
		Table:      ordersTable(),
		Op:         OpInsert,
		After:      []any{uint64(42), "x"},
	}
}

// The exact bytes of one row message: a change here changes the wire format,
// which needs a FormatVersion bump or a compatible, documented addition.
const (
	goldenKey   = `{"db":"shop","table":"orders","pk":{"id":42}}`
	goldenValue = `{"before":null,"after":{"id":42,"name":"x"},"op":"c","ts_ms":1700000000000,` +
		`"source":{"version":"rowcast","connector":"mariadb","name":"main","ts_ms":1700000000000,"db":"shop","table":"orders","server_id":1,"gtid":"0-1-42","file":"mysql-bin.000003","pos":1234,"row":0},` +
		`"transaction":{"id":"0-1-42","total_order":1,"data_collection_order":1},` +
		`"rowcast":{"format":1,"kind":"row","epoch":1,"txn_seq":42,"row":0,"last":true,"gtid_set":"0-1-42","pk":["id"],` +
		`"columns":[["id","uint","bigint(20) unsigned"],["name","string","varchar(20)"]]}}`
)

func TestCodecGolden(t *testing.T) {
	c := &Codec{Cluster: "main"}
	e := ordersInsert()
	key, value, err := encodeBoth(c, e)
	if err != nil {
		t.Fatal(err)
	}
	if string(key) != goldenKey {
		t.Errorf("key\n got %s\nwant %s", key, goldenKey)
	}
	if string(value) != goldenValue {
		t.Errorf("value\n got %s\nwant %s", value, goldenValue)
	}
	if !json.Valid(value) || !json.Valid(key) {
		t.Error("not valid JSON")
	}
	got, err := c.Decode(key, value)
	if err != nil {
		t.Fatal(err)
	}
	assertEvent(t, got, e)
}

// assertEvent compares events as the format promises: CommitTime to the
// millisecond, floats bit for bit (so -0 differs from 0).
func assertEvent(t testing.TB, got, want *Event) {
	t.Helper()
	g, w := *got, *want
	wantTime := w.CommitTime.Truncate(time.Millisecond)
	if !g.CommitTime.Equal(wantTime) || g.CommitTime.IsZero() != w.CommitTime.IsZero() {
		t.Errorf("CommitTime %v, want %v", g.CommitTime, wantTime)
	}
	if !w.CommitTime.IsZero() && g.CommitTime.Location() != time.UTC {
		t.Errorf("CommitTime in %v, want UTC", g.CommitTime.Location())
	}
	assertImage(t, "before", g.Before, w.Before)
	assertImage(t, "after", g.After, w.After)
	g.CommitTime, w.CommitTime = time.Time{}, time.Time{}
	g.Before, g.After, w.Before, w.After = nil, nil, nil, nil
	if !reflect.DeepEqual(g, w) {
		t.Errorf("event\n got %+v\nwant %+v", g, w)
		if g.Table != nil && w.Table != nil {
			t.Errorf("table\n got %+v\nwant %+v", *g.Table, *w.Table)
		}
	}
}

func assertImage(t testing.TB, name string, got, want []any) {
	t.Helper()
	if (got == nil) != (want == nil) || len(got) != len(want) {
		t.Errorf("%s: got %d values (nil %v), want %d (nil %v)", name, len(got), got == nil, len(want), want == nil)
		return
	}
	for i := range got {
		if !sameValue(got[i], want[i]) {
			t.Errorf("%s[%d]: got %#v, want %#v", name, i, shortValue(got[i]), shortValue(want[i]))
		}
	}
}

func sameValue(a, b any) bool {
	if fa, ok := a.(float64); ok {
		fb, ok := b.(float64)
		return ok && math.Float64bits(fa) == math.Float64bits(fb)
	}
	return reflect.DeepEqual(a, b)
}

func shortValue(v any) any {
	switch x := v.(type) {
	case string:
		if len(x) > 80 {
			return x[:80] + "..."
		}
	case []byte:
		if len(x) > 80 {
			return append(x[:80:80], "..."...)
		}
	}
	return v
}

// roundTrip encodes e, checks the JSON is valid and decodes it.
func roundTrip(t testing.TB, c *Codec, e *Event) (key, value []byte, got *Event) {
	t.Helper()
	key, err := c.AppendKey(nil, e)
	if err != nil {
		t.Fatalf("AppendKey: %v", err)
	}
	value, err = c.AppendValue(nil, e)
	if err != nil {
		t.Fatalf("AppendValue: %v", err)
	}
	if !json.Valid(key) || !json.Valid(value) {
		t.Fatalf("invalid JSON:\n%s\n%s", key, value)
	}
	got, err = c.Decode(key, value)
	if err != nil {
		t.Fatalf("Decode: %v\nkey %s\nvalue %.2000s", err, key, value)
	}
	return key, value, got
}

func geometryPoint(srid uint32, x, y float64) []byte {
	g := binary.LittleEndian.AppendUint32(nil, srid)
	g = append(g, 1) // little-endian WKB
	g = binary.LittleEndian.AppendUint32(g, 1)
	g = binary.LittleEndian.AppendUint64(g, math.Float64bits(x))
	return binary.LittleEndian.AppendUint64(g, math.Float64bits(y))
}

func TestCodecValues(t *testing.T) {
	bigJSON := strings.Repeat(`{"k":[1,2.5,null,true],"s":"é\n\u2028"},`, 3000)
	bigJSON = "[" + bigJSON[:len(bigJSON)-1] + "]"
	blob := testBlob(1 << 20)
	ctl := controlText()
	point := geometryPoint(4326, 1, -2.5)

	tests := []struct {
		name    string
		kind    ValueKind
		sqlType string
		value   any
		json    string // the value's JSON; not checked when empty
	}{
		{"int null", VInt, "int(11)", nil, `null`},
		{"int zero", VInt, "int(11)", int64(0), `0`},
		{"int min", VInt, "bigint(20)", int64(math.MinInt64), `-9223372036854775808`},
		{"int max", VInt, "bigint(20)", int64(math.MaxInt64), `9223372036854775807`},
		{"tinyint", VInt, "tinyint(4)", int64(-128), `-128`},
		{"uint max", VUint, "bigint(20) unsigned", uint64(math.MaxUint64), `18446744073709551615`},
		{"uint 2^53+1", VUint, "bigint(20) unsigned", uint64(1<<53 + 1), `9007199254740993`},
		{"float 0.1", VFloat, "float", float64(float32(0.1)), `0.1`},
		{"float -0", VFloat, "float", math.Copysign(0, -1), `-0`},
		{"float max", VFloat, "float", float64(math.MaxFloat32), `3.4028235e+38`},
		{"float tiny", VFloat, "float", float64(float32(1e-7)), `1e-7`},
		{"float smallest", VFloat, "float", float64(math.SmallestNonzeroFloat32), `1e-45`},
		{"float 1e6", VFloat, "float", float64(1e6), `1000000`},
		{"double 0.1", VDouble, "double", 0.1, `0.1`},
		{"double -0", VDouble, "double", math.Copysign(0, -1), `-0`},
		{"double max", VDouble, "double", math.MaxFloat64, `1.7976931348623157e+308`},
		{"double large", VDouble, "double", 1e21, `1e+21`},
		{"double below 1e21", VDouble, "double", 123456789012345678901.0, `123456789012345680000`},
		{"double smallest", VDouble, "double", math.SmallestNonzeroFloat64, `5e-324`},
		{"double frac", VDouble, "double", -1234.5678, `-1234.5678`},
		{"decimal", VDecimal, "decimal(30,10)", "-99999999999999999999.9999999999", `"-99999999999999999999.9999999999"`},
		{"decimal int", VDecimal, "decimal(10,0)", "0", `"0"`},
		{"decimal zeros", VDecimal, "decimal(10,4)", "0.0000", `"0.0000"`},
		{"date", VDate, "date", "2024-02-29", `"2024-02-29"`},
		{"zero date", VDate, "date", "0000-00-00", `"0000-00-00"`},
		{"datetime", VDateTime, "datetime(6)", "2024-01-02 03:04:05.123456", `"2024-01-02 03:04:05.123456"`},
		{"datetime fsp 0", VDateTime, "datetime", "9999-12-31 23:59:59", `"9999-12-31 23:59:59"`},
		{"zero datetime", VDateTime, "datetime", "0000-00-00 00:00:00", `"0000-00-00 00:00:00"`},
		{"timestamp", VTimestamp, "timestamp(3)", "2038-01-19 03:14:07.999", `"2038-01-19 03:14:07.999"`},
		{"time negative", VTime, "time(6)", "-838:59:59.000000", `"-838:59:59.000000"`},
		{"time", VTime, "time", "12:00:00", `"12:00:00"`},
		{"time max", VTime, "time(1)", "838:59:59.0", `"838:59:59.0"`},
		{"year", VYear, "year(4)", int64(2024), `2024`},
		{"year zero", VYear, "year(4)", int64(0), `0`},
		{"bit", VBit, "bit(3)", uint64(5), `5`},
		{"bit 64", VBit, "bit(64)", uint64(math.MaxUint64), `18446744073709551615`},
		{"enum", VEnum, "enum('small','large')", "small", `"small"`},
		{"enum error value", VEnum, "enum('small','large')", "", `""`},
		{"set", VSet, "set('a','b','c')", "a,c", `"a,c"`},
		{"set empty", VSet, "set('a','b','c')", "", `""`},
		{"json", VJSON, "json", `{"a": [1, "x"]}`, `"{\"a\": [1, \"x\"]}"`},
		{"json big", VJSON, "longtext", bigJSON, ""},
		{"string null", VString, "varchar(20)", nil, `null`},
		{"string empty", VString, "varchar(20)", "", `""`},
		{"string 4-byte", VString, "varchar(20)", "𝄞😀", `"𝄞😀"`},
		{"string 2 and 3 byte", VString, "varchar(20)", "é中€", `"é中€"`},
		{"string control", VString, "text", ctl,
			`"\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\u0008\t\n\u000b\u000c\r\u000e\u000f` +
				`\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001a\u001b\u001c\u001d\u001e\u001f\"\\/` + "\x7f" + `"`},
		{"string line separators", VString, "text", "a\u2028b\u2029c", `"a\u2028b\u2029c"`},
		{"string html", VString, "text", "<a href='x'>&</a>", `"<a href='x'>&</a>"`},
		{"inet6", VString, "inet6", "2001:db8::1", `"2001:db8::1"`},
		{"uuid", VString, "uuid", "123e4567-e89b-12d3-a456-426614174000", `"123e4567-e89b-12d3-a456-426614174000"`},
		{"bytes null", VBytes, "varbinary(16)", nil, `null`},
		{"bytes empty", VBytes, "varbinary(16)", []byte{}, `""`},
		{"bytes", VBytes, "binary(4)", []byte{0, 1, 2, 255}, `"AAEC/w=="`},
		{"blob 1MiB", VBytes, "longblob", blob, ""},
		{"geometry point", VGeometry, "point", point, `{"wkb":"AQEAAAAAAAAAAADwPwAAAAAAAATA","srid":4326}`},
		{"geometry empty wkb", VGeometry, "geometry", []byte{0, 0, 0, 0}, `{"wkb":"","srid":0}`},
		{"geometry null", VGeometry, "geometry", nil, `null`},
	}
	c := &Codec{Cluster: "main"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := &Table{Database: "db", Name: "t", PrimaryKey: []int{0}, Columns: []Column{
				{Name: "id", Kind: VInt, SQLType: "int(11)"},
				{Name: "v", Kind: tt.kind, SQLType: tt.sqlType},
			}}
			e := &Event{Kind: KindRow, Pos: Position{Epoch: 1, TxnSeq: 7, Row: 3}, GTID: "0-1-7",
				Flavor: "mysql", CommitTime: testTime, Table: tab, Op: OpUpdate,
				Before: []any{int64(1), nil}, After: []any{int64(1), tt.value}}
			_, value, got := roundTrip(t, c, e)
			assertEvent(t, got, e)
			if want := `"after":{"id":1,"v":` + tt.json + `}`; tt.json != "" && !bytes.Contains(value, []byte(want)) {
				t.Errorf("value does not hold %s:\n%.1000s", want, value)
			}
			if tt.kind != VGeometry && tt.kind != VBytes && tt.kind != VFloat {
				assertEncodingJSONReads(t, value, tt.value)
			}
		})
	}
}

// testBlob is n bytes of every value.
func testBlob(n int) []byte {
	blob := make([]byte, n)
	for i := range blob {
		blob[i] = byte(i * 7)
	}
	return blob
}

// controlText holds every control character, then the characters JSON
// escapes and DEL.
func controlText() string {
	var ctl strings.Builder
	for c := range 0x20 {
		ctl.WriteByte(byte(c))
	}
	ctl.WriteString("\"\\/\x7f")
	return ctl.String()
}

// assertEncodingJSONReads checks that encoding/json reads after.v of value
// as the string v (other values are not compared: it reads a uint64 as a
// float64).
func assertEncodingJSONReads(t *testing.T, value []byte, v any) {
	t.Helper()
	var doc struct{ After map[string]any }
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if s, ok := v.(string); ok && doc.After["v"] != s {
		t.Errorf("encoding/json reads %q", doc.After["v"])
	}
}

// Other Go types are accepted on encode and decode to the canonical one.
func TestCodecAcceptedGoTypes(t *testing.T) {
	tests := []struct {
		kind      ValueKind
		in, canon any
	}{
		{VInt, int(-5), int64(-5)},
		{VInt, int32(-5), int64(-5)},
		{VInt, int16(-5), int64(-5)},
		{VInt, int8(-5), int64(-5)},
		{VYear, int(1999), int64(1999)},
		{VUint, uint(5), uint64(5)},
		{VUint, uint32(5), uint64(5)},
		{VUint, uint16(5), uint64(5)},
		{VUint, uint8(5), uint64(5)},
		{VFloat, float32(0.1), float64(float32(0.1))},
		{VFloat, 0.1, float64(float32(0.1))}, // rounded to FLOAT precision
		{VString, []byte("héllo"), "héllo"},
		{VDecimal, []byte("1.50"), "1.50"},
		{VBytes, "\x00\xff", []byte{0, 0xff}},
		{VGeometry, string(geometryPoint(0, 1, 2)), geometryPoint(0, 1, 2)},
		{VBytes, []byte(nil), []byte{}}, // a nil slice is empty, not NULL
	}
	c := &Codec{}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %T", tt.kind, tt.in), func(t *testing.T) {
			tab := &Table{Database: "db", Name: "t", Columns: []Column{{Name: "v", Kind: tt.kind}}}
			e := &Event{Kind: KindRow, Table: tab, Op: OpInsert, After: []any{tt.in}}
			_, _, got := roundTrip(t, c, e)
			if !sameValue(got.After[0], tt.canon) {
				t.Errorf("got %#v, want %#v", got.After[0], tt.canon)
			}
		})
	}
}

func TestCodecEncodeErrors(t *testing.T) {
	bad := func(kind ValueKind, v any) *Event {
		return &Event{Kind: KindRow, Pos: Position{TxnSeq: 9}, Op: OpInsert, After: []any{int64(1), v},
			Table: &Table{Database: "shop", Name: "orders", Columns: []Column{
				{Name: "id", Kind: VInt}, {Name: "col", Kind: kind}}}}
	}
	tests := []struct {
		name string
		e    *Event
		want string // in the error
	}{
		{"string for int", bad(VInt, "1"), "shop.orders.col (position 1): string value for kind int"},
		{"int64 for uint", bad(VUint, int64(1)), "shop.orders.col (position 1): int64 value for kind uint"},
		{"uint64 for int", bad(VInt, uint64(1)), "uint64 value for kind int"},
		{"float32 for double", bad(VDouble, float32(1)), "float32 value for kind double"},
		{"int for string", bad(VString, 5), "int value for kind string"},
		{"string for geometry", bad(VGeometry, 5), "int value for kind geometry"},
		{"short geometry", bad(VGeometry, []byte{1, 2}), "no SRID"},
		{"invalid utf-8", bad(VString, "caf\xe9"), "shop.orders.col (position 1): invalid UTF-8"},
		{"invalid utf-8 enum", bad(VEnum, "\xff"), "shop.orders.col (position 1): invalid UTF-8"},
		{"surrogate in utf-8", bad(VString, "\xed\xa0\x80"), "invalid UTF-8"},
		{"NaN", bad(VDouble, math.NaN()), "col (position 1): float value NaN"},
		{"Inf", bad(VDouble, math.Inf(1)), "float value +Inf"},
		{"float32 overflow", bad(VFloat, 1e39), "overflows a FLOAT"},
		{"decimal shape", bad(VDecimal, "1e5"), "not in the decimal form"},
		{"decimal dot", bad(VDecimal, "1."), "not in the decimal form"},
		{"date shape", bad(VDate, "2024-1-02"), "not in the date form"},
		{"datetime T", bad(VDateTime, "2024-01-02T03:04:05"), "not in the datetime form"},
		{"datetime 7 digits", bad(VDateTime, "2024-01-02 03:04:05.1234567"), "not in the datetime form"},
		{"time shape", bad(VTime, "1:02:03"), "not in the time form"},
		{"unknown value kind", bad(ValueKind(99), int64(1)), "unknown value kind 99"},
		{"no table", &Event{Kind: KindRow, Op: OpInsert}, "no table"},
		{"unknown op", &Event{Kind: KindRow, Op: 'x', Table: ordersTable()}, "unknown op"},
		{"insert with before", &Event{Kind: KindRow, Op: OpInsert, Table: ordersTable(),
			Before: []any{uint64(1), "a"}, After: []any{uint64(1), "a"}}, "with a before image"},
		{"delete without before", &Event{Kind: KindRow, Op: OpDelete, Table: ordersTable()}, "without before image"},
		{"short image", &Event{Kind: KindRow, Op: OpInsert, Table: ordersTable(), After: []any{uint64(1)}}, "1 values for 2 columns"},
		{"pk out of range", &Event{Kind: KindRow, Op: OpInsert, After: []any{int64(1)},
			Table: &Table{Database: "d", Name: "t", Columns: []Column{{Name: "a", Kind: VInt}}, PrimaryKey: []int{1}}}, "out of range"},
		{"ddl without statement", &Event{Kind: KindDDL}, "empty statement"},
		{"epoch without record", &Event{Kind: KindEpoch}, "no epoch record"},
		{"bad snapshot", &Event{Kind: KindSnapshot, Snapshot: "begin"}, "neither start nor end"},
		{"definition on an end marker", &Event{Kind: KindSnapshot, Snapshot: "end", Table: ordersTable(), Statement: "CREATE TABLE t (a int)"},
			"only goes with a table's start marker"},
		{"unknown kind", &Event{Kind: 42}, "unknown kind 42"},
		{"invalid utf-8 file", &Event{Kind: KindHeartbeat, File: "\xff"}, "binlog file: invalid UTF-8"},
	}
	c := &Codec{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := c.AppendValue([]byte("prefix"), tt.e)
			if err == nil {
				t.Fatalf("no error; value %s", out)
			}
			assertErr(t, err, ErrUnsupported, tt.want)
			if string(out) != "prefix" {
				t.Errorf("dst changed to %q", out)
			}
		})
	}
}

// assertErr checks that err wraps sentinel and says want.
func assertErr(t *testing.T, err, sentinel error, want string) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Errorf("error %v does not wrap %v", err, sentinel)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}

// messageEvents returns one event of every kind and operation.
func messageEvents() map[string]*Event {
	tab := ordersTable()
	noPK := &Table{Database: "shop", Name: "log", Columns: []Column{
		{Name: "at", Kind: VTimestamp, SQLType: "timestamp(6)"},
		{Name: "msg", Kind: VString, SQLType: "text"},
	}}
	compositePK := &Table{Database: "shop", Name: "lines", PrimaryKey: []int{2, 0}, Columns: []Column{
		{Name: "line", Kind: VInt, SQLType: "int(11)"},
		{Name: "qty", Kind: VInt, SQLType: "int(11)"},
		{Name: "order_id", Kind: VUint, SQLType: "bigint(20) unsigned"},
	}}
	base := func(kind Kind) Event {
		return Event{Kind: kind, Pos: Position{Epoch: 2, TxnSeq: 43, Row: 1}, GTID: "0-1-43",
			Flavor: "mariadb", ServerID: 1, CommitTime: testTime, File: "mysql-bin.000003", Offset: 4321}
	}
	ev := func(kind Kind, f func(e *Event)) *Event {
		e := base(kind)
		f(&e)
		return &e
	}
	return map[string]*Event{
		"insert": ordersInsert(),
		"update": ev(KindRow, func(e *Event) {
			e.Table, e.Op = tab, OpUpdate
			e.Before, e.After = []any{uint64(42), "x"}, []any{uint64(42), "y"}
		}),
		"delete": ev(KindRow, func(e *Event) {
			e.Table, e.Op, e.Before = tab, OpDelete, []any{uint64(42), "y"}
			e.Pos.Last, e.GTIDSet = true, "0-1-43,1-2-7"
		}),
		"read": ev(KindRow, func(e *Event) {
			e.Table, e.Op, e.After = tab, OpRead, []any{uint64(42), nil}
			e.GTID, e.File, e.Offset = "", "", 0
		}),
		"no pk": ev(KindRow, func(e *Event) {
			e.Table, e.Op, e.Before = noPK, OpDelete, []any{"2024-01-01 00:00:00.000001", "hello"}
		}),
		"composite pk": ev(KindRow, func(e *Event) {
			e.Table, e.Op, e.After = compositePK, OpInsert, []any{int64(3), int64(-1), uint64(42)}
		}),
		"mysql gtid": ev(KindRow, func(e *Event) {
			e.Table, e.Op, e.After = tab, OpInsert, []any{uint64(1), "a"}
			e.Flavor, e.GTID = "mysql", "3e11fa47-71ca-11e1-9e33-c80aa9429562:23"
			e.GTIDSet, e.Pos.Last = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-23", true
		}),
		"ddl": ev(KindDDL, func(e *Event) {
			e.Database, e.Statement = "shop", "ALTER TABLE `orders` ADD COLUMN `note` varchar(20) DEFAULT 'é'"
			e.Pos.Row, e.Pos.Last, e.GTIDSet = 0, true, "0-1-43"
		}),
		"ddl no db": ev(KindDDL, func(e *Event) {
			e.Statement, e.Pos.Last = "CREATE DATABASE `x`", true
		}),
		"heartbeat": ev(KindHeartbeat, func(e *Event) {
			e.Pos, e.GTID, e.GTIDSet = Position{Epoch: 2, TxnSeq: 43, Last: true}, "", "0-1-43"
		}),
		"skip record": ev(KindHeartbeat, func(e *Event) {
			e.Pos, e.GTID, e.GTIDSet = Position{Epoch: 2, TxnSeq: 43, Last: true}, "", "0-1-44"
			e.Skip = &SkipRecord{GTID: "0-1-44", Reason: "operator: rowcast pipeline --skip-gtid 0-1-44"}
		}),
		"epoch": ev(KindEpoch, func(e *Event) {
			e.Pos, e.GTID, e.GTIDSet = Position{Epoch: 3, TxnSeq: 43, Last: true}, "", "0-2-50"
			e.Epoch = &EpochRecord{Epoch: 3, Master: "db2", StartGTIDSet: "0-2-50", Flavor: "mariadb", TxnSeq: 43}
		}),
		"snapshot start": ev(KindSnapshot, func(e *Event) {
			e.Snapshot, e.GTID = "start", ""
		}),
		"snapshot table end": ev(KindSnapshot, func(e *Event) {
			e.Snapshot, e.Table, e.Database, e.GTID = "end", tab, "shop", ""
		}),
		"snapshot table start": ev(KindSnapshot, func(e *Event) {
			e.Snapshot, e.Table, e.Database, e.GTID = "start", tab, "shop", ""
			e.Statement = "CREATE TABLE `orders` (\n  `id` bigint(20) unsigned NOT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB"
			e.Pos.Row, e.Pos.Last, e.GTIDSet = 0, true, "0-1-43"
		}),
		"snapshot db": ev(KindSnapshot, func(e *Event) {
			e.Snapshot, e.Database = "start", "shop"
		}),
		"zero time": ev(KindHeartbeat, func(e *Event) {
			e.CommitTime = time.Time{}
		}),
		"max time": ev(KindHeartbeat, func(e *Event) {
			e.CommitTime = time.UnixMilli(math.MaxInt64).UTC()
		}),
		"min time": ev(KindHeartbeat, func(e *Event) {
			e.CommitTime = time.UnixMilli(math.MinInt64).UTC()
		}),
		"sub-ms time": ev(KindHeartbeat, func(e *Event) {
			e.CommitTime = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("X", 3600))
		}),
	}
}

func TestCodecMessageKinds(t *testing.T) {
	wantKeys := map[string]string{
		"delete":             `{"db":"shop","table":"orders","pk":{"id":42}}`,
		"no pk":              `{"db":"shop","table":"log","pk":null}`,
		"composite pk":       `{"db":"shop","table":"lines","pk":{"order_id":42,"line":3}}`,
		"ddl":                `{"control":"ddl","db":"shop"}`,
		"ddl no db":          `{"control":"ddl","db":""}`,
		"heartbeat":          `{"control":"heartbeat"}`,
		"skip record":        `{"control":"heartbeat"}`,
		"epoch":              `{"control":"epoch"}`,
		"snapshot start":     `{"control":"snapshot"}`,
		"snapshot table end": `{"control":"snapshot","db":"shop","table":"orders"}`,
	}
	c := &Codec{Cluster: "main"}
	for name, e := range messageEvents() {
		t.Run(name, func(t *testing.T) {
			key, value, got := roundTrip(t, c, e)
			assertEvent(t, got, e)
			if want, ok := wantKeys[name]; ok && string(key) != want {
				t.Errorf("key %s, want %s", key, want)
			}
			assertDebeziumBlocks(t, value, e)
		})
	}
}

// assertDebeziumBlocks checks that value has a transaction block exactly
// for a source transaction's message and op exactly for a row's.
func assertDebeziumBlocks(t *testing.T, value []byte, e *Event) {
	t.Helper()
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(value, &doc); err != nil {
		t.Fatal(err)
	}
	_, hasTxn := doc["transaction"]
	_, hasOp := doc["op"]
	if hasTxn != (e.InTxn() && e.GTID != "") || hasOp != (e.Kind == KindRow) {
		t.Errorf("transaction %v, op %v for kind %s", hasTxn, hasOp, e.Kind)
	}
}

func TestCodecTableCache(t *testing.T) {
	c := &Codec{}
	enc := func(e *Event) *Event {
		t.Helper()
		_, _, got := roundTrip(t, c, e)
		return got
	}
	a := enc(ordersInsert())
	upd := messageEvents()["update"]
	b := enc(upd)
	if a.Table != b.Table {
		t.Error("two messages of one table do not share *Table")
	}
	changed := ordersInsert()
	changed.Table.Columns[1].SQLType = "varchar(30)"
	if d := enc(changed); d.Table == a.Table {
		t.Error("a changed column type shares the old *Table")
	}
	noPK := ordersInsert()
	noPK.Table.PrimaryKey = nil
	if d := enc(noPK); d.Table == a.Table || len(d.Table.PrimaryKey) != 0 {
		t.Error("a table without primary key shares the old *Table")
	}
	other := ordersInsert()
	other.Table.Name = "orders2"
	if d := enc(other); d.Table == a.Table || d.Table.Name != "orders2" {
		t.Error("another table shares the *Table")
	}
	checkTableCacheBound(t, c)
}

// checkTableCacheBound decodes messages of three times as many tables as c
// caches: it keeps tableCacheSize at most.
func checkTableCacheBound(t *testing.T, c *Codec) {
	t.Helper()
	for i := range 3 * tableCacheSize {
		e := ordersInsert()
		e.Table.Name = fmt.Sprint("t", i)
		roundTrip(t, c, e)
	}
	if n := len(c.tables); n > tableCacheSize {
		t.Errorf("cache holds %d tables", n)
	}
}

func TestCodecDecodeInto(t *testing.T) {
	c := &Codec{}
	e := messageEvents()["update"]
	key, _ := c.AppendKey(nil, e)
	value, _ := c.AppendValue(nil, e)
	var got Event
	for range 3 {
		if err := c.DecodeInto(&got, key, value); err != nil {
			t.Fatal(err)
		}
		assertEvent(t, &got, e)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := c.DecodeInto(&got, key, value); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("DecodeInto: %.0f allocs", allocs)
	// Then a control message: the images go.
	hb := messageEvents()["heartbeat"]
	key, _ = c.AppendKey(nil, hb)
	value, _ = c.AppendValue(nil, hb)
	if err := c.DecodeInto(&got, key, value); err != nil {
		t.Fatal(err)
	}
	assertEvent(t, &got, hb)
}

func TestCodecEncodeAllocs(t *testing.T) {
	c := &Codec{Cluster: "main"}
	e := benchEvent()
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		b, err := c.AppendKey(buf[:0], e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err = c.AppendValue(b, e); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per message", allocs)
	}
}

// Strings that encoding/json writes (with its own escapes) decode the same,
// and encoding/json reads ours.
func TestCodecStringsAndEncodingJSON(t *testing.T) {
	strs := []string{"", "a\"b\\c/", "\x00\x1f\x7f", "<>&", "\u2028\u2029", "𝄞😀", "é", "\ufffd", "\U0010ffff"}
	c := &Codec{}
	for _, s := range strs {
		e := ordersInsert()
		e.After[1] = s
		value, err := c.AppendValue(nil, e)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct{ After struct{ Name string } }
		if err := json.Unmarshal(value, &doc); err != nil || doc.After.Name != s {
			t.Errorf("encoding/json reads %q as %q (%v)", s, doc.After.Name, err)
		}
		std, _ := json.Marshal(s)
		assertDecodedName(t, c, string(std), s)
	}
	// Escapes encoding/json does not write.
	for raw, want := range map[string]string{`"\ud834\udd1e"`: "𝄞", `"\u00E9\/\b\f"`: "é/\b\f", `"\u0041"`: "A"} {
		assertDecodedName(t, c, raw, want)
	}
}

// assertDecodedName checks that the golden message with the name column
// written as raw decodes to want.
func assertDecodedName(t *testing.T, c *Codec, raw, want string) {
	t.Helper()
	value := strings.Replace(goldenValue, `"name":"x"`, `"name":`+raw, 1)
	got, err := c.Decode(nil, []byte(value))
	if err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	if got.After[1] != want {
		t.Errorf("%s decoded as %q, want %q", raw, got.After[1], want)
	}
}

// Members in another order, unknown members and white space are read.
func TestCodecDecodeTolerance(t *testing.T) {
	c := &Codec{}
	value := `{ "rowcast" : {"future":[{"x":null}],"columns":[["id","uint","bigint(20) unsigned"],["name","string","varchar(20)"]],` +
		`"pk":["id"],"gtid_set":"0-1-42","last":true,"row":0,"txn_seq":42,"epoch":1,"kind":"row","format":1},` + "\n" +
		`"source":{"pos":1234,"file":"mysql-bin.000003","gtid":"0-1-42","server_id":1,"table":"orders","db":"shop","ts_ms":1700000000000,"connector":"mariadb","snapshot":"false"},` +
		`"op":"c","after":{"id":42,"name":"x"},"before":null,"ts_ms":1,"schema":{} }` + "\t"
	got, err := c.Decode([]byte(goldenKey), []byte(value))
	if err != nil {
		t.Fatal(err)
	}
	assertEvent(t, got, ordersInsert())
}

func TestCodecMalformed(t *testing.T) {
	mut := func(old, new string) string {
		if !strings.Contains(goldenValue, old) {
			panic("golden value has no " + old)
		}
		return strings.Replace(goldenValue, old, new, 1)
	}
	deep := strings.Repeat("[", 200) + strings.Repeat("]", 200)
	tests := []struct {
		name  string
		key   string
		value string
		want  string
	}{
		{"empty", "", "", "unexpected end"},
		{"not json", "", "nope", "want {"},
		{"array", "", "[]", "want {"},
		{"truncated", "", goldenValue[:len(goldenValue)-3], "unexpected end"},
		{"trailing data", "", goldenValue + "{}", "trailing data"},
		{"not rowcast", "", `{"before":null,"after":{"id":1},"op":"c","source":{"db":"a","table":"b"}}`, "no rowcast section"},
		{"no source", "", mut(`"source":{`, `"src":{`), "no source section"},
		{"format 2", "", mut(`"format":1`, `"format":2`), "format 2, this rowcast reads format 1"},
		{"unknown kind", "", mut(`"kind":"row"`, `"kind":"rows"`), "unknown kind"},
		{"missing txn_seq", "", mut(`"txn_seq":42,`, ``), "missing field(s) txn_seq"},
		{"txn_seq negative", "", mut(`"txn_seq":42`, `"txn_seq":-42`), "want an unsigned integer"},
		{"unknown value kind", "", mut(`"uint"`, `"uint128"`), `unknown value kind "uint128"`},
		{"column of 2", "", mut(`["name","string","varchar(20)"]`, `["name","string"]`), "columns[1]"},
		{"no columns", "", mut(`,"columns":[["id","uint","bigint(20) unsigned"],["name","string","varchar(20)"]]`, ``), "without rowcast.columns"},
		{"empty columns", "", mut(`"columns":[["id","uint","bigint(20) unsigned"],["name","string","varchar(20)"]]`, `"columns":[]`), "without columns"},
		{"duplicate column", "", mut(`["name","string"`, `["id","string"`), `column "id" twice`},
		{"unknown pk", "", mut(`"pk":["id"]`, `"pk":["idx"]`), `pk: column "idx" is not in the columns`},
		{"no db", "", mut(`"db":"shop",`, ``), "without source.db"},
		{"uint negative", "", mut(`"id":42`, `"id":-1`), "shop.orders.id (position 0): at byte"},
		{"uint overflow", "", mut(`"id":42`, `"id":18446744073709551616`), "out of range"},
		{"uint fraction", "", mut(`"id":42`, `"id":42.0`), "want an integer"},
		{"uint exponent", "", mut(`"id":42`, `"id":4e1`), "want an integer"},
		{"string for number", "", mut(`"id":42`, `"id":"42"`), "want number"},
		{"number for string", "", mut(`"name":"x"`, `"name":1`), "want string"},
		{"bad number", "", mut(`"id":42`, `"id":042`), "want ',' or '}'"},
		{"wrong column name", "", mut(`"name":"x"`, `"nom":"x"`), `member "nom" where column shop.orders.name (position 1) belongs`},
		{"missing column", "", mut(`,"name":"x"`, ``), "1 of 2 columns"},
		{"extra column", "", mut(`"name":"x"`, `"name":"x","extra":1`), "more members than the 2 columns"},
		{"unknown op", "", mut(`"op":"c"`, `"op":"x"`), "unknown op"},
		{"no op", "", mut(`"op":"c",`, ``), "without op"},
		{"insert with before", "", mut(`"before":null`, `"before":{"id":42,"name":"x"}`), "op c with a before image"},
		{"update without before", "", mut(`"op":"c"`, `"op":"u"`), "op u without before image"},
		{"raw control char", "", mut(`"name":"x"`, "\"name\":\"x\x01\""), "control character"},
		{"invalid utf-8", "", mut(`"name":"x"`, "\"name\":\"\xff\""), "invalid UTF-8"},
		{"overlong utf-8", "", mut(`"name":"x"`, "\"name\":\"\xc0\xaf\""), "invalid UTF-8"},
		{"lone surrogate", "", mut(`"name":"x"`, `"name":"\ud800"`), "lone surrogates"},
		{"bad escape", "", mut(`"name":"x"`, `"name":"\x"`), `bad escape \x`},
		{"unterminated string", "", `{"a":"abc`, "unterminated string"},
		{"deep nesting", "", mut(`"before":null`, `"x":`+deep+`,"before":null`), "nested more than"},
		{"op on heartbeat", "", mut(`"kind":"row"`, `"kind":"heartbeat"`), "op on a heartbeat message"},
		{"ddl without ddl", "", mut(`"kind":"row"`, `"kind":"ddl"`), "op on a ddl"},
		{"key mismatch", `{"db":"shop","table":"orders","pk":{"id":43}}`, goldenValue, "does not match the value"},
		{"server_id overflow", "", mut(`"server_id":1`, `"server_id":4294967296`), "out of range"},
		{"last not bool", "", mut(`"last":true`, `"last":1`), "want true or false"},
	}
	c := &Codec{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var key []byte
			if tt.key != "" {
				key = []byte(tt.key)
			}
			e, err := c.Decode(key, []byte(tt.value))
			if err == nil {
				t.Fatalf("decoded %+v", e)
			}
			assertErr(t, err, ErrMalformed, tt.want)
		})
	}
}

func TestCodecMalformedValues(t *testing.T) {
	tests := []struct {
		kind ValueKind
		json string
		want string
	}{
		{VInt, `9223372036854775808`, "out of range"},
		{VInt, `-9223372036854775809`, "out of range"},
		{VInt, `1.5`, "want an integer"},
		{VFloat, `1e39`, "out of range"},
		{VDouble, `1e309`, "out of range"},
		{VDouble, `"1"`, "want number"},
		{VDecimal, `"1.2.3"`, "not in the decimal form"},
		{VDecimal, `1.5`, "want string"},
		{VDate, `"2024-01-02 00:00:00"`, "not in the date form"},
		{VTime, `"1:00:00"`, "not in the time form"},
		{VBytes, `"AAE"`, "base64"},
		{VBytes, `"A==="`, "base64"},
		{VGeometry, `{"srid":1}`, "geometry without wkb"},
		{VGeometry, `{"wkb":"","srid":-1}`, "want an unsigned integer"},
		{VGeometry, `"AAAA"`, "want {"},
	}
	c := &Codec{}
	for _, tt := range tests {
		t.Run(tt.kind.String()+" "+tt.json, func(t *testing.T) {
			value := fmt.Sprintf(`{"after":{"v":%s},"op":"c","source":{"db":"d","table":"t"},`+
				`"rowcast":{"format":1,"kind":"row","epoch":0,"txn_seq":0,"row":0,"last":true,"columns":[["v",%q,""]]}}`, tt.json, tt.kind.String())
			_, err := c.Decode(nil, []byte(value))
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want ErrMalformed saying %q", err, tt.want)
			}
			if err != nil && !namesColumn(err) {
				t.Errorf("error %v does not name the column", err)
			}
		})
	}
}

// namesColumn reports whether a decode error of TestCodecMalformedValues
// names its column, or the image.
func namesColumn(err error) bool {
	return strings.Contains(err.Error(), "d.t.v (position 0)") || strings.Contains(err.Error(), "after")
}

func TestCodecConcurrentDecode(t *testing.T) {
	c := &Codec{Cluster: "main"}
	events := messageEvents()
	type msg struct {
		key, value []byte
		e          *Event
	}
	var msgs []msg
	for _, e := range events {
		k, v, _ := encodeBoth(c, e)
		msgs = append(msgs, msg{k, v, e})
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				m := msgs[(i+g)%len(msgs)]
				got, err := c.Decode(m.key, m.value)
				if err != nil {
					t.Error(err)
					return
				}
				if got.Kind != m.e.Kind || got.Pos != m.e.Pos {
					t.Errorf("got %s %s", got.Kind, got.Pos)
				}
			}
		})
	}
	wg.Wait()
}

// benchEvent is an 8-column row of about 190 bytes of data.
func benchEvent() *Event {
	tab := &Table{Database: "shop", Name: "orders", PrimaryKey: []int{0}, Columns: []Column{
		{Name: "id", Kind: VUint, SQLType: "bigint(20) unsigned"},
		{Name: "customer_id", Kind: VInt, SQLType: "int(11)"},
		{Name: "status", Kind: VEnum, SQLType: "enum('new','paid','shipped')"},
		{Name: "amount", Kind: VDecimal, SQLType: "decimal(12,2)"},
		{Name: "weight", Kind: VDouble, SQLType: "double"},
		{Name: "created_at", Kind: VDateTime, SQLType: "datetime(6)"},
		{Name: "email", Kind: VString, SQLType: "varchar(255)"},
		{Name: "note", Kind: VString, SQLType: "text"},
	}}
	return &Event{
		Kind: KindRow, Pos: Position{Epoch: 1, TxnSeq: 123456789, Row: 3}, GTID: "0-1-123456789",
		Flavor: "mariadb", ServerID: 1, CommitTime: testTime, File: "mysql-bin.000042", Offset: 98765432,
		Table: tab, Op: OpInsert,
		After: []any{uint64(9876543210), int64(123456), "paid", "12345.67", 2.75,
			"2024-05-06 07:08:09.123456", "customer.name@example.com",
			"Please leave the parcel at the back door; ring twice. Thank you! Größe: M, Farbe: blau."},
	}
}

func BenchmarkAppendValue(b *testing.B) {
	c := &Codec{Cluster: "main"}
	e := benchEvent()
	buf := make([]byte, 0, 4096)
	k, _ := c.AppendKey(nil, e)
	v, _ := c.AppendValue(nil, e)
	b.ReportAllocs()
	b.SetBytes(int64(len(k) + len(v)))
	for b.Loop() {
		out, err := c.AppendKey(buf[:0], e)
		if err != nil {
			b.Fatal(err)
		}
		if _, err = c.AppendValue(out, e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	c := &Codec{Cluster: "main"}
	e := benchEvent()
	key, _ := c.AppendKey(nil, e)
	value, _ := c.AppendValue(nil, e)
	b.ReportAllocs()
	b.SetBytes(int64(len(key) + len(value)))
	for b.Loop() {
		if _, err := c.Decode(key, value); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeInto(b *testing.B) {
	c := &Codec{Cluster: "main"}
	e := benchEvent()
	key, _ := c.AppendKey(nil, e)
	value, _ := c.AppendValue(nil, e)
	var ev Event
	b.ReportAllocs()
	b.SetBytes(int64(len(key) + len(value)))
	for b.Loop() {
		if err := c.DecodeInto(&ev, key, value); err != nil {
			b.Fatal(err)
		}
	}
}
