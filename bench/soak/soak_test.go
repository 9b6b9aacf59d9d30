package main

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/pipeline"
)

func TestMinusAndMerged(t *testing.T) {
	a, b := []int64{1, 3, 5, 7}, []int64{2, 3, 7, 9}
	if got := minus(a, b); !slices.Equal(got, []int64{1, 5}) {
		t.Fatalf("minus = %v", got)
	}
	if got := minus(a, nil); !slices.Equal(got, a) {
		t.Fatalf("minus nothing = %v", got)
	}
	if got := merged([]int64{4, 8}, []int64{1, 6}); !slices.Equal(got, []int64{1, 4, 6, 8}) {
		t.Fatalf("merged = %v", got)
	}
}

// TestScheduleDealsEveryKind: each round of faults holds every kind once;
// the switchover comes once in the first half, its way back once in the
// second, and the run ends only when the master is home.
func TestScheduleDealsEveryKind(t *testing.T) {
	start := time.Now()
	p := newSchedule(rand.New(rand.NewPCG(1, 2)), start, time.Hour)
	seen := map[string]int{}
	for i := 0; i < 2*len(faults); i++ {
		f, ok := p.next(start)
		if !ok {
			t.Fatal("the schedule ended before the run did")
		}
		seen[f.name]++
	}
	for _, f := range faults {
		if seen[f.name] != 2 {
			t.Fatalf("two rounds dealt %s %d times: %v", f.name, seen[f.name], seen)
		}
	}
	if f, _ := p.next(p.away.Add(time.Millisecond)); f.name != switchover.name || p.away.After(start.Add(30*time.Minute)) {
		t.Fatalf("at its moment (%v into the run) the schedule dealt %s", p.away.Sub(start), f.name)
	}
	if f, _ := p.next(p.back.Add(time.Millisecond)); f.name != switchBack.name || p.back.Before(start.Add(30*time.Minute)) {
		t.Fatalf("at its moment (%v into the run) the schedule dealt %s", p.back.Sub(start), f.name)
	}
	if f, ok := p.next(start.Add(2 * time.Hour)); ok {
		t.Fatalf("after the end the schedule dealt %s", f.name)
	}

	// A run too short for either moment still switches over and back.
	p = newSchedule(rand.New(rand.NewPCG(3, 4)), start, time.Second)
	var names []string
	for f, ok := p.next(start.Add(time.Minute)); ok; f, ok = p.next(start.Add(time.Minute)) {
		names = append(names, f.name)
	}
	if !slices.Equal(names, []string{switchover.name, switchBack.name}) {
		t.Fatalf("after the end the schedule dealt %v", names)
	}
}

func ledgerRow(seq, row uint64, last bool, epoch uint64, gtid string, id int64) *pipeline.Event {
	return &pipeline.Event{Kind: pipeline.KindRow, Pos: pipeline.Position{Epoch: epoch, TxnSeq: seq, Row: row, Last: last},
		GTID: gtid, Table: &pipeline.Table{Name: "ledger"}, Op: pipeline.OpInsert, After: []any{id}}
}

func accountRow(seq, row uint64, epoch uint64, gtid string) *pipeline.Event {
	return &pipeline.Event{Kind: pipeline.KindRow, Pos: pipeline.Position{Epoch: epoch, TxnSeq: seq, Row: row},
		GTID: gtid, Table: &pipeline.Table{Name: "accounts"}, Op: pipeline.OpUpdate, After: []any{int64(1), int64(5)}}
}

// TestTopicAudit: copies are skipped, an open transaction and old-epoch
// messages after an epoch record are dropped, and each transfer counts
// once.
func TestTopicAudit(t *testing.T) {
	evs := []*pipeline.Event{
		{Kind: pipeline.KindHeartbeat},
		accountRow(1, 0, 1, "0-1-1"), ledgerRow(1, 1, true, 1, "0-1-1", 10),
		accountRow(1, 0, 1, "0-1-1"), ledgerRow(1, 1, true, 1, "0-1-1", 10), // republished after a crash
		accountRow(2, 0, 1, "0-1-2"), // left open by the epoch record
		{Kind: pipeline.KindEpoch, Epoch: &pipeline.EpochRecord{Epoch: 2, TxnSeq: 1}},
		ledgerRow(2, 1, true, 1, "0-1-2", 20), // old epoch: ignored
		accountRow(2, 0, 2, "0-2-5"), ledgerRow(2, 1, true, 2, "0-2-5", 30),
	}
	a := &topicAudit{epoch: 1}
	for i, ev := range evs {
		if err := a.add(ev); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if a.txns != 2 || !slices.Equal(a.ledger, []int64{10, 30}) {
		t.Fatalf("%d transactions, ledger %v", a.txns, a.ledger)
	}
	if err := a.check([]int64{10, 30}); err != nil {
		t.Fatal(err)
	}
	if err := a.check([]int64{10, 20, 30}); err == nil || !strings.Contains(err.Error(), "1 missing") {
		t.Fatalf("a transfer missing from the topic: %v", err)
	}
	if err := a.add(ledgerRow(3, 0, true, 2, "0-2-6", 30)); err != nil {
		t.Fatal(err)
	}
	if err := a.check([]int64{10, 30}); err == nil || !strings.Contains(err.Error(), "two transactions") {
		t.Fatalf("a transfer in two transactions: %v", err)
	}
	if err := a.add(ledgerRow(5, 0, true, 2, "0-2-8", 40)); err == nil || !strings.Contains(err.Error(), "gap") {
		t.Fatalf("a gap: %v", err)
	}
}
