package pipeline

import (
	"encoding/base64"
	"fmt"
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
	if te := c.rowEncoding(e); te != nil {
		b, err := appendRowKey(dst, e, te)
		if err != nil {
			return dst, err
		}
		return b, nil
	}
	var err error
	w := msgWriter{e: e, err: &err}
	b := w.key(dst)
	if err != nil {
		return dst, err
	}
	return b, nil
}

// AppendValue appends the message value of e to dst. On error dst is
// returned unchanged (its spare capacity may have been written).
func (c *Codec) AppendValue(dst []byte, e *Event) ([]byte, error) {
	if err := checkEvent(e); err != nil {
		return dst, err
	}
	te := c.rowEncoding(e)
	var msText [20]byte // the commit time, written twice
	ms := strconv.AppendInt(msText[:0], commitMillis(e.CommitTime), 10)
	var err error
	w := msgWriter{e: e, err: &err}
	b := w.change(dst, te)
	b = append(b, `"ts_ms":`...)
	b = append(b, ms...)
	b = w.source(b, c.Cluster, ms, te)
	b = w.transaction(b)
	b = w.rowcast(b, te)
	if err != nil {
		return dst, err
	}
	return b, nil
}

// rowEncoding is the cached encoding of a row event's table, nil for other
// kinds and for a table that cannot be encoded (see tableEncoding).
func (c *Codec) rowEncoding(e *Event) *tableEncoding {
	if e.Kind != KindRow {
		return nil
	}
	return c.tableEncoding(e.Table)
}

// msgWriter writes the parts of a message of e, appending to the buffer it
// is given and returning it. The first error sticks in *err: later parts are
// still appended, and the caller then returns the error and its own buffer.
// (err is apart from e so that the event does not escape with the error.)
type msgWriter struct {
	e   *Event
	err *error
}

// fail keeps err (which may be nil) unless an earlier error is kept.
func (w *msgWriter) fail(err error) {
	if *w.err == nil {
		*w.err = err
	}
}

// str appends s as a JSON string; what names s in the error.
func (w *msgWriter) str(b []byte, s, what string) []byte {
	b, ok := appendString(b, s)
	if !ok {
		w.fail(encodeErr(w.e, what, errUTF8))
	}
	return b
}

// member appends the member name (,"name":) and s, unless s is empty.
func (w *msgWriter) member(b []byte, name, s, what string) []byte {
	if s == "" {
		return b
	}
	return w.str(append(b, name...), s, what)
}

// value appends the value v of column i.
func (w *msgWriter) value(b []byte, i int, v any) []byte {
	b, err := appendValue(b, w.e.Table.Columns[i].Kind, v)
	if err != nil {
		w.fail(columnErr(w.e, i, err))
	}
	return b
}

// comma separates element i of a list from the one before.
func comma(b []byte, i int) []byte {
	if i > 0 {
		b = append(b, ',')
	}
	return b
}

// open appends '{' before member i = 0 of an object, else ','.
func open(b []byte, i int) []byte {
	if i > 0 {
		return append(b, ',')
	}
	return append(b, '{')
}

// key writes the key of e without a table encoding.
func (w *msgWriter) key(b []byte) []byte {
	e := w.e
	switch e.Kind {
	case KindRow:
		return w.rowKey(b)
	case KindDDL:
		b = append(b, `{"control":"ddl","db":`...)
		b = w.str(b, e.Database, "ddl database")
		return append(b, '}')
	case KindSnapshot:
		db, table := snapshotScope(e)
		b = append(b, `{"control":"snapshot"`...)
		b = w.member(b, `,"db":`, db, "snapshot database")
		b = w.member(b, `,"table":`, table, "snapshot table")
		return append(b, '}')
	}
	// heartbeat, epoch
	b = append(b, `{"control":"`...)
	b = append(b, kindNames[e.Kind]...)
	return append(b, `"}`...)
}

