package pipeline

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"
)

// FormatVersion is the version of the wire format written in every value as
// rowcast.format. A msgDecoder refuses any other version (fail closed): a sink
// older than the reader that wrote a topic stops instead of misreading it.
// Adding an optional field does not change the version; changing the meaning
// or the encoding of an existing one does.
const FormatVersion = 1

// tableCacheSize bounds the number of *Table values a Codec keeps for Decode.
const tableCacheSize = 1024

// Codec encodes and decodes changelog messages: a JSON key (database, table
// and primary key, or the kind of a control message) and a JSON value shaped
// like a Debezium MySQL change event, with rowcast's own fields under
// "rowcast". docs/FORMAT.md describes the format; this file and
// codec_decode.go implement it.
//
// Encoding appends to the caller's buffer and does not allocate once the
// buffer has capacity. Decoding shares one *Table between the messages of a
// table as long as its columns do not change.
//
// A Codec is safe for concurrent use. It must not be copied after first use.
type Codec struct {
	// Cluster is the logical name of the replicated cluster, written as
	// source.name (Debezium's logical server name). Decode does not check it.
	Cluster string

	mu     sync.Mutex
	tables map[string]*Table // Decode's table cache; see lookupTable
	enc    encodingCache     // the encoders' per-table parts; see tableEncoding
}

// AppendKey appends the message key of e to dst.
//
// Row events: {"db":"shop","table":"orders","pk":{"id":42}}, with the primary
// key values taken from the after image (the before image for deletes) and
// encoded as in the value; "pk":null when the table has no primary key.
// Control messages: {"control":"heartbeat"}, {"control":"epoch"},
// {"control":"ddl","db":"shop"}, {"control":"snapshot"[,"db":..,"table":..]}.
func (c *Codec) AppendKey(dst []byte, e *Event) ([]byte, error) {
	if err := checkEvent(e); err != nil {
		return dst, err
	}
	b := dst
	var ok bool
	switch e.Kind {
	case KindRow:
		if te := c.tableEncoding(e.Table); te != nil {
			b, err := appendRowKey(b, e, te)
			if err != nil {
				return dst, err
			}
			return b, nil
		}
		t := e.Table
		b = append(b, `{"db":`...)
		if b, ok = appendString(b, t.Database); !ok {
			return dst, encodeErr(e, "database name", errUTF8)
		}
		b = append(b, `,"table":`...)
		if b, ok = appendString(b, t.Name); !ok {
			return dst, encodeErr(e, "table name", errUTF8)
		}
		if len(t.PrimaryKey) == 0 {
			b = append(b, `,"pk":null}`...)
			return b, nil
		}
		img := e.After
		if img == nil {
			img = e.Before
		}
		b = append(b, `,"pk":{`...)
		for i, ci := range t.PrimaryKey {
			if i > 0 {
				b = append(b, ',')
			}
			col := &t.Columns[ci]
			if b, ok = appendString(b, col.Name); !ok {
				return dst, encodeErr(e, "column name", errUTF8)
			}
			b = append(b, ':')
			var err error
			if b, err = appendValue(b, col.Kind, img[ci]); err != nil {
				return dst, columnErr(e, ci, err)
			}
		}
		b = append(b, "}}"...)
		return b, nil
	case KindDDL:
		b = append(b, `{"control":"ddl","db":`...)
		if b, ok = appendString(b, e.Database); !ok {
			return dst, encodeErr(e, "ddl database", errUTF8)
		}
		b = append(b, '}')
		return b, nil
	case KindSnapshot:
		b = append(b, `{"control":"snapshot"`...)
		db, table := snapshotScope(e)
		if db != "" {
			b = append(b, `,"db":`...)
			if b, ok = appendString(b, db); !ok {
				return dst, encodeErr(e, "snapshot database", errUTF8)
			}
		}
		if table != "" {
			b = append(b, `,"table":`...)
			if b, ok = appendString(b, table); !ok {
				return dst, encodeErr(e, "snapshot table", errUTF8)
			}
		}
		b = append(b, '}')
		return b, nil
	default: // heartbeat, epoch
		b = append(b, `{"control":"`...)
		b = append(b, kindNames[e.Kind]...)
		b = append(b, `"}`...)
		return b, nil
	}
}

