// Package history reads the changelog topic as the history of the master
// generations that wrote it: it maps an offset to the source position, GTID
// set and commit time it stands for, maps a commit time or a GTID set back to
// an offset, finds transaction boundaries and epoch records, and summarises a
// range. Replay and promotion build on it (docs/DESIGN.md, "Positions":
// every offset maps to a GTID set, and a time maps to an offset).
//
// Messages of an older epoch that follow a newer epoch record (a fenced
// master or a stray reader still publishing) are "stale": sinks ignore them,
// and so does every map here, given the epoch records (Marks) of the topic.
//
// Nothing here holds more than one read window of messages in memory.
package history

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/pipeline"
)

// Topic is what the history needs of the changelog topic (partition 0).
type Topic = changelog.Topic

// Mark is an epoch record and its offset.
type Mark struct {
	Offset int64
	Record pipeline.EpochRecord
}

// Log reads one topic. It is not safe for concurrent use.
type Log struct {
	t     Topic
	codec *pipeline.Codec
	marks []Mark // by offset
	// Refused counts the messages read so far that failed the signature
	// check and were left out.
	Refused int
}

// ErrRetention says that what was asked for is older than the topic's
// earliest retained offset.
var ErrRetention = errors.New("older than the earliest offset the topic retains")

// window is how many messages one read asks for at most; a read also holds
// about changelog.DefaultBackBudget bytes at most, so that big messages are
// held a few at a time.
const window = 1000

func newWindow() *changelog.BackWindow {
	return &changelog.BackWindow{Max: window, Budget: changelog.DefaultBackBudget}
}

// New returns a Log of t. marks are the topic's epoch records (see Scan and
// the failover package's index); with none, no message is considered stale.
func New(t Topic, codec *pipeline.Codec, marks []Mark) *Log {
	m := append([]Mark(nil), marks...)
	sort.Slice(m, func(i, j int) bool { return m[i].Offset < m[j].Offset })
	if codec == nil {
		codec = &pipeline.Codec{}
	}
	return &Log{t: t, codec: codec, marks: m}
}

// Marks returns the epoch records the Log knows, by offset.
func (l *Log) Marks() []Mark { return l.marks }

// Extent returns the first retained offset and the end offset.
func (l *Log) Extent(ctx context.Context) (first, end int64, err error) {
	if first, err = l.t.FirstOffset(ctx); err != nil {
		return 0, 0, err
	}
	end, err = l.t.EndOffset(ctx)
	return first, end, err
}

// EpochAt is the epoch in effect for a message at offset: the epoch of the
// last epoch record before it, 0 when none is known.
func (l *Log) EpochAt(offset int64) uint64 {
	var e uint64
	for _, m := range l.marks {
		if m.Offset >= offset {
			break
		}
		e = max(e, m.Record.Epoch)
	}
	return e
}

// Entry is one decoded message.
type Entry struct {
	Offset int64
	Event  *pipeline.Event
}

// Stale reports whether the entry is a message of an older epoch after a
// newer epoch record: every sink ignores it.
func (l *Log) Stale(e Entry) bool {
	if e.Event.Kind == pipeline.KindEpoch {
		return e.Event.Epoch != nil && e.Event.Epoch.Epoch <= l.EpochAt(e.Offset)
	}
	return e.Event.Pos.Epoch < l.EpochAt(e.Offset)
}

// Read decodes up to n messages from offset on. An undecodable message is an
// error naming its offset.
func (l *Log) Read(ctx context.Context, offset int64, n int) ([]Entry, error) {
	msgs, err := l.t.ReadAt(ctx, offset, n)
	if err != nil {
		return nil, readErr(offset, err)
	}
	return l.decode(msgs)
}

// span is what one read returned: the decoded entries, and the offsets of
// the first and last message read, those left out included (-1 when the
// read returned nothing), so that a walk moves past a window of refused
// messages instead of taking it for the end.
type span struct {
	es          []Entry
	first, last int64
}

func (l *Log) spanOf(msgs []changelog.Message) (span, error) {
	es, err := l.decode(msgs)
	sp := span{es: es, first: -1, last: -1}
	if len(msgs) > 0 {
		sp.first, sp.last = msgs[0].Offset, msgs[len(msgs)-1].Offset
	}
	return sp, err
}

// readBack decodes the newest messages of [lo, hi], as many as fit a read
// window's bytes (changelog.ReadBack), and adjusts w to them.
func (l *Log) readBack(ctx context.Context, lo, hi int64, w *changelog.BackWindow) (span, error) {
	msgs, err := changelog.ReadBack(ctx, l.t, lo, hi, w.Budget)
	if err != nil {
		return span{}, readErr(lo, err)
	}
	w.Saw(msgs)
	return l.spanOf(msgs)
}

