package clickhouse

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/rowcast/rowcast/pipeline"
)

// column is one column of a table's pending Native block.
type column interface {
	// add appends a row's value (nil is NULL).
	add(v any) error
	// input is the column for proto.Block, typed as the table declares it.
	input() proto.ColInput
	// truncate drops the rows from n on (a rolled-back transaction's).
	truncate(n int)
	reset()
}

// colOf holds the values of one ClickHouse type T in a ch-go column: plain
// for key columns, nullable for the others.
type colOf[T any] struct {
	plain proto.ColumnOf[T]
	null  *proto.ColNullable[T]
	typ   proto.ColumnType
	conv  func(any) (T, error)
}

func newCol[T any](plain proto.ColumnOf[T], ct colType, conv func(any) (T, error)) *colOf[T] {
	c := &colOf[T]{plain: plain, typ: proto.ColumnType(ct.String()), conv: conv}
	if ct.nullable {
		c.null = proto.NewColNullable(plain)
	}
	return c
}

func (c *colOf[T]) add(v any) error {
	if v == nil {
		if c.null == nil {
			return errNullKey
		}
		c.null.Append(proto.Null[T]())
		return nil
	}
	x, err := c.conv(v)
	if err != nil {
		return err
	}
	if c.null != nil {
		c.null.Append(proto.NewNullable(x))
	} else {
		c.plain.Append(x)
	}
	return nil
}

func (c *colOf[T]) input() proto.ColInput {
	if c.null != nil {
		return proto.Alias(c.null, c.typ)
	}
	return proto.Alias(c.plain, c.typ)
}

func (c *colOf[T]) truncate(n int) {
	if c.null != nil {
		truncateCol[proto.Nullable[T]](c.null, n)
		return
	}
	truncateCol(c.plain, n)
}

func (c *colOf[T]) reset() {
	if c.null != nil {
		c.null.Reset()
		return
	}
	c.plain.Reset()
}

// truncateCol keeps the first n rows of c. Rollbacks are rare; copying
// keeps it generic over ch-go's column types.
func truncateCol[T any](c proto.ColumnOf[T], n int) {
	if c.Rows() <= n {
		return
	}
	keep := make([]T, n)
	for i := range keep {
		keep[i] = c.Row(i)
	}
	c.Reset()
	c.AppendArr(keep)
}

// newColumn returns the block column of a ClickHouse type.
func newColumn(ct colType) column {
	switch ct.kind {
	case kInt8:
		return newCol[int8](new(proto.ColInt8), ct, toInt[int8])
	case kInt16:
		return newCol[int16](new(proto.ColInt16), ct, toInt[int16])
	case kInt32:
		return newCol[int32](new(proto.ColInt32), ct, toInt[int32])
	case kInt64:
		return newCol[int64](new(proto.ColInt64), ct, toInt[int64])
	case kUInt8:
		return newCol[uint8](new(proto.ColUInt8), ct, toUint[uint8])
	case kUInt16:
		return newCol[uint16](new(proto.ColUInt16), ct, toUint[uint16])
	case kUInt32:
		return newCol[uint32](new(proto.ColUInt32), ct, toUint[uint32])
	case kUInt64:
		return newCol[uint64](new(proto.ColUInt64), ct, toUint[uint64])
	case kFloat32:
		return newCol[float32](new(proto.ColFloat32), ct, toFloat32)
	case kFloat64:
		return newCol[float64](new(proto.ColFloat64), ct, toFloat64)
	}
	return newOtherColumn(ct)
}

func newOtherColumn(ct colType) column {
	switch ct.kind {
	case kDecimal32:
		return newCol[proto.Decimal32](new(proto.ColDecimal32), ct, decimalConv(ct.scale, toDecimal32))
	case kDecimal64:
		return newCol[proto.Decimal64](new(proto.ColDecimal64), ct, decimalConv(ct.scale, toDecimal64))
	case kDecimal128:
		return newCol[proto.Decimal128](new(proto.ColDecimal128), ct, decimalConv(ct.scale, toDecimal128))
	case kDateTime:
		return newCol[uint32](new(proto.ColUInt32), ct, toEpochSeconds)
	}
	return newCol[string](strCol{new(proto.ColStr)}, ct, toString)
}

// strCol is a String column whose WriteColumn (block.encodeParts) writes a
// value of bigStrBytes or more as a part of its own, the column's bytes:
// ch-go's copies every value into the block's buffer, which suits short
// ones.
type strCol struct{ *proto.ColStr }

const bigStrBytes = 64 << 10

func (c strCol) WriteColumn(w *proto.Writer) {
	for _, p := range c.Pos {
		v := c.Buf[p.Start:p.End:p.End]
		big := len(v) >= bigStrBytes
		w.ChainBuffer(func(b *proto.Buffer) {
			b.PutUVarInt(uint64(len(v)))
			if !big {
				b.PutRaw(v)
			}
		})
		if big {
			w.ChainWrite(v)
		}
	}
}

