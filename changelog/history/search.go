package history

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// firstMatch returns the first transaction-closing Point in [lo, hi) for
// which pred holds, assuming pred is false and then true along the topic
// (monotone), by binary search over offsets: each probe reads from its
// offset to the next transaction's last message. ok is false when pred
// holds for none.
func (l *Log) firstMatch(ctx context.Context, lo, hi int64, pred func(Point) (bool, error)) (Point, bool, error) {
	var best Point
	found := false
	for lo < hi {
		mid := lo + (hi-lo)/2
		pt, ok, err := l.NextPoint(ctx, mid, hi)
		if err != nil {
			return Point{}, false, err
		}
		if !ok {
			hi = mid
			continue
		}
		match, err := pred(pt)
		if err != nil {
			return Point{}, false, err
		}
		if match {
			best, found = pt, true
			hi = mid
		} else {
			lo = pt.Offset + 1
		}
	}
	return best, found, nil
}

// OffsetForTime returns the boundary before the first transaction whose
// commit time is at or after t: where a replay "from t" starts. The commit
// time is the one in the messages (ts_ms: the master's binlog timestamp of
// the transaction, second precision), not Kafka's record timestamp, so t is
// compared at second precision (t is truncated to the second: transactions
// of that second are included). Commit times increase along the topic under
// one master; across a promotion a clock difference between the masters
// can move the answer by that difference.
//
// When every transaction is older than t the boundary is the end of the
// topic. When the first retained transaction is already at or after t and
// the topic no longer starts at offset 0, what t asks for may have been
// deleted: the error wraps ErrRetention.
func (l *Log) OffsetForTime(ctx context.Context, t time.Time) (Boundary, error) {
	first, end, err := l.Extent(ctx)
	if err != nil {
		return Boundary{}, err
	}
	t = t.Truncate(time.Second)
	pt, start, ok, err := l.firstStart(ctx, first, end, func(p Point) (bool, error) { return !p.CommitTime.Before(t), nil })
	switch {
	case err != nil:
		return Boundary{}, err
	case !ok:
		return l.BoundaryAt(ctx, end)
	case first > 0 && l.firstRetained(ctx, first, end, pt):
		return Boundary{}, fmt.Errorf("the first transaction the topic still holds (offset %d, committed %s) is already at or after %s: earlier transactions of that time may have been deleted by retention (first retained offset %d): %w",
			start, pt.CommitTime.UTC().Format(time.RFC3339), t.UTC().Format(time.RFC3339), first, ErrRetention)
	}
	return l.BoundaryAt(ctx, start)
}

// firstStart is firstMatch, and the offset where the transaction it finds
// starts.
func (l *Log) firstStart(ctx context.Context, lo, hi int64, pred func(Point) (bool, error)) (pt Point, start int64, ok bool, err error) {
	if pt, ok, err = l.firstMatch(ctx, lo, hi, pred); err != nil || !ok {
		return pt, 0, ok, err
	}
	start, err = l.TxnStart(ctx, pt.Offset)
	return pt, start, true, err
}

// firstRetained reports whether pt is the first transaction of [first,
// end), as far as the topic can be read.
func (l *Log) firstRetained(ctx context.Context, first, end int64, pt Point) bool {
	p0, ok, err := l.NextPoint(ctx, first, end)
	return err == nil && ok && p0.Offset == pt.Offset
}

