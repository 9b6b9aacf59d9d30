package pipeline

import (
	"errors"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecode: Decode never panics, and what it accepts re-encodes to a
// message that decodes to the same event.
func FuzzDecode(f *testing.F) {
	c := &Codec{Cluster: "main"}
	for _, e := range messageEvents() {
		k, _ := c.AppendKey(nil, e)
		v, _ := c.AppendValue(nil, e)
		f.Add(k, v)
		f.Add([]byte(nil), v)
	}
	e := benchEvent()
	k, _ := c.AppendKey(nil, e)
	v, _ := c.AppendValue(nil, e)
	f.Add(k, v)
	geo := &Table{Database: "g", Name: "t", Columns: []Column{
		{Name: "g", Kind: VGeometry}, {Name: "b", Kind: VBytes}, {Name: "f", Kind: VFloat},
		{Name: "t", Kind: VTime}, {Name: "j", Kind: VJSON}, {Name: "y", Kind: VYear}, {Name: "bit", Kind: VBit}}}
	e = &Event{Kind: KindRow, Table: geo, Op: OpRead, After: []any{geometryPoint(4326, 1, 2), []byte{0, 1}, 0.5,
		"-838:59:59.000000", `{"a":"\u2028"}`, int64(2024), uint64(7)}}
	v, _ = c.AppendValue(nil, e)
	f.Add([]byte(nil), v)
	f.Add([]byte(goldenKey), []byte(strings.Replace(goldenValue, `"name":"x"`, `"name":"\ud834\udd1e\u0000\/"`, 1)))
	f.Add([]byte(nil), []byte(`{"rowcast":{"format":1,"kind":"row"}}`))

	f.Fuzz(func(t *testing.T, key, value []byte) {
		c := &Codec{Cluster: "main"}
		e, err := c.Decode(key, value)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		k2, err := c.AppendKey(nil, e)
		if err != nil {
			t.Fatalf("decoded event does not encode a key: %v", err)
		}
		v2, err := c.AppendValue(nil, e)
		if err != nil {
			t.Fatalf("decoded event does not encode: %v", err)
		}
		e2, err := c.Decode(k2, v2)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v\n%s", err, v2)
		}
		assertEvent(t, e2, e)
	})
}

// FuzzRoundTrip: any value of every kind either encodes and decodes back, or
// is refused with ErrUnsupported for a stated reason.
func FuzzRoundTrip(f *testing.F) {
	f.Add("x", []byte{}, int64(0), uint64(0), 0.0, uint8(0))
	f.Add("𝄞\u2028\x00\"\\", []byte("\x00\xff"), int64(math.MinInt64), uint64(math.MaxUint64), math.Copysign(0, -1), uint8(3))
	f.Add("-12.50", geometryPoint(1, 2, 3), int64(-1), uint64(1), 0.1, uint8(5))
	f.Add("2024-01-02 03:04:05.123456", []byte("\x00\x00\x00\x00"), int64(1), uint64(2), 1e300, uint8(9))
	f.Add("caf\xe9", []byte(nil), int64(1), uint64(2), math.NaN(), uint8(16))

	kinds := []ValueKind{VInt, VUint, VFloat, VDouble, VDecimal, VString, VBytes, VDate, VDateTime,
		VTimestamp, VTime, VYear, VBit, VEnum, VSet, VJSON, VGeometry}
	c := &Codec{Cluster: "main"}
	f.Fuzz(func(t *testing.T, s string, b []byte, i int64, u uint64, fl float64, pick uint8) {
		if b == nil {
			b = []byte{} // nil []byte is encoded as empty, not NULL
		}
		tab := &Table{Database: "db", Name: s, PrimaryKey: []int{0}}
		after := make([]any, 0, len(kinds))
		for n, k := range kinds {
			tab.Columns = append(tab.Columns, Column{Name: k.String() + s, Kind: k, SQLType: s})
			var v any
			switch k {
			case VInt, VYear:
				v = i
			case VUint, VBit:
				v = u
			case VFloat:
				v = float64(float32(fl))
			case VDouble:
				v = fl
			case VBytes, VGeometry:
				v = b
			default:
				v = s
			}
			if int(pick)%(len(kinds)+1) == n {
				v = nil
			}
			after = append(after, v)
		}
		var wantErr string
		for n, k := range kinds {
			switch v := after[n].(type) {
			case float64:
				if math.IsNaN(v) || math.IsInf(v, 0) {
					wantErr = "float"
				}
			case []byte:
				if k == VGeometry && len(v) < 4 {
					wantErr = "geometry"
				}
			case string:
				if !checkShape(k, v) {
					wantErr = "shape"
				}
			}
		}
		if !utf8.ValidString(s) {
			wantErr = "utf-8"
		}
		if s == "" {
			wantErr = "empty table name"
		}
		e := &Event{Kind: KindRow, Pos: Position{Epoch: u, TxnSeq: u, Row: uint64(pick)}, GTID: s, Table: tab,
			Op: OpInsert, After: after}
		k, err := c.AppendKey(nil, e)
		if err == nil {
			var v []byte
			v, err = c.AppendValue(nil, e)
			if err == nil {
				if wantErr != "" {
					t.Fatalf("encoded, want a refusal (%s)", wantErr)
				}
				got, err := c.Decode(k, v)
				if err != nil {
					t.Fatalf("decode: %v\n%s", err, v)
				}
				assertEvent(t, got, e)
				return
			}
		}
		if !errors.Is(err, ErrUnsupported) {
			t.Fatalf("error does not wrap ErrUnsupported: %v", err)
		}
		if wantErr == "" {
			t.Fatalf("refused: %v", err)
		}
	})
}
