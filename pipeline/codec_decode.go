package pipeline

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

var strictBase64 = base64.StdEncoding.Strict()

// Decode decodes one message. The error wraps ErrMalformed and says what is
// wrong and where. A nil or empty key is not checked; otherwise the key must
// be exactly the one AppendKey writes for the decoded event, so a message
// whose key and value disagree is refused.
//
// Messages of the same table with the same columns share one *Table, which
// must not be modified.
func (c *Codec) Decode(key, value []byte) (*Event, error) {
	e := new(Event)
	if err := c.DecodeInto(e, key, value); err != nil {
		return nil, err
	}
	return e, nil
}

// DecodeInto is Decode into an existing event, reusing the storage of its
// Before and After images: the caller must no longer use the previous
// contents of e. On error e holds no meaningful event.
func (c *Codec) DecodeInto(e *Event, key, value []byte) error {
	beforeBuf, afterBuf := e.Before[:0], e.After[:0]
	*e = Event{}
	var d msgDecoder
	if err := d.top(e, value); err != nil {
		if e.Kind == 0 {
			return fmt.Errorf("decode message: %w", err)
		}
		return decodeErr(e, err)
	}
	if err := d.payload(c, e, beforeBuf, afterBuf); err != nil {
		return decodeErr(e, err)
	}
	if len(key) > 0 {
		var arr [256]byte
		want, err := c.AppendKey(arr[:0], e)
		if err != nil {
			return decodeErr(e, fmt.Errorf("%v: %w", err, ErrMalformed))
		}
		if !bytes.Equal(key, want) {
			return decodeErr(e, fmt.Errorf("key %.200q does not match the value (want %.200q): %w", key, string(want), ErrMalformed))
		}
	}
	return nil
}

func decodeErr(e *Event, err error) error {
	return fmt.Errorf("decode %s message %s: %w", e.Kind, e.Pos, err)
}

// jsonSpan is the text of one JSON value inside a message.
type jsonSpan struct {
	raw []byte
	off int // offset in the message
}

func (p jsonSpan) scan() jsonScanner { return jsonScanner{data: p.raw, base: p.off} }

// msgDecoder holds what one message's sections leave for the next steps. The
// value is read in one pass, except for the row images: they come before the
// columns that say how to read them, so the pass only finds where they end
// and they are read afterwards. The columns section is read only when the
// table cache does not know it.
type msgDecoder struct {
	before, after jsonSpan
	op            []byte
	hasOp         bool
	scratch       []byte // unescaped member names

	pk, columns   jsonSpan
	ddl           jsonSpan
	epochRecord   jsonSpan
	snapshot      []byte
	dbTok, tabTok []byte // source.db and source.table as written, quotes included
	db, table     []byte // their raw contents
	dbEsc, tabEsc bool
}

func (d *msgDecoder) top(e *Event, value []byte) error {
	s := jsonScanner{data: value}
	if err := s.expect('{'); err != nil {
		return err
	}
	var hasSource, hasRowcast bool
	for i := 0; ; i++ {
		more, err := s.next('}', i)
		if err != nil {
			return err
		}
		if !more {
			break
		}
		k, err := s.key(&d.scratch)
		if err != nil {
			return err
		}
		switch string(k) {
		case "before":
			d.before, err = s.skipFast()
		case "after":
			d.after, err = s.skipFast()
		case "op":
			var v jsonSpan
			v, err = s.rawValue()
			d.op, d.hasOp = v.raw, string(v.raw) != "null"
		case "source":
			hasSource = true
			if err = d.source(&s, e); err != nil {
				err = fmt.Errorf("source: %w", err)
			}
		case "rowcast":
			hasRowcast = true
			if err = d.rowcast(&s, e); err != nil {
				err = fmt.Errorf("rowcast: %w", err)
			}
		default:
			err = s.skip(0)
		}
		if err != nil {
			return err
		}
	}
	if err := s.end(); err != nil {
		return err
	}
	if !hasRowcast {
		return fmt.Errorf("no rowcast section (not a rowcast message?): %w", ErrMalformed)
	}
	if !hasSource {
		return fmt.Errorf("no source section: %w", ErrMalformed)
	}
	return nil
}

