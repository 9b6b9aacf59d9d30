package clone

import (
	"database/sql/driver"
	"fmt"
	"strconv"
)

// A batch is rows as LOAD DATA text: fields separated by tabs, rows ended by
// a newline, NULL as \N, and in values the bytes a field cannot hold as they
// are (backslash, tab, newline, carriage return, NUL) escaped with a
// backslash. The statement reads the text as CHARACTER SET binary, so the
// bytes of every other value reach the column unchanged.

// appendRow appends one row read by the text protocol; it returns how many
// values load with a warning that is expected (the invalid ENUM value ”).
func appendRow(b []byte, cols []column, vals []driver.Value) ([]byte, int, error) {
	warnings := 0
	for i, v := range vals {
		if i > 0 {
			b = append(b, '\t')
		}
		var err error
		if b, err = appendValue(b, cols[i], v); err != nil {
			return b, 0, err
		}
		if cols[i].kind == kindEnum && !cols[i].emptyMember && isEmpty(v) {
			warnings++
		}
	}
	return append(b, '\n'), warnings, nil
}

func isEmpty(v driver.Value) bool {
	b, ok := v.([]byte)
	return ok && len(b) == 0
}

// appendValue appends one value as the driver returns it: bytes, or the
// numbers it parses from the text of integer and floating-point columns.
func appendValue(b []byte, c column, v driver.Value) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, '\\', 'N'), nil
	case []byte:
		return appendEscaped(b, v), nil
	case int64:
		if c.kind == kindYear && v >= 0 && v < 1000 {
			return appendYear(b, v), nil
		}
		return strconv.AppendInt(b, v, 10), nil
	case uint64:
		return strconv.AppendUint(b, v, 10), nil
	case float64:
		return strconv.AppendFloat(b, v, 'g', -1, 64), nil
	case float32:
		return strconv.AppendFloat(b, float64(v), 'g', -1, 32), nil
	}
	return b, fmt.Errorf("%w: column %s: value of type %T", ErrTable, c.name, v)
}

// appendYear writes a YEAR below 1000 (only 0 is stored) with four digits:
// the string '0' would load as 2000.
func appendYear(b []byte, v int64) []byte {
	s := strconv.FormatInt(v, 10)
	for range 4 - len(s) {
		b = append(b, '0')
	}
	return append(b, s...)
}

// escapes maps each byte that needs an escape to the letter after the
// backslash.
var escapes = [256]byte{'\\': '\\', '\t': 't', '\n': 'n', '\r': 'r', 0: '0'}

// appendEscaped appends v with the bytes LOAD DATA would read as syntax
// escaped.
func appendEscaped(b, v []byte) []byte {
	start := 0
	for i, c := range v {
		if e := escapes[c]; e != 0 {
			b = append(b, v[start:i]...)
			b = append(b, '\\', e)
			start = i + 1
		}
	}
	return append(b, v[start:]...)
}
