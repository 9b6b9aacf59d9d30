package pipeline

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
)

// uncachedCodec encodes every table of events through the uncached path.
func uncachedCodec(events ...*Event) *Codec {
	c := &Codec{Cluster: "main"}
	c.enc.m = map[*Table]*tableEncoding{}
	for _, e := range events {
		if e.Table != nil {
			c.enc.m[e.Table] = nil
		}
	}
	return c
}

// encodeBoth returns the key and the value of e.
func encodeBoth(c *Codec, e *Event) (key, value []byte, err error) {
	if key, err = c.AppendKey(nil, e); err != nil {
		return nil, nil, err
	}
	value, err = c.AppendValue(nil, e)
	return key, value, err
}

// The per-table cache writes exactly what the uncached encoder writes, on the
// first use of a table and on later ones, and gives the same errors.
func TestCodecTableEncodingSameBytes(t *testing.T) {
	events := messageEvents()
	odd := &Table{Database: "shop\"x", Name: "t\u2028", PrimaryKey: []int{1, 0}, Columns: []Column{
		{Name: `a"b\c`, Kind: VInt, SQLType: "int(11)"},
		{Name: "é\t", Kind: VString, SQLType: "varchar(5)"},
	}}
	events["odd names"] = &Event{Kind: KindRow, Op: OpUpdate, Table: odd, GTID: "0-1-1", Flavor: "mariadb",
		Before: []any{int64(1), "x"}, After: []any{int64(2), "y"}}
	badName := &Table{Database: "d", Name: "t", Columns: []Column{{Name: "caf\xe9", Kind: VInt}}}
	events["bad column name"] = &Event{Kind: KindRow, Op: OpInsert, Table: badName, After: []any{int64(1)}}
	badKind := &Table{Database: "d", Name: "t", Columns: []Column{{Name: "a", Kind: 99}}}
	events["bad kind"] = &Event{Kind: KindRow, Op: OpInsert, Table: badKind, After: []any{nil}}
	events["bad value"] = &Event{Kind: KindRow, Op: OpInsert, Table: odd, After: []any{"1", "x"}}

	var all []*Event
	for _, e := range events {
		all = append(all, e)
	}
	slow := uncachedCodec(all...)
	fast := &Codec{Cluster: "main"}
	for name, e := range events {
		t.Run(name, func(t *testing.T) {
			wk, wv, werr := encodeBoth(slow, e)
			for i := range 2 {
				k, v, err := encodeBoth(fast, e)
				assertSameMessage(t, fmt.Sprint("use ", i), k, v, err, wk, wv, werr)
			}
		})
	}
}

// assertSameMessage checks that a key, a value and an error are the ones
// wanted.
func assertSameMessage(t *testing.T, which string, k, v []byte, err error, wk, wv []byte, werr error) {
	t.Helper()
	if fmt.Sprint(err) != fmt.Sprint(werr) {
		t.Fatalf("%s: error %v, uncached %v", which, err, werr)
	}
	if !bytes.Equal(k, wk) || !bytes.Equal(v, wv) {
		t.Fatalf("%s:\n key %s\nwant %s\n value %s\n want %s", which, k, wk, v, wv)
	}
}

// Tables used alternately and from several goroutines each get their own
// encoding.
func TestCodecTableEncodingConcurrent(t *testing.T) {
	c := &Codec{Cluster: "main"}
	var events []*Event
	for i := range 8 {
		e := ordersInsert()
		e.Table.Name = fmt.Sprintf("orders%d", i)
		events = append(events, e)
	}
	want := make([][]byte, len(events))
	for i, e := range events {
		_, want[i], _ = encodeBoth(uncachedCodec(e), e)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() { encodeInTurn(t, c, events, want, g) })
	}
	wg.Wait()
}

// encodeInTurn encodes 200 of events in turn from the g-th on and compares
// their values with want.
func encodeInTurn(t *testing.T, c *Codec, events []*Event, want [][]byte, g int) {
	for n := range 200 {
		i := (n + g) % len(events)
		_, v, err := encodeBoth(c, events[i])
		if err != nil || !bytes.Equal(v, want[i]) {
			t.Errorf("table %d: %v\n%s\nwant %s", i, err, v, want[i])
			return
		}
	}
}
