package sink_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// snapshotOfT: rows 1-3 published, row 2 changed and row 3 deleted while t
// was not replicated, then a snapshot of t in chunks of 1, then row 4.
func snapshotOfT() (s *sinktest.Script, start int64) {
	s = script()
	for id := int64(1); id <= 3; id++ {
		s.Insert("t", id, "a")
	}
	s.Commit()
	s.Hidden(func() {
		s.Update("t", []any{int64(2)}, int64(2), "b")
		s.Delete("t", int64(3))
	})
	start = int64(len(s.Msgs))
	s.Snapshot("t", 1)
	s.Insert("t", int64(4), "c")
	s.Commit()
	return s, start
}

// TestSnapshotStartFails: the target fails between replacing the table and
// recording its bootstrap. A human error stops the worker with the table
// empty, no bootstrap entry and the checkpoint before the marker; a
// transient one is retried. Either way the marker is applied again, whole.
func TestSnapshotStartFails(t *testing.T) {
	for _, transient := range []bool{false, true} {
		t.Run(fmt.Sprintf("transient=%v", transient), func(t *testing.T) {
			s, start := snapshotOfT()
			m := sinktest.NewMemory("db")
			failed := 0
			m.Fail = func(op string) error {
				if op != "snapshot" || failed > 0 {
					return nil
				}
				failed++
				if transient {
					return sink.MarkTransient(errors.New("connection reset"))
				}
				return errors.New("power cut")
			}
			_, err := run(t, m, sinktest.NewInput(s.Msgs), sink.WorkerConfig{}, nil)
			if !transient {
				checkStoppedAtMarker(t, m, err, start)
				_, err = run(t, m, sinktest.NewInput(s.Msgs), sink.WorkerConfig{}, nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			sinktest.Compare(t, m, s)
			if st, _ := m.Checkpoint(); st.Offset != int64(len(s.Msgs)) || len(m.Bootstrap(t)) != 0 {
				t.Fatalf("checkpoint %+v, bootstrap %+v", st, m.Bootstrap(t))
			}
		})
	}
}

func checkStoppedAtMarker(t *testing.T, m *sinktest.Memory, err error, start int64) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), "power cut") || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", start)) {
		t.Fatalf("worker: %v; want the failure at offset %d", err, start)
	}
	st, _ := m.Checkpoint()
	if n := m.Count(t, "t"); n != 0 || st.Offset != start || len(m.Bootstrap(t)) != 0 {
		t.Fatalf("after the failure: %d rows, checkpoint %+v, bootstrap %+v", n, st, m.Bootstrap(t))
	}
}

// TestSnapshotMarkers: a marker of a database is passed over; a table's
// marker that is not a transaction of its own stops the worker; an operator
// skip of a start marker moves past it without applying it.
func TestSnapshotMarkers(t *testing.T) {
	s := script()
	s.Insert("t", int64(1), "a")
	s.Commit()
	s.Append(&pipeline.Event{Kind: pipeline.KindSnapshot, Snapshot: "start", Database: "db", Pos: pipeline.Position{Epoch: 1, TxnSeq: 1, Last: true}})
	s.Insert("t", int64(2), "b")
	s.Commit()
	m := sinktest.NewMemory("db")
	wk, err := run(t, m, sinktest.NewInput(s.Msgs), sink.WorkerConfig{}, nil)
	if err != nil || wk.Status().Offset != int64(len(s.Msgs)) || wk.Status().TxnSeq != 2 {
		t.Fatalf("database marker: %v, %+v", err, wk.Status())
	}
	sinktest.CompareRows(t, "t", m.Rows(t, "t"), []string{"1|a", "2|b"})

	tbl := &pipeline.Table{Database: "db", Name: "t", Columns: cols, PrimaryKey: []int{0}}
	s.Append(&pipeline.Event{Kind: pipeline.KindRow, Table: tbl, Op: pipeline.OpInsert, After: []any{int64(3), "c"},
		Pos: pipeline.Position{Epoch: 1, TxnSeq: 3}})
	bad := int64(len(s.Msgs))
	s.Append(&pipeline.Event{Kind: pipeline.KindSnapshot, Snapshot: "end", Table: tbl, Database: "db",
		Pos: pipeline.Position{Epoch: 1, TxnSeq: 3, Row: 1, Last: true}})
	_, err = run(t, m, sinktest.NewInput(s.Msgs), sink.WorkerConfig{}, nil)
	if !errors.Is(err, pipeline.ErrMalformed) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", bad)) {
		t.Fatalf("marker inside a transaction: %v", err)
	}
	checkSkippedStart(t)
}

