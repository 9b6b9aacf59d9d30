package mysql

import (
	"encoding/binary"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/rowcast/rowcast/pipeline"
)

// Row events for MariaDB's BINLOG statement (binlog.go): a format
// description, a TABLE_MAP built from the replica's own column definitions,
// and version-1 WRITE/UPDATE/DELETE_ROWS events whose images are encoded
// from the changelog's values in the server's binary row format (what a
// native replica's SQL thread receives). The format is MariaDB's
// (sql/log_event.h, sql/field.cc): binlog version 4, no event checksums.

// Binlog event type codes and column type codes.
const (
	evFormatDescription = 15
	evTableMap          = 19
	evWriteRowsV1       = 23
	evUpdateRowsV1      = 24
	evDeleteRowsV1      = 25

	tDecimalNew = 246
	tTiny       = 1
	tShort      = 2
	tLong       = 3
	tFloat      = 4
	tDouble     = 5
	tLongLong   = 8
	tInt24      = 9
	tDate       = 10
	tYear       = 13
	tVarchar    = 15
	tBit        = 16
	tTimestamp2 = 17
	tDatetime2  = 18
	tTime2      = 19
	tEnum       = 247
	tSet        = 248
	tBlob       = 252
	tString     = 254

	// Rows event flags.
	rowsStmtEnd      = 0x0001
	rowsNoFKChecks   = 0x0002
	eventHeaderBytes = 19
)

// fdePostHeader is the post-header length of every event type, as MariaDB
// 10.11 writes it in its format description (event types 1..171).
var fdePostHeader = func() []byte {
	b := make([]byte, 171)
	for typ, n := range map[int]byte{1: 56, 2: 13, 4: 8, 6: 18, 8: 4, 9: 4, 10: 4, 11: 4, 12: 18, 15: 228,
		17: 4, 18: 26, 19: 8, 23: 8, 24: 8, 25: 8, 26: 2, 30: 10, 31: 10, 32: 10, 39: 10, 40: 10, 41: 10,
		161: 4, 162: 19, 163: 4, 165: 13, 166: 8, 167: 8, 168: 8, 169: 10, 170: 10, 171: 10} {
		b[typ-1] = n
	}
	return b
}()

// appendHeader appends a common event header; size is the whole event's.
func appendHeader(b []byte, typ byte, serverID uint32, size int) []byte {
	b = binary.LittleEndian.AppendUint32(b, 0) // timestamp: not used when applying
	b = append(b, typ)
	b = binary.LittleEndian.AppendUint32(b, serverID)
	b = binary.LittleEndian.AppendUint32(b, uint32(size))
	b = binary.LittleEndian.AppendUint32(b, 0) // log_pos
	return binary.LittleEndian.AppendUint16(b, 0)
}

// formatDescription is the format description event a session must run
// before any row event: binlog version 4, the server's version string, no
// checksums (the algorithm byte is OFF; its 4-byte slot follows, unused).
func formatDescription(serverID uint32, version string) []byte {
	size := eventHeaderBytes + 2 + 50 + 4 + 1 + len(fdePostHeader) + 1 + 4
	b := appendHeader(make([]byte, 0, size), evFormatDescription, serverID, size)
	b = binary.LittleEndian.AppendUint16(b, 4)
	var v [50]byte
	copy(v[:49], version)
	b = append(b, v[:]...)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = append(b, eventHeaderBytes)
	b = append(b, fdePostHeader...)
	b = append(b, 0)             // checksum algorithm: OFF
	return append(b, 0, 0, 0, 0) // the checksum slot
}

// binCol is how one replica column is encoded in a row image.
type binCol struct {
	name     string
	kind     pipeline.ValueKind // the changelog's kind this column accepts
	typ      byte               // type code in the TABLE_MAP
	meta     []byte             // its metadata
	nullable bool
	unsigned bool
	width    int // integers: bytes; strings: the length prefix's bytes
	maxChars int // character strings: the declared length in characters
	maxBytes int // strings: the longest value in bytes
	mb3      bool
	prec     int // DECIMAL precision, BIT length
	scale    int // DECIMAL scale, temporal fractional digits
	members  []string
}

// binTable is a replica table whose rows can be sent as row events.
type binTable struct {
	db, name string
	cols     []binCol
	mapBody  []byte // the TABLE_MAP after its table id and flags
	key      []int  // the primary key's columns in column order, when the before images hold only them (nil: full images)
	refused  bool   // the server refused its row events: its rows go as SQL
}

