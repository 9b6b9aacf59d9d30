package sinktest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
)

// testIdempotence feeds retried produces (a message twice in a row), a
// transaction cut by a reader crash and republished whole, and a whole
// transaction sent again later: every copy is skipped and counted exactly.
func testIdempotence(t *testing.T, setup func(*testing.T) (sink.Target, Inspect)) {
	tgt, insp := setup(t)
	w := NewWorkload(insp.Database(), 4, 80, false)
	msgs, dups := withDuplicates(t, w.Msgs)
	var c Counters
	st := mustRun(t, tgt, NewInput(msgs), sink.WorkerConfig{}, &c)
	Compare(t, insp, w.Script)
	if got := c.Get(sink.DuplicatesSkipped); got != dups {
		t.Errorf("duplicates skipped %d, want %d", got, dups)
	}
	if got, want := c.Get(sink.RowsApplied), rowMessages(w.Script); got != want {
		t.Errorf("rows applied %d, want %d", got, want)
	}
	if got := c.Get(sink.TxnsApplied); got != int(w.Seq()) {
		t.Errorf("txns applied %d, want %d", got, w.Seq())
	}
	if st.Offset != int64(len(msgs)) || st.TxnSeq != w.Seq() {
		t.Errorf("status %+v, want offset %d txn %d", st, len(msgs), w.Seq())
	}
}

// withDuplicates copies a history with duplicates in it: the first two
// messages of a transaction past its first quarter published before a
// reader crash (then the whole transaction again), every fifth message
// produced twice, and transaction 10 again after transaction 30. dups counts
// the copies.
func withDuplicates(t *testing.T, orig []sink.Message) (msgs []sink.Message, dups int) {
	partial := false
	for i, m := range orig {
		ev := m.Event
		if !partial && i > len(orig)/4 && startsLongTxn(orig, i) {
			msgs = append(msgs, orig[i], orig[i+1]) // published, then the reader crashed
			dups += 2
			partial = true
		}
		msgs = append(msgs, m)
		if ev.InTxn() && i%5 == 0 { // a retried produce
			msgs = append(msgs, m)
			dups++
		}
		if ev.InTxn() && ev.Pos.Last && ev.Pos.TxnSeq == 30 {
			again := txnMessages(orig, 10)
			msgs = append(msgs, again...)
			dups += len(again)
		}
	}
	if !partial {
		t.Fatal("no multi-row transaction to republish")
	}
	return msgs, dups
}

// startsLongTxn reports the first row of a transaction of more than two
// messages.
func startsLongTxn(msgs []sink.Message, i int) bool {
	ev := msgs[i].Event
	return ev.Kind == pipeline.KindRow && ev.Pos.Row == 0 && i+2 < len(msgs) &&
		!msgs[i+1].Event.Pos.Last && msgs[i+1].Event.Pos.TxnSeq == ev.Pos.TxnSeq
}

// txnMessages are the messages of source transaction seq.
func txnMessages(msgs []sink.Message, seq uint64) []sink.Message {
	var out []sink.Message
	for _, m := range msgs {
		if m.Event.InTxn() && m.Event.Pos.TxnSeq == seq {
			out = append(out, m)
		}
	}
	return out
}

// testOldEpoch: after the epoch 2 record, a message of epoch 1 (a stray
// reader of the old master) and a stale epoch record are ignored.
func testOldEpoch(t *testing.T, setup func(*testing.T) (sink.Target, Inspect)) {
	tgt, insp := setup(t)
	w := NewWorkload(insp.Database(), 5, 0, false)
	for id := int64(1); id <= 3; id++ {
		w.Insert("accounts", w.account(id)...)
	}
	w.Commit()
	w.Insert("items", int64(1), "a", int64(5))
	w.Commit()
	w.Epoch(2)
	w.Append(&pipeline.Event{Kind: pipeline.KindRow, Pos: pipeline.Position{Epoch: 1, TxnSeq: w.Seq() + 1, Last: true},
		Table: w.tables["accounts"].t, Op: pipeline.OpInsert, After: w.account(99)})
	w.Append(&pipeline.Event{Kind: pipeline.KindEpoch, Pos: pipeline.Position{Epoch: 1}, Epoch: &pipeline.EpochRecord{Epoch: 1}})
	w.Update("accounts", []any{int64(1)}, w.account(1)...)
	w.Delete("accounts", int64(2))
	w.Insert("accounts", w.account(4)...)
	w.Commit()

	var c Counters
	st := mustRun(t, tgt, NewInput(w.Msgs), sink.WorkerConfig{}, &c)
	Compare(t, insp, w.Script)
	if got := c.Get(sink.OldEpochIgnored); got != 1 {
		t.Errorf("old-epoch messages ignored %d, want 1", got)
	}
	if st.Epoch != 2 || st.TxnSeq != w.Seq() {
		t.Errorf("status %+v, want epoch 2, txn %d", st, w.Seq())
	}
}

