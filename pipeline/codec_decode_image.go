package pipeline

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"unsafe"
)

// This file reads the row images of a message: the column values, boxed from
// the msgDecoder's slabs, and their strings, set once the event is complete.

var strictBase64 = base64.StdEncoding.Strict()

func (d *msgDecoder) rowImages(e *Event) error {
	if e.Table == nil {
		return fmt.Errorf("row message without rowcast.columns: %w", ErrMalformed)
	}
	if !d.hasOp {
		return fmt.Errorf("row message without op: %w", ErrMalformed)
	}
	op := parseOp(d.op)
	wantBefore, wantAfter, ok := opImages(op)
	if !ok {
		return fmt.Errorf("unknown op %.40s: %w", d.op, ErrMalformed)
	}
	e.Op = op
	var err error
	if e.Before, err = d.image(e, 0, "before", d.before, wantBefore); err != nil {
		return err
	}
	e.After, err = d.image(e, 1, "after", d.after, wantAfter)
	return err
}

// parseOp reads the op member's text, a one-letter string; 0 for any other.
func parseOp(raw []byte) Op {
	if len(raw) != 3 || raw[0] != '"' || raw[2] != '"' {
		return 0
	}
	return Op(raw[1])
}

// image returns image which (0 before, 1 after) of e, read from sp unless
// the first pass read it with the columns of e's table.
func (d *msgDecoder) image(e *Event, which int, name string, sp jsonSpan, want bool) ([]any, error) {
	if err := checkPresence(e.Op, name, sp, want); err != nil || !want {
		return nil, err
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
		return nil, prefixErr(name, err)
	}
	return img, nil
}

// checkPresence refuses an image the op does not have, and a missing one it
// needs.
func checkPresence(op Op, name string, sp jsonSpan, want bool) error {
	switch null := isJSONNull(sp.raw); {
	case !want && !null:
		return fmt.Errorf("op %c with a %s image: %w", byte(op), name, ErrMalformed)
	case want && null:
		return fmt.Errorf("op %c without %s image: %w", byte(op), name, ErrMalformed)
	}
	return nil
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
		if cols != nil && hasPrefix(s.data[s.pos:], cols[i]) {
			s.pos += len(cols[i])
		} else if asEncoded {
			return nil, errNotAsEncoded
		} else if err := d.columnName(s, name, t, i); err != nil {
			return nil, err
		}
		v, err := d.value(s, t.Columns[i].Kind)
		if err != nil {
			return nil, columnValueErr(name, t, i, err, asEncoded)
		}
		img = append(img, v)
	}
	if err := imageEnd(s, name, len(t.Columns), asEncoded); err != nil {
		return nil, err
	}
	return img, nil
}

// columnName reads, the long way, what comes before the value of column i:
// '{' or ',' and the member's name, which must be the column's.
func (d *msgDecoder) columnName(s *jsonScanner, name string, t *Table, i int) error {
	if i == 0 {
		if err := s.expect('{'); err != nil {
			return prefixErr(name, err)
		}
	}
	more, err := s.next('}', i)
	if err == nil && !more {
		err = fmt.Errorf("%d of %d columns: %w", i, len(t.Columns), ErrMalformed)
	}
	if err != nil {
		return prefixErr(name, err)
	}
	k, err := s.key(&d.scratch)
	if err != nil {
		return prefixErr(name, err)
	}
	if col := &t.Columns[i]; string(k) != col.Name {
		return fmt.Errorf("%s: member %.60q where column %s.%s.%s (position %d) belongs: %w",
			name, k, t.Database, t.Name, col.Name, i, ErrMalformed)
	}
	return nil
}

func columnValueErr(name string, t *Table, i int, err error, asEncoded bool) error {
	if asEncoded {
		return errNotAsEncoded
	}
	return fmt.Errorf("%s: column %s.%s.%s (position %d): %w", name, t.Database, t.Name, t.Columns[i].Name, i, err)
}

