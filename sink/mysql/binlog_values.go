package mysql

import (
	"encoding/binary"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/rowcast/rowcast/pipeline"
)

// The values of row images in the server's binary row format, encoded from
// the changelog's (sql/field.cc): ok is false wherever a value cannot be
// written as the replica's column holds it, and its rows then go as SQL.

// appendValue appends v in the column's binary format; ok is false when v
// is not of the column's kind or does not fit it.
func (c *binCol) appendValue(b []byte, v any) ([]byte, bool) {
	switch c.kind {
	case pipeline.VInt, pipeline.VUint:
		return c.appendInt(b, v)
	case pipeline.VFloat, pipeline.VDouble:
		return c.appendFloat(b, v)
	case pipeline.VBytes:
		return c.appendBytes(b, v)
	case pipeline.VString, pipeline.VJSON, pipeline.VDecimal, pipeline.VDate, pipeline.VDateTime,
		pipeline.VTimestamp, pipeline.VTime, pipeline.VEnum, pipeline.VSet:
		s, ok := v.(string)
		if !ok {
			return b, false
		}
		return c.appendText(b, s)
	case pipeline.VYear:
		return appendYear(b, v)
	case pipeline.VBit:
		return c.appendBit(b, v)
	}
	return b, false
}

func (c *binCol) appendInt(b []byte, v any) ([]byte, bool) {
	var u uint64
	switch x := v.(type) {
	case int64:
		if !c.fitsInt(x) {
			return b, false
		}
		u = uint64(x)
	case uint64:
		if !c.fitsUint(x) {
			return b, false
		}
		u = x
	default:
		return b, false
	}
	return appendLE(b, u, c.width), true
}

func (c *binCol) appendFloat(b []byte, v any) ([]byte, bool) {
	f, ok := v.(float64)
	if !ok {
		return b, false
	}
	if c.typ == tFloat {
		return binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(f))), true
	}
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(f)), true
}

func (c *binCol) appendBytes(b []byte, v any) ([]byte, bool) {
	s, ok := v.([]byte)
	if !ok || len(s) > c.maxBytes {
		return b, false
	}
	return append(c.appendLen(b, len(s)), s...), true
}

// appendYear writes YEAR 0000 as 0, the others as years since 1900.
func appendYear(b []byte, v any) ([]byte, bool) {
	y, ok := v.(int64)
	switch {
	case !ok:
		return b, false
	case y == 0:
		return append(b, 0), true
	case y >= 1901 && y <= 2155:
		return append(b, byte(y-1900)), true
	}
	return b, false
}

func (c *binCol) appendBit(b []byte, v any) ([]byte, bool) {
	x, ok := v.(uint64)
	if !ok || (c.prec < 64 && x>>c.prec != 0) {
		return b, false
	}
	return appendBE(b, x, c.width), true
}

// appendText appends a value the changelog holds as text.
func (c *binCol) appendText(b []byte, s string) ([]byte, bool) {
	switch c.kind {
	case pipeline.VString, pipeline.VJSON:
		if len(s) > c.maxBytes || !c.charsFit(s) {
			return b, false
		}
		return append(c.appendLen(b, len(s)), s...), true
	case pipeline.VDecimal:
		return appendDecimal(b, s, c.prec, c.scale)
	case pipeline.VDate:
		return appendDate(b, s)
	case pipeline.VDateTime:
		return appendDatetime2(b, s, c.scale)
	case pipeline.VTimestamp:
		return appendTimestamp2(b, s, c.scale)
	case pipeline.VTime:
		return appendTime2(b, s, c.scale)
	case pipeline.VEnum:
		return c.appendEnum(b, s)
	case pipeline.VSet:
		return c.appendSet(b, s)
	}
	return b, false
}

func appendDate(b []byte, s string) ([]byte, bool) {
	y, m, d, ok := parseDate(s)
	if !ok || len(s) != 10 {
		return b, false
	}
	x := uint32(d) | uint32(m)<<5 | uint32(y)<<9
	return append(b, byte(x), byte(x>>8), byte(x>>16)), true
}

// appendEnum writes a member's number (from 1); "" is the error value 0 a
// non-strict master stored.
func (c *binCol) appendEnum(b []byte, s string) ([]byte, bool) {
	idx := c.member(s) + 1
	if idx == 0 && s != "" {
		return b, false
	}
	return appendLE(b, uint64(idx), c.width), true
}

