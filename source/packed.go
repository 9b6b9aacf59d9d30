package source

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// rowsDecoder has go-mysql read DATE, TIME2, DATETIME2, TIMESTAMP2 and short
// DECIMAL columns packed (see decode.go); the functions here turn those bytes
// into exactly the text go-mysql's own decoding gives, byte for byte, which
// TestPackedMatchesGoMySQL checks. Why: docs/DESIGN.md, "Packed values".

// packedLen is the byte length of a column that rowsDecoder hands over packed,
// or 0 when go-mysql decodes the column itself.
func packedLen(typ byte, meta uint16) int {
	switch typ {
	case mysql.MYSQL_TYPE_DATE:
		return 3
	case mysql.MYSQL_TYPE_TIME2, mysql.MYSQL_TYPE_DATETIME2, mysql.MYSQL_TYPE_TIMESTAMP2:
		if meta <= 6 {
			return temporalLen(typ) + int(meta+1)/2
		}
	case mysql.MYSQL_TYPE_NEWDECIMAL:
		return packedDecimalLen(int(meta>>8), int(meta&0xff))
	}
	return 0
}

// temporalLen is the length of TIME2, DATETIME2 or TIMESTAMP2 without the
// fraction.
func temporalLen(typ byte) int {
	switch typ {
	case mysql.MYSQL_TYPE_TIME2:
		return 3
	case mysql.MYSQL_TYPE_DATETIME2:
		return 5
	}
	return 4
}

// packedDecimalLen is the length of a DECIMAL(prec,scale) of up to 8 bytes,
// 0 for a longer or an invalid one.
func packedDecimalLen(prec, scale int) int {
	if prec < 1 || prec > 65 || scale > prec || scale > 30 {
		return 0
	}
	if n := decimalLen(prec, scale); n <= 8 {
		return n
	}
	return 0
}

// formatPacked renders the packed bytes p of a column of type typ and
// metadata meta (fsp, or DECIMAL precision<<8 | scale) as go-mysql does; TIME
// always carries fsp digits, as timeConv makes go-mysql's strings do.
func formatPacked(typ byte, meta uint16, p uint64) (string, error) {
	var buf [48]byte
	var b []byte
	switch typ {
	case mysql.MYSQL_TYPE_DATE:
		b = appendDate(buf[:0], p)
	case mysql.MYSQL_TYPE_TIME2:
		b = appendTime2(buf[:0], p, int(meta))
	case mysql.MYSQL_TYPE_DATETIME2:
		b = appendDatetime2(buf[:0], p, int(meta))
	case mysql.MYSQL_TYPE_TIMESTAMP2:
		b = appendTimestamp2(buf[:0], p, int(meta))
	case mysql.MYSQL_TYPE_NEWDECIMAL:
		var err error
		if b, err = appendDecimal(buf[:0], p, int(meta>>8), int(meta&0xff)); err != nil {
			return "", err
		}
	}
	return string(b), nil
}

// DECIMAL's binary form (strings/decimal.c, decimal2bin): the integer and the
// fraction digits in words of 9 digits, 4 bytes each, big endian, plus the
// remaining digits in the fewest bytes; negative values have every byte
// inverted, and the first byte's top bit is flipped (set for positive).
var decimalBytes = [10]int{0, 1, 1, 2, 2, 3, 3, 4, 4, 4}

func decimalLen(prec, scale int) int {
	intg := prec - scale
	return intg/9*4 + decimalBytes[intg%9] + scale/9*4 + decimalBytes[scale%9]
}

var errDecimalWord = errors.New("invalid DECIMAL bytes: a 9-digit word over 999999999")

