package pipeline

import (
	"bytes"
	"fmt"
	"math"
	"time"
)

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
	if d.hint = c.enc.last.Load(); d.hint != nil {
		d.shape = d.hint.shape
	}
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
	d.strings.add(&e.GTID, d.gtid.raw, d.gtid.esc)
	d.strings.add(&e.File, d.file.raw, d.file.esc)
	d.strings.finish()
	if len(key) > 0 {
		return c.checkKey(e, key)
	}
	return nil
}

// checkKey refuses a key other than the one AppendKey writes for e.
func (c *Codec) checkKey(e *Event, key []byte) error {
	var arr [256]byte
	want, err := c.AppendKey(arr[:0], e)
	if err != nil {
		return decodeErr(e, fmt.Errorf("%v: %w", err, ErrMalformed))
	}
	if !bytes.Equal(key, want) {
		return decodeErr(e, fmt.Errorf("key %.200q does not match the value (want %.200q): %w", key, string(want), ErrMalformed))
	}
	return nil
}

func decodeErr(e *Event, err error) error {
	return fmt.Errorf("decode %s message %s: %w", e.Kind, e.Pos, err)
}

// prefixErr prefixes err, if not nil, with what it is about.
func prefixErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return wrapErr(what, err)
}

func wrapErr(what string, err error) error { return fmt.Errorf("%s: %w", what, err) }

// jsonSpan is the text of one JSON value inside a message.
type jsonSpan struct {
	raw []byte
	off int // offset in the message
}

func (p jsonSpan) scan() jsonScanner { return jsonScanner{data: p.raw, base: p.off} }

// rawText is a string member as written: tok with its quotes, raw between
// them, still escaped, and esc whether raw holds an escape.
type rawText struct {
	tok, raw []byte
	esc      bool
}

func (t rawText) String() string { return unescape(t.raw, t.esc) }

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

	hasSource, hasRowcast bool

	pk, columns jsonSpan
	ddl         jsonSpan
	epochRecord jsonSpan
	skip        jsonSpan // rowcast.skip of a heartbeat
	snapshot    []byte
	definition  string  // a snapshot start marker's CREATE TABLE
	db, table   rawText // source.db and source.table
	gtid, file  rawText // source.gtid and source.file

	// hint is the encoding of the table of the last message checked or
	// encoded (Codec.enc.last), most often this message's: where the
	// message has its text (rowcast.pk and rowcast.columns, the images'
	// column names), the pass compares instead of reading.
	hint  *tableEncoding
	shape []byte   // hint's rowcast.pk and rowcast.columns, until the pass takes them
	spec  [2][]any // the before and after images read with hint's table
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

// top reads the value in one pass: the sections and where the images are.
func (d *msgDecoder) top(e *Event, value []byte) error {
	s := jsonScanner{data: value}
	l := s.object(topMembers)
	for s.more(&l) {
		l.fail(d.topMember(&s, e, l.name))
	}
	if l.err != nil {
		return l.err
	}
	if err := s.end(); err != nil {
		return err
	}
	switch {
	case !d.hasRowcast:
		return fmt.Errorf("no rowcast section (not a rowcast message?): %w", ErrMalformed)
	case !d.hasSource:
		return fmt.Errorf("no source section: %w", ErrMalformed)
	}
	return nil
}

