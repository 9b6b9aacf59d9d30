package pipeline

import (
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// hintEvents are messages of several tables, to warm a Codec with: the
// table of the last one decoded is the hint of its next Decode.
func hintEvents() []*Event {
	ins, upd := sinkBenchEvents()
	del := *upd
	del.Op, del.After = OpDelete, nil
	evs := []*Event{ins, upd, &del, benchEvent()}
	for _, name := range []string{"insert", "update", "delete", "no pk", "composite pk", "read", "snapshot table end"} {
		evs = append(evs, messageEvents()[name])
	}
	// The same column names as ordersTable, other kinds.
	other := &Table{Database: "shop", Name: "orders_v2", PrimaryKey: []int{0}, Columns: []Column{
		{Name: "id", Kind: VString, SQLType: "varchar(20)"},
		{Name: "name", Kind: VInt, SQLType: "int(11)"},
	}}
	return append(evs, &Event{Kind: KindRow, Pos: Position{Epoch: 1, TxnSeq: 7}, GTID: "0-1-7", Flavor: "mariadb",
		ServerID: 1, CommitTime: testTime, File: "mysql-bin.000001", Offset: 4, Table: other, Op: OpInsert,
		After: []any{"42", int64(7)}})
}

// warmCodec returns a Codec that has decoded (and checked the key of) one
// message of each of evs, evs[last] last.
func warmCodec(tb testing.TB, evs []*Event, last int) *Codec {
	tb.Helper()
	enc := &Codec{Cluster: "main"}
	c := &Codec{Cluster: "main"}
	for i := range evs {
		e := evs[(last+1+i)%len(evs)]
		k, err := enc.AppendKey(nil, e)
		if err != nil {
			tb.Fatal(err)
		}
		v, err := enc.AppendValue(nil, e)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := c.Decode(k, v); err != nil {
			tb.Fatal(err)
		}
	}
	return c
}

// FuzzDecodeHinted: a Codec that decoded messages before, whose first pass
// compares the text with the encoding of the last message's table, decodes
// every input as a fresh Codec does: the same event or the same error.
func FuzzDecodeHinted(f *testing.F) {
	evs := hintEvents()
	enc := &Codec{Cluster: "main"}
	for i, e := range append(evs, ordersInsert()) {
		k, _ := enc.AppendKey(nil, e)
		v, _ := enc.AppendValue(nil, e)
		f.Add(k, v, uint8(i))
		f.Add([]byte(nil), v, uint8(i+1))
	}
	f.Add([]byte(goldenKey), []byte(strings.Replace(goldenValue, `"name":"x"`, `"name" : "\u0078"`, 1)), uint8(7))
	f.Fuzz(func(t *testing.T, key, value []byte, last uint8) {
		want, wantErr := (&Codec{Cluster: "main"}).Decode(key, value)
		c := warmCodec(t, evs, int(last)%len(evs))
		got, err := c.Decode(key, value)
		if fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Fatalf("hinted: error %v\nfresh: error %v", err, wantErr)
		}
		if err == nil {
			assertEvent(t, got, want)
		}
	})
}

// Messages of tables that alternate, some with the same column names, and a
// Codec that also encodes: the hint is often another table, and decoded
// events still share the decoder's *Table.
func TestDecodeHintOtherTable(t *testing.T) {
	evs := hintEvents()
	c := &Codec{Cluster: "main"}
	tables := map[string]*Table{}
	for round := range 3 {
		for i, e := range evs {
			if round == 1 && i%2 == 0 {
				// The encoder's last table becomes the hint.
				if _, err := c.AppendValue(nil, evs[(i+1)%len(evs)]); err != nil {
					t.Fatal(err)
				}
			}
			k, v, got := roundTrip(t, c, e)
			assertEvent(t, got, e)
			if got.Table != nil {
				assertOneTable(t, tables, got, e, fmt.Sprintf("event %d (round %d)", i, round))
				assertDecodedAgain(t, c, k, v, got, e, i)
			}
		}
	}
}

// assertDecodedAgain decodes the message of e again, right after itself,
// with the hint its own table: the same event, on the same *Table as got.
func assertDecodedAgain(t *testing.T, c *Codec, k, v []byte, got, e *Event, i int) {
	t.Helper()
	again, err := c.Decode(k, v)
	if err != nil {
		t.Fatal(err)
	}
	assertEvent(t, again, e)
	if again.Table != got.Table {
		t.Errorf("event %d: decoded twice, two *Table", i)
	}
}

// assertOneTable checks that got, decoded from e, has the decoder's one
// *Table of its shape, which tables collects.
func assertOneTable(t *testing.T, tables map[string]*Table, got, e *Event, which string) {
	t.Helper()
	if got.Table == e.Table {
		t.Errorf("%s: decoded the encoder's *Table", which)
	}
	id := fmt.Sprintf("%s|%v|%v", got.Table.Name, got.Table.Columns, got.Table.PrimaryKey)
	if prev, ok := tables[id]; ok && prev != got.Table {
		t.Errorf("%s: a second *Table for %s", which, got.Table.Name)
	}
	tables[id] = got.Table
}