// AppendValue appends the message value of e to dst. On error dst is
// returned unchanged (its spare capacity may have been written).
func (c *Codec) AppendValue(dst []byte, e *Event) ([]byte, error) {
	if err := checkEvent(e); err != nil {
		return dst, err
	}
	b := dst
	var err error
	var ok bool
	var te *tableEncoding
	if e.Kind == KindRow {
		te = c.tableEncoding(e.Table)
	}
	if te != nil {
		b = append(b, `{"before":`...)
		if b, err = appendImageEnc(b, e, te, e.Before); err != nil {
			return dst, err
		}
		b = append(b, `,"after":`...)
		if b, err = appendImageEnc(b, e, te, e.After); err != nil {
			return dst, err
		}
		b = append(b, `,"op":"`...)
		b = append(b, byte(e.Op), '"', ',')
	} else if e.Kind == KindRow {
		b = append(b, `{"before":`...)
		if b, err = appendImage(b, e, e.Before); err != nil {
			return dst, err
		}
		b = append(b, `,"after":`...)
		if b, err = appendImage(b, e, e.After); err != nil {
			return dst, err
		}
		b = append(b, `,"op":"`...)
		b = append(b, byte(e.Op), '"', ',')
	} else {
		b = append(b, '{')
	}
	ms := commitMillis(e.CommitTime)
	b = append(b, `"ts_ms":`...)
	b = strconv.AppendInt(b, ms, 10)

	// source: Debezium's MySQL source block.
	b = append(b, `,"source":{"version":"rowcast","connector":`...)
	if b, ok = appendString(b, e.Flavor); !ok {
		return dst, encodeErr(e, "flavor", errUTF8)
	}
	b = append(b, `,"name":`...)
	if b, ok = appendString(b, c.Cluster); !ok {
		return dst, encodeErr(e, "cluster name", errUTF8)
	}
	b = append(b, `,"ts_ms":`...)
	b = strconv.AppendInt(b, ms, 10)
	db, table := sourceScope(e)
	if te != nil {
		b = append(b, te.scope...)
		db, table = "", ""
	}
	if db != "" {
		b = append(b, `,"db":`...)
		if b, ok = appendString(b, db); !ok {
			return dst, encodeErr(e, "database name", errUTF8)
		}
	}
	if table != "" {
		b = append(b, `,"table":`...)
		if b, ok = appendString(b, table); !ok {
			return dst, encodeErr(e, "table name", errUTF8)
		}
	}
	b = append(b, `,"server_id":`...)
	b = strconv.AppendUint(b, uint64(e.ServerID), 10)
	b = append(b, `,"gtid":`...)
	if e.GTID == "" {
		b = append(b, "null"...)
	} else if b, ok = appendString(b, e.GTID); !ok {
		return dst, encodeErr(e, "gtid", errUTF8)
	}
	b = append(b, `,"file":`...)
	if b, ok = appendString(b, e.File); !ok {
		return dst, encodeErr(e, "binlog file", errUTF8)
	}
	b = append(b, `,"pos":`...)
	b = strconv.AppendUint(b, uint64(e.Offset), 10)
	b = append(b, `,"row":`...)
	b = strconv.AppendUint(b, e.Pos.Row, 10)
	if e.Op == OpRead && e.Kind == KindRow {
		b = append(b, `,"snapshot":"true"`...) // as Debezium marks snapshot reads
	}
	b = append(b, '}')

	// transaction: Debezium's transaction block, for the messages of a source
	// transaction (rows read by a snapshot have no GTID and no block).
	// data_collection_order is the order within the whole transaction, not
	// within the table as in Debezium.
	if e.InTxn() && e.GTID != "" {
		b = append(b, `,"transaction":{"id":`...)
		if b, ok = appendString(b, e.GTID); !ok {
			return dst, encodeErr(e, "gtid", errUTF8)
		}
		b = append(b, `,"total_order":`...)
		b = strconv.AppendUint(b, e.Pos.Row+1, 10)
		b = append(b, `,"data_collection_order":`...)
		b = strconv.AppendUint(b, e.Pos.Row+1, 10)
		b = append(b, '}')
	}

	// rowcast: position, table shape and the control payloads.
	b = append(b, `,"rowcast":{"format":`...)
	b = strconv.AppendInt(b, FormatVersion, 10)
	b = append(b, `,"kind":"`...)
	b = append(b, kindNames[e.Kind]...)
	b = append(b, `","epoch":`...)
	b = strconv.AppendUint(b, e.Pos.Epoch, 10)
	b = append(b, `,"txn_seq":`...)
	b = strconv.AppendUint(b, e.Pos.TxnSeq, 10)
	b = append(b, `,"row":`...)
	b = strconv.AppendUint(b, e.Pos.Row, 10)
	b = strconv.AppendBool(append(b, `,"last":`...), e.Pos.Last)
	if e.GTIDSet != "" {
		b = append(b, `,"gtid_set":`...)
		if b, ok = appendString(b, e.GTIDSet); !ok {
			return dst, encodeErr(e, "gtid set", errUTF8)
		}
	}
	if te != nil {
		b = append(b, te.shape...)
	} else if carriesTable(e.Kind) && e.Table != nil {
		if b, err = appendTableShape(b, e); err != nil {
			return dst, err
		}
	}
	switch e.Kind {
	case KindDDL:
		b = append(b, `,"ddl":{"db":`...)
		if b, ok = appendString(b, e.Database); !ok {
			return dst, encodeErr(e, "ddl database", errUTF8)
		}
		b = append(b, `,"statement":`...)
		if b, ok = appendString(b, e.Statement); !ok {
			return dst, encodeErr(e, "ddl statement", errUTF8)
		}
		b = append(b, '}')
	case KindEpoch:
		if b, err = appendEpochRecord(b, e); err != nil {
			return dst, err
		}
	case KindSnapshot:
		b = append(b, `,"snapshot":"`...)
		b = append(b, e.Snapshot...)
		b = append(b, '"')
	}
	b = append(b, "}}"...)
	return b, nil
}