// testAbandon: a transaction of epoch 1 is cut (its last message never came)
// and followed by a new master's epoch record (or directly by a message of
// epoch 2): the partial transaction is dropped and the new master's
// transaction with the same TxnSeq is applied.
func testAbandon(t *testing.T, setup func(*testing.T) (sink.Target, Inspect), record, live bool) {
	tgt, insp := setup(t)
	w := NewWorkload(insp.Database(), 6, 0, false)
	w.Insert("accounts", w.account(1)...)
	w.Insert("accounts", w.account(2)...)
	w.Commit()
	w.Update("accounts", []any{int64(2)}, w.account(2)...)
	w.Commit()
	tbl := w.tables["accounts"].t
	for i, id := range []int64{50, 51} {
		w.Append(&pipeline.Event{Kind: pipeline.KindRow, Pos: pipeline.Position{Epoch: 1, TxnSeq: w.Seq() + 1, Row: uint64(i)},
			Table: tbl, Op: pipeline.OpInsert, After: w.account(id)})
	}
	if record {
		w.Epoch(2)
	} else {
		w.SetEpoch(2)
	}
	w.Insert("accounts", w.account(60)...)
	w.Delete("accounts", int64(1))
	w.Commit()
	w.Insert("accounts", w.account(61)...)
	w.Commit()

	in := NewInput(w.Msgs)
	in.Live = live
	var c Counters
	st := mustRun(t, tgt, in, sink.WorkerConfig{}, &c)
	Compare(t, insp, w.Script)
	if got := c.Get(sink.TxnsAbandoned); got != 1 {
		t.Errorf("abandoned %d transactions, want 1", got)
	}
	if st.Epoch != 2 || st.TxnSeq != w.Seq() || st.Offset != int64(len(w.Msgs)) {
		t.Errorf("status %+v, want epoch 2, txn %d, offset %d", st, w.Seq(), len(w.Msgs))
	}
}

// testMalformed: an undecodable message stops the worker with an error that
// names its offset, after committing everything before it; an operator
// skip of that offset lets the next worker finish, and is recorded.
func testMalformed(t *testing.T, setup func(*testing.T) (sink.Target, Inspect)) {
	tgt, insp := setup(t)
	w := NewWorkload(insp.Database(), 7, 40, true)
	k := w.After(20).Offset
	msgs := append(append(w.Msgs[:k:k], sink.Message{Err: fmt.Errorf("%w: test garbage", pipeline.ErrMalformed)}), w.Msgs[k:]...)

	wk, err := RunWorker(context.Background(), t, tgt, NewInput(msgs), sink.WorkerConfig{}, nil)
	if !errors.Is(err, pipeline.ErrMalformed) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", k)) {
		t.Fatalf("worker error %v; want a malformed message at offset %d", err, k)
	}
	if st := wk.Status(); st.State != sink.StateError || st.Offset != k || st.TxnSeq != 20 {
		t.Fatalf("status after the error %+v; want error at offset %d after txn 20", st, k)
	}
	for _, table := range []string{"accounts", "items"} {
		CompareRows(t, table, insp.Rows(t, table), w.ExpectedAt(20, table))
	}

	var c Counters
	mustRun(t, insp.Reopen(t), NewInput(msgs), sink.WorkerConfig{SkipOffsets: []int64{k}}, &c)
	Compare(t, insp, w.Script)
	if c.Get(sink.OffsetsSkipped) != 1 {
		t.Errorf("skips %d, want 1", c.Get(sink.OffsetsSkipped))
	}
}