// The values of decoded images are ordinary values: type switches,
// comparisons, reflection and formatting see what they would see of values
// converted the usual way, and they stay intact through garbage collection
// and later decodes.
func TestDecodeBoxedValues(t *testing.T) {
	_, upd := sinkBenchEvents()
	upd.Before[0], upd.After[1] = int64(-7), int64(1<<40)
	tab := &Table{Database: "d", Name: "u", PrimaryKey: []int{0}, Columns: []Column{
		{Name: "id", Kind: VUint, SQLType: "bigint unsigned"}, {Name: "bit", Kind: VBit, SQLType: "bit(64)"},
		{Name: "s", Kind: VString, SQLType: "text"}, {Name: "e", Kind: VString, SQLType: "text"}}}
	uns := &Event{Kind: KindRow, Table: tab, Op: OpInsert, Flavor: "mariadb",
		After: []any{uint64(1 << 63), uint64(3), "é\u2028\"", ""}}
	c := &Codec{Cluster: "main"}
	var decoded []*Event
	for range 50 {
		for _, e := range []*Event{upd, uns} {
			_, _, got := roundTrip(t, c, e)
			decoded = append(decoded, got)
		}
	}
	runtime.GC()
	for i, got := range decoded {
		want := []*Event{upd, uns}[i%2]
		for img, vals := range map[string][2][]any{"before": {got.Before, want.Before}, "after": {got.After, want.After}} {
			for j, v := range vals[0] {
				assertBoxed(t, fmt.Sprintf("event %d %s[%d]", i, img, j), v, vals[1][j])
			}
		}
	}
	if m := map[any]int{decoded[0].After[0]: 1}; m[upd.After[0]] != 1 {
		t.Error("a decoded value is not the same map key as the original")
	}
}

// assertBoxed checks that v, a decoded value, is w in every way a caller
// can look at it.
func assertBoxed(t *testing.T, where string, v, w any) {
	t.Helper()
	if v != w || !reflect.DeepEqual(v, w) || fmt.Sprintf("%#v", v) != fmt.Sprintf("%#v", w) {
		t.Fatalf("%s: %#v, want %#v", where, v, w)
	}
	if reflect.TypeOf(v) != reflect.TypeOf(w) {
		t.Fatalf("%s: type %T, want %T", where, v, w)
	}
	switch x := v.(type) {
	case string:
		assertTyped(t, where, x, w)
		if len(x) != len(w.(string)) {
			t.Fatalf("%s: string %q", where, x)
		}
	case int64:
		assertTyped(t, where, x, w)
	case uint64:
		assertTyped(t, where, x, w)
	default:
		t.Fatalf("%s: unexpected %T", where, v)
	}
}

// assertTyped checks that x, a decoded value as its type, is w.
func assertTyped[T comparable](t *testing.T, where string, x T, w any) {
	t.Helper()
	if x != w.(T) {
		t.Fatalf("%s: %T %#v", where, x, x)
	}
}

// What a sink pays per message: the event, one slice for the images, one
// block of text for their strings, a slab of strings and one of integers.
func TestDecodeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts under the race detector")
	}
	ins, upd := sinkBenchEvents()
	for _, e := range []*Event{ins, upd} {
		c := &Codec{Cluster: "main"}
		key, value, _ := roundTrip(t, c, e)
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := c.Decode(key, value); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > 5 {
			t.Errorf("op %c: %v allocations per Decode, want at most 5", e.Op, allocs)
		}
	}
}

// A big string value costs one copy of its text when decoded, escaped or
// not: appended to the event's shared text it was copied twice (the text
// grew to hold it, then finish copied it out), so that a sink held a 60 MB
// value three times for a moment.
func TestDecodeBigStringOnce(t *testing.T) {
	const n = 4 << 20
	for name, text := range map[string]string{
		"plain":   strings.Repeat("0123456789abcdef", n/16),
		"escaped": strings.Repeat("a\"b\\c\nd", n/8),
	} {
		t.Run(name, func(t *testing.T) {
			e := ordersInsert()
			e.After = []any{uint64(42), text}
			c := &Codec{Cluster: "main"}
			key, value, _ := roundTrip(t, c, e)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			got, err := c.Decode(key, value)
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			if got.After[1] != text {
				t.Fatalf("decoded value of %d bytes differs from the %d encoded", len(got.After[1].(string)), len(text))
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(len(text))*5/4 {
				t.Errorf("Decode allocated %d bytes for a value of %d: want at most 1.25 times (one copy)", alloc, len(text))
			}
		})
	}
}

// unescapedLen, the capacity addBig allocates, is the length appendUnescaped
// writes, for every kind of escape.
func TestUnescapedLen(t *testing.T) {
	for _, raw := range []string{
		``, `plain`, `a\"b\\c\/d`, `\b\f\n\r\t`, `\u0001\u001f`, `caf\u00e9`, `\u20ac`,
		`\ud83d\ude00 emoji`, `x\ud83d\ude00\ud83d\ude00y`, `\u00e9\u00e9\\\u20ac"`,
	} {
		got, want := unescapedLen([]byte(raw)), len(appendUnescaped(nil, []byte(raw)))
		if got != want {
			t.Errorf("unescapedLen(%s) = %d, want %d", raw, got, want)
		}
	}
}