// appendDecimal follows decodeDecimal. It stays one function (word inlines)
// as it runs for every DECIMAL value read.
func appendDecimal(b []byte, p uint64, prec, scale int) ([]byte, error) {
	intg := prec - scale
	n := decimalLen(prec, scale)
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], p)
	data := buf[8-n:]
	var mask byte
	if data[0]&0x80 == 0 {
		mask = 0xff
		b = append(b, '-')
	}
	data[0] ^= 0x80
	pos := 0
	word := func(size int) uint64 {
		var v uint64
		for _, c := range data[pos : pos+size] {
			v = v<<8 | uint64(c^mask)
		}
		pos += size
		return v
	}
	lead := true
	if v := word(decimalBytes[intg%9]); v != 0 {
		lead = false
		b = strconv.AppendUint(b, v, 10)
	}
	for range intg / 9 {
		switch v := word(4); {
		case lead && v == 0:
		case lead:
			lead = false
			b = strconv.AppendUint(b, v, 10)
		case v > 999999999:
			return nil, errDecimalWord
		default:
			b = appendPad(b, v, 9)
		}
	}
	if lead {
		b = append(b, '0')
	}
	if pos == n {
		return b, nil
	}
	b = append(b, '.')
	for range scale / 9 {
		v := word(4)
		if v > 999999999 {
			return nil, errDecimalWord
		}
		b = appendPad(b, v, 9)
	}
	if rest := scale % 9; rest > 0 {
		b = appendPad(b, word(decimalBytes[rest]), rest)
	}
	return b, nil
}

// appendDate: 3 bytes, little endian, day (5 bits), month (4), year.
func appendDate(b []byte, p uint64) []byte {
	v := (p&0xff)<<16 | p&0xff00 | p>>16
	if v == 0 {
		return append(b, "0000-00-00"...)
	}
	b = appendPad(b, v/(16*32), 4)
	b = append(b, '-')
	b = appendPad(b, v/32%16, 2)
	b = append(b, '-')
	return appendPad(b, v%32, 2)
}

// splitFrac splits the packed bytes of a DATETIME2 or TIMESTAMP2 into the
// integer part and the fraction in microseconds as go-mysql scales it (a
// fraction byte for fsp 1-2 counts hundredths, two bytes for fsp 3-4 count
// ten-thousandths).
func splitFrac(p uint64, dec int) (uint64, int64) {
	switch dec {
	case 1, 2:
		return p >> 8, int64(p&0xff) * 10000
	case 3, 4:
		return p >> 16, int64(p&0xffff) * 100
	case 5, 6:
		return p >> 24, int64(p & 0xffffff)
	}
	return p, 0
}

// appendDatetime2 follows decodeDatetime2 and formatDatetime.
func appendDatetime2(b []byte, p uint64, dec int) []byte {
	ip, frac := splitFrac(p, dec)
	intPart := int64(ip) - 0x8000000000 // DATETIMEF_INT_OFS
	if intPart == 0 {
		return appendZeroDatetime(b, frac, dec)
	}
	tmp := intPart<<24 + frac
	if tmp < 0 {
		tmp = -tmp
	}
	ymdhms := tmp >> 24
	ymd, hms := ymdhms>>17, ymdhms%(1<<17)
	ym := ymd >> 5
	year, month, day := ym/13, ym%13, ymd%(1<<5)
	hour, minute, second := hms>>12, (hms>>6)%(1<<6), hms%(1<<6)
	if tmp < 0 {
		// The negation overflowed (integer bytes and fraction all zero, not
		// a server's value): go-mysql prints the negative fields.
		b = fmt.Appendf(b, "%04d-%02d-%02d %02d:%02d:%02d", year, month, day, hour, minute, second)
		if dec == 0 {
			return b
		}
		b = fmt.Appendf(b, ".%06d", frac)
		return b[:len(b)-(6-dec)]
	}
	b = appendYMDHMS(b, uint64(year), uint64(month), uint64(day), uint64(hour), uint64(minute), uint64(second))
	return appendFrac(b, uint64(frac), dec)
}

// appendTimestamp2 follows decodeTimestamp2 and fracTime.String in UTC.
func appendTimestamp2(b []byte, p uint64, dec int) []byte {
	sec, usec := splitFrac(p, dec)
	if sec == 0 {
		return appendZeroDatetime(b, usec, dec)
	}
	t := time.Unix(int64(sec), usec*1000).UTC()
	year, month, day := t.Date()
	hour, minute, second := t.Clock()
	b = appendYMDHMS(b, uint64(year), uint64(month), uint64(day), uint64(hour), uint64(minute), uint64(second))
	return appendFrac(b, uint64(t.Nanosecond()/1000), dec)
}

