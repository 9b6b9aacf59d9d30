package pipeline

import (
	"fmt"
	"unicode/utf8"
)

// This file holds the JSON primitives the encoder and the msgDecoder share:
// string escaping, UTF-8 checks and the value shape checks; codec_scan.go
// holds the scanner. Neither side uses encoding/json: the encoder must not
// allocate, and the msgDecoder is on every sink's hot path.

var errUTF8 = fmt.Errorf("invalid UTF-8 (the reader must convert every charset to UTF-8): %w", ErrUnsupported)

const hexDigits = "0123456789abcdef"

// plainASCII marks the ASCII bytes that go into a JSON string unescaped;
// appendString escapes the others and U+2028 and U+2029.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendString appends s as a JSON string. Control characters, quote and
// backslash are escaped, and so are U+2028 and U+2029 (line terminators to
// JavaScript); everything else, 4-byte sequences included, is copied. It
// reports false when s is not valid UTF-8.
func appendString[T string | []byte](b []byte, s T) ([]byte, bool) {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if i+8 <= len(s) && special8(load8(s, i)) == 0 {
			i += 8
			continue
		}
		if plainASCII[s[i]] {
			i++
			continue
		}
		n := utf8Len(s[i:])
		if n == 0 {
			return b, false
		}
		if n == 1 || isLineTerminator(s[i:i+n]) {
			b = appendEscaped(append(b, s[start:i]...), s[i:i+n])
			start = i + n
		}
		i += n
	}
	b = append(b, s[start:]...)
	return append(b, '"'), true
}

// isLineTerminator reports whether c is U+2028 or U+2029: e2 80 a8 or a9.
func isLineTerminator[T string | []byte](c T) bool {
	return len(c) == 3 && c[0] == 0xe2 && c[1] == 0x80 && c[2]&0xfe == 0xa8
}

// appendEscaped appends the escape of c, an ASCII byte or U+2028 or U+2029.
func appendEscaped[T string | []byte](b []byte, c T) []byte {
	if len(c) == 3 {
		return append(b, '\\', 'u', '2', '0', '2', hexDigits[c[2]&0xf])
	}
	switch c[0] {
	case '"', '\\':
		return append(b, '\\', c[0])
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	}
	return append(b, '\\', 'u', '0', '0', hexDigits[c[0]>>4], hexDigits[c[0]&0xf])
}

// load8 reads 8 bytes of s from i, little-endian (one load on amd64/arm64).
func load8[T string | []byte](s T, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// special8 is not zero when one of the 8 bytes in x is a control character,
// a quote, a backslash or not ASCII: the bytes that string scanning and
// escaping must look at one by one. (The "has zero byte" trick of
// https://graphics.stanford.edu/~seander/bithacks.html#ZeroInWord, which
// never misses a byte and may flag bytes after a real one, never before:
// the lowest flag, the high bit of a byte, is always a real one.)
func special8(x uint64) uint64 {
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	ctl := (x - 0x20*lsb) &^ x
	q := x ^ '"'*lsb
	q = (q - lsb) &^ q
	bs := x ^ '\\'*lsb
	bs = (bs - lsb) &^ bs
	return (ctl | q | bs | x) & msb
}

// utf8Len returns the length of the valid UTF-8 sequence s starts with, or 0
// when it starts with an invalid one.
func utf8Len[T string | []byte](s T) int {
	c := s[0]
	if c < utf8.RuneSelf {
		return 1
	}
	f := utf8Leads[c]
	n := int(f.n)
	if n == 0 || len(s) < n || s[1] < f.lo || s[1] > f.hi {
		return 0
	}
	for j := 2; j < n; j++ {
		if s[j]&0xc0 != 0x80 {
			return 0
		}
	}
	return n
}

// utf8Lead is what a sequence's first byte says: its length (0 for none) and
// the range of its second byte. The table is RFC 3629's: no overlong forms,
// no surrogates, nothing above U+10FFFF.
type utf8Lead struct{ n, lo, hi byte }

var utf8Leads = func() (t [256]utf8Lead) {
	set := func(first, last, n, lo, hi byte) {
		for c := int(first); c <= int(last); c++ {
			t[c] = utf8Lead{n, lo, hi}
		}
	}
	set(0xc2, 0xdf, 2, 0x80, 0xbf)
	set(0xe0, 0xe0, 3, 0xa0, 0xbf)
	set(0xe1, 0xec, 3, 0x80, 0xbf)
	set(0xed, 0xed, 3, 0x80, 0x9f)
	set(0xee, 0xef, 3, 0x80, 0xbf)
	set(0xf0, 0xf0, 4, 0x90, 0xbf)
	set(0xf1, 0xf3, 4, 0x80, 0xbf)
	set(0xf4, 0xf4, 4, 0x80, 0x8f)
	return t
}()

// checkShape reports whether a string value has the form its kind promises
// (see ValueKind): DECIMAL "-12.34", DATE "2006-01-02", DATETIME and
// TIMESTAMP "2006-01-02 15:04:05[.ffffff]", TIME "[-]HHH:MM:SS[.ffffff]".
// Other string kinds accept any text.
func checkShape[T string | []byte](k ValueKind, s T) bool {
	switch k {
	case VDecimal:
		return isDecimal(s)
	case VDate:
		return len(s) == 10 && isDate(s)
	case VDateTime, VTimestamp:
		return len(s) >= 19 && isDate(s) && s[10] == ' ' && isClock(s[11:], 2)
	case VTime:
		return isTime(s)
	}
	return true
}

// isDecimal checks "[-]d+[.d+]".
func isDecimal[T string | []byte](s T) bool {
	i := 0
	if len(s) > 0 && s[0] == '-' {
		i++
	}
	j := scanDigits(s, i)
	switch {
	case j == i:
		return false
	case j == len(s):
		return true
	}
	return s[j] == '.' && j+1 < len(s) && scanDigits(s, j+1) == len(s)
}

// isTime checks "[-]HH:MM:SS[.ffffff]" with two or three digits of hours.
func isTime[T string | []byte](s T) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	h := scanDigits(s, 0)
	return (h == 2 || h == 3) && isClock(s, h)
}

func scanDigits[T string | []byte](s T, i int) int {
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// isDate checks "dddd-dd-dd" at the start of s (len(s) >= 10).
func isDate[T string | []byte](s T) bool {
	return scanDigits(s, 0) == 4 && s[4] == '-' && scanDigits(s, 5) == 7 && s[7] == '-' && scanDigits(s, 8) >= 10
}

// isClock checks that s is exactly "H:dd:dd[.d{1,6}]" where H has h digits.
func isClock[T string | []byte](s T, h int) bool {
	if len(s) < h+6 || scanDigits(s, 0) != h || s[h] != ':' || scanDigits(s, h+1) != h+3 ||
		s[h+3] != ':' || scanDigits(s, h+4) != h+6 {
		return false
	}
	return len(s) == h+6 || isFraction(s[h+6:])
}

// isFraction checks ".d{1,6}".
func isFraction[T string | []byte](s T) bool {
	return s[0] == '.' && len(s) >= 2 && len(s) <= 7 && scanDigits(s, 1) == len(s)
}