// checkEvent rejects events that the format cannot represent, so that
// everything AppendValue writes, Decode reads back.
func checkEvent(e *Event) error {
	switch e.Kind {
	case KindRow:
		t := e.Table
		if t == nil {
			return encodeErr(e, "row event", fmt.Errorf("no table: %w", ErrUnsupported))
		}
		if err := checkTable(t); err != nil {
			return encodeErr(e, "row event", err)
		}
		var wantBefore, wantAfter bool
		switch e.Op {
		case OpInsert, OpRead:
			wantAfter = true
		case OpUpdate:
			wantBefore, wantAfter = true, true
		case OpDelete:
			wantBefore = true
		default:
			return encodeErr(e, "row event", fmt.Errorf("unknown op %q: %w", byte(e.Op), ErrUnsupported))
		}
		if err := checkImage("before", e.Before, wantBefore, e.Op, len(t.Columns)); err != nil {
			return encodeErr(e, "row event", err)
		}
		if err := checkImage("after", e.After, wantAfter, e.Op, len(t.Columns)); err != nil {
			return encodeErr(e, "row event", err)
		}
	case KindDDL:
		if e.Statement == "" {
			return encodeErr(e, "ddl event", fmt.Errorf("empty statement: %w", ErrUnsupported))
		}
	case KindHeartbeat:
	case KindEpoch:
		if e.Epoch == nil {
			return encodeErr(e, "epoch event", fmt.Errorf("no epoch record: %w", ErrUnsupported))
		}
	case KindSnapshot:
		if e.Snapshot != "start" && e.Snapshot != "end" {
			return encodeErr(e, "snapshot event", fmt.Errorf("marker %q is neither start nor end: %w", e.Snapshot, ErrUnsupported))
		}
		if t := e.Table; t != nil {
			if err := checkTable(t); err != nil {
				return encodeErr(e, "snapshot event", err)
			}
			if e.Database != "" && e.Database != t.Database {
				return encodeErr(e, "snapshot event", fmt.Errorf("database %q differs from the table's %q: %w", e.Database, t.Database, ErrUnsupported))
			}
		}
	default:
		return fmt.Errorf("encode message: unknown kind %d: %w", uint8(e.Kind), ErrUnsupported)
	}
	return nil
}

// checkTable checks what a msgDecoder would refuse and costs little; duplicate
// column names are the source's business and are caught by Decode.
func checkTable(t *Table) error {
	if t.Database == "" || t.Name == "" {
		return fmt.Errorf("table %q.%q: empty name: %w", t.Database, t.Name, ErrUnsupported)
	}
	if len(t.Columns) == 0 {
		return fmt.Errorf("table %s.%s: no columns: %w", t.Database, t.Name, ErrUnsupported)
	}
	for i, ci := range t.PrimaryKey {
		if ci < 0 || ci >= len(t.Columns) {
			return fmt.Errorf("table %s.%s: primary key index %d out of range: %w", t.Database, t.Name, ci, ErrUnsupported)
		}
		for _, cj := range t.PrimaryKey[:i] {
			if ci == cj {
				return fmt.Errorf("table %s.%s: column %d twice in the primary key: %w", t.Database, t.Name, ci, ErrUnsupported)
			}
		}
	}
	return nil
}

