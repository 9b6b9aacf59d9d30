// Package history reads the changelog topic as the history of the master
// generations that wrote it: it maps an offset to the source position, GTID
// set and commit time it stands for, maps a commit time or a GTID set back to
// an offset, finds transaction boundaries and epoch records, and summarises a
// range. Replay and promotion build on it (DESIGN.md, "Positions and
// checkpoints": every offset maps to a GTID set, and a time maps to an
// offset).
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

	"github.com/rowcast/rowcast/pipeline"
)

// Topic is what the history needs of the changelog topic (partition 0).
type Topic interface {
	FirstOffset(ctx context.Context) (int64, error)
	EndOffset(ctx context.Context) (int64, error)
	ReadAt(ctx context.Context, offset int64, max int) ([]pipeline.Message, error)
}

// Kafka is the changelog topic cfg names.
func Kafka(cfg pipeline.KafkaConfig) Topic { return kafkaTopic{cfg} }

type kafkaTopic struct{ cfg pipeline.KafkaConfig }

func (k kafkaTopic) FirstOffset(ctx context.Context) (int64, error) {
	return pipeline.FirstOffset(ctx, k.cfg)
}
func (k kafkaTopic) EndOffset(ctx context.Context) (int64, error) {
	return pipeline.EndOffset(ctx, k.cfg)
}
func (k kafkaTopic) ReadAt(ctx context.Context, offset int64, max int) ([]pipeline.Message, error) {
	return pipeline.ReadAt(ctx, k.cfg, offset, max)
}

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
}

// ErrRetention says that what was asked for is older than the topic's
// earliest retained offset.
var ErrRetention = errors.New("older than the earliest offset the topic retains")

// window is how many messages one read asks for.
const window = 1000

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
		if errors.Is(err, pipeline.ErrOffsetOutOfRange) {
			return nil, fmt.Errorf("read the changelog at offset %d: %w (%w)", offset, err, ErrRetention)
		}
		return nil, fmt.Errorf("read the changelog at offset %d: %w", offset, err)
	}
	out := make([]Entry, 0, len(msgs))
	for _, m := range msgs {
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
	for off := from; off < to; {
		es, err := l.Read(ctx, off, window)
		if err != nil {
			return nil, err
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			if e.Offset >= to {
				return out, nil
			}
			if e.Event.Kind == pipeline.KindEpoch && e.Event.Epoch != nil {
				out = append(out, Mark{Offset: e.Offset, Record: *e.Event.Epoch})
			}
			off = e.Offset + 1
		}
	}
	return out, nil
}

// ScanBack walks back from to-1 down to from and returns the newest epoch
// record found, or ok false. It reads every message on the way: use it only
// when no index of the epoch records can be trusted.
func (l *Log) ScanBack(ctx context.Context, from, to int64) (m Mark, ok bool, err error) {
	for hi := to; hi > from; {
		lo := max(from, hi-window)
		es, err := l.Read(ctx, lo, int(hi-lo))
		if err != nil {
			return Mark{}, false, err
		}
		for i := len(es) - 1; i >= 0; i-- {
			e := es[i]
			if e.Offset < hi && e.Event.Kind == pipeline.KindEpoch && e.Event.Epoch != nil {
				return Mark{Offset: e.Offset, Record: *e.Event.Epoch}, true, nil
			}
		}
		hi = lo
	}
	return Mark{}, false, nil
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