func (t *binTable) buildMap() {
	b := append([]byte{byte(len(t.db))}, t.db...)
	b = append(b, 0, byte(len(t.name)))
	b = append(b, t.name...)
	b = append(b, 0)
	b = appendPacked(b, uint64(len(t.cols)))
	var meta []byte
	for _, c := range t.cols {
		b = append(b, c.typ)
		meta = append(meta, c.meta...)
	}
	b = appendPacked(b, uint64(len(meta)))
	b = append(b, meta...)
	nulls := make([]byte, (len(t.cols)+7)/8)
	for i, c := range t.cols {
		if c.nullable {
			nulls[i/8] |= 1 << (i % 8)
		}
	}
	t.mapBody = append(b, nulls...)
}

// appendTableMap appends the table's TABLE_MAP event under tableID.
func (t *binTable) appendTableMap(b []byte, tableID uint64, serverID uint32) []byte {
	size := eventHeaderBytes + 8 + len(t.mapBody)
	b = appendHeader(b, evTableMap, serverID, size)
	b = appendUint48(b, tableID)
	b = binary.LittleEndian.AppendUint16(b, 1)
	return append(b, t.mapBody...)
}

// startRows appends a rows event's header and post-header, with a size to
// patch by finishRows, and returns where the event starts. The columns of a
// before image (deletes, and the first of an update's two) are the primary
// key's when t.key is set; an after image has every column.
func (t *binTable) startRows(b []byte, typ byte, tableID uint64, serverID uint32, flags uint16) ([]byte, int) {
	start := len(b)
	b = appendHeader(b, typ, serverID, 0)
	b = appendUint48(b, tableID)
	b = binary.LittleEndian.AppendUint16(b, flags)
	n := len(t.cols)
	b = appendPacked(b, uint64(n))
	switch typ {
	case evWriteRowsV1:
		b = appendColumnBits(b, n, nil)
	case evDeleteRowsV1:
		b = appendColumnBits(b, n, t.key)
	default:
		b = appendColumnBits(b, n, t.key)
		b = appendColumnBits(b, n, nil)
	}
	return b, start
}

// appendColumnBits appends a rows event's bitmap of the n columns present
// in its images: those of only, or all when only is nil.
func appendColumnBits(b []byte, n int, only []int) []byte {
	at := len(b)
	for i := 0; i < (n+7)/8; i++ {
		m := byte(0xff)
		if only != nil {
			m = 0
		} else if rest := n - i*8; rest < 8 {
			m = byte(1)<<rest - 1
		}
		b = append(b, m)
	}
	for _, i := range only {
		b[at+i/8] |= 1 << (i % 8)
	}
	return b
}

// finishRows writes the event's size into its header.
func finishRows(b []byte, start int) []byte {
	binary.LittleEndian.PutUint32(b[start+9:], uint32(len(b)-start))
	return b
}

// appendImage appends one row image: the null bitmap, then every non-NULL
// value. ok is false when a value cannot be written as this replica column
// holds it (the caller then applies the rows as SQL, which reports it).
func (t *binTable) appendImage(b []byte, img []any) ([]byte, bool) {
	return t.appendColumns(b, img, nil)
}

// appendKeyImage appends a before image: the primary key's columns when
// t.key is set (the server reads no other column of it), else all of them.
func (t *binTable) appendKeyImage(b []byte, img []any) ([]byte, bool) {
	return t.appendColumns(b, img, t.key)
}

// appendColumns appends the image of the columns only lists (all when nil):
// a null bitmap of those columns, then their non-NULL values.
func (t *binTable) appendColumns(b []byte, img []any, only []int) ([]byte, bool) {
	if len(img) != len(t.cols) {
		return b, false
	}
	n := len(t.cols)
	if only != nil {
		n = len(only)
	}
	nb := len(b)
	for range (n + 7) / 8 {
		b = append(b, 0)
	}
	for j := range n {
		i := j
		if only != nil {
			i = only[j]
		}
		c := &t.cols[i]
		v := img[i]
		if v == nil {
			if !c.nullable {
				return b, false
			}
			b[nb+j/8] |= 1 << (j % 8)
			continue
		}
		var ok bool
		if b, ok = c.appendValue(b, v); !ok {
			return b, false
		}
	}
	return b, true
}