// OffsetForGTID returns the boundary after the last transaction whose GTID
// set is contained in set: where a replay "from set" starts, re-applying
// every transaction set does not hold.
//
// GTID sets of different masters are not comparable along the topic (each
// master numbers its own transactions), so the search runs inside the epoch
// whose master set belongs to: the newest epoch whose start GTID set set
// contains (the first epoch when none does). Transactions of later epochs
// all come after.
func (l *Log) OffsetForGTID(ctx context.Context, flavor, set string) (Boundary, error) {
	first, end, err := l.Extent(ctx)
	if err != nil {
		return Boundary{}, err
	}
	lo, hi, err := l.epochOf(flavor, set, first, end)
	if err != nil {
		return Boundary{}, err
	}
	if lo >= hi {
		return l.BoundaryAt(ctx, hi)
	}
	pt, start, ok, err := l.firstStart(ctx, lo, hi, func(p Point) (bool, error) {
		in, err := Contains(flavor, set, p.GTIDSet)
		return !in, err
	})
	switch {
	case err != nil:
		return Boundary{}, err
	case !ok:
		// set holds every transaction of its epoch: replay from the next.
		return l.BoundaryAt(ctx, hi)
	case lostToRetention(first, lo, start):
		return Boundary{}, fmt.Errorf("%s does not hold the first transaction the topic still holds (offset %d, GTID %s): transactions between it and %s may have been deleted by retention (first retained offset %d): %w",
			set, start, pt.GTID, set, first, ErrRetention)
	}
	return l.BoundaryAt(ctx, start)
}

// lostToRetention reports whether the search of OffsetForGTID found the
// first transaction of a topic that retention cut (first > 0) to start at
// its epoch's beginning: earlier ones of that epoch may be gone.
func lostToRetention(first, lo, start int64) bool {
	return first > 0 && start == lo && lo == first
}

// epochOf returns the range [lo, hi) of the epoch whose master set belongs
// to, within [first, end): the newest epoch whose start GTID set set
// contains, or the first epoch when none does.
func (l *Log) epochOf(flavor, set string, first, end int64) (lo, hi int64, err error) {
	clamp := func(o int64) int64 { return min(end, max(first, o)) }
	lo, hi = first, end
	if len(l.marks) > 0 {
		hi = clamp(l.marks[0].Offset)
	}
	for i := len(l.marks) - 1; i >= 0; i-- {
		m := l.marks[i]
		if m.Record.StartGTIDSet == "" {
			continue
		}
		in, err := Contains(flavor, set, m.Record.StartGTIDSet)
		if err != nil {
			return 0, 0, err
		}
		if !in {
			continue
		}
		hi = end
		if i+1 < len(l.marks) {
			hi = clamp(l.marks[i+1].Offset)
		}
		return clamp(m.Offset), hi, nil
	}
	return lo, hi, nil
}

// Contains reports whether the GTID set set holds every transaction of sub.
//
// MySQL sets (uuid:intervals) compare as sets. A MariaDB GTID position holds
// the last GTID of each replication domain; d-s-n is taken to hold d-s'-n'
// only when s == s' and n >= n'. MariaDB itself compares sequence numbers
// alone, which assumes one numbering per domain across masters; rowcast's
// masters are not native replicas of each other, so each numbers its own
// transactions and numbers of different servers say nothing about order.
func Contains(flavor, set, sub string) (bool, error) {
	if strings.TrimSpace(sub) == "" {
		return true, nil
	}
	if flavor == "" {
		flavor = guessFlavor(set + sub)
	}
	a, err := mysql.ParseGTIDSet(flavor, set)
	if err != nil {
		return false, fmt.Errorf("%q is not a %s GTID set: %w", set, flavor, err)
	}
	b, err := mysql.ParseGTIDSet(flavor, sub)
	if err != nil {
		return false, fmt.Errorf("%q is not a %s GTID set: %w", sub, flavor, err)
	}
	ma, okA := a.(*mysql.MariadbGTIDSet)
	mb, okB := b.(*mysql.MariadbGTIDSet)
	if !okA || !okB {
		return a.Contain(b), nil
	}
	return containsMariaDB(ma, mb), nil
}

// guessFlavor tells MySQL GTID sets (uuid:n) from MariaDB positions.
func guessFlavor(sets string) string {
	if strings.Contains(sets, ":") {
		return mysql.MySQLFlavor
	}
	return mysql.MariaDBFlavor
}

// containsMariaDB compares per domain, by server and sequence number (see
// Contains).
func containsMariaDB(set, sub *mysql.MariadbGTIDSet) bool {
	for d, g := range sub.Sets {
		h, ok := set.Sets[d]
		if !ok || h.ServerID != g.ServerID || h.SequenceNumber < g.SequenceNumber {
			return false
		}
	}
	return true
}
