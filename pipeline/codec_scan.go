package pipeline

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"unicode/utf8"
)

// This file holds the jsonScanner, which reads JSON from one message for the
// msgDecoder: values, strings with their checks, numbers, and objects and
// arrays a member or element at a time (listReader).

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
	for i := start; i < len(d); {
		// Eight bytes at a time up to the first byte that needs a look: the
		// lowest flag of special8 is always a real one.
		if i+8 <= len(d) {
			m := special8(binary.LittleEndian.Uint64(d[i:]))
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		}
		c := d[i]
		n := 1
		switch {
		case c == '"':
			s.pos = i + 1
			return d[start:i], escaped, nil
		case c == '\\':
			escaped = true
			n = escapeLen(d[i:])
		case c < 0x20:
			n = 0
		case c >= utf8.RuneSelf:
			n = utf8Len(d[i:])
		}
		if n == 0 {
			s.pos = i
			return nil, false, s.badChar(d[i:])
		}
		i += n
	}
	s.pos = len(d)
	return nil, false, s.errorf("unterminated string")
}

// escapeLen returns the length of the valid escape b starts with, 0 if none.
func escapeLen(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
		_, n := decodeU(b)
		return n
	}
	return 0
}

// badChar says what is wrong with the escape or character b starts with.
func (s *jsonScanner) badChar(b []byte) error {
	switch c := b[0]; {
	case c == '\\' && len(b) < 2:
		return s.errorf("unterminated string")
	case c == '\\' && b[1] == 'u':
		return s.errorf("bad \\u escape (lone surrogates are refused)")
	case c == '\\':
		return s.errorf("bad escape \\%c", b[1])
	case c < 0x20:
		return s.errorf("control character %#x in string", c)
	}
	return s.errorf("invalid UTF-8 in string")
}

// decodeU decodes a \uXXXX escape, or a surrogate pair of two, at the start
// of b. It returns the rune and the bytes used, 0 when invalid.
func decodeU(b []byte) (rune, int) {
	r := hex4(b)
	switch {
	case r < 0 || r >= 0xdc00 && r < 0xe000:
		return 0, 0
	case r >= 0xd800 && r < 0xdc00:
		return decodeSurrogates(r, b)
	}
	return r, 6
}

// decodeSurrogates decodes the low surrogate escape after r, a high one.
func decodeSurrogates(r rune, b []byte) (rune, int) {
	if len(b) < 12 || b[6] != '\\' || b[7] != 'u' {
		return 0, 0
	}
	r2 := hex4(b[6:])
	if r2 < 0xdc00 || r2 >= 0xe000 {
		return 0, 0
	}
	return 0x10000 + (r-0xd800)<<10 + (r2 - 0xdc00), 12
}

// hex4 reads the four hex digits of "\uXXXX" at the start of b, -1 if bad.
func hex4(b []byte) rune {
	if len(b) < 6 {
		return -1
	}
	var r rune
	for _, c := range b[2:6] {
		v := unhex(c)
		if v < 0 {
			return -1
		}
		r = r<<4 | v
	}
	return r
}