// appendSet writes the bits of the members listed in s.
func (c *binCol) appendSet(b []byte, s string) ([]byte, bool) {
	var bits uint64
	for s != "" {
		part, rest, _ := strings.Cut(s, ",")
		i := c.member(part)
		if i < 0 {
			return b, false
		}
		bits |= 1 << i
		s = rest
	}
	return appendLE(b, bits, c.width), true
}

// member is the index of s among the column's members, -1 when it is none.
func (c *binCol) member(s string) int {
	for i, m := range c.members {
		if m == s {
			return i
		}
	}
	return -1
}

func (c *binCol) fitsInt(x int64) bool {
	if c.unsigned {
		return x >= 0 && (c.width == 8 || x < 1<<(8*c.width))
	}
	if c.width == 8 {
		return true
	}
	lim := int64(1) << (8*c.width - 1)
	return x >= -lim && x < lim
}

func (c *binCol) fitsUint(x uint64) bool {
	if c.unsigned {
		return c.width == 8 || x < 1<<(8*c.width)
	}
	return x < 1<<(8*c.width-1)
}

// charsFit checks a character string against the column: valid UTF-8, no
// 4-byte character in a utf8mb3 column, at most maxChars characters.
func (c *binCol) charsFit(s string) bool {
	if isASCII(s) {
		return c.maxChars <= 0 || len(s) <= c.maxChars
	}
	if !utf8.ValidString(s) {
		return false
	}
	n, ok := c.countChars(s)
	return ok && (c.maxChars <= 0 || n <= c.maxChars)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// countChars counts the characters of valid UTF-8 s; ok is false for a
// 4-byte character in a utf8mb3 column.
func (c *binCol) countChars(s string) (n int, ok bool) {
	for _, r := range s {
		if c.mb3 && r > 0xffff {
			return n, false
		}
		n++
	}
	return n, true
}

func (c *binCol) appendLen(b []byte, n int) []byte { return appendLE(b, uint64(n), c.width) }

// appendLE appends the n low bytes of x, little-endian.
func appendLE(b []byte, x uint64, n int) []byte {
	for i := 0; i < n; i++ {
		b = append(b, byte(x>>(8*i)))
	}
	return b
}

// digits parses s[i:i+n] as a decimal number.
func digits(s string, i, n int) (int, bool) {
	if i+n > len(s) {
		return 0, false
	}
	x := 0
	for _, c := range []byte(s[i : i+n]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		x = x*10 + int(c-'0')
	}
	return x, true
}

func parseDate(s string) (y, m, d int, ok bool) {
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return 0, 0, 0, false
	}
	y, ok1 := digits(s, 0, 4)
	m, ok2 := digits(s, 5, 2)
	d, ok3 := digits(s, 8, 2)
	return y, m, d, ok1 && ok2 && ok3 && validDate(y, m, d)
}

// validDate reports a date row events may carry. A day the month does not
// have (2021-02-30, as ALLOW_INVALID_DATES lets a master store) goes as SQL,
// which refuses it as before; zero parts are written as they are, as SQL
// writes them.
func validDate(y, m, d int) bool {
	return m <= 12 && d <= 31 && (m == 0 || d <= daysIn(y, m))
}

// parseClock parses "hh:mm:ss[.ffffff]" at s[i:] (hours of width hw) and
// returns the fraction in microseconds; ok is false if the fraction has
// more digits than fsp (the SQL path would round it).
func parseClock(s string, i, hw, fsp int) (h, m, sec, frac int, ok bool) {
	if h, m, sec, ok = parseHMS(s, i, hw); !ok {
		return 0, 0, 0, 0, false
	}
	if frac, ok = parseFrac(s, i+hw+6, fsp); !ok {
		return 0, 0, 0, 0, false
	}
	return h, m, sec, frac, true
}

// parseHMS parses "hh:mm:ss" at s[i:], hours of width hw.
func parseHMS(s string, i, hw int) (h, m, sec int, ok bool) {
	h, ok1 := digits(s, i, hw)
	i += hw
	if !ok1 || i+6 > len(s) || s[i] != ':' || s[i+3] != ':' {
		return 0, 0, 0, false
	}
	m, ok2 := digits(s, i+1, 2)
	sec, ok3 := digits(s, i+4, 2)
	if !ok2 || !ok3 || m > 59 || sec > 59 {
		return 0, 0, 0, false
	}
	return h, m, sec, true
}

