package history

import (
	"context"
	"fmt"
	"time"

	"github.com/rowcast/rowcast/pipeline"
)

// Boundary is a point between two source transactions where a sink worker
// can start: the checkpoint it would hold there.
type Boundary struct {
	// Offset is the next message to read: a transaction's first message, a
	// control message, or the end of the topic.
	Offset int64
	// Epoch is the epoch in effect before Offset.
	Epoch uint64
	// TxnSeq is the last source transaction completed before Offset.
	TxnSeq uint64
	// GTIDSet is the master's executed GTID set after TxnSeq, and CommitTime
	// its commit time; both come from a nearby message and are empty when
	// none is found (they are informative; positions decide).
	GTIDSet    string
	CommitTime time.Time
}

func (b Boundary) String() string {
	return fmt.Sprintf("offset %d (after e%d/t%d)", b.Offset, b.Epoch, b.TxnSeq)
}

// TxnStart returns the offset of the first message of the transaction the
// message at offset belongs to; offset itself for a control message or a
// transaction's first message.
//
// Every copy of a transaction starts at row 0 and a retried produce repeats
// a contiguous run, so row r has at least r messages of the same transaction
// right before it: the walk jumps back by r (as FindResume does).
func (l *Log) TxnStart(ctx context.Context, offset int64) (int64, error) {
	first, _, err := l.Extent(ctx)
	if err != nil {
		return 0, err
	}
	e, err := l.At(ctx, offset)
	if err != nil {
		return 0, err
	}
	if !e.Event.InTxn() || l.Stale(e) {
		return offset, nil
	}
	seq, cur := e.Event.Pos.TxnSeq, e
	for cur.Event.Pos.Row > 0 {
		prev := cur.Offset - int64(cur.Event.Pos.Row)
		if prev < first {
			return 0, fmt.Errorf("transaction e%d/t%d at offset %d starts before offset %d: %w",
				cur.Event.Pos.Epoch, seq, offset, first, ErrRetention)
		}
		p, err := l.At(ctx, prev)
		if err != nil {
			return 0, err
		}
		if p.Event.InTxn() && p.Event.Pos.TxnSeq == seq && p.Event.Pos.Row < cur.Event.Pos.Row {
			cur = p
			continue
		}
		// Something else sits in between (a stray reader's messages): walk
		// back message by message.
		if cur, err = l.walkToRow0(ctx, cur, first); err != nil {
			return 0, err
		}
	}
	return cur.Offset, nil
}

func (l *Log) walkToRow0(ctx context.Context, from Entry, first int64) (Entry, error) {
	seq := from.Event.Pos.TxnSeq
	for hi := from.Offset; hi > first; {
		lo := max(first, hi-window)
		es, err := l.Read(ctx, lo, int(hi-lo))
		if err != nil {
			return Entry{}, err
		}
		for i := len(es) - 1; i >= 0; i-- {
			e := es[i]
			if e.Offset < hi && e.Event.InTxn() && e.Event.Pos.TxnSeq == seq && e.Event.Pos.Row == 0 && !l.Stale(e) {
				return e, nil
			}
		}
		hi = lo
	}
	return Entry{}, fmt.Errorf("the first message of transaction t%d (before offset %d) is not in the topic: %w", seq, from.Offset, ErrRetention)
}

// BoundaryAt returns the boundary at offset, which must be a transaction's
// first message, a control message or the end of the topic (see TxnStart).
func (l *Log) BoundaryAt(ctx context.Context, offset int64) (Boundary, error) {
	first, end, err := l.Extent(ctx)
	if err != nil {
		return Boundary{}, err
	}
	switch {
	case offset < first:
		return Boundary{}, fmt.Errorf("offset %d: the topic's earliest retained offset is %d: %w", offset, first, ErrRetention)
	case offset > end:
		return Boundary{}, fmt.Errorf("offset %d is past the end of the topic (%d)", offset, end)
	}
	b := Boundary{Offset: offset, Epoch: l.EpochAt(offset)}
	if offset == end {
		last, ok, err := l.LastBefore(ctx, end, -1)
		if err != nil {
			return Boundary{}, err
		}
		if ok {
			b.TxnSeq, b.GTIDSet, b.CommitTime = last.TxnSeq, last.GTIDSet, last.CommitTime
			b.Epoch = max(b.Epoch, last.Epoch)
		}
		return b, nil
	}
	e, err := l.At(ctx, offset)
	if err != nil {
		return Boundary{}, err
	}
	ev := e.Event
	switch {
	case l.Stale(e):
		last, ok, err := l.LastBefore(ctx, offset, -1)
		if err != nil {
			return Boundary{}, err
		}
		if ok {
			b.TxnSeq, b.GTIDSet, b.CommitTime = last.TxnSeq, last.GTIDSet, last.CommitTime
		}
		return b, nil
	case ev.InTxn():
		if ev.Pos.Row != 0 {
			return Boundary{}, fmt.Errorf("offset %d is row %d of transaction %s, not a transaction boundary", offset, ev.Pos.Row, ev.Pos)
		}
		b.TxnSeq = ev.Pos.TxnSeq - 1
		if b.Epoch == 0 {
			b.Epoch = ev.Pos.Epoch
		}
	case ev.Kind == pipeline.KindEpoch && ev.Epoch != nil:
		b.TxnSeq = ev.Epoch.TxnSeq
		if b.Epoch == 0 && ev.Epoch.Epoch > 1 {
			b.Epoch = ev.Epoch.Epoch - 1
		}
	default:
		b.TxnSeq = ev.Pos.TxnSeq
		if b.Epoch == 0 {
			b.Epoch = ev.Pos.Epoch
		}
	}
	b.Epoch = max(b.Epoch, 1)
	// The GTID set and commit time after TxnSeq, from a message nearby.
	if last, ok, err := l.LastBefore(ctx, offset, 2*window); err == nil && ok && last.TxnSeq == b.TxnSeq {
		b.GTIDSet, b.CommitTime = last.GTIDSet, last.CommitTime
	}
	return b, nil
}

