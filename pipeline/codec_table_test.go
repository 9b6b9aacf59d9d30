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
				if fmt.Sprint(err) != fmt.Sprint(werr) {
					t.Fatalf("use %d: error %v, uncached %v", i, err, werr)
				}
				if !bytes.Equal(k, wk) || !bytes.Equal(v, wv) {
					t.Fatalf("use %d:\n key %s\nwant %s\n value %s\n want %s", i, k, wk, v, wv)
				}
			}
		})
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
		wg.Go(func() {
			for n := range 200 {
				i := (n + g) % len(events)
				_, v, err := encodeBoth(c, events[i])
				if err != nil || !bytes.Equal(v, want[i]) {
					t.Errorf("table %d: %v\n%s\nwant %s", i, err, v, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
}
