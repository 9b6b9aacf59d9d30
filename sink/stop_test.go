package sink_test

import (
	"testing"

	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// TestStopOffset: a worker with StopOffset stops at the first transaction
// boundary at or after it, and a later run continues from there.
func TestStopOffset(t *testing.T) {
	s := script()
	for txn := int64(1); txn <= 4; txn++ {
		s.Insert("t", txn*10, "a")
		s.Insert("t", txn*10+1, "b")
		s.Commit()
	}
	// Offsets: 0 epoch; txn 1 at 1-2; txn 2 at 3-4; txn 3 at 5-6; txn 4 at 7-8.
	m := sinktest.NewMemory("db")
	in := sinktest.NewInput(s.Msgs)
	in.Live = true
	wk, err := run(t, m, in, sink.WorkerConfig{StopOffset: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sinktest.CompareRows(t, "t", m.Rows(t, "t"), []string{"10|a", "11|b", "20|a", "21|b"})
	if st := wk.Status(); st.State != sink.StateStopped || st.Offset != 5 || st.TxnSeq != 2 {
		t.Fatalf("status %+v; want stopped at offset 5 after txn 2", st)
	}
	// A stop offset inside transaction 3 finishes it.
	wk, err = run(t, m, sinktest.NewInput(s.Msgs), sink.WorkerConfig{StopOffset: 6}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st := wk.Status(); st.Offset != 7 || st.TxnSeq != 3 {
		t.Fatalf("status %+v; want offset 7 after txn 3", st)
	}
	// Without a stop offset the rest applies.
	if _, err := run(t, m, sinktest.NewInput(s.Msgs), sink.WorkerConfig{}, nil); err != nil {
		t.Fatal(err)
	}
	sinktest.Compare(t, m, s)
}

// TestPromotedStops: an epoch record that names the worker's own node
// stops it after the record is committed; other workers go on.
func TestPromotedStops(t *testing.T) {
	s := script()
	s.Insert("t", int64(1), "a")
	s.Commit()
	s.Epoch(2) // names db2 the master
	rec := int64(len(s.Msgs) - 1)
	s.Insert("t", int64(2), "b")
	s.Commit()

	m := sinktest.NewMemory("db")
	wk, err := run(t, m, sinktest.NewInput(s.Msgs), sink.WorkerConfig{Node: "db2"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sinktest.CompareRows(t, "t", m.Rows(t, "t"), []string{"1|a"})
	st := wk.Status()
	if st.State != sink.StatePromoted || st.Offset != rec+1 || st.Epoch != 2 || st.TxnSeq != 1 {
		t.Fatalf("status %+v; want promoted at offset %d, epoch 2", st, rec+1)
	}

	m3 := sinktest.NewMemory("db")
	if _, err := run(t, m3, sinktest.NewInput(s.Msgs), sink.WorkerConfig{Node: "db3"}, nil); err != nil {
		t.Fatal(err)
	}
	sinktest.Compare(t, m3, s)
}
