package source

import (
	"bytes"
	"fmt"
	"math/bits"
	"strings"
	"unsafe"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/rowcast/rowcast/pipeline"
)

// convFn turns one value as go-mysql decoded it into the in-memory form of its
// pipeline.ValueKind. It is never called with nil (NULL stays nil).
type convFn func(v any) (any, error)

// colSpec is what the TABLE_MAP event (and, when it matches, information_schema)
// says about one column.
type colSpec struct {
	name     string
	typ      byte   // column type as written in the TABLE_MAP event
	meta     uint16 // its metadata
	unsigned bool
	charset  string   // character set of text, enum and set columns; "binary" for bytes
	members  []string // ENUM or SET members, as UTF-8 text
	geometry uint64   // geometry type code (0 = GEOMETRY)
	info     *colInfo // nil when information_schema does not describe this column
	flavor   string
	rawBytes bool // Config.RawUnsupportedCharsets, for charsets without a decoder
}

// realType resolves the type hidden in a MYSQL_TYPE_STRING's metadata (ENUM,
// SET, or the string type itself) and the fixed byte length of CHAR/BINARY,
// as the server's table_def::type and go-mysql's decodeValue do.
func realType(typ byte, meta uint16) (byte, int) {
	switch typ {
	case mysql.MYSQL_TYPE_STRING:
		if meta >= 256 {
			b0, b1 := byte(meta>>8), byte(meta)
			if b0&0x30 != 0x30 {
				return b0 | 0x30, int(uint16(b1) | uint16((b0&0x30)^0x30)<<4)
			}
			return b0, int(b1)
		}
		return typ, int(meta)
	case mysql.MYSQL_TYPE_DATE:
		return mysql.MYSQL_TYPE_NEWDATE, 0
	}
	return typ, 0
}

// buildColumn returns the pipeline column and the converter of one column, or
// an error (ErrUnsupported) when the column cannot be carried faithfully.
func buildColumn(s colSpec) (pipeline.Column, convFn, error) {
	rt, length := realType(s.typ, s.meta)
	col := pipeline.Column{Name: s.name, SQLType: synthType(s, rt, length)}
	if s.info != nil {
		col.SQLType = s.info.ColumnType
	}
	switch rt {
	case mysql.MYSQL_TYPE_STRING, mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VAR_STRING, mysql.MYSQL_TYPE_BLOB:
		return textColumn(s, col, rt, length)
	}
	var fn convFn
	var err error
	col.Kind, fn, err = converter(s, rt)
	return col, fn, err
}

// kindConv is a column's kind and converter.
type kindConv struct {
	kind pipeline.ValueKind
	fn   convFn
}

// plainConvs are the kind and converter of the types that depend on the type
// alone.
var plainConvs = map[byte]kindConv{
	mysql.MYSQL_TYPE_YEAR:     {pipeline.VYear, intConv},
	mysql.MYSQL_TYPE_FLOAT:    {pipeline.VFloat, floatConv},
	mysql.MYSQL_TYPE_DOUBLE:   {pipeline.VDouble, doubleConv},
	mysql.MYSQL_TYPE_BIT:      {pipeline.VBit, bitConv},
	mysql.MYSQL_TYPE_TIME:     {pipeline.VTime, oldTimeConv},
	mysql.MYSQL_TYPE_JSON:     {pipeline.VJSON, jsonConv},
	mysql.MYSQL_TYPE_GEOMETRY: {pipeline.VGeometry, bytesConv},
}

// packedKinds are the kinds of the DECIMAL and temporal types, whose values
// come packed or as go-mysql's text (packedConv).
var packedKinds = map[byte]pipeline.ValueKind{
	mysql.MYSQL_TYPE_NEWDECIMAL: pipeline.VDecimal,
	mysql.MYSQL_TYPE_TIMESTAMP:  pipeline.VTimestamp,
	mysql.MYSQL_TYPE_TIMESTAMP2: pipeline.VTimestamp,
	mysql.MYSQL_TYPE_DATETIME:   pipeline.VDateTime,
	mysql.MYSQL_TYPE_DATETIME2:  pipeline.VDateTime,
	mysql.MYSQL_TYPE_NEWDATE:    pipeline.VDate,
}

