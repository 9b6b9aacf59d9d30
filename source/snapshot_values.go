package source

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"github.com/rowcast/rowcast/pipeline"
)

// fromText turns a value as the server prints it in the text protocol (in
// the column's own character set) into the in-memory form of its
// pipeline.ValueKind, the same value the binlog path gives for the same
// column. It is never called for NULL. b is only valid during the call.
type fromText func(b []byte) (any, error)

// numericConvs are the converters of the kinds whose text is ASCII.
var numericConvs = map[pipeline.ValueKind]fromText{
	pipeline.VInt:       intText,
	pipeline.VYear:      intText,
	pipeline.VUint:      uintText,
	pipeline.VBit:       bitText,
	pipeline.VFloat:     floatText,
	pipeline.VDouble:    doubleText,
	pipeline.VDecimal:   stringText,
	pipeline.VDate:      stringText,
	pipeline.VDateTime:  stringText,
	pipeline.VTimestamp: stringText,
	pipeline.VTime:      stringText,
	pipeline.VJSON:      stringText,
	pipeline.VString:    stringText, // MariaDB INET4, INET6, UUID
	pipeline.VBytes:     bytesText,
	pipeline.VGeometry:  bytesText,
}

// view is b as a string for parsing only: strconv copies what its errors
// keep.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func intText(b []byte) (any, error) {
	v, err := strconv.ParseInt(view(b), 10, 64)
	return v, err
}

func uintText(b []byte) (any, error) {
	v, err := strconv.ParseUint(view(b), 10, 64)
	return v, err
}

// bitText reads BIT(n), which the server sends as its bytes, big-endian.
func bitText(b []byte) (any, error) {
	if len(b) > 8 {
		return nil, fmt.Errorf("BIT value of %d bytes", len(b))
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

// floatText reads a FLOAT selected as DOUBLE (exact) and rounds it to the
// 32-bit float it is, as the binlog carries it.
func floatText(b []byte) (any, error) {
	v, err := strconv.ParseFloat(view(b), 64)
	return float64(float32(v)), err
}

func doubleText(b []byte) (any, error) {
	v, err := strconv.ParseFloat(view(b), 64)
	return v, err
}

func stringText(b []byte) (any, error) { return string(b), nil }

func bytesText(b []byte) (any, error) { return bytes.Clone(b), nil }

// decodedText converts text of a character set with dec.
func decodedText(dec textDecoder) fromText {
	return func(b []byte) (any, error) { return dec(string(b)), nil }
}

// encodeKey writes a row's key values as a JSON array, for the snapshots
// table: bytes as base64, numbers exactly.
func encodeKey(vals []any) (string, error) {
	b, err := json.Marshal(vals)
	return string(b), err
}

// decodeKey reads encodeKey's JSON back into the key values of t.
func decodeKey(s string, t *snapTable) ([]any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var raw []any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%w: resume key %q of %s: %v", ErrConfig, s, t.qualified(), err)
	}
	if len(raw) != len(t.key) {
		return nil, fmt.Errorf("%w: resume key %q of %s has %d values, the key %d columns", ErrConfig, s, t.qualified(), len(raw), len(t.key))
	}
	out := make([]any, len(raw))
	for i, v := range raw {
		var err error
		if out[i], err = keyValue(v, t.table.Columns[t.key[i].col].Kind); err != nil {
			return nil, fmt.Errorf("%w: resume key %q of %s: %v", ErrConfig, s, t.qualified(), err)
		}
	}
	return out, nil
}

// keyValue turns a JSON value back into the Go type of kind k.
func keyValue(v any, k pipeline.ValueKind) (any, error) {
	switch x := v.(type) {
	case json.Number:
		return numberValue(string(x), k)
	case string:
		if k == pipeline.VBytes {
			return base64.StdEncoding.DecodeString(x)
		}
		return x, nil
	}
	return nil, fmt.Errorf("value %v of kind %s", v, k)
}

// numberValue parses a JSON number as kind k's Go type.
func numberValue(n string, k pipeline.ValueKind) (any, error) {
	switch k {
	case pipeline.VInt, pipeline.VYear:
		return strconv.ParseInt(n, 10, 64)
	case pipeline.VUint, pipeline.VBit:
		return strconv.ParseUint(n, 10, 64)
	}
	return strconv.ParseFloat(n, 64)
}
