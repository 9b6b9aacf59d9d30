package clickhouse

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/rowcast/rowcast/pipeline"
)

// chKind is how a column is held in ClickHouse and encoded in a Native block.
// docs/CLICKHOUSE.md has the mapping table; every choice keeps the master's
// value exactly, on ClickHouse 18.16.
type chKind uint8

const (
	kInt8 chKind = iota + 1
	kInt16
	kInt32
	kInt64
	kUInt8
	kUInt16
	kUInt32
	kUInt64
	kFloat32
	kFloat64
	kDecimal32
	kDecimal64
	kDecimal128
	kDateTime // TIMESTAMP without fractions: seconds since the epoch, zero as 0
	kString   // text, bytes, temporal values outside DateTime, and the rest
)

// colType is a source column as ClickHouse holds it.
type colType struct {
	kind        chKind
	prec, scale int // decimals
	nullable    bool
}

// String is the ClickHouse type, e.g. Nullable(Decimal(12, 2)).
func (c colType) String() string {
	t := c.base()
	if c.nullable {
		return "Nullable(" + t + ")"
	}
	return t
}

var baseNames = map[chKind]string{kInt8: "Int8", kInt16: "Int16", kInt32: "Int32", kInt64: "Int64",
	kUInt8: "UInt8", kUInt16: "UInt16", kUInt32: "UInt32", kUInt64: "UInt64", kFloat32: "Float32",
	kFloat64: "Float64", kDateTime: "DateTime('UTC')", kString: "String"}

func (c colType) base() string {
	switch c.kind {
	case kDecimal32, kDecimal64, kDecimal128:
		return fmt.Sprintf("Decimal(%d, %d)", c.prec, c.scale)
	}
	return baseNames[c.kind]
}

// maxDecimalPrecision is the widest Decimal of ClickHouse 18.16 (Decimal128).
const maxDecimalPrecision = 38

// intKinds maps an integer type's name to its signed and unsigned kinds.
var intKinds = map[string][2]chKind{
	"tinyint": {kInt8, kUInt8}, "bool": {kInt8, kUInt8}, "boolean": {kInt8, kUInt8},
	"smallint": {kInt16, kUInt16}, "mediumint": {kInt32, kUInt32}, "int": {kInt32, kUInt32},
	"integer": {kInt32, kUInt32}, "bigint": {kInt64, kUInt64},
}

// fixedKinds are the value kinds whose ClickHouse type does not depend on
// the SQL type.
var fixedKinds = map[pipeline.ValueKind]chKind{
	pipeline.VYear: kUInt16, pipeline.VBit: kUInt64, pipeline.VFloat: kFloat32, pipeline.VDouble: kFloat64,
	pipeline.VString: kString, pipeline.VBytes: kString, pipeline.VDate: kString, pipeline.VDateTime: kString,
	pipeline.VTime: kString, pipeline.VEnum: kString, pipeline.VSet: kString, pipeline.VJSON: kString,
	pipeline.VGeometry: kString,
}

// mapColumn is the ClickHouse type of a source column, from its value kind
// and its SQL type (information_schema's COLUMN_TYPE, e.g. "decimal(12,2)").
func mapColumn(c pipeline.Column, nullable bool) (colType, error) {
	ct := colType{nullable: nullable}
	name, args, unsigned := splitSQLType(c.SQLType)
	switch c.Kind {
	case pipeline.VInt, pipeline.VUint:
		ct.kind = intKind(name, c.Kind == pipeline.VUint || unsigned)
	case pipeline.VDecimal:
		return mapDecimal(ct, args)
	case pipeline.VTimestamp:
		ct.kind = kString
		if len(args) == 0 || args[0] == 0 {
			ct.kind = kDateTime
		}
	default:
		k, ok := fixedKinds[c.Kind]
		if !ok {
			return ct, fmt.Errorf("%w: column %s of kind %s (%s) has no ClickHouse mapping", pipeline.ErrUnsupported, c.Name, c.Kind, c.SQLType)
		}
		ct.kind = k
	}
	return ct, nil
}

// intKind is the integer type of an integer SQL type's name.
func intKind(name string, unsigned bool) chKind {
	k, ok := intKinds[name]
	if !ok {
		k = [2]chKind{kInt64, kUInt64}
	}
	if unsigned {
		return k[1]
	}
	return k[0]
}

// mapDecimal is Decimal(P,S) up to the server's precision, String beyond.
func mapDecimal(ct colType, args []int) (colType, error) {
	p, s := 10, 0
	if len(args) > 0 {
		p = args[0]
	}
	if len(args) > 1 {
		s = args[1]
	}
	ct.prec, ct.scale = p, s
	switch {
	case p > maxDecimalPrecision:
		ct.kind = kString
	case p > 18:
		ct.kind = kDecimal128
	case p > 9:
		ct.kind = kDecimal64
	default:
		ct.kind = kDecimal32
	}
	return ct, nil
}

// splitSQLType splits "decimal(12,2) unsigned zerofill" into its lower-case
// name, its numeric arguments and whether it is unsigned. Non-numeric
// arguments (ENUM members) are not returned.
func splitSQLType(sqlType string) (name string, args []int, unsigned bool) {
	s := strings.ToLower(strings.TrimSpace(sqlType))
	name = s
	if i := strings.IndexAny(s, "( "); i >= 0 {
		name = s[:i]
	}
	if open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')'); open >= 0 && end > open {
		for _, a := range strings.Split(s[open+1:end], ",") {
			if n, err := strconv.Atoi(strings.TrimSpace(a)); err == nil {
				args = append(args, n)
			}
		}
		s = s[:open] + s[end+1:]
	}
	return name, args, strings.Contains(s, "unsigned")
}