// imageEnd reads the '}' after the last of an image's n columns.
func imageEnd(s *jsonScanner, name string, n int, asEncoded bool) error {
	if asEncoded {
		if !s.literal("}") {
			return errNotAsEncoded
		}
		return nil
	}
	more, err := s.next('}', n)
	if err == nil && more {
		err = s.errorf("more members than the %d columns", n)
	}
	return prefixErr(name, err)
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
	case VString, VDecimal, VDate, VDateTime, VTimestamp, VTime, VEnum, VSet, VJSON:
		raw, esc, err := s.rawString()
		if err != nil {
			return nil, err
		}
		p := d.stringSlot()
		if v := d.strings.add(p, raw, esc); !checkShape(k, v) {
			return nil, s.errorf("%s value %.40q is not in the %s form", k, string(v), k)
		}
		return boxAt(stringType, unsafe.Pointer(p)), nil
	case VInt, VYear:
		v, err := s.int64(valueLabel(k))
		if err != nil {
			return nil, err
		}
		return d.boxWord(int64Type, uint64(v)), nil
	case VUint, VBit:
		v, err := s.uint64(math.MaxUint64, valueLabel(k))
		if err != nil {
			return nil, err
		}
		return d.boxWord(uint64Type, v), nil
	case VFloat, VDouble:
		return s.float(k)
	case VBytes:
		return s.base64(0)
	case VGeometry:
		return s.geometry()
	}
	return nil, s.errorf("unknown value kind %d", uint8(k))
}

// valueLabel names a value of kind k in errors: "int value".
type valueLabel ValueKind

func (l valueLabel) String() string { return ValueKind(l).String() + " value" }

// stringSlot returns the next slot of the strings' slab.
func (d *msgDecoder) stringSlot() *string {
	if len(d.strs) == cap(d.strs) {
		d.strs = make([]string, 0, 8)
	}
	d.strs = append(d.strs, "")
	return &d.strs[len(d.strs)-1]
}

// float reads a value of kind k, VFloat or VDouble.
func (s *jsonScanner) float(k ValueKind) (any, error) {
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
}

// boxWord returns v, of type int64 or uint64 (typ), boxed from the slab.
func (d *msgDecoder) boxWord(typ unsafe.Pointer, v uint64) any {
	if len(d.words) == cap(d.words) {
		d.words = make([]uint64, 0, 8)
	}
	d.words = append(d.words, v)
	return boxAt(typ, unsafe.Pointer(&d.words[len(d.words)-1]))
}

// eface is an interface value's layout (runtime.eface): boxAt points one at a
// slot of a slab, which is never written once the event is complete, instead of
// allocating a copy per value. Why that is sound: docs/DESIGN.md, "Decoding
// without allocations"; TestDecodeBoxedValues checks it.
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
// text[off:off+n], or own for a big one.
type pendingString struct {
	p      *string
	off, n int
	own    []byte
}

// bigString is the length of a string value from which it gets an
// allocation of its own: in the shared text it would be copied twice (the
// text grows by copies, then finish copies it again), so that a 60 MB value
// was held three times at once.
const bigString = 64 << 10

var stringsPool = sync.Pool{New: func() any { return new(eventStrings) }}

// add appends the text of raw, a string checked by rawString, and returns
// it; finish sets *p to it.
func (es *eventStrings) add(p *string, raw []byte, esc bool) []byte {
	if len(raw) >= bigString {
		return es.addBig(p, raw, esc)
	}
	off := len(es.text)
	if esc {
		es.text = appendUnescaped(es.text, raw)
	} else {
		es.text = append(es.text, raw...)
	}
	es.pending = append(es.pending, pendingString{p: p, off: off, n: len(es.text) - off})
	return es.text[off:]
}

// addBig is add for a big value: its text is copied once, to an allocation
// of its size.
func (es *eventStrings) addBig(p *string, raw []byte, esc bool) []byte {
	var own []byte
	if esc {
		own = appendUnescaped(make([]byte, 0, unescapedLen(raw)), raw)
	} else {
		own = append(make([]byte, 0, len(raw)), raw...)
	}
	es.pending = append(es.pending, pendingString{p: p, own: own})
	return own
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
		if len(ps.own) > 0 {
			*ps.p = unsafe.String(&ps.own[0], len(ps.own))
		} else if ps.n > 0 {
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
	var g []byte
	var srid uint64
	l := s.object(nil)
	for s.more(&l) {
		var err error
		switch string(l.name) {
		case "wkb":
			g, err = s.base64(4)
		case "srid":
			if !s.null() {
				srid, err = s.uint(math.MaxUint32)
			}
		default:
			err = s.skip(1)
		}
		l.fail(err)
	}
	if l.err != nil {
		return nil, l.err
	}
	if g == nil {
		return nil, s.errorf("geometry without wkb")
	}
	binary.LittleEndian.PutUint32(g, uint32(srid))
	return g, nil
}