// rowcast reads the rowcast section: format, kind and position, and keeps
// the rest for payload.
func (d *msgDecoder) rowcast(s *jsonScanner, e *Event) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	const (
		hFormat = 1 << iota
		hKind
		hEpoch
		hTxnSeq
		hRow
		hLast
		hAll = 1<<iota - 1
	)
	var have int
	for i := 0; ; i++ {
		more, err := s.next('}', i)
		if err != nil {
			return err
		}
		if !more {
			break
		}
		k, err := s.key(&d.scratch)
		if err != nil {
			return err
		}
		switch string(k) {
		case "format":
			var v uint64
			if v, err = s.uint(math.MaxUint32); err == nil && v != FormatVersion {
				err = fmt.Errorf("format %d, this rowcast reads format %d (upgrade rowcast): %w", v, FormatVersion, ErrMalformed)
			}
			have |= hFormat
		case "kind":
			var raw []byte
			if raw, _, err = s.rawString(); err == nil {
				if e.Kind = kindByName(raw); e.Kind == 0 {
					err = s.errorf("unknown kind %.40q", raw)
				}
			}
			have |= hKind
		case "epoch":
			e.Pos.Epoch, err = s.uint(math.MaxUint64)
			have |= hEpoch
		case "txn_seq":
			e.Pos.TxnSeq, err = s.uint(math.MaxUint64)
			have |= hTxnSeq
		case "row":
			e.Pos.Row, err = s.uint(math.MaxUint64)
			have |= hRow
		case "last":
			e.Pos.Last, err = s.bool()
			have |= hLast
		case "gtid_set":
			if !s.null() {
				e.GTIDSet, err = s.str()
			}
		case "pk":
			d.pk, err = s.skipFast()
		case "columns":
			d.columns, err = s.skipFast()
		case "ddl":
			d.ddl, err = s.rawValue()
		case "epoch_record":
			d.epochRecord, err = s.rawValue()
		case "snapshot":
			d.snapshot, _, err = s.rawString()
		default:
			err = s.skip(0)
		}
		if err != nil {
			return err
		}
	}
	if have != hAll {
		missing := ""
		for i, n := range []string{"format", "kind", "epoch", "txn_seq", "row", "last"} {
			if have&(1<<i) == 0 {
				missing += " " + n
			}
		}
		return fmt.Errorf("missing field(s)%s: %w", missing, ErrMalformed)
	}
	return nil
}

func kindByName(raw []byte) Kind {
	switch string(raw) {
	case "row":
		return KindRow
	case "ddl":
		return KindDDL
	case "heartbeat":
		return KindHeartbeat
	case "epoch":
		return KindEpoch
	case "snapshot":
		return KindSnapshot
	}
	return 0
}

// source reads Debezium's source block.
func (d *msgDecoder) source(s *jsonScanner, e *Event) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	for i := 0; ; i++ {
		more, err := s.next('}', i)
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
		k, err := s.key(&d.scratch)
		if err != nil {
			return err
		}
		switch string(k) {
		case "connector":
			var raw []byte
			var esc bool
			if raw, esc, err = s.rawString(); err == nil {
				e.Flavor = flavorName(raw, esc)
			}
		case "ts_ms":
			var num []byte
			if num, err = s.number(); err == nil {
				var ms int64
				if ms, err = parseInt(num); err != nil {
					err = s.errorf("ts_ms %.40s: %v", num, err)
				} else if ms != 0 {
					e.CommitTime = time.UnixMilli(ms).UTC()
				} else {
					e.CommitTime = time.Time{}
				}
			}
		case "db":
			if !s.null() {
				start := s.pos
				d.db, d.dbEsc, err = s.rawString()
				d.dbTok = s.data[start:s.pos]
			}
		case "table":
			if !s.null() {
				start := s.pos
				d.table, d.tabEsc, err = s.rawString()
				d.tabTok = s.data[start:s.pos]
			}
		case "server_id":
			var v uint64
			v, err = s.uint(math.MaxUint32)
			e.ServerID = uint32(v)
		case "gtid":
			if !s.null() {
				e.GTID, err = s.str()
			} else {
				e.GTID = ""
			}
		case "file":
			e.File, err = s.str()
		case "pos":
			var v uint64
			v, err = s.uint(math.MaxUint32)
			e.Offset = uint32(v)
		default:
			err = s.skip(0)
		}
		if err != nil {
			return err
		}
	}
}

// flavorName avoids an allocation for the two usual flavors.
func flavorName(raw []byte, esc bool) string {
	switch string(raw) {
	case "mariadb":
		return "mariadb"
	case "mysql":
		return "mysql"
	}
	return unescape(raw, esc)
}