// readOn decodes messages from offset on, at most n and about w's budget of
// bytes when the topic can bound a read by bytes.
func (l *Log) readOn(ctx context.Context, offset int64, n int, w *changelog.BackWindow) (span, error) {
	var msgs []changelog.Message
	var err error
	if bt, ok := l.t.(changelog.BoundedTopic); ok {
		msgs, err = bt.ReadAtMost(ctx, offset, n, w.Budget)
	} else {
		msgs, err = l.t.ReadAt(ctx, offset, n)
	}
	if err != nil {
		return span{}, readErr(offset, err)
	}
	return l.spanOf(msgs)
}

func readErr(offset int64, err error) error {
	if errors.Is(err, changelog.ErrOffsetOutOfRange) {
		return fmt.Errorf("read the changelog at offset %d: %w (%w)", offset, err, ErrRetention)
	}
	return fmt.Errorf("read the changelog at offset %d: %w", offset, err)
}

// decode decodes msgs; an undecodable message is an error naming its offset.
// A message that failed the signature check is left out, as if it were not
// in the topic: no map of the history follows what rowcast did not write.
func (l *Log) decode(msgs []changelog.Message) ([]Entry, error) {
	out := make([]Entry, 0, len(msgs))
	for _, m := range msgs {
		if m.SigErr != nil {
			l.Refused++
			continue
		}
		ev, err := l.codec.Decode(m.Key, m.Value)
		if err != nil {
			return nil, fmt.Errorf("changelog offset %d cannot be decoded (%w): inspect it with `rowcast tail --from-offset %d --limit 1`", m.Offset, err, m.Offset)
		}
		out = append(out, Entry{Offset: m.Offset, Event: ev})
	}
	return out, nil
}

// At decodes the message at offset.
func (l *Log) At(ctx context.Context, offset int64) (Entry, error) {
	es, err := l.Read(ctx, offset, 1)
	if err != nil {
		return Entry{}, err
	}
	if len(es) == 0 || es[0].Offset != offset {
		return Entry{}, fmt.Errorf("no message at offset %d of the changelog", offset)
	}
	return es[0], nil
}

// Scan returns the epoch records in [from, to), in offset order, reading
// every message of the range. Records that are not newer than the ones
// before them (a stale copy) are kept: the caller decides.
func (l *Log) Scan(ctx context.Context, from, to int64) ([]Mark, error) {
	var out []Mark
	err := l.forEach(ctx, from, to, func(e Entry) bool {
		if m, ok := markOf(e); ok {
			out = append(out, m)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ScanBack walks back from to-1 down to from and returns the newest epoch
// record found, or ok false. It reads every message on the way: use it only
// when no index of the epoch records can be trusted.
func (l *Log) ScanBack(ctx context.Context, from, to int64) (m Mark, ok bool, err error) {
	err = l.forEachBack(ctx, from, to, func(e Entry) bool {
		m, ok = markOf(e)
		return !ok
	})
	return m, ok, err
}

// markOf is the Mark of an epoch record's entry.
func markOf(e Entry) (Mark, bool) {
	if e.Event.Kind != pipeline.KindEpoch || e.Event.Epoch == nil {
		return Mark{}, false
	}
	return Mark{Offset: e.Offset, Record: *e.Event.Epoch}, true
}

// forEach calls fn with the entries of [from, to) in offset order, a read
// window at a time, until fn returns false or the topic ends.
func (l *Log) forEach(ctx context.Context, from, to int64, fn func(Entry) bool) error {
	w := newWindow()
	for off := from; off < to; {
		sp, err := l.readOn(ctx, off, min(window, int(to-off)), w)
		if err != nil || sp.last < off {
			return err
		}
		for _, e := range sp.es {
			if e.Offset >= to || !fn(e) {
				return nil
			}
		}
		off = sp.last + 1
	}
	return nil
}

// forEachBack calls fn with the entries of [from, to) from the newest back,
// a read window at a time, until fn returns false.
func (l *Log) forEachBack(ctx context.Context, from, to int64, fn func(Entry) bool) error {
	w := newWindow()
	for hi := to; hi > from; {
		lo := max(from, hi-int64(w.Next()))
		sp, err := l.readBack(ctx, lo, hi-1, w)
		if err != nil || sp.first < 0 {
			return err
		}
		for i := len(sp.es) - 1; i >= 0; i-- {
			if sp.es[i].Offset < hi && !fn(sp.es[i]) {
				return nil
			}
		}
		hi = sp.first
	}
	return nil
}

// AddMark records an epoch record the Log did not know.
func (l *Log) AddMark(m Mark) {
	for _, x := range l.marks {
		if x.Offset == m.Offset {
			return
		}
	}
	l.marks = append(l.marks, m)
	sort.Slice(l.marks, func(i, j int) bool { return l.marks[i].Offset < l.marks[j].Offset })
}
