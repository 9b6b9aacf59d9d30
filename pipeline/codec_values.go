package pipeline

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
)

// appendValue appends one column value. The error says what is wrong with
// the value; the caller adds the column. The Go type the reader produces for
// a kind takes the short way; any other goes to appendKindValue.
func appendValue(b []byte, k ValueKind, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		if k.isText() {
			return appendText(b, k, x)
		}
	case int64:
		if k == VInt || k == VYear {
			return strconv.AppendInt(b, x, 10), nil
		}
	case uint64:
		if k == VUint || k == VBit {
			return strconv.AppendUint(b, x, 10), nil
		}
	case float64:
		if k == VDouble {
			return appendFloat(b, x, 64)
		}
	}
	return appendKindValue(b, k, v)
}

// textKinds are the kinds whose values are JSON strings (see ValueKind).
const textKinds uint64 = 1<<VString | 1<<VDecimal | 1<<VDate | 1<<VDateTime | 1<<VTimestamp |
	1<<VTime | 1<<VEnum | 1<<VSet | 1<<VJSON

func (k ValueKind) isText() bool { return textKinds&(1<<k) != 0 }

// appendKindValue appends a non-nil value of any Go type by its kind.
func appendKindValue(b []byte, k ValueKind, v any) ([]byte, error) {
	switch {
	case k.isText():
		return appendTextValue(b, k, v)
	case k == VInt || k == VYear:
		return appendIntValue(b, k, v)
	case k == VUint || k == VBit:
		return appendUintValue(b, k, v)
	case k == VFloat:
		return appendFloatValue(b, k, v, 32)
	case k == VDouble:
		return appendFloatValue(b, k, v, 64)
	case k == VBytes:
		return appendBytesValue(b, k, v)
	case k == VGeometry:
		return appendGeometry(b, k, v)
	}
	return b, fmt.Errorf("unknown value kind %d: %w", uint8(k), ErrUnsupported)
}

// wrongType is the error for a value whose Go type does not hold kind k.
func wrongType(k ValueKind, v any) error {
	return fmt.Errorf("%T value for kind %s: %w", v, k, ErrUnsupported)
}

func appendTextValue(b []byte, k ValueKind, v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		return appendText(b, k, x)
	case []byte:
		return appendText(b, k, x)
	}
	return b, wrongType(k, v)
}

// appendText appends s, a value of string kind k, as a JSON string.
func appendText[T string | []byte](b []byte, k ValueKind, s T) ([]byte, error) {
	if !checkShape(k, s) {
		return b, fmt.Errorf("%s value %.40q is not in the %s form: %w", k, s, k, ErrUnsupported)
	}
	b, ok := appendString(b, s)
	if !ok {
		return b, errUTF8
	}
	return b, nil
}

func appendIntValue(b []byte, k ValueKind, v any) ([]byte, error) {
	switch x := v.(type) {
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int32:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int16:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int8:
		return strconv.AppendInt(b, int64(x), 10), nil
	}
	return b, wrongType(k, v)
}

func appendUintValue(b []byte, k ValueKind, v any) ([]byte, error) {
	switch x := v.(type) {
	case uint64:
		return strconv.AppendUint(b, x, 10), nil
	case uint:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint32:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint16:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint8:
		return strconv.AppendUint(b, uint64(x), 10), nil
	}
	return b, wrongType(k, v)
}

// appendFloatValue appends a FLOAT (bits 32), which may come as a float32,
// or a DOUBLE (bits 64).
func appendFloatValue(b []byte, k ValueKind, v any, bits int) ([]byte, error) {
	switch x := v.(type) {
	case float64:
		return appendFloat(b, x, bits)
	case float32:
		if bits == 32 {
			return appendFloat(b, float64(x), 32)
		}
	}
	return b, wrongType(k, v)
}

// appendFloat writes the shortest decimal that parses back to the same
// float32 or float64, in the form encoding/json uses (no exponent between
// 1e-6 and 1e21). NaN and infinities do not occur in MySQL columns.
func appendFloat(b []byte, f float64, bits int) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, fmt.Errorf("float value %v: %w", f, ErrUnsupported)
	}
	if bits == 32 {
		f32 := float32(f)
		if math.IsInf(float64(f32), 0) {
			return b, fmt.Errorf("value %v overflows a FLOAT: %w", f, ErrUnsupported)
		}
		f = float64(f32)
	}
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		return shortExponent(strconv.AppendFloat(b, f, 'e', -1, bits)), nil
	}
	return strconv.AppendFloat(b, f, 'f', -1, bits), nil
}

// shortExponent drops the leading zero of a two-digit negative exponent at
// the end of b, as encoding/json does: 1e-07 becomes 1e-7.
func shortExponent(b []byte) []byte {
	n := len(b)
	if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1]
		b = b[:n-1]
	}
	return b
}

func appendBytesValue(b []byte, k ValueKind, v any) ([]byte, error) {
	switch x := v.(type) {
	case []byte:
		return appendBase64(b, x), nil
	case string:
		return appendBase64(b, x), nil
	}
	return b, wrongType(k, v)
}

// appendGeometry appends MySQL's internal form (4-byte SRID + WKB) as
// {"wkb":"<base64>","srid":N}.
func appendGeometry(b []byte, k ValueKind, v any) ([]byte, error) {
	var g []byte
	switch x := v.(type) {
	case []byte:
		g = x
	case string:
		g = []byte(x) // rare: geometry arrives as []byte from the reader
	default:
		return b, wrongType(k, v)
	}
	if len(g) < 4 {
		return b, fmt.Errorf("geometry of %d bytes has no SRID: %w", len(g), ErrUnsupported)
	}
	b = append(b, `{"wkb":`...)
	b = appendBase64(b, g[4:])
	b = append(b, `,"srid":`...)
	b = strconv.AppendUint(b, uint64(binary.LittleEndian.Uint32(g)), 10)
	return append(b, '}'), nil
}

// appendBase64 appends src as a standard, padded base64 JSON string.
func appendBase64[T string | []byte](b []byte, src T) []byte {
	n := base64.StdEncoding.EncodedLen(len(src))
	b = append(b, '"')
	b = growBytes(b, n)
	base64.StdEncoding.Encode(b[len(b):len(b)+n], []byte(src))
	b = b[:len(b)+n]
	return append(b, '"')
}

func growBytes(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	return append(b, make([]byte, n)...)[:len(b)]
}