// unhex is the value of the hex digit c, -1 if it is none.
func unhex(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// unescape returns the text of a raw string checked by rawString.
func unescape(raw []byte, escaped bool) string {
	if !escaped {
		return string(raw)
	}
	return string(appendUnescaped(make([]byte, 0, len(raw)), raw))
}

// appendUnescaped appends the text of raw, a string checked by rawString.
func appendUnescaped(b, raw []byte) []byte {
	for i := 0; i < len(raw); {
		j := i
		for j < len(raw) && raw[j] != '\\' {
			j++
		}
		b = append(b, raw[i:j]...)
		if j == len(raw) {
			break
		}
		var n int
		b, n = appendUnescape(b, raw[j:])
		i = j + n
	}
	return b
}

// unescapedLen is the length of the text of raw, a string checked by
// rawString: len(appendUnescaped(nil, raw)), without writing it.
func unescapedLen(raw []byte) int {
	n := 0
	for i := 0; i < len(raw); {
		j := bytes.IndexByte(raw[i:], '\\')
		if j < 0 {
			return n + len(raw) - i
		}
		n, i = n+j, i+j
		if raw[i+1] != 'u' {
			n, i = n+1, i+2
			continue
		}
		r, k := decodeU(raw[i:])
		if k == 0 { // not checked by rawString: only a capacity is lost
			return n + len(raw) - i
		}
		n, i = n+runeLen(r), i+k
	}
	return n
}

// runeLen is the length of utf8.AppendRune(nil, r): an invalid rune is
// written as utf8.RuneError.
func runeLen(r rune) int {
	if n := utf8.RuneLen(r); n > 0 {
		return n
	}
	return utf8.RuneLen(utf8.RuneError)
}

// appendUnescape appends the character of the escape esc starts with, which
// rawString checked, and returns the escape's length.
func appendUnescape(b, esc []byte) ([]byte, int) {
	switch esc[1] {
	case 'b':
		return append(b, '\b'), 2
	case 'f':
		return append(b, '\f'), 2
	case 'n':
		return append(b, '\n'), 2
	case 'r':
		return append(b, '\r'), 2
	case 't':
		return append(b, '\t'), 2
	case 'u':
		r, n := decodeU(esc)
		return utf8.AppendRune(b, r), n
	}
	return append(b, esc[1]), 2 // '"', '\\', '/'
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

// listReader holds the state of reading the members of an object or the
// elements of an array in turn with jsonScanner.more, as bufio.Scanner reads
// lines: more reports whether there is one more, and err, once more has said
// no, why (nil after the closing bracket).
type listReader struct {
	close byte
	n     int    // members or elements read
	name  []byte // objects: the member more read; its value comes next
	err   error
	// Objects: the members the encoder writes, in order, and room for an
	// unescaped name (see member).
	names   []memberName
	guess   int
	scratch []byte
}

// object starts reading the object at s's position.
func (s *jsonScanner) object(names []memberName) listReader {
	return listReader{close: '}', names: names, err: s.expect('{')}
}

// array starts reading the array at s's position.
func (s *jsonScanner) array() listReader {
	return listReader{close: ']', err: s.expect('[')}
}

// more advances l to the next member, reading its name and the colon, or to
// the next element. A member the encoder writes next, written as it writes
// it (,"name":, or "name": first), is one comparison.
func (s *jsonScanner) more(l *listReader) bool {
	if l.err != nil {
		return false
	}
	if l.close == '}' && l.guess < len(l.names) {
		m := &l.names[l.guess]
		q := m.listed
		if l.n == 0 {
			q = q[1:] // no comma before the first member
		}
		if hasPrefix(s.data[s.pos:], q) {
			s.pos += len(q)
			l.n++
			l.guess++
			l.name = m.name
			return true
		}
	}
	more, err := s.next(l.close, l.n)
	if err != nil || !more {
		l.err = err
		return false
	}
	l.n++
	if l.close == '}' {
		l.name, l.err = s.member(l.names, &l.guess, &l.scratch)
	}
	return l.err == nil
}

// fail ends the list with err, unless it is nil.
func (l *listReader) fail(err error) {
	if err != nil {
		l.err = err
	}
}

// memberName is a member's name, and "name": as the encoder writes it,
// also after the comma that separates it from the member before (listed).
type memberName struct {
	name, quoted, listed []byte
}

// memberNames returns the memberName of each of names, which need no escape.
func memberNames(names ...string) []memberName {
	m := make([]memberName, len(names))
	for i, n := range names {
		l := []byte(`,"` + n + `":`)
		m[i] = memberName{name: l[2 : len(l)-2], quoted: l[1:], listed: l}
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
	i, want := scanInteger(d, start)
	if want == "" {
		i, want = scanFraction(d, i)
	}
	if want == "" {
		i, want = scanExponent(d, i)
	}
	s.pos = i
	if want != "" {
		return nil, s.unexpected(want)
	}
	return d[start:i], nil
}

// scanInteger reads -?(0|[1-9][0-9]*) from d[i] and returns where it ends,
// or where it fails with what was wanted there.
func scanInteger(d []byte, i int) (int, string) {
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		return i + 1, ""
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		return scanDigits(d, i), ""
	}
	return i, "number"
}

// scanFraction reads (.[0-9]+)? from d[i], as scanInteger.
func scanFraction(d []byte, i int) (int, string) {
	if i >= len(d) || d[i] != '.' {
		return i, ""
	}
	j := scanDigits(d, i+1)
	if j == i+1 {
		return j, "digit"
	}
	return j, ""
}

// scanExponent reads ([eE][+-]?[0-9]+)? from d[i], as scanInteger.
func scanExponent(d []byte, i int) (int, string) {
	if i >= len(d) || d[i] != 'e' && d[i] != 'E' {
		return i, ""
	}
	i++
	if i < len(d) && (d[i] == '+' || d[i] == '-') {
		i++
	}
	j := scanDigits(d, i)
	if j == i {
		return j, "digit"
	}
	return j, ""
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
	if !plainInteger(d, start, i) {
		return 0, false, false
	}
	s.pos = i
	return v, neg, true
}

// plainInteger reports whether the digits d[start:end] are all of an
// integer as digits reads it: no leading zero, and nothing after them that
// could continue a number.
func plainInteger(d []byte, start, end int) bool {
	if end == start || end-start > 1 && d[start] == '0' {
		return false
	}
	if end == len(d) {
		return true
	}
	c := d[end]
	return !(c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E')
}

// uint reads a non-negative integer that fits in max.
func (s *jsonScanner) uint(max uint64) (uint64, error) { return s.uint64(max, "number") }

// uint64 reads a non-negative integer that fits in max; label names it in
// the error.
func (s *jsonScanner) uint64(max uint64, label any) (uint64, error) {
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
		return 0, s.errorf("%v %.40s: %v", label, num, err)
	}
	return v, nil
}

// int64 reads an integer that fits in an int64; label names it in the error.
func (s *jsonScanner) int64(label any) (int64, error) {
	pos := s.pos
	if v, neg, ok := s.digits(); ok && v <= math.MaxInt64 {
		if neg {
			return -int64(v), nil
		}
		return int64(v), nil
	}
	s.pos = pos
	num, err := s.number()
	if err != nil {
		return 0, err
	}
	v, err := parseInt(num)
	if err != nil {
		return 0, s.errorf("%v %.40s: %v", label, num, err)
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
	switch {
	case len(num) == 0 || num[0] == '-' && string(num) != "-0":
		return 0, errors.New("want an unsigned integer")
	case num[0] == '-':
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
	var err error
	switch c := s.peek(); c {
	case '{':
		l := s.object(nil)
		err = s.skipList(&l, depth)
	case '[':
		l := s.array()
		err = s.skipList(&l, depth)
	case '"':
		_, _, err = s.rawString()
	case 't', 'f':
		_, err = s.bool()
	case 'n':
		if !s.null() {
			err = s.unexpected("value")
		}
	default:
		_, err = s.number()
	}
	return err
}

// skipList reads over the members or elements of l.
func (s *jsonScanner) skipList(l *listReader, depth int) error {
	for s.more(l) {
		l.fail(s.skip(depth + 1))
	}
	return l.err
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
			if i = closingQuote(d, i); i < 0 {
				s.pos = len(d)
				return jsonSpan{}, s.errorf("unterminated string")
			}
		}
	}
	s.pos = len(d)
	return jsonSpan{}, s.errorf("unexpected end, want '}' or ']'")
}

// closingQuote returns the index of the quote that ends the string opened at
// d[open], -1 if none.
func closingQuote(d []byte, open int) int {
	for i := open; ; {
		if i = indexQuote(d, i+1); i < 0 {
			return -1
		}
		bs := 0
		for d[i-1-bs] == '\\' {
			bs++
		}
		if bs%2 == 0 {
			return i
		}
	}
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