func checkImage(name string, img []any, want bool, op Op, n int) error {
	switch {
	case want && img == nil:
		return fmt.Errorf("op %c without %s image: %w", byte(op), name, ErrUnsupported)
	case !want && img != nil:
		return fmt.Errorf("op %c with a %s image: %w", byte(op), name, ErrUnsupported)
	case want && len(img) != n:
		return fmt.Errorf("%s image has %d values for %d columns: %w", name, len(img), n, ErrUnsupported)
	}
	return nil
}

// carriesTable reports whether messages of kind k carry a table shape.
func carriesTable(k Kind) bool { return k == KindRow || k == KindSnapshot }

// sourceScope returns source.db and source.table of e.
func sourceScope(e *Event) (db, table string) {
	switch e.Kind {
	case KindRow:
		return e.Table.Database, e.Table.Name
	case KindDDL:
		return e.Database, ""
	case KindSnapshot:
		return snapshotScope(e)
	}
	return "", ""
}

func snapshotScope(e *Event) (db, table string) {
	db = e.Database
	if e.Table != nil {
		db, table = e.Table.Database, e.Table.Name
	}
	return db, table
}

func commitMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// appendImage appends a row image as an object of column name to value, in
// table order, or null.
func appendImage(b []byte, e *Event, img []any) ([]byte, error) {
	if img == nil {
		return append(b, "null"...), nil
	}
	var ok bool
	var err error
	b = append(b, '{')
	for i := range e.Table.Columns {
		col := &e.Table.Columns[i]
		if i > 0 {
			b = append(b, ',')
		}
		if b, ok = appendString(b, col.Name); !ok {
			return b, encodeErr(e, "column name", errUTF8)
		}
		b = append(b, ':')
		if b, err = appendValue(b, col.Kind, img[i]); err != nil {
			return b, columnErr(e, i, err)
		}
	}
	return append(b, '}'), nil
}