// converter returns the kind and the converter of a column of real type rt
// that is not a string type.
func converter(s colSpec, rt byte) (pipeline.ValueKind, convFn, error) {
	if c, ok := plainConvs[rt]; ok {
		return c.kind, c.fn, nil
	}
	if k, ok := packedKinds[rt]; ok {
		return k, packedConv(s, stringConv), nil
	}
	switch rt {
	case mysql.MYSQL_TYPE_TINY, mysql.MYSQL_TYPE_SHORT, mysql.MYSQL_TYPE_INT24,
		mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_LONGLONG:
		if s.unsigned {
			return pipeline.VUint, uintConv(rt), nil
		}
		return pipeline.VInt, intConv, nil
	case mysql.MYSQL_TYPE_TIME2:
		return pipeline.VTime, packedConv(s, timeConv(int(s.meta))), nil
	case mysql.MYSQL_TYPE_ENUM:
		return pipeline.VEnum, enumConv(s.members), nil
	case mysql.MYSQL_TYPE_SET:
		return pipeline.VSet, setConv(s.members), nil
	case mysql.MYSQL_TYPE_VECTOR:
		return 0, nil, fmt.Errorf("%w: VECTOR columns are not supported yet: exclude the table (Config.Exclude)", ErrUnsupported)
	}
	return 0, nil, fmt.Errorf("%w: unknown column type %d (metadata %#x): exclude the table (Config.Exclude) or upgrade rowcast", ErrUnsupported, rt, s.meta)
}

func floatConv(v any) (any, error) {
	if f, ok := v.(float32); ok {
		return float64(f), nil
	}
	return nil, unexpected(v)
}

func doubleConv(v any) (any, error) {
	if _, ok := v.(float64); ok {
		return v, nil
	}
	return nil, unexpected(v)
}

func bitConv(v any) (any, error) {
	if i, ok := v.(int64); ok {
		return uint64(i), nil
	}
	return nil, unexpected(v)
}

// oldTimeConv reads a pre-5.6 TIME (see fixOldTime).
func oldTimeConv(v any) (any, error) {
	if t, ok := v.(string); ok {
		return fixOldTime(t), nil
	}
	return nil, unexpected(v)
}

func jsonConv(v any) (any, error) {
	switch j := v.(type) {
	case string:
		return j, nil
	case []byte: // go-mysql returns an empty slice for an empty document
		if len(j) == 0 {
			return "null", nil
		}
		return string(j), nil
	case *replication.JsonDiff:
		return nil, fmt.Errorf("%w: partial JSON update (binlog_row_value_options=PARTIAL_JSON): set binlog_row_value_options='' on the master", ErrUnsupported)
	}
	return nil, unexpected(v)
}

// textColumn handles CHAR, VARCHAR, TEXT, BINARY, VARBINARY, BLOB, MariaDB JSON
// and MariaDB INET4/INET6/UUID, which the binlog tells apart only by collation
// (63 = binary) and the table definition.
func textColumn(s colSpec, col pipeline.Column, rt byte, length int) (pipeline.Column, convFn, error) {
	if s.charset == "binary" {
		return binaryColumn(s, col, rt, length)
	}
	dec := decoderFor(s.charset)
	if dec == nil {
		if !s.rawBytes {
			return col, nil, fmt.Errorf("%w: character set %q: rowcast converts utf8mb4, utf8mb3, ascii and latin1 to UTF-8; convert the column (ALTER TABLE ... CONVERT TO CHARACTER SET utf8mb4), exclude the table, or set RawUnsupportedCharsets to publish its bytes", ErrUnsupported, s.charset)
		}
		col.Kind = pipeline.VBytes
		return col, bytesConv, nil
	}
	col.Kind = pipeline.VString
	if s.info != nil && s.info.JSON && rt == mysql.MYSQL_TYPE_BLOB {
		col.Kind = pipeline.VJSON
	}
	return col, textConv(dec, s.charset != "latin1"), nil
}

