package source

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// MariaDB's INET4, INET6 and UUID data types (10.5, 10.7, 10.10) travel in the
// binlog as a fixed-length binary string (MYSQL_TYPE_STRING, binary
// collation): 4 or 16 bytes in network order, the UUID in its textual byte
// order (observed on 10.11: no index-order swapping in row events). Only
// information_schema.COLUMNS.DATA_TYPE tells them apart from BINARY(n), so a
// column whose table definition is unknown is published as bytes.
//
// The text forms below reproduce the server's own: CAST(col AS CHAR) on
// 10.11. Note that MariaDB's INET6 text differs from RFC 5952 (and Go's
// net/netip): it compresses a single zero group too ("2001:db8::1:1:1:1:1"),
// and prints IPv4-compatible addresses in dotted form ("::1.2.3.4").

// formatInet4 renders 4 bytes as a dotted quad.
func formatInet4(b []byte) (string, error) {
	if len(b) != 4 {
		return "", fmt.Errorf("INET4 value has %d bytes, want 4", len(b))
	}
	return fmt.Sprintf("%d.%d.%d.%d", b[0], b[1], b[2], b[3]), nil
}

// formatInet6 renders 16 bytes as MariaDB's Inet6::to_string does
// (sql/sql_type_inet.cc): the first longest run of zero groups, even a run of
// one, becomes "::"; IPv4-compatible (::a.b.c.d) and IPv4-mapped
// (::ffff:a.b.c.d) addresses end in dotted form.
func formatInet6(b []byte) (string, error) {
	if len(b) != 16 {
		return "", fmt.Errorf("INET6 value has %d bytes, want 16", len(b))
	}
	var w [8]uint16
	for i := range w {
		w[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	gapPos, gapLen := longestZeroRun(w)
	var s strings.Builder
	for i := 0; i < 8; i++ {
		switch {
		case i == gapPos:
			if i == 0 {
				s.WriteByte(':')
			}
			s.WriteByte(':')
			i += gapLen - 1
		case i == 6 && endsInIPv4(w, gapPos, gapLen):
			v4, _ := formatInet4(b[12:])
			s.WriteString(v4)
			return s.String(), nil
		default:
			s.WriteString(strconv.FormatUint(uint64(w[i]), 16))
			if i != 7 {
				s.WriteByte(':')
			}
		}
	}
	return s.String(), nil
}

// endsInIPv4 reports whether an address with the zero run at gapPos of
// gapLen groups is IPv4-compatible (::a.b.c.d) or IPv4-mapped
// (::ffff:a.b.c.d).
func endsInIPv4(w [8]uint16, gapPos, gapLen int) bool {
	return gapPos == 0 && (gapLen == 6 || gapLen == 5 && w[5] == 0xffff)
}

// longestZeroRun returns where the first longest run of zero groups starts,
// -1 if none, and its length.
func longestZeroRun(w [8]uint16) (pos, n int) {
	pos = -1
	for i := 0; i < 8; {
		j := i
		for j < 8 && w[j] == 0 {
			j++
		}
		if j-i > n {
			pos, n = i, j-i
		}
		i = max(j, i+1)
	}
	return pos, n
}

// formatUUID renders 16 bytes as 8-4-4-4-12 lower-case hex.
func formatUUID(b []byte) (string, error) {
	if len(b) != 16 {
		return "", fmt.Errorf("UUID value has %d bytes, want 16", len(b))
	}
	var buf [36]byte
	hex.Encode(buf[0:8], b[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], b[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], b[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], b[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], b[10:])
	return string(buf[:]), nil
}
