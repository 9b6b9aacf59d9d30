package source

import (
	"strings"
	"unicode/utf8"
)

// textDecoder turns a column's bytes into UTF-8 text.
type textDecoder func(s string) string

// decoderFor returns the decoder of a MySQL character set name, or nil when
// rowcast cannot convert that character set faithfully (fail closed).
//
// utf8mb4, utf8mb3 (spelled utf8 by older servers) and ascii are UTF-8
// already: the server validates text on the way in, so the bytes pass through.
// latin1 is MySQL's latin1, which is Windows cp1252 plus the five bytes that
// cp1252 leaves undefined mapped to the C1 controls of the same value
// (https://dev.mysql.com/doc/refman/8.0/en/charset-we-sets.html).
func decoderFor(charset string) textDecoder {
	switch charset {
	case "utf8mb4", "utf8mb3", "utf8", "ascii":
		return func(s string) string { return s }
	case "latin1":
		return decodeLatin1
	}
	return nil
}

// cp1252High maps bytes 0x80..0x9F of MySQL latin1; 0xA0..0xFF map to the code
// point of the same value, as in ISO 8859-1.
var cp1252High = [32]rune{
	0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
	0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
	0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
	0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
}

func decodeLatin1(s string) string {
	i := 0
	for i < len(s) && s[i] < utf8.RuneSelf {
		i++
	}
	if i == len(s) {
		return s // ASCII: nothing to convert
	}
	var b strings.Builder
	b.Grow(len(s) + len(s)/2)
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c < 0x80:
			b.WriteByte(c)
		case c < 0xA0:
			b.WriteRune(cp1252High[c-0x80])
		default:
			b.WriteRune(rune(c))
		}
	}
	return b.String()
}
