package mysql

import (
	"encoding/binary"

	"github.com/rowcast/rowcast/pipeline"
)

// Row events for MariaDB's BINLOG statement (binlog.go): a format
// description, a TABLE_MAP built from the replica's own column definitions,
// and version-1 WRITE/UPDATE/DELETE_ROWS events whose images hold the
// changelog's values in the server's binary row format (binlog_values.go;
// what a native replica's SQL thread receives). The format is MariaDB's
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