// appendValue appends v in the column's binary format; ok is false when v
// is not of the column's kind or does not fit it.
func (c *binCol) appendValue(b []byte, v any) ([]byte, bool) {
	switch c.kind {
	case pipeline.VInt, pipeline.VUint:
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
		for i := 0; i < c.width; i++ {
			b = append(b, byte(u>>(8*i)))
		}
		return b, true
	case pipeline.VFloat, pipeline.VDouble:
		f, ok := v.(float64)
		if !ok {
			return b, false
		}
		if c.typ == tFloat {
			return binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(f))), true
		}
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(f)), true
	case pipeline.VBytes:
		s, ok := v.([]byte)
		if !ok || len(s) > c.maxBytes {
			return b, false
		}
		return append(c.appendLen(b, len(s)), s...), true
	case pipeline.VString, pipeline.VJSON, pipeline.VDecimal, pipeline.VDate, pipeline.VDateTime,
		pipeline.VTimestamp, pipeline.VTime, pipeline.VEnum, pipeline.VSet:
		s, ok := v.(string)
		if !ok {
			return b, false
		}
		return c.appendText(b, s)
	case pipeline.VYear:
		y, ok := v.(int64)
		if !ok {
			return b, false
		}
		switch {
		case y == 0:
			return append(b, 0), true
		case y >= 1901 && y <= 2155:
			return append(b, byte(y-1900)), true
		}
		return b, false
	case pipeline.VBit:
		x, ok := v.(uint64)
		if !ok || (c.prec < 64 && x>>c.prec != 0) {
			return b, false
		}
		for i := c.width - 1; i >= 0; i-- {
			b = append(b, byte(x>>(8*i)))
		}
		return b, true
	}
	return b, false
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
		y, m, d, ok := parseDate(s)
		if !ok || len(s) != 10 {
			return b, false
		}
		x := uint32(d) | uint32(m)<<5 | uint32(y)<<9
		return append(b, byte(x), byte(x>>8), byte(x>>16)), true
	case pipeline.VDateTime:
		return appendDatetime2(b, s, c.scale)
	case pipeline.VTimestamp:
		return appendTimestamp2(b, s, c.scale)
	case pipeline.VTime:
		return appendTime2(b, s, c.scale)
	case pipeline.VEnum:
		idx := -1
		for i, m := range c.members {
			if m == s {
				idx = i + 1
				break
			}
		}
		if idx < 0 {
			if s != "" {
				return b, false
			}
			idx = 0 // the error value a non-strict master stored
		}
		for i := 0; i < c.width; i++ {
			b = append(b, byte(idx>>(8*i)))
		}
		return b, true
	case pipeline.VSet:
		var bits uint64
		for s != "" {
			part, rest, _ := strings.Cut(s, ",")
			found := false
			for i, m := range c.members {
				if m == part {
					bits |= 1 << i
					found = true
					break
				}
			}
			if !found {
				return b, false
			}
			s = rest
		}
		for i := 0; i < c.width; i++ {
			b = append(b, byte(bits>>(8*i)))
		}
		return b, true
	}
	return b, false
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
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return c.maxChars <= 0 || len(s) <= c.maxChars
	}
	if !utf8.ValidString(s) {
		return false
	}
	n := 0
	for _, r := range s {
		if c.mb3 && r > 0xffff {
			return false
		}
		n++
	}
	return c.maxChars <= 0 || n <= c.maxChars
}

func (c *binCol) appendLen(b []byte, n int) []byte {
	for i := 0; i < c.width; i++ {
		b = append(b, byte(n>>(8*i)))
	}
	return b
}

// appendPacked appends a length-encoded integer.
func appendPacked(b []byte, n uint64) []byte {
	switch {
	case n < 251:
		return append(b, byte(n))
	case n < 1<<16:
		return append(b, 0xfc, byte(n), byte(n>>8))
	case n < 1<<24:
		return append(b, 0xfd, byte(n), byte(n>>8), byte(n>>16))
	}
	return binary.LittleEndian.AppendUint64(append(b, 0xfe), n)
}

func appendUint48(b []byte, n uint64) []byte {
	return append(b, byte(n), byte(n>>8), byte(n>>16), byte(n>>24), byte(n>>32), byte(n>>40))
}

