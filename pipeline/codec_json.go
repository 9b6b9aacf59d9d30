package pipeline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"unicode/utf8"
)

// This file holds the JSON primitives of the codec: string escaping and
// UTF-8 checks shared by the encoder and the msgDecoder, the value shape checks,
// and a small jsonScanner over one message. Neither side uses encoding/json: the
// encoder must not allocate and the msgDecoder must read a row in a few
// microseconds.

var errUTF8 = fmt.Errorf("invalid UTF-8 (the reader must convert every charset to UTF-8): %w", ErrUnsupported)

const hexDigits = "0123456789abcdef"

// plainASCII marks the ASCII bytes that go into a JSON string unescaped.
var plainASCII = func() (t [utf8.RuneSelf]bool) {
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
		c := s[i]
		if c < utf8.RuneSelf {
			if plainASCII[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		n := utf8Len(s[i:])
		if n == 0 {
			return b, false
		}
		if n == 3 && c == 0xe2 && s[i+1] == 0x80 && s[i+2]&0xfe == 0xa8 {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[s[i+2]&0xf])
			start = i + 3
		}
		i += n
	}
	b = append(b, s[start:]...)
	return append(b, '"'), true
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
// when it starts with an invalid one. It follows the table of RFC 3629 (no
// overlong forms, no surrogates, nothing above U+10FFFF).
func utf8Len[T string | []byte](s T) int {
	c := s[0]
	if c < utf8.RuneSelf {
		return 1
	}
	var n int
	lo, hi := byte(0x80), byte(0xbf)
	switch {
	case c < 0xc2:
		return 0
	case c < 0xe0:
		n = 2
	case c < 0xf0:
		n = 3
		if c == 0xe0 {
			lo = 0xa0
		} else if c == 0xed {
			hi = 0x9f
		}
	case c < 0xf5:
		n = 4
		if c == 0xf0 {
			lo = 0x90
		} else if c == 0xf4 {
			hi = 0x8f
		}
	default:
		return 0
	}
	if len(s) < n || s[1] < lo || s[1] > hi {
		return 0
	}
	for j := 2; j < n; j++ {
		if s[j] < 0x80 || s[j] > 0xbf {
			return 0
		}
	}
	return n
}

// checkShape reports whether a string value has the form its kind promises
// (see ValueKind): DECIMAL "-12.34", DATE "2006-01-02", DATETIME and
// TIMESTAMP "2006-01-02 15:04:05[.ffffff]", TIME "[-]HHH:MM:SS[.ffffff]".
// Other string kinds accept any text.
func checkShape[T string | []byte](k ValueKind, s T) bool {
	switch k {
	case VDecimal:
		i := 0
		if len(s) > 0 && s[0] == '-' {
			i++
		}
		j := scanDigits(s, i)
		if j == i {
			return false
		}
		if j == len(s) {
			return true
		}
		if s[j] != '.' {
			return false
		}
		return j+1 < len(s) && scanDigits(s, j+1) == len(s)
	case VDate:
		return len(s) == 10 && isDate(s)
	case VDateTime, VTimestamp:
		return len(s) >= 19 && isDate(s) && s[10] == ' ' && isClock(s[11:], 2)
	case VTime:
		if len(s) > 0 && s[0] == '-' {
			s = s[1:]
		}
		h := scanDigits(s, 0)
		return (h == 2 || h == 3) && isClock(s, h)
	}
	return true
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
	if len(s) == h+6 {
		return true
	}
	f := len(s) - (h + 7)
	return s[h+6] == '.' && f >= 1 && f <= 6 && scanDigits(s, h+7) == len(s)
}

// maxJSONDepth bounds the nesting of skipped values, so that hostile input
// cannot exhaust the stack.
const maxJSONDepth = 64

// jsonScanner reads JSON from one message. Its methods return errors that wrap
// ErrMalformed and give the byte offset.
type jsonScanner struct {
	data []byte
	pos  int
	base int // offset of data within the whole message, for errors
}

func (s *jsonScanner) errorf(format string, args ...any) error {
	return fmt.Errorf("at byte %d: %s: %w", s.base+s.pos, fmt.Sprintf(format, args...), ErrMalformed)
}

func (s *jsonScanner) ws() {
	if s.pos < len(s.data) && s.data[s.pos] > ' ' {
		return
	}
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte, 0 at the end.
func (s *jsonScanner) peek() byte {
	s.ws()
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// expect consumes c after white space.
func (s *jsonScanner) expect(c byte) error {
	if s.peek() != c {
		return s.unexpected(string(c))
	}
	s.pos++
	return nil
}

func (s *jsonScanner) unexpected(want string) error {
	if s.pos >= len(s.data) {
		return s.errorf("unexpected end, want %s", want)
	}
	return s.errorf("unexpected %q, want %s", s.data[s.pos], want)
}

// end checks that only white space is left.
func (s *jsonScanner) end() error {
	if s.peek() != 0 || s.pos < len(s.data) {
		return s.errorf("trailing data")
	}
	return nil
}

// next advances to the next member of an object or element of an array:
// it consumes the separating comma, or the closing byte and reports false.
// i is the index of the member about to be read.
func (s *jsonScanner) next(close byte, i int) (bool, error) {
	c := s.peek()
	if c == close {
		s.pos++
		return false, nil
	}
	if i == 0 {
		return true, nil
	}
	if c != ',' {
		return false, s.unexpected(fmt.Sprintf("',' or %q", close))
	}
	s.pos++
	return true, nil
}

// null consumes a null literal if one comes next.
func (s *jsonScanner) null() bool {
	if s.peek() == 'n' && len(s.data)-s.pos >= 4 && string(s.data[s.pos:s.pos+4]) == "null" {
		s.pos += 4
		return true
	}
	return false
}

// bool reads true or false.
func (s *jsonScanner) bool() (bool, error) {
	c := s.peek()
	rest := s.data[s.pos:]
	switch {
	case c == 't' && len(rest) >= 4 && string(rest[:4]) == "true":
		s.pos += 4
		return true, nil
	case c == 'f' && len(rest) >= 5 && string(rest[:5]) == "false":
		s.pos += 5
		return false, nil
	}
	return false, s.unexpected("true or false")
}

// rawString reads a string and returns its contents between the quotes,
// still escaped, and whether it holds any escape. It checks escapes, control
// characters and UTF-8.
func (s *jsonScanner) rawString() (raw []byte, escaped bool, err error) {
	if s.peek() != '"' {
		return nil, false, s.unexpected("string")
	}
	start := s.pos + 1
	d := s.data
	i := start
	for {
		// Eight bytes at a time up to the first byte that needs a look: the
		// lowest flag of special8 is always a real one.
		for i+8 <= len(d) {
			m := special8(binary.LittleEndian.Uint64(d[i:]))
			if m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i >= len(d) {
			break
		}
		c := d[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return d[start:i], escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(d) {
				s.pos = i
				return nil, false, s.errorf("unterminated string")
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				_, n := decodeU(d[i:])
				if n == 0 {
					s.pos = i
					return nil, false, s.errorf("bad \\u escape (lone surrogates are refused)")
				}
				i += n
			default:
				s.pos = i
				return nil, false, s.errorf("bad escape \\%c", d[i+1])
			}
		case c < 0x20:
			s.pos = i
			return nil, false, s.errorf("control character %#x in string", c)
		case c < utf8.RuneSelf:
			i++
		default:
			n := utf8Len(d[i:])
			if n == 0 {
				s.pos = i
				return nil, false, s.errorf("invalid UTF-8 in string")
			}
			i += n
		}
	}
	s.pos = len(d)
	return nil, false, s.errorf("unterminated string")
}

// decodeU decodes a \uXXXX escape, or a surrogate pair of two, at the start
// of b. It returns the rune and the bytes used, 0 when invalid.
func decodeU(b []byte) (rune, int) {
	r := hex4(b)
	if r < 0 {
		return 0, 0
	}
	switch {
	case r >= 0xd800 && r < 0xdc00:
		if len(b) < 12 || b[6] != '\\' || b[7] != 'u' {
			return 0, 0
		}
		r2 := hex4(b[6:])
		if r2 < 0xdc00 || r2 >= 0xe000 {
			return 0, 0
		}
		return 0x10000 + (r-0xd800)<<10 + (r2 - 0xdc00), 12
	case r >= 0xdc00 && r < 0xe000:
		return 0, 0
	}
	return r, 6
}

// hex4 reads the four hex digits of "\uXXXX" at the start of b, -1 if bad.
func hex4(b []byte) rune {
	if len(b) < 6 {
		return -1
	}
	var r rune
	for _, c := range b[2:6] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// unescape returns the text of a raw string checked by rawString.
func unescape(raw []byte, escaped bool) string {
	if !escaped {
		return string(raw)
	}
	return string(appendUnescaped(make([]byte, 0, len(raw)), raw))
}

func appendUnescaped(b, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			b = append(b, raw[i:j]...)
			i = j
			continue
		}
		switch raw[i+1] {
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, n := decodeU(raw[i:])
			b = utf8.AppendRune(b, r)
			i += n
			continue
		default: // '"', '\\', '/'
			b = append(b, raw[i+1])
		}
		i += 2
	}
	return b
}

// str reads a string value.
func (s *jsonScanner) str() (string, error) {
	raw, esc, err := s.rawString()
	if err != nil {
		return "", err
	}
	return unescape(raw, esc), nil
}

// member reads an object member's name and the colon after it, like key,
// first trying names[*next], the member the encoder writes there: matching
// it costs less than reading a string. The name returned is only valid until
// the next call; *next moves past the member read when it is in names.
func (s *jsonScanner) member(names []memberName, next *int, scratch *[]byte) ([]byte, error) {
	if i := *next; i < len(names) {
		if q := names[i].quoted; hasPrefix(s.data[s.pos:], q) {
			s.pos += len(q)
			*next = i + 1
			return names[i].name, nil
		}
	}
	k, err := s.key(scratch)
	if err != nil {
		return nil, err
	}
	for i, n := range names {
		if string(n.name) == string(k) {
			*next = i + 1
			break
		}
	}
	return k, nil
}

// memberName is a member's name, and "name": as the encoder writes it.
type memberName struct {
	name, quoted []byte
}

// memberNames returns the memberName of each of names, which need no escape.
func memberNames(names ...string) []memberName {
	m := make([]memberName, len(names))
	for i, n := range names {
		q := []byte(`"` + n + `":`)
		m[i] = memberName{name: q[1 : len(q)-2], quoted: q}
	}
	return m
}

// literal consumes text if it comes next, without white space before.
func (s *jsonScanner) literal(text string) bool {
	d := s.data[s.pos:]
	if len(d) < len(text) || string(d[:len(text)]) != text {
		return false
	}
	s.pos += len(text)
	return true
}

// hasPrefix reports whether b starts with prefix.
func hasPrefix(b, prefix []byte) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == string(prefix)
}

// key reads an object member's name and the colon after it. The name is
// only valid until the next call (it may point into scratch).
func (s *jsonScanner) key(scratch *[]byte) ([]byte, error) {
	raw, esc, err := s.rawString()
	if err != nil {
		return nil, err
	}
	if esc {
		*scratch = appendUnescaped((*scratch)[:0], raw)
		raw = *scratch
	}
	if err := s.expect(':'); err != nil {
		return nil, err
	}
	return raw, nil
}

// number reads a number by the JSON grammar and returns its text.
func (s *jsonScanner) number() ([]byte, error) {
	s.ws()
	d := s.data
	start := s.pos
	i := start
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		i = scanDigits(d, i)
	default:
		s.pos = i
		return nil, s.unexpected("number")
	}
	if i < len(d) && d[i] == '.' {
		j := scanDigits(d, i+1)
		if j == i+1 {
			s.pos = j
			return nil, s.unexpected("digit")
		}
		i = j
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := scanDigits(d, i)
		if j == i {
			s.pos = j
			return nil, s.unexpected("digit")
		}
		i = j
	}
	s.pos = i
	return d[start:i], nil
}

var errOutOfRange = errors.New("out of range")

// digits reads the integer the scanner is at when it is written plainly:
// 1 to 19 digits without a leading zero (so it fits a uint64), optionally
// after a minus sign, and followed by something that cannot continue a JSON
// number. It reports false, having consumed nothing, for anything else,
// which number and parseUint then read (or refuse) the long way.
func (s *jsonScanner) digits() (v uint64, neg, ok bool) {
	s.ws()
	d := s.data
	i := s.pos
	if i < len(d) && d[i] == '-' {
		neg = true
		i++
	}
	start := i
	for ; i < len(d) && i-start < 19; i++ {
		c := d[i] - '0'
		if c > 9 {
			break
		}
		v = v*10 + uint64(c)
	}
	n := i - start
	if n == 0 || n > 1 && d[start] == '0' {
		return 0, false, false
	}
	if i < len(d) {
		if c := d[i]; c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' {
			return 0, false, false
		}
	}
	s.pos = i
	return v, neg, true
}