// parseFrac parses the rest of s from i, "" or ".f" of at most fsp digits,
// in microseconds.
func parseFrac(s string, i, fsp int) (int, bool) {
	if i == len(s) {
		return 0, true
	}
	n := len(s) - i - 1
	if s[i] != '.' || n < 1 || n > fsp {
		return 0, false
	}
	f, ok := digits(s, i+1, n)
	if !ok {
		return 0, false
	}
	for ; n < 6; n++ {
		f *= 10
	}
	return f, true
}

// appendFrac appends the fractional part as MariaDB's *2 temporal types
// store it: (fsp+1)/2 big-endian bytes.
func appendFrac(b []byte, frac, fsp int) []byte {
	switch fsp {
	case 1, 2:
		return append(b, byte(frac/10000))
	case 3, 4:
		return appendBE(b, uint64(frac/100), 2)
	case 5, 6:
		return appendBE(b, uint64(frac), 3)
	}
	return b
}

// parseDateTime parses "YYYY-MM-DD hh:mm:ss[.f]" with at most fsp
// fractional digits; the fraction is in microseconds.
func parseDateTime(s string, fsp int) (y, mo, d, h, mi, sec, frac int, ok bool) {
	if y, mo, d, ok = parseDate(s); !ok || len(s) < 19 || s[10] != ' ' {
		return 0, 0, 0, 0, 0, 0, 0, false
	}
	if h, mi, sec, frac, ok = parseClock(s, 11, 2, fsp); !ok || h > 23 {
		return 0, 0, 0, 0, 0, 0, 0, false
	}
	return y, mo, d, h, mi, sec, frac, true
}

func appendDatetime2(b []byte, s string, fsp int) ([]byte, bool) {
	y, mo, d, h, mi, sec, frac, ok := parseDateTime(s, fsp)
	if !ok {
		return b, false
	}
	ym := uint64(y*13 + mo)
	ymd := ym<<5 | uint64(d)
	hms := uint64(h<<12 | mi<<6 | sec)
	intPart := ymd<<17 | hms
	b = appendBE(b, intPart+0x8000000000, 5)
	return appendFrac(b, frac, fsp), true
}

// appendTimestamp2 writes a UTC "YYYY-MM-DD hh:mm:ss[.f]" as seconds since
// the epoch; the zero timestamp is 0.
func appendTimestamp2(b []byte, s string, fsp int) ([]byte, bool) {
	y, mo, d, h, mi, sec, frac, ok := parseDateTime(s, fsp)
	if !ok {
		return b, false
	}
	secs, ok := epochSeconds(y, mo, d, h, mi, sec, frac)
	if !ok {
		return b, false
	}
	b = appendBE(b, uint64(secs), 4)
	return appendFrac(b, frac, fsp), true
}