// appendTableShape appends rowcast.pk and rowcast.columns.
func appendTableShape(b []byte, e *Event) ([]byte, error) {
	t := e.Table
	var ok bool
	if len(t.PrimaryKey) > 0 {
		b = append(b, `,"pk":[`...)
		for i, ci := range t.PrimaryKey {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = appendString(b, t.Columns[ci].Name); !ok {
				return b, encodeErr(e, "primary key column name", errUTF8)
			}
		}
		b = append(b, ']')
	}
	b = append(b, `,"columns":[`...)
	for i := range t.Columns {
		col := &t.Columns[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		if b, ok = appendString(b, col.Name); !ok {
			return b, encodeErr(e, "column name", errUTF8)
		}
		if col.Kind == 0 || int(col.Kind) >= len(valueKindNames) {
			return b, columnErr(e, i, fmt.Errorf("unknown value kind %d: %w", uint8(col.Kind), ErrUnsupported))
		}
		b = append(b, ",\""...)
		b = append(b, valueKindNames[col.Kind]...)
		b = append(b, "\","...)
		if b, ok = appendString(b, col.SQLType); !ok {
			return b, columnErr(e, i, fmt.Errorf("sql type: %w", errUTF8))
		}
		b = append(b, ']')
	}
	return append(b, ']'), nil
}

func appendEpochRecord(b []byte, e *Event) ([]byte, error) {
	r := e.Epoch
	var ok bool
	b = append(b, `,"epoch_record":{"epoch":`...)
	b = strconv.AppendUint(b, r.Epoch, 10)
	b = append(b, `,"master":`...)
	if b, ok = appendString(b, r.Master); !ok {
		return b, encodeErr(e, "epoch record master", errUTF8)
	}
	b = append(b, `,"start_gtid_set":`...)
	if b, ok = appendString(b, r.StartGTIDSet); !ok {
		return b, encodeErr(e, "epoch record gtid set", errUTF8)
	}
	b = append(b, `,"flavor":`...)
	if b, ok = appendString(b, r.Flavor); !ok {
		return b, encodeErr(e, "epoch record flavor", errUTF8)
	}
	b = append(b, `,"txn_seq":`...)
	b = strconv.AppendUint(b, r.TxnSeq, 10)
	return append(b, '}'), nil
}

// appendValue appends one column value. The error says what is wrong with
// the value; the caller adds the column.
func appendValue(b []byte, k ValueKind, v any) ([]byte, error) {
	if v == nil {
		return append(b, "null"...), nil
	}
	switch k {
	case VInt, VYear:
		switch x := v.(type) {
		case int64:
			return strconv.AppendInt(b, x, 10), nil
		case int:
			return strconv.AppendInt(b, int64(x), 10), nil
		case int32:
			return strconv.AppendInt(b, int64(x), 10), nil
		case int16:
			return strconv.AppendInt(b, int64(x), 10), nil
		case int8:
			return strconv.AppendInt(b, int64(x), 10), nil
		}
	case VUint, VBit:
		switch x := v.(type) {
		case uint64:
			return strconv.AppendUint(b, x, 10), nil
		case uint:
			return strconv.AppendUint(b, uint64(x), 10), nil
		case uint32:
			return strconv.AppendUint(b, uint64(x), 10), nil
		case uint16:
			return strconv.AppendUint(b, uint64(x), 10), nil
		case uint8:
			return strconv.AppendUint(b, uint64(x), 10), nil
		}
	case VFloat:
		switch x := v.(type) {
		case float64:
			return appendFloat(b, x, 32)
		case float32:
			return appendFloat(b, float64(x), 32)
		}
	case VDouble:
		if x, ok := v.(float64); ok {
			return appendFloat(b, x, 64)
		}
	case VString, VDecimal, VDate, VDateTime, VTimestamp, VTime, VEnum, VSet, VJSON:
		var ok bool
		switch x := v.(type) {
		case string:
			if !checkShape(k, x) {
				return b, fmt.Errorf("%s value %.40q is not in the %s form: %w", k, x, k, ErrUnsupported)
			}
			if b, ok = appendString(b, x); !ok {
				return b, errUTF8
			}
			return b, nil
		case []byte:
			if !checkShape(k, x) {
				return b, fmt.Errorf("%s value %.40q is not in the %s form: %w", k, x, k, ErrUnsupported)
			}
			if b, ok = appendString(b, x); !ok {
				return b, errUTF8
			}
			return b, nil
		}
	case VBytes:
		switch x := v.(type) {
		case []byte:
			return appendBase64(b, x), nil
		case string:
			return appendBase64(b, x), nil
		}
	case VGeometry:
		var g []byte
		switch x := v.(type) {
		case []byte:
			g = x
		case string:
			g = []byte(x) // rare: geometry arrives as []byte from the reader
		default:
			return b, fmt.Errorf("%T value for kind %s: %w", v, k, ErrUnsupported)
		}
		if len(g) < 4 {
			return b, fmt.Errorf("geometry of %d bytes has no SRID: %w", len(g), ErrUnsupported)
		}
		b = append(b, `{"wkb":`...)
		b = appendBase64(b, g[4:])
		b = append(b, `,"srid":`...)
		b = strconv.AppendUint(b, uint64(binary.LittleEndian.Uint32(g)), 10)
		return append(b, '}'), nil
	default:
		return b, fmt.Errorf("unknown value kind %d: %w", uint8(k), ErrUnsupported)
	}
	return b, fmt.Errorf("%T value for kind %s: %w", v, k, ErrUnsupported)
}

// appendFloat writes the shortest decimal that parses back to the same
// float32 or float64, in the form encoding/json uses (no exponent between
// 1e-6 and 1e21). NaN and infinities do not occur in MySQL columns.
func appendFloat(b []byte, f float64, bits int) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, fmt.Errorf("float value %v: %w", f, ErrUnsupported)
	}
	if bits == 32 {
		f32 := float32(f)
		if math.IsInf(float64(f32), 0) {
			return b, fmt.Errorf("value %v overflows a FLOAT: %w", f, ErrUnsupported)
		}
		f = float64(f32)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		// 1e-07 -> 1e-7, as encoding/json does.
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// appendBase64 appends src as a standard, padded base64 JSON string.
func appendBase64[T string | []byte](b []byte, src T) []byte {
	n := base64.StdEncoding.EncodedLen(len(src))
	b = append(b, '"')
	b = growBytes(b, n)
	base64.StdEncoding.Encode(b[len(b):len(b)+n], []byte(src))
	b = b[:len(b)+n]
	return append(b, '"')
}

func growBytes(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	return append(b, make([]byte, n)...)[:len(b)]
}

func encodeErr(e *Event, what string, err error) error {
	return fmt.Errorf("encode %s message %s: %s: %w", e.Kind, e.Pos, what, err)
}

func columnErr(e *Event, i int, err error) error {
	t := e.Table
	return fmt.Errorf("encode %s message %s: column %s.%s.%s (position %d): %w",
		e.Kind, e.Pos, t.Database, t.Name, t.Columns[i].Name, i, err)
}