// textConv converts text with dec; utf8 says dec is the identity.
func textConv(dec textDecoder, utf8 bool) convFn {
	return func(v any) (any, error) {
		switch t := v.(type) {
		case string:
			if utf8 {
				return v, nil // no new allocation
			}
			return dec(t), nil
		case []byte:
			if utf8 {
				return eventString(t), nil
			}
			return dec(string(t)), nil
		}
		return nil, unexpected(v)
	}
}

// binaryColumn handles a column of the binary charset: bytes, or the text of
// a MariaDB INET4, INET6 or UUID.
func binaryColumn(s colSpec, col pipeline.Column, rt byte, length int) (pipeline.Column, convFn, error) {
	if format := mariaDBBinaryText(s); format != nil {
		col.Kind = pipeline.VString
		return col, func(v any) (any, error) {
			b, err := fixedBytes(v, rt, length)
			if err != nil {
				return nil, err
			}
			return format(b)
		}, nil
	}
	col.Kind = pipeline.VBytes
	return col, func(v any) (any, error) { return fixedBytes(v, rt, length) }, nil
}

// mariaDBBinaryText returns the text form of MariaDB's INET4, INET6 and UUID
// columns, nil for other binary columns.
func mariaDBBinaryText(s colSpec) func([]byte) (string, error) {
	if s.info == nil || s.flavor != FlavorMariaDB {
		return nil
	}
	return mariaDBBinaryTypes[s.info.DataType]
}

// mariaDBBinaryTypes are the text forms of the MariaDB data types that the
// binlog carries as BINARY(n).
var mariaDBBinaryTypes = map[string]func([]byte) (string, error){
	"inet4": formatInet4,
	"inet6": formatInet6,
	"uuid":  formatUUID,
}

// fixedBytes copies a binary value. BINARY(n) (and so INET6, UUID, INET4)
// loses its trailing zero bytes in the binlog (the server packs CHAR columns
// without trailing pad, and the pad of the binary charset is 0x00); the
// declared length restores them, as SELECT returns them.
func fixedBytes(v any, rt byte, length int) ([]byte, error) {
	var b []byte
	switch t := v.(type) {
	case string:
		b = []byte(t)
	case []byte:
		b = eventBytes(t)
	default:
		return nil, unexpected(v)
	}
	if rt == mysql.MYSQL_TYPE_STRING && len(b) < length {
		b = append(b, make([]byte, length-len(b))...)
	}
	return b, nil
}

func intConv(v any) (any, error) {
	switch i := v.(type) {
	case int8:
		return int64(i), nil
	case int16:
		return int64(i), nil
	case int32:
		return int64(i), nil
	case int64:
		return v, nil // already the right type: no new allocation
	case int:
		return int64(i), nil
	}
	return nil, unexpected(v)
}

// uintConv reads unsigned integers. go-mysql decodes them unsigned when the
// TABLE_MAP carries signedness (binlog_row_metadata=FULL); a signed value of
// the column's width is reinterpreted, so BIGINT UNSIGNED maxima never turn
// negative.
func uintConv(rt byte) convFn {
	mask := uint64(1)<<(8*intWidth(rt)) - 1
	if intWidth(rt) == 8 {
		mask = ^uint64(0)
	}
	return func(v any) (any, error) {
		switch i := v.(type) {
		case uint8:
			return uint64(i), nil
		case uint16:
			return uint64(i), nil
		case uint32:
			return uint64(i), nil
		case uint64:
			return i, nil
		case int8:
			return uint64(i) & mask, nil
		case int16:
			return uint64(i) & mask, nil
		case int32:
			return uint64(i) & mask, nil
		case int64:
			return uint64(i) & mask, nil
		}
		return nil, unexpected(v)
	}
}

func intWidth(rt byte) int {
	switch rt {
	case mysql.MYSQL_TYPE_TINY:
		return 1
	case mysql.MYSQL_TYPE_SHORT:
		return 2
	case mysql.MYSQL_TYPE_INT24:
		return 3
	case mysql.MYSQL_TYPE_LONG:
		return 4
	}
	return 8
}

func stringConv(v any) (any, error) {
	if _, ok := v.(string); ok {
		return v, nil
	}
	return nil, unexpected(v)
}

