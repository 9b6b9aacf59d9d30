package pipeline

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
	"unsafe"
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
	var d msgDecoder
	d.strings = stringsPool.Get().(*eventStrings)
	defer d.strings.release()
	d.bufs = [2][]any{e.Before[:0], e.After[:0]}
	d.hint = c.enc.last.Load()
	*e = Event{}
	if err := d.top(e, value); err != nil {
		if e.Kind == 0 {
			return fmt.Errorf("decode message: %w", err)
		}
		return decodeErr(e, err)
	}
	if err := d.payload(c, e); err != nil {
		return decodeErr(e, err)
	}
	d.strings.add(&e.GTID, d.gtid, d.gtidEsc)
	d.strings.add(&e.File, d.file, d.fileEsc)
	d.strings.finish()
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
// and they are read afterwards, unless the pass could read them with the
// columns of the last message's table (hint) and that is the message's
// table. The columns section is read only when the table cache does not
// know it.
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

	gtid, file       []byte // source.gtid and source.file, raw
	gtidEsc, fileEsc bool

	// hint is the encoding of the table of the last message checked or
	// encoded (Codec.enc.last), most often this message's: where the
	// message has its text (rowcast.pk and rowcast.columns, the images'
	// column names), the pass compares instead of reading.
	hint      *tableEncoding
	shapeDone bool
	spec      [2][]any // the before and after images read with hint's table
	// te is the encoding of the message's table, for the images' names.
	te *tableEncoding

	// The images' values: bufs holds them (DecodeInto's storage), and the
	// strings and integers among them point into strs and words (boxAt).
	bufs  [2][]any
	strs  []string
	words []uint64

	strings *eventStrings
}

// The members of the value, its source block and its rowcast section in the
// order the encoder writes them, for jsonScanner.member.
var (
	topMembers     = memberNames("before", "after", "op", "ts_ms", "source", "transaction", "rowcast")
	sourceMembers  = memberNames("version", "connector", "name", "ts_ms", "db", "table", "server_id", "gtid", "file", "pos", "row")
	rowcastMembers = memberNames("format", "kind", "epoch", "txn_seq", "row", "last", "gtid_set", "pk", "columns")
)