type signed interface{ int8 | int16 | int32 | int64 }
type unsigned interface {
	uint8 | uint16 | uint32 | uint64
}

func toInt[T signed](v any) (T, error) {
	switch x := v.(type) {
	case int64:
		if int64(T(x)) == x {
			return T(x), nil
		}
	case uint64:
		if x <= math.MaxInt64 && int64(T(x)) == int64(x) {
			return T(x), nil
		}
	default:
		return 0, badValue(v, "an integer")
	}
	return 0, errIntRange
}

func toUint[T unsigned](v any) (T, error) {
	switch x := v.(type) {
	case uint64:
		if uint64(T(x)) == x {
			return T(x), nil
		}
	case int64:
		if x >= 0 && uint64(T(x)) == uint64(x) {
			return T(x), nil
		}
	default:
		return 0, badValue(v, "an unsigned integer")
	}
	return 0, errIntRange
}

func toFloat32(v any) (float32, error) {
	x, err := toFloat64(v)
	return float32(x), err
}

func toFloat64(v any) (float64, error) {
	if x, ok := v.(float64); ok {
		return x, nil
	}
	return 0, badValue(v, "a float")
}

func toString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case []byte:
		if len(x) >= aliasBytes {
			// The column copies it at once and the decoded row is never
			// written to: a copy would hold a big row once more.
			return unsafe.String(&x[0], len(x)), nil
		}
		return string(x), nil // a copy: the Target keeps no rows
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	}
	return "", badValue(v, "a string")
}

// aliasBytes is the size from which toString does not copy a value.
const aliasBytes = 64 << 10

// zeroDateTime is MySQL's zero TIMESTAMP; ClickHouse's DateTime 0 prints so.
const zeroDateTime = "0000-00-00 00:00:00"

// toEpochSeconds reads a TIMESTAMP (UTC, no fraction) as seconds since the
// epoch. MySQL's TIMESTAMP starts at 1970-01-01 00:00:01, so 0 is free for
// the zero value.
func toEpochSeconds(v any) (uint32, error) {
	s, ok := v.(string)
	if !ok {
		return 0, badValue(v, "a timestamp string")
	}
	if s == zeroDateTime {
		return 0, nil
	}
	t, err := time.ParseInLocation(time.DateTime, s, time.UTC)
	if err != nil || t.Unix() <= 0 || t.Unix() > math.MaxUint32 {
		return 0, errors.New("a TIMESTAMP that does not fit ClickHouse's DateTime")
	}
	return uint32(t.Unix()), nil
}

// decimalConv reads a DECIMAL string as the integer of its digits at scale.
func decimalConv[T any](scale int, from func(*big.Int) (T, bool)) func(any) (T, error) {
	return func(v any) (T, error) {
		var zero T
		s, ok := v.(string)
		if !ok {
			return zero, badValue(v, "a decimal string")
		}
		n, err := scaledDecimal(s, scale)
		if err != nil {
			return zero, err
		}
		x, ok := from(n)
		if !ok {
			return zero, errors.New("a DECIMAL out of range of the ClickHouse column")
		}
		return x, nil
	}
}

// scaledDecimal is s times 10^scale, exactly; s must not have more fraction
// digits than scale.
func scaledDecimal(s string, scale int) (*big.Int, error) {
	intPart, frac, _ := strings.Cut(s, ".")
	if len(frac) > scale {
		return nil, fmt.Errorf("a DECIMAL with more than %d fraction digits", scale)
	}
	digits := intPart + frac + strings.Repeat("0", scale-len(frac))
	n, ok := new(big.Int).SetString(digits, 10)
	if !ok {
		return nil, fmt.Errorf("%w: a DECIMAL value that is not a number", pipeline.ErrMalformed)
	}
	return n, nil
}

func toDecimal32(n *big.Int) (proto.Decimal32, bool) {
	return proto.Decimal32(n.Int64()), n.IsInt64() && n.Int64() >= math.MinInt32 && n.Int64() <= math.MaxInt32
}

func toDecimal64(n *big.Int) (proto.Decimal64, bool) {
	return proto.Decimal64(n.Int64()), n.IsInt64()
}

var (
	two64  = new(big.Int).Lsh(big.NewInt(1), 64)
	two127 = new(big.Int).Lsh(big.NewInt(1), 127)
)

// toDecimal128 is n in 128-bit two's complement.
func toDecimal128(n *big.Int) (proto.Decimal128, bool) {
	if n.CmpAbs(two127) >= 0 {
		return proto.Decimal128{}, false
	}
	u := new(big.Int).Set(n)
	if u.Sign() < 0 {
		u.Add(u, new(big.Int).Lsh(two64, 64))
	}
	lo := new(big.Int).And(u, new(big.Int).Sub(two64, big.NewInt(1)))
	hi := new(big.Int).Rsh(u, 64)
	return proto.Decimal128{Low: lo.Uint64(), High: hi.Uint64()}, true
}

func badValue(v any, want string) error {
	return fmt.Errorf("a value of Go type %T where the changelog's column kind promises %s", v, want)
}