// epochSeconds is a UTC time as a TIMESTAMP holds it, seconds since the
// epoch, 0 for the zero timestamp; ok is false outside TIMESTAMP's range.
func epochSeconds(y, mo, d, h, mi, sec, frac int) (int64, bool) {
	if y == 0 && mo == 0 && d == 0 {
		return 0, h == 0 && mi == 0 && sec == 0 && frac == 0
	}
	if mo == 0 || d == 0 || d > daysIn(y, mo) {
		return 0, false
	}
	secs := daysFromCivil(y, mo, d)*86400 + int64(h*3600+mi*60+sec)
	return secs, secs > 0 && secs <= math.MaxInt32
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		// MariaDB has no 0000-02-29 (1292), though the proleptic
		// Gregorian year 0 is a leap year.
		if y != 0 && y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the number of days from 1970-01-01 to y-m-d (proleptic
// Gregorian).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// appendTime2 writes "[-]H..H:MM:SS[.f]" as MariaDB's TIME2.
func appendTime2(b []byte, s string, fsp int) ([]byte, bool) {
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	hw := strings.IndexByte(s, ':')
	if hw < 2 || hw > 3 {
		return b, false
	}
	h, mi, sec, frac, ok := parseClock(s, 0, hw, fsp)
	if !ok || h > 838 {
		return b, false
	}
	packed := int64(h<<12|mi<<6|sec)<<24 + int64(frac)
	if neg {
		packed = -packed
	}
	return appendTime2Packed(b, packed, fsp), true
}

// appendTime2Packed writes a packed TIME (hours, minutes and seconds above
// 24 bits of microseconds, negated when negative) as TIME2 of fsp digits.
func appendTime2Packed(b []byte, packed int64, fsp int) []byte {
	intPart := packed >> 24
	fracPart := packed % (1 << 24)
	switch fsp {
	case 0:
		return appendBE(b, uint64(intPart+0x800000), 3)
	case 1, 2:
		b = appendBE(b, uint64(intPart+0x800000), 3)
		return append(b, byte(int8(fracPart/10000)))
	case 3, 4:
		b = appendBE(b, uint64(intPart+0x800000), 3)
		return appendBE(b, uint64(uint16(int16(fracPart/100))), 2)
	}
	return appendBE(b, uint64(packed+0x800000000000), 6)
}

// appendDecimal writes a DECIMAL(prec, scale) in MySQL's binary format
// (decimal2bin). ok is false when s is not a plain decimal number or has
// more digits than the column holds, before or after the point.
func appendDecimal(b []byte, s string, prec, scale int) ([]byte, bool) {
	neg, ip, fp, ok := splitDecimal(s)
	intg := prec - scale
	if !ok || len(ip) > intg || len(fp) > scale {
		return b, false
	}
	start := len(b)
	b, ok = appendIntDigits(b, ip, intg)
	if ok {
		b, ok = appendFracDigits(b, fp, scale)
	}
	if !ok || len(b) == start {
		return b[:start], false
	}
	signDecimal(b[start:], neg)
	return b, true
}

// splitDecimal splits a decimal number into its sign, its integer digits
// without leading zeros and its fraction's digits (not checked yet).
func splitDecimal(s string) (neg bool, ip, fp string, ok bool) {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	ip, fp, _ = strings.Cut(s, ".")
	if ip == "" && fp == "" {
		return false, "", "", false
	}
	return neg, strings.TrimLeft(ip, "0"), fp, true
}

// appendIntDigits appends the integer part ip as intg digits (zeros before
// it): the leftover group of intg%9 digits first, then groups of nine.
func appendIntDigits(b []byte, ip string, intg int) ([]byte, bool) {
	from := len(ip) - intg // where in ip the intg digits start
	lead := intg % 9
	if lead > 0 {
		x, ok := digitGroup(ip, from, lead)
		if !ok {
			return b, false
		}
		b = appendBE(b, x, digBytes[lead])
	}
	for i := lead; i < intg; i += 9 {
		x, ok := digitGroup(ip, from+i, 9)
		if !ok {
			return b, false
		}
		b = appendBE(b, x, 4)
	}
	return b, true
}

// appendFracDigits appends the fraction fp as scale digits (zeros after
// it): groups of nine, then the leftover group.
func appendFracDigits(b []byte, fp string, scale int) ([]byte, bool) {
	full := scale / 9 * 9
	for i := 0; i < full; i += 9 {
		x, ok := digitGroup(fp, i, 9)
		if !ok {
			return b, false
		}
		b = appendBE(b, x, 4)
	}
	if rest := scale - full; rest > 0 {
		x, ok := digitGroup(fp, full, rest)
		if !ok {
			return b, false
		}
		b = appendBE(b, x, digBytes[rest])
	}
	return b, true
}

// digitGroup reads the n digits of s from position from as a number; the
// positions outside s are zeros.
func digitGroup(s string, from, n int) (uint64, bool) {
	var x uint64
	for i := from; i < from+n; i++ {
		c := byte('0')
		if i >= 0 && i < len(s) {
			c = s[i]
		}
		if c < '0' || c > '9' {
			return 0, false
		}
		x = x*10 + uint64(c-'0')
	}
	return x, true
}

// signDecimal sets the sign of decimal2bin's digits d: a negative number's
// bytes are inverted (-0 is 0), and the first byte's top bit flipped.
func signDecimal(d []byte, neg bool) {
	if neg && !allZero(d) {
		for i := range d {
			d[i] ^= 0xff
		}
	}
	d[0] ^= 0x80
}

func allZero(d []byte) bool {
	for _, c := range d {
		if c != 0 {
			return false
		}
	}
	return true
}

// digBytes is the storage of a group of n < 9 decimal digits.
var digBytes = [9]int{0, 1, 1, 2, 2, 3, 3, 4, 4}
