package history

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/pipeline"
)

// memTopic is a changelog in memory whose first offsets may be deleted.
type memTopic struct {
	first int64
	msgs  []changelog.Message
}

func (m *memTopic) FirstOffset(context.Context) (int64, error) { return m.first, nil }
func (m *memTopic) EndOffset(context.Context) (int64, error)   { return int64(len(m.msgs)), nil }
func (m *memTopic) ReadAt(_ context.Context, off int64, n int) ([]changelog.Message, error) {
	if off < m.first || off > int64(len(m.msgs)) {
		return nil, changelog.ErrOffsetOutOfRange
	}
	end := min(int(off)+n, len(m.msgs))
	return m.msgs[off:end], nil
}

var tbl = &pipeline.Table{Database: "shop", Name: "t",
	Columns: []pipeline.Column{{Name: "id", Kind: pipeline.VInt, SQLType: "int(11)"}}, PrimaryKey: []int{0}}

type builder struct {
	t     *testing.T
	codec pipeline.Codec
	topic memTopic
	base  time.Time
}

func newBuilder(t *testing.T) *builder {
	return &builder{t: t, base: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (b *builder) add(ev *pipeline.Event) int64 {
	b.t.Helper()
	if ev.Flavor == "" {
		ev.Flavor = "mariadb"
	}
	k, err := b.codec.AppendKey(nil, ev)
	if err != nil {
		b.t.Fatal(err)
	}
	v, err := b.codec.AppendValue(nil, ev)
	if err != nil {
		b.t.Fatal(err)
	}
	off := int64(len(b.topic.msgs))
	b.topic.msgs = append(b.topic.msgs, changelog.Message{Offset: off, Key: k, Value: v})
	return off
}

// txn appends rows [from, to) of a transaction of server srv committed at
// base+sec seconds and returns the offset of its first message.
func (b *builder) txn(epoch, seq uint64, srv, sec, rows, from, to int, complete bool) int64 {
	first := int64(len(b.topic.msgs))
	for r := from; r < to; r++ {
		ev := &pipeline.Event{Kind: pipeline.KindRow, Op: pipeline.OpInsert, Table: tbl,
			After: []any{int64(r)}, GTID: fmt.Sprintf("0-%d-%d", srv, seq*10),
			CommitTime: b.base.Add(time.Duration(sec) * time.Second),
			Pos:        pipeline.Position{Epoch: epoch, TxnSeq: seq, Row: uint64(r)}}
		if complete && r == rows-1 {
			ev.Pos.Last = true
			ev.GTIDSet = fmt.Sprintf("0-%d-%d", srv, seq*10)
		}
		b.add(ev)
	}
	return first
}

func (b *builder) epoch(e, lastSeq uint64, master, start string) Mark {
	rec := pipeline.EpochRecord{Epoch: e, Master: master, StartGTIDSet: start, Flavor: "mariadb", TxnSeq: lastSeq}
	off := b.add(&pipeline.Event{Kind: pipeline.KindEpoch, Pos: pipeline.Position{Epoch: e, TxnSeq: lastSeq, Last: true}, Epoch: &rec})
	return Mark{Offset: off, Record: rec}
}

// history builds: epoch 1 on server 1, transactions 1..6 (one per second,
// txn 3 with three rows and a retried copy of its first two), a stray
// partial, then epoch 2 on server 2 with transactions 7..9 interleaved with
// a stray reader of epoch 1.
func history(t *testing.T) (*builder, map[uint64]int64, Mark) {
	b := newBuilder(t)
	start := map[uint64]int64{}
	for seq := uint64(1); seq <= 6; seq++ {
		rows := 1
		if seq == 3 {
			rows = 3
			b.txn(1, 3, 1, 3, 3, 0, 2, false) // cut, then republished whole
		}
		start[seq] = b.txn(1, seq, 1, int(seq), rows, 0, rows, true)
	}
	b.add(&pipeline.Event{Kind: pipeline.KindHeartbeat, GTIDSet: "0-1-65", CommitTime: b.base.Add(6 * time.Second),
		Pos: pipeline.Position{Epoch: 1, TxnSeq: 6, Last: true}})
	m := b.epoch(2, 6, "db2", "0-2-5")
	for seq := uint64(7); seq <= 9; seq++ {
		start[seq] = b.txn(2, seq, 2, int(seq)+10, 2, 0, 2, true)
		b.txn(1, seq, 1, 100, 1, 0, 1, true) // stray reader of the old master
	}
	return b, start, m
}

func TestBoundaryAndTxnStart(t *testing.T) {
	ctx := context.Background()
	b, start, m := history(t)
	l := New(&b.topic, nil, []Mark{m})
	// Row 2 of transaction 3 (the republished copy) starts at its row 0.
	got, err := l.TxnStart(ctx, start[3]+2)
	if err != nil || got != start[3] {
		t.Fatalf("TxnStart = %d, %v; want %d", got, err, start[3])
	}
	bd := boundaryAt(t, l, start[3])
	if after(bd) != (txnAfter{2, 1, "0-1-20"}) || !bd.CommitTime.Equal(b.base.Add(2*time.Second)) {
		t.Fatalf("boundary at txn 3: %+v", bd)
	}
	// The first transaction of epoch 2: epoch 2 is in effect, after txn 6.
	if bd := boundaryAt(t, l, start[7]); after(bd) != (txnAfter{6, 2, "0-2-5"}) {
		t.Fatalf("boundary at txn 7: %+v", bd)
	}
	// The end, behind a stray message: the last real transaction is 9.
	if bd := boundaryAt(t, l, int64(len(b.topic.msgs))); after(bd) != (txnAfter{9, 2, "0-2-90"}) {
		t.Fatalf("boundary at the end: %+v", bd)
	}
	if _, err := l.BoundaryAt(ctx, start[3]+1); err == nil {
		t.Fatal("a row inside a transaction was accepted as a boundary")
	}
}

// txnAfter is what a Boundary says of the transaction before it.
type txnAfter struct {
	txnSeq, epoch uint64
	gtidSet       string
}

func after(b Boundary) txnAfter { return txnAfter{b.TxnSeq, b.Epoch, b.GTIDSet} }

// boundaryAt is l.BoundaryAt, failing the test on an error.
func boundaryAt(t *testing.T, l *Log, offset int64) Boundary {
	t.Helper()
	bd, err := l.BoundaryAt(context.Background(), offset)
	if err != nil {
		t.Fatalf("boundary at %d: %v", offset, err)
	}
	return bd
}

func TestOffsetForTime(t *testing.T) {
	ctx := context.Background()
	b, start, m := history(t)
	l := New(&b.topic, nil, []Mark{m})
	for _, c := range []struct {
		sec  float64
		want int64
	}{
		{0, start[1]}, {1, start[1]}, {2.5, start[2]}, {3, start[3]}, {6, start[6]},
		{7, start[7]}, {18, start[8]}, {19.9, start[9]}, {50, int64(len(b.topic.msgs))},
	} {
		bd, err := l.OffsetForTime(ctx, b.base.Add(time.Duration(c.sec*float64(time.Second))))
		if err != nil {
			t.Fatalf("%vs: %v", c.sec, err)
		}
		if bd.Offset != c.want {
			t.Errorf("time base+%vs: offset %d, want %d", c.sec, bd.Offset, c.want)
		}
	}
	checkTimeAfterRetention(t, l, b, start)
}

// checkTimeAfterRetention deletes the beginning: a time before the first
// retained transaction cannot be replayed, a later one can.
func checkTimeAfterRetention(t *testing.T, l *Log, b *builder, start map[uint64]int64) {
	t.Helper()
	ctx := context.Background()
	b.topic.first = start[4]
	if _, err := l.OffsetForTime(ctx, b.base); !errors.Is(err, ErrRetention) {
		t.Fatalf("time before retention: %v", err)
	}
	if bd, err := l.OffsetForTime(ctx, b.base.Add(5*time.Second)); err != nil || bd.Offset != start[5] {
		t.Fatalf("time after retention: %+v, %v", bd, err)
	}
}

func TestOffsetForGTID(t *testing.T) {
	ctx := context.Background()
	b, start, m := history(t)
	l := New(&b.topic, nil, []Mark{m})
	for _, c := range []struct {
		set  string
		want int64
	}{
		{"", start[1]},
		{"0-1-20", start[3]},
		{"0-1-65", m.Offset}, // all of epoch 1: replay from the epoch 2 record
		{"0-2-5", start[7]},
		{"0-2-70", start[8]},
		{"0-2-90", int64(len(b.topic.msgs))},
	} {
		bd, err := l.OffsetForGTID(ctx, "mariadb", c.set)
		if err != nil {
			t.Fatalf("%q: %v", c.set, err)
		}
		if bd.Offset != c.want {
			t.Errorf("gtid %q: offset %d, want %d", c.set, bd.Offset, c.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	ctx := context.Background()
	b, start, m := history(t)
	l := New(&b.topic, nil, []Mark{m})
	s, err := l.Summarize(ctx, boundaryAt(t, l, start[3]), int64(len(b.topic.msgs)))
	if err != nil {
		t.Fatal(err)
	}
	// Transactions 3..9; txn 3 has 3 rows, 4..6 one, 7..9 two; the stray
	// reader's three messages are stale; no duplicates after the boundary.
	if countsOf(s) != (summaryCounts{txns: 7, rows: 3 + 3 + 6, stale: 3, epochs: 1, first: 3, last: 9}) {
		t.Fatalf("summary %+v", s)
	}
	if len(s.Tables) != 1 || s.Tables[0].Table != "shop.t" || s.Tables[0].Inserts != 12 {
		t.Fatalf("tables %+v", s.Tables)
	}
	checkRepublishedSummary(t, l, start)
}

// checkRepublishedSummary summarizes from before the cut copy of txn 3: its
// first two rows are counted once, the repeat as duplicates.
func checkRepublishedSummary(t *testing.T, l *Log, start map[uint64]int64) {
	t.Helper()
	ctx := context.Background()
	bd, _ := l.BoundaryAt(ctx, start[3]-2)
	s, _ := l.Summarize(ctx, bd, start[4])
	if s.Txns != 1 || s.Rows != 3 || s.Duplicates != 2 {
		t.Fatalf("summary with a republished transaction %+v", s)
	}
}

// summaryCounts are the counters of a Summary that TestSummarize checks.
type summaryCounts struct {
	txns, rows, stale, epochs int64
	first, last               uint64 // TxnSeq
}

func countsOf(s Summary) summaryCounts {
	return summaryCounts{txns: s.Txns, rows: s.Rows, stale: s.Stale, epochs: int64(len(s.Epochs)),
		first: s.First.TxnSeq, last: s.Last.TxnSeq}
}

func TestContains(t *testing.T) {
	for _, c := range []struct {
		set, sub string
		want     bool
	}{
		{"0-1-10", "0-1-9", true},
		{"0-1-10", "0-1-11", false},
		{"0-1-10", "0-2-3", false}, // another master's numbering
		{"0-1-10,1-1-4", "1-1-4", true},
		{"0-1-10", "", true},
		{"3e11fa47-71ca-11e1-9e33-c80aa9429562:1-20", "3e11fa47-71ca-11e1-9e33-c80aa9429562:5-7", true},
		{"3e11fa47-71ca-11e1-9e33-c80aa9429562:1-20", "3e11fa47-71ca-11e1-9e33-c80aa9429562:21", false},
	} {
		got, err := Contains("", c.set, c.sub)
		if err != nil || got != c.want {
			t.Errorf("Contains(%q, %q) = %v, %v", c.set, c.sub, got, err)
		}
	}
}