func (d *msgDecoder) top(e *Event, value []byte) error {
	s := jsonScanner{data: value}
	if err := s.expect('{'); err != nil {
		return err
	}
	var hasSource, hasRowcast bool
	guess := 0
	for i := 0; ; i++ {
		more, err := s.next('}', i)
		if err != nil {
			return err
		}
		if !more {
			break
		}
		k, err := s.member(topMembers, &guess, &d.scratch)
		if err != nil {
			return err
		}
		switch string(k) {
		case "before":
			d.before, err = d.firstPass(&s, 0)
		case "after":
			d.after, err = d.firstPass(&s, 1)
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
		case "transaction":
			if !s.skipTransaction() {
				err = s.skip(0)
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

// skipTransaction reads over Debezium's transaction block when it is
// written as the encoder writes it, {"id":"..","total_order":N,
// "data_collection_order":N}, which is what skip would accept and read
// there. It reports false, having consumed nothing, for any other text.
func (s *jsonScanner) skipTransaction() bool {
	pos := s.pos
	ok := s.literal(`{"id":`) && s.peek() == '"'
	if ok {
		_, _, err := s.rawString()
		ok = err == nil && s.literal(`,"total_order":`)
	}
	if ok {
		_, _, ok = s.digits()
		ok = ok && s.literal(`,"data_collection_order":`)
	}
	if ok {
		_, _, ok = s.digits()
		ok = ok && s.literal(`}`)
	}
	if !ok {
		s.pos = pos
	}
	return ok
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
	guess := 0
	for i := 0; ; i++ {
		if i > 0 && d.hint != nil && !d.shapeDone && hasPrefix(s.data[s.pos:], d.hint.shape) {
			d.knownShape(s)
			guess = len(rowcastMembers)
			continue
		}
		more, err := s.next('}', i)
		if err != nil {
			return err
		}
		if !more {
			break
		}
		k, err := s.member(rowcastMembers, &guess, &d.scratch)
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

// knownShape takes d.hint.shape, found at s's position, as the pk and columns
// members the general pass would read there: the encoder wrote it, so it is
// exactly two members (or columns alone) whose values are JSON arrays, and
// their spans are the ones skipFast would find. ,"columns": cannot occur
// inside a JSON string (its quote would be escaped), so its first occurrence
// is the member.
func (d *msgDecoder) knownShape(s *jsonScanner) {
	const pkName, colName = `,"pk":`, `,"columns":`
	text := s.data[s.pos : s.pos+len(d.hint.shape)]
	at := s.base + s.pos
	i := bytes.Index(text, []byte(colName))
	if i > 0 {
		d.pk = jsonSpan{text[len(pkName):i], at + len(pkName)}
	}
	d.columns = jsonSpan{text[i+len(colName):], at + i + len(colName)}
	s.pos += len(text)
	d.shapeDone = true
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
	guess := 0
	for i := 0; ; i++ {
		more, err := s.next('}', i)
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
		k, err := s.member(sourceMembers, &guess, &d.scratch)
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
			var ms int64
			pos := s.pos
			if v, neg, ok := s.digits(); ok && !neg && v <= math.MaxInt64 {
				ms = int64(v)
			} else {
				s.pos = pos
				var num []byte
				if num, err = s.number(); err == nil {
					if ms, err = parseInt(num); err != nil {
						err = s.errorf("ts_ms %.40s: %v", num, err)
					}
				}
			}
			if err == nil {
				e.CommitTime = time.Time{}
				if ms != 0 {
					e.CommitTime = time.UnixMilli(ms).UTC()
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
			d.gtid, d.gtidEsc = nil, false
			if !s.null() {
				d.gtid, d.gtidEsc, err = s.rawString()
			}
		case "file":
			d.file, d.fileEsc, err = s.rawString()
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
func (d *msgDecoder) payload(c *Codec, e *Event) error {
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
		if e.Kind == KindRow {
			if d.te = d.hint; d.te == nil || d.te.t != t {
				d.te = c.tableEncoding(t)
			}
		}
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
		return d.rowImages(e)
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

func (d *msgDecoder) rowImages(e *Event) error {
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
	if e.Before, err = d.image(e, 0, "before", d.before, wantBefore); err != nil {
		return err
	}
	e.After, err = d.image(e, 1, "after", d.after, wantAfter)
	return err
}

// image returns image which (0 before, 1 after) of e, read from sp unless
// the first pass read it with the columns of e's table.
func (d *msgDecoder) image(e *Event, which int, name string, sp jsonSpan, want bool) ([]any, error) {
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
	if img := d.spec[which]; img != nil && d.hint.t == t {
		return img, nil
	}
	var cols [][]byte
	if d.te != nil && d.te.t == t {
		cols = d.te.cols
	}
	d.reserve(t, 2-which)
	s := sp.scan()
	img, err := d.readImage(&s, name, t, cols, d.imageBuf(which, len(t.Columns)), false)
	if err != nil {
		return nil, err
	}
	if err := s.end(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return img, nil
}

// firstPass reads over image which (0 before, 1 after) in the pass over the
// message and returns its span. With a hint, it first tries to read the
// image with the hint's columns, as the encoder writes them: when that
// reads the whole image, the span is the one skipFast would return (the text
// is a JSON object), and image takes the values if the message turns out to
// be of the hint's table. Any difference ends the try, and what it wrote is
// dropped.
func (d *msgDecoder) firstPass(s *jsonScanner, which int) (jsonSpan, error) {
	d.spec[which] = nil
	if h := d.hint; h != nil && s.peek() == '{' {
		d.reserve(h.t, 2-which)
		start := s.pos
		text, pending, strs, words := len(d.strings.text), len(d.strings.pending), d.strs, d.words
		img, err := d.readImage(s, "", h.t, h.cols, d.imageBuf(which, len(h.t.Columns)), true)
		if err == nil {
			d.spec[which] = img
			return jsonSpan{s.data[start:s.pos], s.base + start}, nil
		}
		s.pos = start
		d.strings.text, d.strings.pending = d.strings.text[:text], d.strings.pending[:pending]
		d.strs, d.words = strs, words
	}
	return s.skipFast()
}

// errNotAsEncoded ends readImage's try in the first pass (not reported).
var errNotAsEncoded = errors.New("not as encoded")

// readImage reads a row image of t at s's position into buf: '{', then each
// column's name and value in table order, then '}'. Where the text is the
// encoder's, '{' or ',' and a column's name are one comparison with cols,
// t's encoding (if not nil). With asEncoded, it stops at the first other
// text with errNotAsEncoded.
func (d *msgDecoder) readImage(s *jsonScanner, name string, t *Table, cols [][]byte, buf []any, asEncoded bool) ([]any, error) {
	img := buf[:0]
	for i := range t.Columns {
		col := &t.Columns[i]
		if cols != nil && hasPrefix(s.data[s.pos:], cols[i]) {
			s.pos += len(cols[i])
		} else {
			if asEncoded {
				return nil, errNotAsEncoded
			}
			if i == 0 {
				if err := s.expect('{'); err != nil {
					return nil, fmt.Errorf("%s: %w", name, err)
				}
			}
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
		}
		v, err := d.value(s, col.Kind)
		if err != nil {
			if asEncoded {
				return nil, errNotAsEncoded
			}
			return nil, fmt.Errorf("%s: column %s.%s.%s (position %d): %w", name, t.Database, t.Name, col.Name, i, err)
		}
		img = append(img, v)
	}
	if asEncoded && !s.literal("}") {
		return nil, errNotAsEncoded
	}
	if !asEncoded {
		if more, err := s.next('}', len(t.Columns)); err != nil || more {
			if err == nil {
				err = s.errorf("more members than the %d columns", len(t.Columns))
			}
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return img, nil
}

// imageBuf returns the storage for image which (0 before, 1 after) of n
// values. An event without storage gets one slice for both images.
func (d *msgDecoder) imageBuf(which, n int) []any {
	if cap(d.bufs[which]) < n {
		if which == 0 && cap(d.bufs[1]) < n {
			both := make([]any, 2*n)
			d.bufs[0], d.bufs[1] = both[:0:n], both[n:n:2*n]
		} else {
			d.bufs[which] = make([]any, 0, n)
		}
	}
	return d.bufs[which][:0]
}

// reserve makes room in the slabs for the string and integer values of
// images images of table t.
func (d *msgDecoder) reserve(t *Table, images int) {
	var strs, words int
	for i := range t.Columns {
		switch t.Columns[i].Kind {
		case VInt, VYear, VUint, VBit:
			words++
		case VString, VDecimal, VDate, VDateTime, VTimestamp, VTime, VEnum, VSet, VJSON:
			strs++
		}
	}
	if strs > cap(d.strs)-len(d.strs) {
		d.strs = make([]string, 0, images*strs)
	}
	if words > cap(d.words)-len(d.words) {
		d.words = make([]uint64, 0, images*words)
	}
}

// value reads one column value in the representation of its kind. Strings
// and integers are boxed from the slabs (boxAt); the strings' text is set by
// eventStrings.finish.
func (d *msgDecoder) value(s *jsonScanner, k ValueKind) (any, error) {
	if s.null() {
		return nil, nil
	}
	switch k {
	case VInt, VYear:
		v, err := s.intValue(k)
		if err != nil {
			return nil, err
		}
		return d.boxWord(int64Type, uint64(v)), nil
	case VUint, VBit:
		v, err := s.uintValue(k)
		if err != nil {
			return nil, err
		}
		return d.boxWord(uint64Type, v), nil
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
		if len(d.strs) == cap(d.strs) {
			d.strs = make([]string, 0, 8)
		}
		d.strs = append(d.strs, "")
		p := &d.strs[len(d.strs)-1]
		if v := d.strings.add(p, raw, esc); !checkShape(k, v) {
			return nil, s.errorf("%s value %.40q is not in the %s form", k, string(v), k)
		}
		return boxAt(stringType, unsafe.Pointer(p)), nil
	}
	return nil, s.errorf("unknown value kind %d", uint8(k))
}

// boxWord returns v, of type int64 or uint64 (typ), boxed from the slab.
func (d *msgDecoder) boxWord(typ unsafe.Pointer, v uint64) any {
	if len(d.words) == cap(d.words) {
		d.words = make([]uint64, 0, 8)
	}
	d.words = append(d.words, v)
	return boxAt(typ, unsafe.Pointer(&d.words[len(d.words)-1]))
}

// An interface value whose dynamic type is not a pointer is a type word and
// a pointer to a copy of the value (runtime.eface; reflect builds them the
// same way). Converting a string or an integer to an interface allocates
// that copy, which was most of a row's allocations; boxAt instead points the
// interface at a slot of one of the msgDecoder's slabs, one allocation for
// all the values of a kind. A slot is not written once the event is complete
// (eventStrings.finish sets the strings before), and an append past a slab's
// capacity moves on to a new array, so the value an interface holds does not
// change. TestDecodeBoxedValues checks that the values behave as ordinary
// ones.
type eface struct {
	typ, data unsafe.Pointer
}

var (
	stringType = typeWord("")
	int64Type  = typeWord(int64(0))
	uint64Type = typeWord(uint64(0))
)

func typeWord(v any) unsafe.Pointer { return (*eface)(unsafe.Pointer(&v)).typ }

// boxAt returns the interface of type typ whose value is at p.
func boxAt(typ, p unsafe.Pointer) (v any) {
	*(*eface)(unsafe.Pointer(&v)) = eface{typ: typ, data: p}
	return v
}

// eventStrings holds the strings of an event being decoded: their text is
// written to a reused buffer, and copied to one allocation of its size once
// the event is complete (finish).
type eventStrings struct {
	text    []byte
	pending []pendingString
}

// pendingString is a string of the event not set yet: its text is
// text[off:off+n].
type pendingString struct {
	p      *string
	off, n int
}

var stringsPool = sync.Pool{New: func() any { return new(eventStrings) }}

// add appends the text of raw, a string checked by rawString, and returns
// it; finish sets *p to it.
func (es *eventStrings) add(p *string, raw []byte, esc bool) []byte {
	off := len(es.text)
	if esc {
		es.text = appendUnescaped(es.text, raw)
	} else {
		es.text = append(es.text, raw...)
	}
	es.pending = append(es.pending, pendingString{p: p, off: off, n: len(es.text) - off})
	return es.text[off:]
}

// finish copies the strings' text to one allocation and sets them. The
// bytes are never written again.
func (es *eventStrings) finish() {
	var b []byte
	if len(es.text) > 0 {
		b = make([]byte, len(es.text))
		copy(b, es.text)
	}
	for _, ps := range es.pending {
		*ps.p = ""
		if ps.n > 0 {
			*ps.p = unsafe.String(&b[ps.off], ps.n)
		}
	}
}

// release returns es to the pool, unless it grew for big values.
func (es *eventStrings) release() {
	if cap(es.text) > 64<<10 || cap(es.pending) > 4096 {
		return
	}
	clear(es.pending) // the pointers into the last event
	es.text, es.pending = es.text[:0], es.pending[:0]
	stringsPool.Put(es)
}

// intValue reads the value of a column of kind k, VInt or VYear.
func (s *jsonScanner) intValue(k ValueKind) (int64, error) {
	pos := s.pos
	if v, neg, ok := s.digits(); ok {
		switch {
		case !neg && v <= math.MaxInt64:
			return int64(v), nil
		case neg && v <= math.MaxInt64:
			return -int64(v), nil
		}
	}
	s.pos = pos
	num, err := s.number()
	if err != nil {
		return 0, err
	}
	v, err := parseInt(num)
	if err != nil {
		return 0, s.errorf("%s value %.40s: %v", k, num, err)
	}
	return v, nil
}

// uintValue reads the value of a column of kind k, VUint or VBit.
func (s *jsonScanner) uintValue(k ValueKind) (uint64, error) {
	pos := s.pos
	if v, neg, ok := s.digits(); ok && !neg {
		return v, nil
	}
	s.pos = pos
	num, err := s.number()
	if err != nil {
		return 0, err
	}
	v, err := parseUint(num, math.MaxUint64)
	if err != nil {
		return 0, s.errorf("%s value %.40s: %v", k, num, err)
	}
	return v, nil
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