// appendTime2 follows decodeTime2 and timeFormat, plus timeConv's fsp digits
// when the fraction is zero.
func appendTime2(b []byte, p uint64, dec int) []byte {
	tmp := time2Value(p, dec)
	if tmp < 0 {
		tmp = -tmp
		b = append(b, '-')
	}
	hms := tmp >> 24
	b = appendPad(b, uint64(hms>>12)%(1<<10), 2)
	b = append(b, ':')
	b = appendPad(b, uint64(hms>>6)%(1<<6), 2)
	b = append(b, ':')
	b = appendPad(b, uint64(hms)%(1<<6), 2)
	if secPart := tmp % (1 << 24); secPart != 0 {
		return appendFrac(b, uint64(secPart), dec)
	}
	if dec > 0 {
		b = append(b, ".000000"[:1+dec]...)
	}
	return b
}

// time2Value is a TIME2's value as decodeTime2 computes it: the integer
// part (sign, hours, minutes, seconds) << 24 plus the fraction.
func time2Value(p uint64, dec int) int64 {
	switch dec {
	case 1, 2:
		return time2Frac(p>>8, int64(p&0xff), 0x100, 10000)
	case 3, 4:
		return time2Frac(p>>16, int64(p&0xffff), 0x10000, 100)
	case 5, 6:
		return int64(p) - 0x800000000000 // TIMEF_OFS
	}
	return (int64(p) - 0x800000) << 24 // TIMEF_INT_OFS
}

// time2Frac combines the integer part ip and the fraction frac of a TIME2
// whose fraction takes size values, each of scale microseconds. Negative
// values store the fraction reversed (size - frac).
func time2Frac(ip uint64, frac, size, scale int64) int64 {
	intPart := int64(ip) - 0x800000
	if intPart < 0 && frac != 0 {
		intPart++
		frac -= size
	}
	return intPart<<24 + frac*scale
}

// appendZeroDatetime follows formatZeroTime.
func appendZeroDatetime(b []byte, frac int64, dec int) []byte {
	b = append(b, "0000-00-00 00:00:00"...)
	return appendFrac(b, uint64(frac), dec)
}

func appendYMDHMS(b []byte, year, month, day, hour, minute, second uint64) []byte {
	if year < 10000 && month < 100 && day < 100 && hour < 100 && minute < 100 && second < 100 {
		return append(b, digit(year/1000), digit(year/100), digit(year/10), digit(year), '-',
			digit(month/10), digit(month), '-', digit(day/10), digit(day), ' ',
			digit(hour/10), digit(hour), ':', digit(minute/10), digit(minute), ':', digit(second/10), digit(second))
	}
	b = appendPad(b, year, 4)
	b = append(b, '-')
	b = appendPad(b, month, 2)
	b = append(b, '-')
	b = appendPad(b, day, 2)
	b = append(b, ' ')
	b = appendPad(b, hour, 2)
	b = append(b, ':')
	b = appendPad(b, minute, 2)
	b = append(b, ':')
	return appendPad(b, second, 2)
}

// appendFrac appends what go-mysql makes of a fraction: "%06d", then the
// last 6-dec characters cut, so a value of more than 6 digits (not written by
// a server) keeps its leading digits, as there.
func appendFrac(b []byte, frac uint64, dec int) []byte {
	if dec <= 0 {
		return b
	}
	b = append(b, '.')
	b = appendPad(b, frac, 6)
	return b[:len(b)-(6-dec)]
}

// appendPad appends v in decimal with at least width digits, like "%0*d".
func appendPad(b []byte, v uint64, width int) []byte {
	if width <= 6 && v < pow10[width] {
		// The common case: exactly width digits, written from the right.
		n := len(b)
		b = append(b, "000000"[:width]...)
		for i := n + width - 1; v > 0; i-- {
			b[i] = byte('0' + v%10)
			v /= 10
		}
		return b
	}
	var d [20]byte
	i := len(d)
	for v >= 10 {
		i--
		d[i] = byte('0' + v%10)
		v /= 10
	}
	i--
	d[i] = byte('0' + v)
	for n := len(d) - i; n < width; n++ {
		b = append(b, '0')
	}
	return append(b, d[i:]...)
}

var pow10 = [7]uint64{1, 10, 100, 1000, 10000, 100000, 1000000}

// digit is the last decimal digit of v.
func digit(v uint64) byte { return byte('0' + v%10) }