// Point is a message that closes a transaction (its last message) or
// carries the position between transactions (a heartbeat, an epoch record).
type Point struct {
	Offset     int64
	Kind       pipeline.Kind
	Epoch      uint64 // the message's epoch; an epoch record's new epoch
	TxnSeq     uint64 // last transaction completed at this point
	GTID       string // the transaction's GTID (last messages only)
	GTIDSet    string // master's GTID set after TxnSeq (an epoch record: the new master's start set)
	CommitTime time.Time
	Record     *pipeline.EpochRecord
}

func pointOf(e Entry) (Point, bool) {
	ev := e.Event
	p := Point{Offset: e.Offset, Kind: ev.Kind, Epoch: ev.Pos.Epoch, TxnSeq: ev.Pos.TxnSeq, GTIDSet: ev.GTIDSet, CommitTime: ev.CommitTime}
	switch {
	case ev.Kind == pipeline.KindEpoch && ev.Epoch != nil:
		p.Epoch, p.TxnSeq, p.GTIDSet, p.Record = ev.Epoch.Epoch, ev.Epoch.TxnSeq, ev.Epoch.StartGTIDSet, ev.Epoch
		return p, true
	case ev.InTxn() && ev.Pos.Last:
		p.GTID = ev.GTID
		return p, true
	case ev.Kind == pipeline.KindHeartbeat && ev.GTIDSet != "":
		return p, true
	}
	return Point{}, false
}

// LastBefore walks back from before-1 to the newest Point that is not
// stale: the position of the topic just before offset `before`. It looks at
// most limit messages (limit < 0: down to the first retained offset) and
// jumps over partial transactions. ok is false when there is none.
func (l *Log) LastBefore(ctx context.Context, before int64, limit int64) (Point, bool, error) {
	first, _, err := l.Extent(ctx)
	if err != nil {
		return Point{}, false, err
	}
	floor := first
	if limit >= 0 {
		floor = max(first, before-limit)
	}
	p := before - 1
	for p >= floor {
		lo := max(floor, p-window+1)
		es, err := l.Read(ctx, lo, int(p-lo+1))
		if err != nil {
			return Point{}, false, err
		}
		if len(es) == 0 {
			return Point{}, false, fmt.Errorf("changelog read at offset %d returned nothing", lo)
		}
		for i := len(es) - 1; i >= 0; i-- {
			e := es[i]
			if e.Offset > p {
				continue
			}
			if l.Stale(e) {
				p = e.Offset - 1
				continue
			}
			if pt, ok := pointOf(e); ok {
				return pt, true, nil
			}
			if e.Event.InTxn() {
				p = e.Offset - int64(e.Event.Pos.Row) - 1
			} else {
				p = e.Offset - 1
			}
		}
		p = min(p, lo-1)
	}
	return Point{}, false, nil
}

// NextPoint returns the first Point at or after offset that is not stale,
// closing a transaction (heartbeats and epoch records are passed over), or
// ok false when the topic ends first.
func (l *Log) NextPoint(ctx context.Context, offset, end int64) (Point, bool, error) {
	for off := offset; off < end; {
		es, err := l.Read(ctx, off, min(window, int(end-off)))
		if err != nil {
			return Point{}, false, err
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			off = e.Offset + 1
			if e.Offset >= end {
				return Point{}, false, nil
			}
			if !e.Event.InTxn() || !e.Event.Pos.Last || l.Stale(e) {
				continue
			}
			if pt, ok := pointOf(e); ok {
				return pt, true, nil
			}
		}
	}
	return Point{}, false, nil
}