func (d *msgDecoder) topMember(s *jsonScanner, e *Event, k []byte) error {
	var err error
	switch string(k) {
	case "before":
		d.before, err = d.firstPass(s, 0)
	case "after":
		d.after, err = d.firstPass(s, 1)
	case "op":
		var v jsonSpan
		v, err = s.rawValue()
		d.op, d.hasOp = v.raw, string(v.raw) != "null"
	case "source":
		d.hasSource = true
		err = prefixErr("source", d.source(s, e))
	case "rowcast":
		d.hasRowcast = true
		err = prefixErr("rowcast", d.rowcast(s, e))
	case "transaction":
		if !s.skipTransaction() {
			err = s.skip(0)
		}
	default:
		err = s.skip(0)
	}
	return err
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

// The fields every rowcast section has, as bits of what rowcastMember read.
var rowcastRequired = [...]string{"format", "kind", "epoch", "txn_seq", "row", "last"}

const (
	hFormat = 1 << iota
	hKind
	hEpoch
	hTxnSeq
	hRow
	hLast
	hAll = 1<<iota - 1
)

// rowcast reads the rowcast section: format, kind and position, and keeps
// the rest for payload.
func (d *msgDecoder) rowcast(s *jsonScanner, e *Event) error {
	var have int
	l := s.object(rowcastMembers)
	for s.more(&l) {
		got, err := d.rowcastMember(s, e, l.name)
		have |= got
		l.fail(err)
		if err == nil && d.shape != nil && hasPrefix(s.data[s.pos:], d.shape) {
			d.knownShape(s)
		}
	}
	if l.err != nil {
		return l.err
	}
	return missingFields(have)
}

// rowcastMember reads member k of the rowcast section and returns the bit of
// the required field it is, 0 for the others.
func (d *msgDecoder) rowcastMember(s *jsonScanner, e *Event, k []byte) (int, error) {
	var err error
	switch string(k) {
	case "format":
		return hFormat, s.format()
	case "kind":
		return hKind, s.kind(e)
	case "epoch":
		e.Pos.Epoch, err = s.uint(math.MaxUint64)
		return hEpoch, err
	case "txn_seq":
		e.Pos.TxnSeq, err = s.uint(math.MaxUint64)
		return hTxnSeq, err
	case "row":
		e.Pos.Row, err = s.uint(math.MaxUint64)
		return hRow, err
	case "last":
		e.Pos.Last, err = s.bool()
		return hLast, err
	}
	return 0, d.rowcastPayload(s, e, k)
}

// rowcastPayload reads the GTID set, and keeps the text of the table shape
// and of the control payloads for payload.
func (d *msgDecoder) rowcastPayload(s *jsonScanner, e *Event, k []byte) error {
	var err error
	switch string(k) {
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
	case "skip":
		d.skip, err = s.rawValue()
	case "snapshot":
		d.snapshot, _, err = s.rawString()
	case "definition":
		d.definition, err = s.str()
	default:
		err = s.skip(0)
	}
	return err
}

func missingFields(have int) error {
	if have == hAll {
		return nil
	}
	missing := ""
	for i, n := range rowcastRequired {
		if have&(1<<i) == 0 {
			missing += " " + n
		}
	}
	return fmt.Errorf("missing field(s)%s: %w", missing, ErrMalformed)
}

// format reads rowcast.format, which must be FormatVersion.
func (s *jsonScanner) format() error {
	v, err := s.uint(math.MaxUint32)
	if err == nil && v != FormatVersion {
		err = fmt.Errorf("format %d, this rowcast reads format %d (upgrade rowcast): %w", v, FormatVersion, ErrMalformed)
	}
	return err
}

// kind reads rowcast.kind into e.Kind.
func (s *jsonScanner) kind(e *Event) error {
	raw, _, err := s.rawString()
	if err != nil {
		return err
	}
	if e.Kind = kindByName(raw); e.Kind == 0 {
		return s.errorf("unknown kind %.40q", raw)
	}
	return nil
}

func kindByName(raw []byte) Kind {
	for k := KindRow; int(k) < len(kindNames); k++ {
		if string(raw) == kindNames[k] {
			return k
		}
	}
	return 0
}

// knownShape takes d.shape, the hint's table shape, found at s's position
// after a member of the rowcast section, as the pk and columns
// members the general pass would read there: the encoder wrote it, so it is
// exactly two members (or columns alone) whose values are JSON arrays, and
// their spans are the ones skipFast would find. ,"columns": cannot occur
// inside a JSON string (its quote would be escaped), so its first occurrence
// is the member.
func (d *msgDecoder) knownShape(s *jsonScanner) {
	const pkName, colName = `,"pk":`, `,"columns":`
	text := s.data[s.pos : s.pos+len(d.shape)]
	at := s.base + s.pos
	i := bytes.Index(text, []byte(colName))
	if i > 0 {
		d.pk = jsonSpan{text[len(pkName):i], at + len(pkName)}
	}
	d.columns = jsonSpan{text[i+len(colName):], at + i + len(colName)}
	s.pos += len(text)
	d.shape = nil
}

// source reads Debezium's source block.
func (d *msgDecoder) source(s *jsonScanner, e *Event) error {
	l := s.object(sourceMembers)
	for s.more(&l) {
		l.fail(d.sourceMember(s, e, l.name))
	}
	return l.err
}

func (d *msgDecoder) sourceMember(s *jsonScanner, e *Event, k []byte) error {
	var err error
	switch string(k) {
	case "connector":
		err = s.flavor(&e.Flavor)
	case "ts_ms":
		err = s.commitTime(&e.CommitTime)
	case "db":
		err = s.optText(&d.db)
	case "table":
		err = s.optText(&d.table)
	case "server_id":
		var v uint64
		v, err = s.uint(math.MaxUint32)
		e.ServerID = uint32(v)
	case "gtid":
		d.gtid = rawText{}
		err = s.optText(&d.gtid)
	case "file":
		d.file.raw, d.file.esc, err = s.rawString()
	case "pos":
		var v uint64
		v, err = s.uint(math.MaxUint32)
		e.Offset = uint32(v)
	default:
		err = s.skip(0)
	}
	return err
}

// optText reads a string into *t, or null, which leaves *t as it is.
func (s *jsonScanner) optText(t *rawText) error {
	if s.null() {
		return nil
	}
	start := s.pos // at the quote: null skipped the white space
	raw, esc, err := s.rawString()
	*t = rawText{tok: s.data[start:s.pos], raw: raw, esc: esc}
	return err
}

// flavor reads source.connector into *f.
func (s *jsonScanner) flavor(f *string) error {
	raw, esc, err := s.rawString()
	if err == nil {
		*f = flavorName(raw, esc)
	}
	return err
}

// commitTime reads source.ts_ms, Unix milliseconds (0 for none), into *t.
func (s *jsonScanner) commitTime(t *time.Time) error {
	ms, err := s.int64("ts_ms")
	if err != nil {
		return err
	}
	*t = time.Time{}
	if ms != 0 {
		*t = time.UnixMilli(ms).UTC()
	}
	return nil
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
	if err := d.checkRowParts(e); err != nil {
		return err
	}
	if err := d.tableOf(c, e); err != nil {
		return err
	}
	switch e.Kind {
	case KindRow:
		return d.rowImages(e)
	case KindDDL:
		return d.ddlSection(e)
	case KindEpoch:
		return d.epochSection(e)
	case KindSnapshot:
		return d.snapshotMarker(e)
	case KindHeartbeat:
		return d.skipSection(e)
	}
	return nil
}

// checkRowParts refuses an op or a row image on a message of another kind.
func (d *msgDecoder) checkRowParts(e *Event) error {
	switch {
	case e.Kind == KindRow:
		return nil
	case d.hasOp:
		return fmt.Errorf("op on a %s message: %w", e.Kind, ErrMalformed)
	case !isJSONNull(d.before.raw) || !isJSONNull(d.after.raw):
		return fmt.Errorf("row image on a %s message: %w", e.Kind, ErrMalformed)
	}
	return nil
}

// tableOf sets e.Table from the columns section of a kind that carries one.
// Otherwise the pk and columns sections are not read, but must still be
// JSON.
func (d *msgDecoder) tableOf(c *Codec, e *Event) error {
	if !carriesTable(e.Kind) || d.columns.raw == nil {
		return skipSpans(d.pk, d.columns)
	}
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
	return nil
}

// skipSpans checks the syntax of the spans that were found.
func skipSpans(spans ...jsonSpan) error {
	for _, sp := range spans {
		if sp.raw == nil {
			continue
		}
		s := sp.scan()
		if err := s.skip(0); err != nil {
			return err
		}
	}
	return nil
}

func isJSONNull(raw []byte) bool { return raw == nil || string(raw) == "null" }

func (d *msgDecoder) ddlSection(e *Event) error {
	if d.ddl.raw == nil {
		return fmt.Errorf("ddl message without rowcast.ddl: %w", ErrMalformed)
	}
	s := d.ddl.scan()
	l := s.object(nil)
	for s.more(&l) {
		l.fail(ddlMember(&s, e, l.name))
	}
	if l.err != nil {
		return l.err
	}
	if e.Statement == "" {
		return fmt.Errorf("ddl without statement: %w", ErrMalformed)
	}
	return nil
}

func ddlMember(s *jsonScanner, e *Event, k []byte) error {
	var err error
	switch string(k) {
	case "db":
		if !s.null() {
			e.Database, err = s.str()
		}
	case "statement":
		e.Statement, err = s.str()
	case "session":
		if !s.null() {
			e.Session, err = decodeSession(s)
		}
	default:
		err = s.skip(1)
	}
	return err
}

func (d *msgDecoder) epochSection(e *Event) error {
	if d.epochRecord.raw == nil {
		return fmt.Errorf("epoch message without rowcast.epoch_record: %w", ErrMalformed)
	}
	r := new(EpochRecord)
	s := d.epochRecord.scan()
	l := s.object(nil)
	for s.more(&l) {
		l.fail(epochMember(&s, r, l.name))
	}
	if l.err != nil {
		return prefixErr("epoch_record", l.err)
	}
	e.Epoch = r
	return nil
}

func epochMember(s *jsonScanner, r *EpochRecord, k []byte) error {
	var err error
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
	return err
}

func (d *msgDecoder) snapshotMarker(e *Event) error {
	switch string(d.snapshot) {
	case "start":
		e.Snapshot = "start"
	case "end":
		e.Snapshot = "end"
	default:
		return fmt.Errorf("snapshot marker %.40q is neither start nor end: %w", d.snapshot, ErrMalformed)
	}
	e.Database = d.db.String()
	e.Statement = d.definition
	return nil
}

// lookupTable returns the *Table of a message's columns section, from the
// cache when the same database, table, primary key and columns were seen
// before. The cache key is the raw text of those four, which is exactly what
// the *Table is built from.
func (c *Codec) lookupTable(d *msgDecoder) (*Table, error) {
	var arr [512]byte
	key := append(arr[:0], d.db.tok...)
	key = append(key, d.table.tok...)
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
	c.tables = cachePut(c.tables, string(key), t)
	return t, nil
}

// parseTable builds a Table from source.db, source.table, rowcast.pk and
// rowcast.columns.
func (d *msgDecoder) parseTable() (*Table, error) {
	t := &Table{Database: d.db.String(), Name: d.table.String()}
	if t.Database == "" || t.Name == "" {
		return nil, fmt.Errorf("columns without source.db and source.table: %w", ErrMalformed)
	}
	names, err := parseColumns(d.columns, t)
	if err != nil {
		return nil, err
	}
	if isJSONNull(d.pk.raw) {
		return t, nil
	}
	if err := parsePrimaryKey(d.pk, t, names); err != nil {
		return nil, prefixErr("pk", err)
	}
	return t, nil
}

// parseColumns reads rowcast.columns into t and returns the index of each
// column by name.
func parseColumns(sp jsonSpan, t *Table) (map[string]int, error) {
	names := make(map[string]int)
	s := sp.scan()
	l := s.array()
	for s.more(&l) {
		i := l.n - 1
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
	if l.err != nil {
		return nil, prefixErr("columns", l.err)
	}
	if len(t.Columns) == 0 {
		return nil, fmt.Errorf("table %s.%s without columns: %w", t.Database, t.Name, ErrMalformed)
	}
	return names, nil
}

// parsePrimaryKey reads rowcast.pk, names of columns in names, into t. A
// column's entry in names is -1 once it is in the key.
func parsePrimaryKey(sp jsonSpan, t *Table, names map[string]int) error {
	s := sp.scan()
	l := s.array()
	for s.more(&l) {
		name, err := s.str()
		if err != nil {
			return err
		}
		ci, ok := names[name]
		if !ok {
			return fmt.Errorf("column %.60q is not in the columns of %s.%s: %w", name, t.Database, t.Name, ErrMalformed)
		}
		if ci < 0 {
			return fmt.Errorf("column %.60q twice: %w", name, ErrMalformed)
		}
		names[name] = -1
		t.PrimaryKey = append(t.PrimaryKey, ci)
	}
	return l.err
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