func (w *msgWriter) rowKey(b []byte) []byte {
	t := w.e.Table
	b = append(b, `{"db":`...)
	b = w.str(b, t.Database, "database name")
	b = append(b, `,"table":`...)
	b = w.str(b, t.Name, "table name")
	if len(t.PrimaryKey) == 0 {
		return append(b, `,"pk":null}`...)
	}
	img := w.e.keyImage()
	b = append(b, `,"pk":{`...)
	for i, ci := range t.PrimaryKey {
		b = comma(b, i)
		b = w.str(b, t.Columns[ci].Name, "column name")
		b = append(b, ':')
		b = w.value(b, ci, img[ci])
	}
	return append(b, "}}"...)
}

// change opens the value and writes the row change of a row event: before,
// after and op.
func (w *msgWriter) change(b []byte, te *tableEncoding) []byte {
	e := w.e
	if e.Kind != KindRow {
		return append(b, '{')
	}
	b = append(b, `{"before":`...)
	b = w.image(b, te, e.Before)
	b = append(b, `,"after":`...)
	b = w.image(b, te, e.After)
	b = append(b, `,"op":"`...)
	return append(b, byte(e.Op), '"', ',')
}

// image writes a row image (see appendImage).
func (w *msgWriter) image(b []byte, te *tableEncoding, img []any) []byte {
	b, err := appendImage(b, w.e, te, img)
	w.fail(err)
	return b
}

// source writes Debezium's MySQL source block.
func (w *msgWriter) source(b []byte, cluster string, ms []byte, te *tableEncoding) []byte {
	e := w.e
	b = append(b, `,"source":{"version":"rowcast","connector":`...)
	b = w.str(b, e.Flavor, "flavor")
	b = append(b, `,"name":`...)
	b = w.str(b, cluster, "cluster name")
	b = append(b, `,"ts_ms":`...)
	b = append(b, ms...)
	b = w.scope(b, te)
	b = append(b, `,"server_id":`...)
	b = strconv.AppendUint(b, uint64(e.ServerID), 10)
	b = append(b, `,"gtid":`...)
	if e.GTID == "" {
		b = append(b, "null"...)
	} else {
		b = w.str(b, e.GTID, "gtid")
	}
	b = append(b, `,"file":`...)
	b = w.str(b, e.File, "binlog file")
	b = append(b, `,"pos":`...)
	b = strconv.AppendUint(b, uint64(e.Offset), 10)
	b = append(b, `,"row":`...)
	b = strconv.AppendUint(b, e.Pos.Row, 10)
	if e.Op == OpRead && e.Kind == KindRow {
		b = append(b, `,"snapshot":"true"`...) // as Debezium marks snapshot reads
	}
	return append(b, '}')
}

// scope writes source.db and source.table.
func (w *msgWriter) scope(b []byte, te *tableEncoding) []byte {
	if te != nil {
		return append(b, te.scope...)
	}
	db, table := sourceScope(w.e)
	b = w.member(b, `,"db":`, db, "database name")
	return w.member(b, `,"table":`, table, "table name")
}

// transaction writes Debezium's transaction block, for the messages of a
// source transaction (rows read by a snapshot have no GTID and no block).
// data_collection_order is the order within the whole transaction, not
// within the table as in Debezium.
func (w *msgWriter) transaction(b []byte) []byte {
	e := w.e
	if !e.InTxn() || e.GTID == "" {
		return b
	}
	b = append(b, `,"transaction":{"id":`...)
	b = w.str(b, e.GTID, "gtid")
	b = append(b, `,"total_order":`...)
	b = strconv.AppendUint(b, e.Pos.Row+1, 10)
	b = append(b, `,"data_collection_order":`...)
	b = strconv.AppendUint(b, e.Pos.Row+1, 10)
	return append(b, '}')
}

// rowcast writes the rowcast section (position, table shape and the control
// payloads) and closes the value.
func (w *msgWriter) rowcast(b []byte, te *tableEncoding) []byte {
	e := w.e
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
	b = w.member(b, `,"gtid_set":`, e.GTIDSet, "gtid set")
	switch {
	case te != nil:
		b = append(b, te.shape...)
	case carriesTable(e.Kind) && e.Table != nil:
		b = w.tableShape(b)
	}
	b = w.control(b)
	return append(b, "}}"...)
}