func appendBE(b []byte, x uint64, n int) []byte {
	for i := n - 1; i >= 0; i-- {
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
	// A day the month does not have (2021-02-30, as ALLOW_INVALID_DATES
	// lets a master store) goes as SQL, which refuses it as before; zero
	// parts are written as they are, as SQL writes them.
	return y, m, d, ok1 && ok2 && ok3 && m <= 12 && d <= 31 && (m == 0 || d <= daysIn(y, m))
}

// parseClock parses "hh:mm:ss[.ffffff]" at s[i:] (hours of width hw) and
// returns the fraction in microseconds; ok is false if the fraction has
// more digits than fsp (the SQL path would round it).
func parseClock(s string, i, hw, fsp int) (h, m, sec, frac int, ok bool) {
	h, ok1 := digits(s, i, hw)
	i += hw
	if !ok1 || i+6 > len(s) || s[i] != ':' || s[i+3] != ':' {
		return 0, 0, 0, 0, false
	}
	m, ok2 := digits(s, i+1, 2)
	sec, ok3 := digits(s, i+4, 2)
	if !ok2 || !ok3 || m > 59 || sec > 59 {
		return 0, 0, 0, 0, false
	}
	i += 6
	if i == len(s) {
		return h, m, sec, 0, true
	}
	n := len(s) - i - 1
	if s[i] != '.' || n < 1 || n > fsp {
		return 0, 0, 0, 0, false
	}
	f, ok4 := digits(s, i+1, n)
	if !ok4 {
		return 0, 0, 0, 0, false
	}
	for ; n < 6; n++ {
		f *= 10
	}
	return h, m, sec, f, true
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
	var secs int64
	if y == 0 && mo == 0 && d == 0 {
		if h != 0 || mi != 0 || sec != 0 || frac != 0 {
			return b, false
		}
	} else {
		if mo == 0 || d == 0 || d > daysIn(y, mo) {
			return b, false
		}
		secs = daysFromCivil(y, mo, d)*86400 + int64(h*3600+mi*60+sec)
		if secs <= 0 || secs > math.MaxInt32 {
			return b, false
		}
	}
	b = appendBE(b, uint64(secs), 4)
	return appendFrac(b, frac, fsp), true
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
	intPart := packed >> 24
	fracPart := packed % (1 << 24)
	switch fsp {
	case 0:
		return appendBE(b, uint64(intPart+0x800000), 3), true
	case 1, 2:
		b = appendBE(b, uint64(intPart+0x800000), 3)
		return append(b, byte(int8(fracPart/10000))), true
	case 3, 4:
		b = appendBE(b, uint64(intPart+0x800000), 3)
		return appendBE(b, uint64(uint16(int16(fracPart/100))), 2), true
	}
	return appendBE(b, uint64(packed+0x800000000000), 6), true
}

// appendDecimal writes a DECIMAL(prec, scale) in MySQL's binary format
// (decimal2bin). ok is false when s is not a plain decimal number or has
// more digits than the column holds, before or after the point.
func appendDecimal(b []byte, s string, prec, scale int) ([]byte, bool) {
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	ip, fp, _ := strings.Cut(s, ".")
	if ip == "" && fp == "" {
		return b, false
	}
	for len(ip) > 0 && ip[0] == '0' {
		ip = ip[1:]
	}
	intg := prec - scale
	if len(ip) > intg || len(fp) > scale {
		return b, false
	}
	// digit i of the integer part, counted from the left of its intg
	// positions (zeros before ip), and of the fraction (zeros after fp)
	intDigit := func(i int) (uint64, bool) {
		j := i - (intg - len(ip))
		if j < 0 {
			return 0, true
		}
		c := ip[j]
		return uint64(c - '0'), c >= '0' && c <= '9'
	}
	fracDigit := func(i int) (uint64, bool) {
		if i >= len(fp) {
			return 0, true
		}
		c := fp[i]
		return uint64(c - '0'), c >= '0' && c <= '9'
	}
	group := func(digit func(int) (uint64, bool), from, n int) (uint64, bool) {
		var x uint64
		for i := from; i < from+n; i++ {
			d, ok := digit(i)
			if !ok {
				return 0, false
			}
			x = x*10 + d
		}
		return x, true
	}
	start := len(b)
	lead := intg % 9
	if lead > 0 {
		x, ok := group(intDigit, 0, lead)
		if !ok {
			return b[:start], false
		}
		b = appendBE(b, x, digBytes[lead])
	}
	for i := lead; i < intg; i += 9 {
		x, ok := group(intDigit, i, 9)
		if !ok {
			return b[:start], false
		}
		b = appendBE(b, x, 4)
	}
	full := scale / 9 * 9
	for i := 0; i < full; i += 9 {
		x, ok := group(fracDigit, i, 9)
		if !ok {
			return b[:start], false
		}
		b = appendBE(b, x, 4)
	}
	if rest := scale - full; rest > 0 {
		x, ok := group(fracDigit, full, rest)
		if !ok {
			return b[:start], false
		}
		b = appendBE(b, x, digBytes[rest])
	}
	if len(b) == start {
		return b, false
	}
	var mask byte
	if neg {
		mask = 0xff
		zero := true
		for _, c := range b[start:] {
			if c != 0 {
				zero = false
				break
			}
		}
		if zero {
			mask = 0 // -0 is 0
		}
	}
	for i := start; i < len(b); i++ {
		b[i] ^= mask
	}
	b[start] ^= 0x80
	return b, true
}

// digBytes is the storage of a group of n < 9 decimal digits.
var digBytes = [9]int{0, 1, 1, 2, 2, 3, 3, 4, 4}
