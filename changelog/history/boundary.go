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
	for e.Event.Pos.Row > 0 {
		if e, err = l.earlierRow(ctx, e, offset, first); err != nil {
			return 0, err
		}
	}
	return e.Offset, nil
}

// earlierRow returns a message before cur of the same transaction, with a
// lower row: the one cur's row says, or else (something sits in between,
// a stray reader's messages) its row 0, found message by message.
func (l *Log) earlierRow(ctx context.Context, cur Entry, offset, first int64) (Entry, error) {
	pos := cur.Event.Pos
	prev := cur.Offset - int64(pos.Row)
	if prev < first {
		return Entry{}, fmt.Errorf("transaction e%d/t%d at offset %d starts before offset %d: %w",
			pos.Epoch, pos.TxnSeq, offset, first, ErrRetention)
	}
	p, err := l.At(ctx, prev)
	if err != nil {
		return Entry{}, err
	}
	if p.Event.InTxn() && p.Event.Pos.TxnSeq == pos.TxnSeq && p.Event.Pos.Row < pos.Row {
		return p, nil
	}
	return l.walkToRow0(ctx, cur, first)
}

func (l *Log) walkToRow0(ctx context.Context, from Entry, first int64) (Entry, error) {
	seq := from.Event.Pos.TxnSeq
	var row0 Entry
	found := false
	err := l.forEachBack(ctx, first, from.Offset, func(e Entry) bool {
		found = e.Event.InTxn() && e.Event.Pos.TxnSeq == seq && e.Event.Pos.Row == 0 && !l.Stale(e)
		row0 = e
		return !found
	})
	switch {
	case err != nil:
		return Entry{}, err
	case !found:
		return Entry{}, fmt.Errorf("the first message of transaction t%d (before offset %d) is not in the topic: %w", seq, from.Offset, ErrRetention)
	}
	return row0, nil
}

// BoundaryAt returns the boundary at offset, which must be a transaction's
// first message, a control message or the end of the topic (see TxnStart).
func (l *Log) BoundaryAt(ctx context.Context, offset int64) (Boundary, error) {
	first, end, err := l.Extent(ctx)
	if err == nil {
		err = checkInTopic(offset, first, end)
	}
	if err != nil {
		return Boundary{}, err
	}
	b := Boundary{Offset: offset, Epoch: l.EpochAt(offset)}
	if offset == end {
		return l.boundaryAfterLast(ctx, b, true)
	}
	e, err := l.At(ctx, offset)
	if err != nil {
		return Boundary{}, err
	}
	if l.Stale(e) {
		return l.boundaryAfterLast(ctx, b, false)
	}
	if err := b.before(e); err != nil {
		return Boundary{}, err
	}
	b.Epoch = max(b.Epoch, 1)
	l.nearbyPosition(ctx, &b)
	return b, nil
}

// nearbyPosition sets the GTID set and commit time after b.TxnSeq, when a
// message nearby before b says them.
func (l *Log) nearbyPosition(ctx context.Context, b *Boundary) {
	last, ok, err := l.LastBefore(ctx, b.Offset, 2*window)
	if err == nil && ok && last.TxnSeq == b.TxnSeq {
		b.GTIDSet, b.CommitTime = last.GTIDSet, last.CommitTime
	}
}

// checkInTopic refuses an offset outside [first, end].
func checkInTopic(offset, first, end int64) error {
	switch {
	case offset < first:
		return fmt.Errorf("offset %d: the topic's earliest retained offset is %d: %w", offset, first, ErrRetention)
	case offset > end:
		return fmt.Errorf("offset %d is past the end of the topic (%d)", offset, end)
	}
	return nil
}

// boundaryAfterLast completes b, at the end of the topic or at a stale
// message, from the last transaction before it; at the end, a newer epoch
// of that transaction is the one in effect.
func (l *Log) boundaryAfterLast(ctx context.Context, b Boundary, atEnd bool) (Boundary, error) {
	last, ok, err := l.LastBefore(ctx, b.Offset, -1)
	if err != nil {
		return Boundary{}, err
	}
	if ok {
		b.TxnSeq, b.GTIDSet, b.CommitTime = last.TxnSeq, last.GTIDSet, last.CommitTime
	}
	if ok && atEnd {
		b.Epoch = max(b.Epoch, last.Epoch)
	}
	return b, nil
}

// before sets the transaction completed before e, which must start one or
// be a control message, and the epoch when the epoch records do not say.
func (b *Boundary) before(e Entry) error {
	ev := e.Event
	switch {
	case ev.InTxn() && ev.Pos.Row != 0:
		return fmt.Errorf("offset %d is row %d of transaction %s, not a transaction boundary", e.Offset, ev.Pos.Row, ev.Pos)
	case ev.InTxn():
		b.TxnSeq = ev.Pos.TxnSeq - 1
	case ev.Kind == pipeline.KindEpoch && ev.Epoch != nil:
		b.TxnSeq = ev.Epoch.TxnSeq
		if b.Epoch == 0 && ev.Epoch.Epoch > 1 {
			b.Epoch = ev.Epoch.Epoch - 1
		}
		return nil
	default:
		b.TxnSeq = ev.Pos.TxnSeq
	}
	if b.Epoch == 0 {
		b.Epoch = ev.Pos.Epoch
	}
	return nil
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
	w := newWindow()
	for p >= floor {
		lo := max(floor, p-int64(w.Next())+1)
		sp, err := l.readBack(ctx, lo, p, w)
		if err != nil {
			return Point{}, false, err
		}
		if sp.first < 0 {
			return Point{}, false, fmt.Errorf("changelog read at offset %d returned nothing", lo)
		}
		pt, ok, next := l.lastPointIn(sp.es, p)
		if ok {
			return pt, true, nil
		}
		p = min(next, sp.first-1)
	}
	return Point{}, false, nil
}

// lastPointIn walks es back from offset p to the newest Point that is not
// stale. Without one, it returns where to go on from: before the first
// message of the oldest transaction it passed.
func (l *Log) lastPointIn(es []Entry, p int64) (Point, bool, int64) {
	for i := len(es) - 1; i >= 0; i-- {
		e := es[i]
		switch {
		case e.Offset > p:
			continue
		case l.Stale(e):
			p = e.Offset - 1
			continue
		}
		if pt, ok := pointOf(e); ok {
			return pt, true, p
		}
		p = e.Offset - 1
		if e.Event.InTxn() {
			p -= int64(e.Event.Pos.Row)
		}
	}
	return Point{}, false, p
}

// NextPoint returns the first Point at or after offset that is not stale,
// closing a transaction (heartbeats and epoch records are passed over), or
// ok false when the topic ends first.
func (l *Log) NextPoint(ctx context.Context, offset, end int64) (pt Point, ok bool, err error) {
	err = l.forEach(ctx, offset, end, func(e Entry) bool {
		if e.Event.InTxn() && e.Event.Pos.Last && !l.Stale(e) {
			pt, ok = pointOf(e)
		}
		return !ok
	})
	if err != nil {
		return Point{}, false, err
	}
	return pt, ok, nil
}