// control writes the payload of a DDL, epoch or snapshot message.
func (w *msgWriter) control(b []byte) []byte {
	e := w.e
	switch e.Kind {
	case KindDDL:
		b = append(b, `,"ddl":{"db":`...)
		b = w.str(b, e.Database, "ddl database")
		b = append(b, `,"statement":`...)
		b = w.str(b, e.Statement, "ddl statement")
		if e.Session != nil {
			b = w.session(b, e.Session)
		}
		b = append(b, '}')
	case KindEpoch:
		b = w.epochRecord(b)
	case KindHeartbeat:
		if e.Skip != nil {
			b = w.skipRecord(b)
		}
	case KindSnapshot:
		b = append(b, `,"snapshot":"`...)
		b = append(b, e.Snapshot...)
		b = append(b, '"')
		b = w.member(b, `,"definition":`, e.Statement, "snapshot definition")
	}
	return b
}

// tableShape writes rowcast.pk and rowcast.columns.
func (w *msgWriter) tableShape(b []byte) []byte {
	t := w.e.Table
	if len(t.PrimaryKey) > 0 {
		b = append(b, `,"pk":[`...)
		for i, ci := range t.PrimaryKey {
			b = comma(b, i)
			b = w.str(b, t.Columns[ci].Name, "primary key column name")
		}
		b = append(b, ']')
	}
	b = append(b, `,"columns":[`...)
	for i := range t.Columns {
		b = comma(b, i)
		b = w.column(b, i)
	}
	return append(b, ']')
}

// column writes ["name","kind","sql type"] of column i.
func (w *msgWriter) column(b []byte, i int) []byte {
	col := &w.e.Table.Columns[i]
	b = append(b, '[')
	b = w.str(b, col.Name, "column name")
	if col.Kind == 0 || int(col.Kind) >= len(valueKindNames) {
		w.fail(columnErr(w.e, i, fmt.Errorf("unknown value kind %d: %w", uint8(col.Kind), ErrUnsupported)))
		return b
	}
	b = append(b, ",\""...)
	b = append(b, valueKindNames[col.Kind]...)
	b = append(b, "\","...)
	b, ok := appendString(b, col.SQLType)
	if !ok {
		w.fail(columnErr(w.e, i, fmt.Errorf("sql type: %w", errUTF8)))
	}
	return append(b, ']')
}

func (w *msgWriter) epochRecord(b []byte) []byte {
	r := w.e.Epoch
	b = append(b, `,"epoch_record":{"epoch":`...)
	b = strconv.AppendUint(b, r.Epoch, 10)
	b = append(b, `,"master":`...)
	b = w.str(b, r.Master, "epoch record master")
	b = append(b, `,"start_gtid_set":`...)
	b = w.str(b, r.StartGTIDSet, "epoch record gtid set")
	b = append(b, `,"flavor":`...)
	b = w.str(b, r.Flavor, "epoch record flavor")
	b = append(b, `,"txn_seq":`...)
	b = strconv.AppendUint(b, r.TxnSeq, 10)
	return append(b, '}')
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

func encodeErr(e *Event, what string, err error) error {
	return fmt.Errorf("encode %s message %s: %s: %w", e.Kind, e.Pos, what, err)
}

func columnErr(e *Event, i int, err error) error {
	t := e.Table
	return fmt.Errorf("encode %s message %s: column %s.%s.%s (position %d): %w",
		e.Kind, e.Pos, t.Database, t.Name, t.Columns[i].Name, i, err)
}

// ValueSizeHint estimates the size of e's message value from its strings
// and bytes (base64 for binary kinds), so that the publisher can size its
// buffer once for a big row instead of growing it by copies.
func (c *Codec) ValueSizeHint(e *Event) int {
	if e.Kind != KindRow || e.Table == nil {
		return len(e.Statement)
	}
	return imageSizeHint(e.Table.Columns, e.Before) + imageSizeHint(e.Table.Columns, e.After)
}

func imageSizeHint(cols []Column, img []any) int {
	n := 0
	for i, v := range img {
		size := 0
		switch x := v.(type) {
		case string:
			size = len(x)
		case []byte:
			size = len(x)
		}
		if i < len(cols) && (cols[i].Kind == VBytes || cols[i].Kind == VGeometry) {
			size = base64.StdEncoding.EncodedLen(size)
		}
		n += size
	}
	return n
}