// payload reads what depends on the kind: the table and the row images, the
// DDL statement, the epoch record or the snapshot marker.
func (d *msgDecoder) payload(c *Codec, e *Event, beforeBuf, afterBuf []any) error {
	if e.Kind != KindRow {
		if d.hasOp {
			return fmt.Errorf("op on a %s message: %w", e.Kind, ErrMalformed)
		}
		if !isJSONNull(d.before.raw) || !isJSONNull(d.after.raw) {
			return fmt.Errorf("row image on a %s message: %w", e.Kind, ErrMalformed)
		}
	}
	if carriesTable(e.Kind) && d.columns.raw != nil {
		t, err := c.lookupTable(d)
		if err != nil {
			return err
		}
		e.Table = t
	} else {
		// Not read, but it must still be JSON.
		for _, sp := range []jsonSpan{d.pk, d.columns} {
			if sp.raw != nil {
				s := sp.scan()
				if err := s.skip(0); err != nil {
					return err
				}
			}
		}
	}
	switch e.Kind {
	case KindRow:
		return d.rowImages(e, beforeBuf, afterBuf)
	case KindDDL:
		if d.ddl.raw == nil {
			return fmt.Errorf("ddl message without rowcast.ddl: %w", ErrMalformed)
		}
		return d.ddlSection(e)
	case KindEpoch:
		if d.epochRecord.raw == nil {
			return fmt.Errorf("epoch message without rowcast.epoch_record: %w", ErrMalformed)
		}
		r := new(EpochRecord)
		if err := d.epochSection(r); err != nil {
			return fmt.Errorf("epoch_record: %w", err)
		}
		e.Epoch = r
	case KindSnapshot:
		switch string(d.snapshot) {
		case "start":
			e.Snapshot = "start"
		case "end":
			e.Snapshot = "end"
		default:
			return fmt.Errorf("snapshot marker %.40q is neither start nor end: %w", d.snapshot, ErrMalformed)
		}
		e.Database = unescape(d.db, d.dbEsc)
	}
	return nil
}

func isJSONNull(raw []byte) bool { return raw == nil || string(raw) == "null" }

func (d *msgDecoder) rowImages(e *Event, beforeBuf, afterBuf []any) error {
	if e.Table == nil {
		return fmt.Errorf("row message without rowcast.columns: %w", ErrMalformed)
	}
	if !d.hasOp {
		return fmt.Errorf("row message without op: %w", ErrMalformed)
	}
	var wantBefore, wantAfter bool
	switch string(d.op) {
	case `"c"`:
		e.Op, wantAfter = OpInsert, true
	case `"r"`:
		e.Op, wantAfter = OpRead, true
	case `"u"`:
		e.Op, wantBefore, wantAfter = OpUpdate, true, true
	case `"d"`:
		e.Op, wantBefore = OpDelete, true
	default:
		return fmt.Errorf("unknown op %.40s: %w", d.op, ErrMalformed)
	}
	var err error
	if e.Before, err = d.image(e, "before", d.before, wantBefore, beforeBuf); err != nil {
		return err
	}
	e.After, err = d.image(e, "after", d.after, wantAfter, afterBuf)
	return err
}