// uint reads a non-negative integer that fits in max.
func (s *jsonScanner) uint(max uint64) (uint64, error) {
	pos := s.pos
	if v, neg, ok := s.digits(); ok && !neg && v <= max {
		return v, nil
	}
	s.pos = pos
	num, err := s.number()
	if err != nil {
		return 0, err
	}
	v, err := parseUint(num, max)
	if err != nil {
		return 0, s.errorf("number %.40s: %v", num, err)
	}
	return v, nil
}

// parseUint parses a JSON number that must be an integer in [0, max].
func parseUint(num []byte, max uint64) (uint64, error) {
	// Up to 19 digits cannot overflow a uint64: check against max once.
	if n := len(num); n > 0 && n < 20 {
		var v uint64
		for _, c := range num {
			if c < '0' || c > '9' {
				return parseUintSlow(num, max)
			}
			v = v*10 + uint64(c-'0')
		}
		if v > max {
			return 0, errOutOfRange
		}
		return v, nil
	}
	return parseUintSlow(num, max)
}

func parseUintSlow(num []byte, max uint64) (uint64, error) {
	if len(num) == 0 || num[0] == '-' && !(len(num) == 2 && num[1] == '0') {
		return 0, errors.New("want an unsigned integer")
	}
	if num[0] == '-' {
		return 0, nil // "-0"
	}
	var v uint64
	for _, c := range num {
		if c < '0' || c > '9' {
			return 0, errors.New("want an integer")
		}
		d := uint64(c - '0')
		if v > (max-d)/10 {
			return 0, errOutOfRange
		}
		v = v*10 + d
	}
	return v, nil
}