func bytesConv(v any) (any, error) {
	switch b := v.(type) {
	case []byte:
		return eventBytes(b), nil
	case string:
		return []byte(b), nil
	}
	return nil, unexpected(v)
}

func enumConv(members []string) convFn {
	return func(v any) (any, error) {
		i, ok := v.(int64)
		if !ok {
			return nil, unexpected(v)
		}
		switch {
		case i == 0:
			return "", nil // the error value of an invalid insert in non-strict mode
		case i > 0 && int(i) <= len(members):
			return members[i-1], nil
		}
		return nil, fmt.Errorf("ENUM index %d outside the %d members of the TABLE_MAP", i, len(members))
	}
}

func setConv(members []string) convFn {
	return func(v any) (any, error) {
		i, ok := v.(int64)
		if !ok {
			return nil, unexpected(v)
		}
		m := uint64(i)
		if bits.Len64(m) > len(members) {
			return nil, fmt.Errorf("SET bits %#x outside the %d members of the TABLE_MAP", m, len(members))
		}
		var out []string
		for b := 0; m != 0; b, m = b+1, m>>1 {
			if m&1 != 0 {
				out = append(out, members[b])
			}
		}
		return strings.Join(out, ","), nil
	}
}

// packedConv reads a DECIMAL, DATE, TIME, DATETIME or TIMESTAMP column: the
// packed bytes rowsDecoder hands over (int64), or else go-mysql's text, which
// str reads.
func packedConv(s colSpec, str convFn) convFn {
	if packedLen(s.typ, s.meta) == 0 {
		return str
	}
	typ, meta := s.typ, s.meta
	return func(v any) (any, error) {
		if p, ok := v.(int64); ok {
			return formatPacked(typ, meta, uint64(p))
		}
		return str(v)
	}
}

// timeConv completes TIME(fsp) values: go-mysql omits the fraction when it is
// zero ("12:00:00"), while DATETIME(fsp), TIMESTAMP(fsp) and the server itself
// always print fsp digits ("12:00:00.000000").
func timeConv(fsp int) convFn {
	return func(v any) (any, error) {
		t, ok := v.(string)
		if !ok {
			return nil, unexpected(v)
		}
		if fsp > 0 && fsp <= 6 && !strings.Contains(t, ".") {
			t += "." + "000000"[:fsp]
		}
		return t, nil
	}
}

// fixOldTime repairs a pre-5.6 TIME value, which go-mysql reads as an unsigned
// 24-bit HHMMSS number: the server stores negative times in two's complement,
// e.g. -01:00:00 arrives as "1676:72:16".
func fixOldTime(s string) string {
	var h, m, sec int
	if _, err := fmt.Sscanf(s, "%d:%d:%d", &h, &m, &sec); err != nil {
		return s
	}
	n := h*10000 + m*100 + sec
	if n < 0x800000 {
		return s
	}
	n = 0x1000000 - n
	return fmt.Sprintf("-%02d:%02d:%02d", n/10000, n/100%100, n%100)
}

func unexpected(v any) error {
	return fmt.Errorf("unexpected decoded value of Go type %T", v)
}

// A value of at least aliasBytes keeps pointing into its binlog event
// instead of being copied: it is most of the event, which go-mysql reads
// into a buffer of its own and never reuses, so a copy would only hold the
// row twice (docs/DESIGN.md, "Large rows"). Smaller BLOB and TEXT values
// are copied, so that a buffered transaction does not pin whole events for
// a few bytes (go-mysql's VARCHAR strings point into the event anyway).
const aliasBytes = 64 << 10

// eventBytes returns b, a value of a binlog event, as the row's own bytes.
// A kept alias is capped so that appending to it cannot write into the event.
func eventBytes(b []byte) []byte {
	if len(b) >= aliasBytes {
		return b[:len(b):len(b)]
	}
	return bytes.Clone(b)
}

// eventString is eventBytes for UTF-8 text.
func eventString(b []byte) string {
	if len(b) >= aliasBytes {
		return unsafe.String(&b[0], len(b))
	}
	return string(b)
}