func (d *msgDecoder) image(e *Event, name string, sp jsonSpan, want bool, buf []any) ([]any, error) {
	if !want {
		if !isJSONNull(sp.raw) {
			return nil, fmt.Errorf("op %c with a %s image: %w", byte(e.Op), name, ErrMalformed)
		}
		return nil, nil
	}
	if isJSONNull(sp.raw) {
		return nil, fmt.Errorf("op %c without %s image: %w", byte(e.Op), name, ErrMalformed)
	}
	t := e.Table
	img := buf[:0]
	if cap(img) < len(t.Columns) {
		img = make([]any, 0, len(t.Columns))
	}
	s := sp.scan()
	if err := s.expect('{'); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	// The pass over the message only found where the image ends: this reads
	// and checks it all.
	for i := range t.Columns {
		col := &t.Columns[i]
		if more, err := s.next('}', i); err != nil || !more {
			if err == nil {
				err = fmt.Errorf("%d of %d columns: %w", i, len(t.Columns), ErrMalformed)
			}
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		k, err := s.key(&d.scratch)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if string(k) != col.Name {
			return nil, fmt.Errorf("%s: member %.60q where column %s.%s.%s (position %d) belongs: %w",
				name, k, t.Database, t.Name, col.Name, i, ErrMalformed)
		}
		v, err := decodeValue(&s, col.Kind)
		if err != nil {
			return nil, fmt.Errorf("%s: column %s.%s.%s (position %d): %w", name, t.Database, t.Name, col.Name, i, err)
		}
		img = append(img, v)
	}
	if more, err := s.next('}', len(t.Columns)); err != nil || more {
		if err == nil {
			err = s.errorf("more members than the %d columns", len(t.Columns))
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := s.end(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return img, nil
}

// decodeValue reads one column value in the representation of its kind.
func decodeValue(s *jsonScanner, k ValueKind) (any, error) {
	if s.null() {
		return nil, nil
	}
	switch k {
	case VInt, VYear:
		num, err := s.number()
		if err != nil {
			return nil, err
		}
		v, err := parseInt(num)
		if err != nil {
			return nil, s.errorf("%s value %.40s: %v", k, num, err)
		}
		return v, nil
	case VUint, VBit:
		num, err := s.number()
		if err != nil {
			return nil, err
		}
		v, err := parseUint(num, math.MaxUint64)
		if err != nil {
			return nil, s.errorf("%s value %.40s: %v", k, num, err)
		}
		return v, nil
	case VFloat, VDouble:
		num, err := s.number()
		if err != nil {
			return nil, err
		}
		bits := 64
		if k == VFloat {
			bits = 32
		}
		f, err := parseFloat(num, bits)
		if err != nil {
			return nil, s.errorf("%s value %.40s: %v", k, num, err)
		}
		return f, nil
	case VBytes:
		return s.base64(0)
	case VGeometry:
		return s.geometry()
	case VString, VDecimal, VDate, VDateTime, VTimestamp, VTime, VEnum, VSet, VJSON:
		raw, esc, err := s.rawString()
		if err != nil {
			return nil, err
		}
		v := unescape(raw, esc)
		if !checkShape(k, v) {
			return nil, s.errorf("%s value %.40q is not in the %s form", k, v, k)
		}
		return v, nil
	}
	return nil, s.errorf("unknown value kind %d", uint8(k))
}

// base64 reads a base64 string into a new slice with prefix bytes reserved
// at its start.
func (s *jsonScanner) base64(prefix int) ([]byte, error) {
	raw, esc, err := s.rawString()
	if err != nil {
		return nil, err
	}
	if esc {
		raw = appendUnescaped(nil, raw)
	}
	out := make([]byte, prefix+strictBase64.DecodedLen(len(raw)))
	n, err := strictBase64.Decode(out[prefix:], raw)
	if err != nil {
		return nil, s.errorf("base64: %v", err)
	}
	return out[:prefix+n], nil
}

// geometry reads {"wkb":"<base64>","srid":N} into MySQL's internal form.
func (s *jsonScanner) geometry() ([]byte, error) {
	if err := s.expect('{'); err != nil {
		return nil, err
	}
	var g []byte
	var srid uint64
	var scratch []byte
	for i := 0; ; i++ {
		more, err := s.next('}', i)
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
		k, err := s.key(&scratch)
		if err != nil {
			return nil, err
		}
		switch string(k) {
		case "wkb":
			g, err = s.base64(4)
		case "srid":
			if !s.null() {
				srid, err = s.uint(math.MaxUint32)
			}
		default:
			err = s.skip(1)
		}
		if err != nil {
			return nil, err
		}
	}
	if g == nil {
		return nil, s.errorf("geometry without wkb")
	}
	binary.LittleEndian.PutUint32(g, uint32(srid))
	return g, nil
}

func (d *msgDecoder) ddlSection(e *Event) error {
	s := d.ddl.scan()
	if err := s.expect('{'); err != nil {
		return err
	}
	for i := 0; ; i++ {
		more, err := s.next('}', i)
		if err != nil {
			return err
		}
		if !more {
			break
		}
		k, err := s.key(&d.scratch)
		if err != nil {
			return err
		}
		switch string(k) {
		case "db":
			if !s.null() {
				e.Database, err = s.str()
			}
		case "statement":
			e.Statement, err = s.str()
		default:
			err = s.skip(1)
		}
		if err != nil {
			return err
		}
	}
	if e.Statement == "" {
		return fmt.Errorf("ddl without statement: %w", ErrMalformed)
	}
	return nil
}

func (d *msgDecoder) epochSection(r *EpochRecord) error {
	s := d.epochRecord.scan()
	if err := s.expect('{'); err != nil {
		return err
	}
	for i := 0; ; i++ {
		more, err := s.next('}', i)
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
		k, err := s.key(&d.scratch)
		if err != nil {
			return err
		}
		switch string(k) {
		case "epoch":
			r.Epoch, err = s.uint(math.MaxUint64)
		case "master":
			r.Master, err = s.str()
		case "start_gtid_set":
			r.StartGTIDSet, err = s.str()
		case "flavor":
			r.Flavor, err = s.str()
		case "txn_seq":
			r.TxnSeq, err = s.uint(math.MaxUint64)
		default:
			err = s.skip(1)
		}
		if err != nil {
			return err
		}
	}
}

// lookupTable returns the *Table of a message's columns section, from the
// cache when the same database, table, primary key and columns were seen
// before. The cache key is the raw text of those four, which is exactly what
// the *Table is built from.
func (c *Codec) lookupTable(d *msgDecoder) (*Table, error) {
	var arr [512]byte
	key := arr[:0]
	key = append(key, d.dbTok...)
	key = append(key, d.tabTok...)
	if d.pk.raw != nil {
		key = append(key, d.pk.raw...)
	} else {
		key = append(key, '#') // cannot start a JSON value
	}
	key = append(key, d.columns.raw...)

	c.mu.Lock()
	t := c.tables[string(key)]
	c.mu.Unlock()
	if t != nil {
		return t, nil
	}
	t, err := d.parseTable()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.tables[string(key)]; old != nil {
		return old, nil // another goroutine was faster
	}
	if c.tables == nil {
		c.tables = make(map[string]*Table)
	}
	if len(c.tables) >= tableCacheSize {
		for k := range c.tables { // evict one entry, at random
			delete(c.tables, k)
			break
		}
	}
	c.tables[string(key)] = t
	return t, nil
}

// parseTable builds a Table from source.db, source.table, rowcast.pk and
// rowcast.columns.
func (d *msgDecoder) parseTable() (*Table, error) {
	t := &Table{Database: unescape(d.db, d.dbEsc), Name: unescape(d.table, d.tabEsc)}
	if t.Database == "" || t.Name == "" {
		return nil, fmt.Errorf("columns without source.db and source.table: %w", ErrMalformed)
	}
	s := d.columns.scan()
	if err := s.expect('['); err != nil {
		return nil, fmt.Errorf("columns: %w", err)
	}
	names := make(map[string]int)
	for i := 0; ; i++ {
		more, err := s.next(']', i)
		if err != nil {
			return nil, fmt.Errorf("columns: %w", err)
		}
		if !more {
			break
		}
		col, err := parseColumn(&s)
		if err != nil {
			return nil, fmt.Errorf("columns[%d]: %w", i, err)
		}
		if _, dup := names[col.Name]; dup {
			return nil, fmt.Errorf("columns[%d]: column %q twice: %w", i, col.Name, ErrMalformed)
		}
		names[col.Name] = i
		t.Columns = append(t.Columns, col)
	}
	if len(t.Columns) == 0 {
		return nil, fmt.Errorf("table %s.%s without columns: %w", t.Database, t.Name, ErrMalformed)
	}
	if isJSONNull(d.pk.raw) {
		return t, nil
	}
	s = d.pk.scan()
	if err := s.expect('['); err != nil {
		return nil, fmt.Errorf("pk: %w", err)
	}
	for i := 0; ; i++ {
		more, err := s.next(']', i)
		if err != nil {
			return nil, fmt.Errorf("pk: %w", err)
		}
		if !more {
			break
		}
		name, err := s.str()
		if err != nil {
			return nil, fmt.Errorf("pk: %w", err)
		}
		ci, ok := names[name]
		if !ok {
			return nil, fmt.Errorf("pk: column %.60q is not in the columns of %s.%s: %w", name, t.Database, t.Name, ErrMalformed)
		}
		if ci < 0 {
			return nil, fmt.Errorf("pk: column %.60q twice: %w", name, ErrMalformed)
		}
		names[name] = -1
		t.PrimaryKey = append(t.PrimaryKey, ci)
	}
	return t, nil
}

// parseColumn reads ["name","kind","sql type"].
func parseColumn(s *jsonScanner) (Column, error) {
	var col Column
	if err := s.expect('['); err != nil {
		return col, err
	}
	var err error
	if col.Name, err = s.str(); err != nil {
		return col, err
	}
	if err := s.expect(','); err != nil {
		return col, err
	}
	kind, _, err := s.rawString()
	if err != nil {
		return col, err
	}
	if col.Kind, err = ParseValueKind(string(kind)); err != nil {
		return col, fmt.Errorf("column %.60q: %w", col.Name, err)
	}
	if err := s.expect(','); err != nil {
		return col, err
	}
	if col.SQLType, err = s.str(); err != nil {
		return col, err
	}
	return col, s.expect(']')
}