// parseInt parses a JSON number that must be an int64.
func parseInt(num []byte) (int64, error) {
	neg := len(num) > 0 && num[0] == '-'
	if neg {
		num = num[1:]
	}
	limit := uint64(math.MaxInt64)
	if neg {
		limit++
	}
	u, err := parseUint(num, limit)
	if err != nil {
		return 0, err
	}
	if neg {
		return -int64(u-1) - 1, nil // -(MaxInt64+1) without overflow
	}
	return int64(u), nil
}

// float parses a JSON number as a float32 (bits 32) or float64 value.
func parseFloat(num []byte, bits int) (float64, error) {
	f, err := strconv.ParseFloat(string(num), bits)
	if err != nil {
		return 0, errOutOfRange
	}
	return f, nil
}

// skip reads over one value of any type, checking its syntax.
func (s *jsonScanner) skip(depth int) error {
	if depth > maxJSONDepth {
		return s.errorf("nested more than %d levels", maxJSONDepth)
	}
	switch c := s.peek(); {
	case c == '{' || c == '[':
		close := byte('}')
		if c == '[' {
			close = ']'
		}
		s.pos++
		for i := 0; ; i++ {
			more, err := s.next(close, i)
			if err != nil {
				return err
			}
			if !more {
				return nil
			}
			if c == '{' {
				if _, _, err := s.rawString(); err != nil {
					return err
				}
				if err := s.expect(':'); err != nil {
					return err
				}
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
		}
	case c == '"':
		_, _, err := s.rawString()
		return err
	case c == 't' || c == 'f':
		_, err := s.bool()
		return err
	case c == 'n':
		if !s.null() {
			return s.unexpected("value")
		}
		return nil
	default:
		_, err := s.number()
		return err
	}
}

// rawValue reads over one value and returns its text.
func (s *jsonScanner) rawValue() (jsonSpan, error) {
	s.ws()
	start := s.pos
	if err := s.skip(0); err != nil {
		return jsonSpan{}, err
	}
	return jsonSpan{s.data[start:s.pos], s.base + start}, nil
}

// skipFast reads over one value and returns its text like rawValue, but
// checks only that brackets balance and strings end: the caller reads the
// text with a jsonScanner later, or knows it from the table cache.
func (s *jsonScanner) skipFast() (jsonSpan, error) {
	c := s.peek()
	if c != '{' && c != '[' {
		return s.rawValue()
	}
	d := s.data
	start := s.pos
	depth := 0
	for i := start; i < len(d); i++ {
		switch d[i] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				s.pos = i + 1
				return jsonSpan{d[start:s.pos], s.base + start}, nil
			}
		case '"':
			for {
				i = indexQuote(d, i+1)
				if i < 0 {
					s.pos = len(d)
					return jsonSpan{}, s.errorf("unterminated string")
				}
				bs := 0
				for d[i-1-bs] == '\\' {
					bs++
				}
				if bs%2 == 0 {
					break
				}
			}
		}
	}
	s.pos = len(d)
	return jsonSpan{}, s.errorf("unexpected end, want '}' or ']'")
}

// indexQuote returns the index of the first '"' in d from i on, -1 if none.
// Eight bytes at a time: the strings of a message are mostly short, where
// bytes.IndexByte costs more in its call than in its search.
func indexQuote(d []byte, i int) int {
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(d); i += 8 {
		x := binary.LittleEndian.Uint64(d[i:]) ^ '"'*lsb
		if m := (x - lsb) &^ x & msb; m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for ; i < len(d); i++ {
		if d[i] == '"' {
			return i
		}
	}
	return -1
}