// checkSkippedStart: an operator skips a start marker: the table is left as
// it is, its later rows apply strictly, the skip is recorded.
func checkSkippedStart(t *testing.T) {
	t.Helper()
	s, start := snapshotOfT()
	m := sinktest.NewMemory("db")
	var c sinktest.Counters
	if _, err := run(t, m, sinktest.NewInput(s.Msgs), sink.WorkerConfig{SkipOffsets: []int64{start}}, &c); err != nil {
		t.Fatal(err)
	}
	sinktest.CompareRows(t, "t", m.Rows(t, "t"), []string{"1|a", "2|b", "3|a", "4|c"})
	if len(m.Bootstrap(t)) != 0 || c.Get(sink.OffsetsSkipped) != 1 || len(m.Skips()) != 1 {
		t.Fatalf("bootstrap %+v, %d skips", m.Bootstrap(t), c.Get(sink.OffsetsSkipped))
	}
}

// TestCloneFloorAtStart: a clone whose floor the stored checkpoint already
// passed is ended by the first commit; until then the status shows it.
func TestCloneFloorAtStart(t *testing.T) {
	s := script()
	s.Insert("t", int64(1), "a")
	s.Commit()
	s.Insert("t", int64(2), "b")
	s.Commit()
	m := sinktest.NewMemory("db")
	sinktest.Rewind(t, m.Target(), s.After(1))
	m.SaveBootstrap(t, checkpoint.Bootstrap{Topic: sinktest.Topic, DB: "db", Table: "t", Mode: checkpoint.ModeClone, FloorOffset: s.After(1).Offset - 1})
	m.SaveBootstrap(t, checkpoint.Bootstrap{Topic: sinktest.Topic, DB: "db", Table: "u", Mode: checkpoint.ModeClone, FloorOffset: 1000})
	in := sinktest.NewInput(s.Msgs)
	in.Stop = s.After(1).Offset
	wk, err := run(t, m, in, sink.WorkerConfig{}, nil)
	if st := wk.Status(); err != nil || st.Bootstrapping != 2 || strings.Join(st.BootstrapTables, ",") != "db.t,db.u" {
		t.Fatalf("before any commit: %v, %+v", err, st)
	}
	wk, err = run(t, m, sinktest.NewInput(s.Msgs), sink.WorkerConfig{}, nil)
	if st := wk.Status(); err != nil || st.Bootstrapping != 1 || strings.Join(st.BootstrapTables, ",") != "db.u" {
		t.Fatalf("after a commit: %v, %+v", err, st)
	}
	if b := m.Bootstrap(t); len(b) != 1 || b["db.u"].FloorOffset != 1000 {
		t.Fatalf("bootstrap entries %+v", b)
	}
	sinktest.CompareRows(t, "t", m.Rows(t, "t"), []string{"2|b"}) // row 1: the clone's business
}

// TestCloneFloorBoundary: the message at a clone's floor is skipped, the
// next one applied, and the entry ends with the commit that passes it.
func TestCloneFloorBoundary(t *testing.T) {
	s := script()
	for id := int64(1); id <= 3; id++ {
		s.Insert("t", id, "v")
		s.Commit()
	}
	floor := s.After(2).Offset - 1 // the insert of row 2
	m := sinktest.NewMemory("db")
	sinktest.Rewind(t, m.Target(), s.After(1))
	m.SaveBootstrap(t, checkpoint.Bootstrap{Topic: sinktest.Topic, DB: "db", Table: "t", Mode: checkpoint.ModeClone, FloorOffset: floor})
	var c sinktest.Counters
	if _, err := run(t, m, sinktest.NewInput(s.Msgs), sink.WorkerConfig{}, &c); err != nil {
		t.Fatal(err)
	}
	sinktest.CompareRows(t, "t", m.Rows(t, "t"), []string{"3|v"}) // rows 1 and 2: the clone's
	if c.Get(sink.DuplicatesSkipped) != 1 || c.Get(sink.RowsApplied) != 1 || len(m.Bootstrap(t)) != 0 {
		t.Fatalf("%d duplicates, %d rows applied, bootstrap %+v", c.Get(sink.DuplicatesSkipped), c.Get(sink.RowsApplied), m.Bootstrap(t))
	}
}