// testGap: a missing row inside a transaction stops the worker; the replica
// keeps an exact prefix.
func testGap(t *testing.T, setup func(*testing.T) (sink.Target, Inspect)) {
	tgt, insp := setup(t)
	w := NewWorkload(insp.Database(), 8, 30, true)
	cut := -1
	for i := 10; i+2 < len(w.Msgs) && cut < 0; i++ {
		p := w.Msgs[i].Event.Pos
		if w.Msgs[i].Event.Kind == pipeline.KindRow && p.Row == 0 && !w.Msgs[i+1].Event.Pos.Last {
			cut = i + 1
		}
	}
	msgs := append(w.Msgs[:cut:cut], w.Msgs[cut+1:]...)
	wk, err := RunWorker(context.Background(), t, tgt, NewInput(msgs), sink.WorkerConfig{}, nil)
	if !errors.Is(err, sink.ErrGap) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", cut)) {
		t.Fatalf("worker error %v; want a gap at offset %d", err, cut)
	}
	st := wk.Status()
	for _, table := range []string{"accounts", "items"} {
		CompareRows(t, table, insp.Rows(t, table), w.ExpectedAt(st.TxnSeq, table))
	}
}

// testBigTxn applies one source transaction of 200,000 rows (1,000,000 with
// ROWCAST_LONG=1) generated on the fly, and checks the heap stays bounded:
// the worker streams it in batches inside one target transaction.
func testBigTxn(t *testing.T, setup func(*testing.T) (sink.Target, Inspect)) {
	tgt, insp := setup(t)
	insp.Setup(t, "CREATE TABLE `big` (`id` BIGINT NOT NULL PRIMARY KEY, `payload` VARCHAR(100) NOT NULL) ENGINE=InnoDB")
	n := int64(200000)
	if os.Getenv("ROWCAST_LONG") == "1" {
		n = 1000000
	}
	tbl := &pipeline.Table{Database: insp.Database(), Name: "big", PrimaryKey: []int{0}, Columns: []pipeline.Column{
		{Name: "id", Kind: pipeline.VInt, SQLType: "bigint(20)"}, {Name: "payload", Kind: pipeline.VString, SQLType: "varchar(100)"}}}
	payload := strings.Repeat("p", 90)
	in := &Input{Len: n + 1, At: func(o int64) sink.Message {
		if o == 0 {
			return sink.Message{Event: &pipeline.Event{Kind: pipeline.KindEpoch, Pos: pipeline.Position{Epoch: 1}, Epoch: &pipeline.EpochRecord{Epoch: 1}}}
		}
		return sink.Message{Size: 160, Event: &pipeline.Event{Kind: pipeline.KindRow, Table: tbl, Op: pipeline.OpInsert,
			Pos:   pipeline.Position{Epoch: 1, TxnSeq: 1, Row: uint64(o - 1), Last: o == n},
			After: []any{o, payload}}}
	}}

	heapPeak := testenv.HeapPeak(50*time.Millisecond, func(ms *runtime.MemStats) uint64 { return ms.HeapAlloc })
	start := time.Now()
	var c Counters
	st := mustRun(t, tgt, in, sink.WorkerConfig{}, &c)
	peak := heapPeak()
	t.Logf("%d rows in one transaction: %v, peak heap %d MiB", n, time.Since(start).Round(time.Millisecond), peak>>20)
	if got := insp.Count(t, "big"); int64(got) != n {
		t.Fatalf("big has %d rows, want %d", got, n)
	}
	if st.TxnSeq != 1 || c.Get(sink.Commits) != 2 { // the epoch record, then the transaction
		t.Errorf("status %+v, %d commits; want txn 1 in one commit", st, c.Get(sink.Commits))
	}
	if _, inMemory := insp.(*Memory); inMemory && n > 200000 {
		return // the in-memory replica holds the rows itself
	}
	if peak > 200<<20 {
		t.Fatalf("peak heap %d MiB while applying one transaction of %d rows; want < 200 MiB", peak>>20, n)
	}
}
