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
	addDecodeSeeds(f)

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

// addDecodeSeeds adds messages of every kind, with and without their key,
// a row of the rarer kinds and a few hand-written values.
func addDecodeSeeds(f *testing.F) {
	c := &Codec{Cluster: "main"}
	for _, e := range messageEvents() {
		k, v, _ := encodeBoth(c, e)
		f.Add(k, v)
		f.Add([]byte(nil), v)
	}
	k, v, _ := encodeBoth(c, benchEvent())
	f.Add(k, v)
	geo := &Table{Database: "g", Name: "t", Columns: []Column{
		{Name: "g", Kind: VGeometry}, {Name: "b", Kind: VBytes}, {Name: "f", Kind: VFloat},
		{Name: "t", Kind: VTime}, {Name: "j", Kind: VJSON}, {Name: "y", Kind: VYear}, {Name: "bit", Kind: VBit}}}
	e := &Event{Kind: KindRow, Table: geo, Op: OpRead, After: []any{geometryPoint(4326, 1, 2), []byte{0, 1}, 0.5,
		"-838:59:59.000000", `{"a":"\u2028"}`, int64(2024), uint64(7)}}
	v, _ = c.AppendValue(nil, e)
	f.Add([]byte(nil), v)
	f.Add([]byte(goldenKey), []byte(strings.Replace(goldenValue, `"name":"x"`, `"name":"\ud834\udd1e\u0000\/"`, 1)))
	f.Add([]byte(nil), []byte(`{"rowcast":{"format":1,"kind":"row"}}`))
}

// FuzzRoundTrip: any value of every kind either encodes and decodes back, or
// is refused with ErrUnsupported for a stated reason.
func FuzzRoundTrip(f *testing.F) {
	f.Add("x", []byte{}, int64(0), uint64(0), 0.0, uint8(0))
	f.Add("𝄞\u2028\x00\"\\", []byte("\x00\xff"), int64(math.MinInt64), uint64(math.MaxUint64), math.Copysign(0, -1), uint8(3))
	f.Add("-12.50", geometryPoint(1, 2, 3), int64(-1), uint64(1), 0.1, uint8(5))
	f.Add("2024-01-02 03:04:05.123456", []byte("\x00\x00\x00\x00"), int64(1), uint64(2), 1e300, uint8(9))
	f.Add("caf\xe9", []byte(nil), int64(1), uint64(2), math.NaN(), uint8(16))

	c := &Codec{Cluster: "main"}
	f.Fuzz(func(t *testing.T, s string, b []byte, i int64, u uint64, fl float64, pick uint8) {
		if b == nil {
			b = []byte{} // nil []byte is encoded as empty, not NULL
		}
		e := fuzzRow(fuzzInput{s, b, i, u, fl}, pick)
		wantErr := fuzzRefusal(e, s)
		k, v, err := encodeBoth(c, e)
		if err == nil && wantErr != "" {
			t.Fatalf("encoded, want a refusal (%s)", wantErr)
		}
		if err == nil {
			got, err := c.Decode(k, v)
			if err != nil {
				t.Fatalf("decode: %v\n%s", err, v)
			}
			assertEvent(t, got, e)
			return
		}
		if !errors.Is(err, ErrUnsupported) {
			t.Fatalf("error does not wrap ErrUnsupported: %v", err)
		}
		if wantErr == "" {
			t.Fatalf("refused: %v", err)
		}
	})
}

// fuzzKinds are the kinds of the columns of a fuzzRow, one of each.
var fuzzKinds = []ValueKind{VInt, VUint, VFloat, VDouble, VDecimal, VString, VBytes, VDate, VDateTime,
	VTimestamp, VTime, VYear, VBit, VEnum, VSet, VJSON, VGeometry}

// fuzzInput is what FuzzRoundTrip makes the values of a row from.
type fuzzInput struct {
	s  string
	b  []byte
	i  int64
	u  uint64
	fl float64
}

// fuzzRow is an insert of a row with a column of each of fuzzKinds, named
// and typed after in.s, each value taken from in by its kind. The column
// pick selects (if any) is NULL.
func fuzzRow(in fuzzInput, pick uint8) *Event {
	tab := &Table{Database: "db", Name: in.s, PrimaryKey: []int{0}}
	after := make([]any, 0, len(fuzzKinds))
	for n, k := range fuzzKinds {
		tab.Columns = append(tab.Columns, Column{Name: k.String() + in.s, Kind: k, SQLType: in.s})
		v := in.value(k)
		if int(pick)%(len(fuzzKinds)+1) == n {
			v = nil
		}
		after = append(after, v)
	}
	return &Event{Kind: KindRow, Pos: Position{Epoch: in.u, TxnSeq: in.u, Row: uint64(pick)}, GTID: in.s, Table: tab,
		Op: OpInsert, After: after}
}

func (in fuzzInput) value(k ValueKind) any {
	switch k {
	case VInt, VYear:
		return in.i
	case VUint, VBit:
		return in.u
	case VFloat:
		return float64(float32(in.fl))
	case VDouble:
		return in.fl
	case VBytes, VGeometry:
		return in.b
	}
	return in.s
}

// fuzzRefusal is why the encoder must refuse e, a fuzzRow of s; "" if it
// must not.
func fuzzRefusal(e *Event, s string) string {
	switch {
	case s == "":
		return "empty table name"
	case !utf8.ValidString(s):
		return "utf-8"
	}
	why := ""
	for n, k := range fuzzKinds {
		if r := valueRefusal(k, e.After[n]); r != "" {
			why = r
		}
	}
	return why
}

// valueRefusal is why the encoder must refuse v as a value of kind k.
func valueRefusal(k ValueKind, v any) string {
	switch v := v.(type) {
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "float"
		}
	case []byte:
		if k == VGeometry && len(v) < 4 {
			return "geometry"
		}
	case string:
		if !checkShape(k, v) {
			return "shape"
		}
	}
	return ""
}
