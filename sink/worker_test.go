package sink_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

var cols = []pipeline.Column{{Name: "id", Kind: pipeline.VInt}, {Name: "v", Kind: pipeline.VString}}

func script() *sinktest.Script {
	s := sinktest.NewScript("db")
	s.Table("t", cols, 0)
	return s
}

func run(t *testing.T, m *sinktest.Memory, in sink.Input, cfg sink.WorkerConfig, c sink.Metrics) (*sink.Worker, error) {
	t.Helper()
	return sinktest.RunWorker(context.Background(), t, m.Target(), in, cfg, c)
}

// TestTransientRetry: transient failures of the target (while applying rows,
// while committing) are retried from the stored checkpoint; the result is
// exact and each retry is counted. A failure that needs a human stops.
func TestTransientRetry(t *testing.T) {
	w := sinktest.NewWorkload("db", 11, 60, false)
	m := sinktest.NewMemory("db")
	m.Fail = flaky()
	in := sinktest.NewInput(w.Msgs)
	in.Live = true
	var c sinktest.Counters
	wk, err := run(t, m, in, sink.WorkerConfig{MaxBatchRows: 2}, &c)
	if err != nil {
		t.Fatal(err)
	}
	sinktest.Compare(t, m, w.Script)
	if c.Get(sink.Retries) < 2 || c.Get(sink.Retries) != c.Errors("transient") {
		t.Fatalf("%d retries, %d transient errors", c.Get(sink.Retries), c.Errors("transient"))
	}
	if st := wk.Status(); st.State != sink.StateStopped || st.Offset != int64(len(w.Msgs)) {
		t.Fatalf("status %+v", st)
	}
	checkHumanStops(t, w.Msgs)
}

// flaky fails now and then with a transient error: every 37th call if it
// applies rows, every 41st if it commits.
func flaky() func(op string) error {
	var calls atomic.Int64
	return func(op string) error {
		switch n := calls.Add(1); {
		case op == "rows" && n%37 == 0, op == "commit" && n%41 == 0:
			return sink.MarkTransient(fmt.Errorf("injected at call %d", n))
		}
		return nil
	}
}

// checkHumanStops: a failure that needs a human stops the worker.
func checkHumanStops(t *testing.T, msgs []sink.Message) {
	t.Helper()
	m := sinktest.NewMemory("db")
	m.Fail = func(op string) error {
		if op == "commit" {
			return errors.New("disk full")
		}
		return nil
	}
	wk, err := run(t, m, sinktest.NewInput(msgs), sink.WorkerConfig{}, nil)
	if err == nil || !strings.Contains(err.Error(), "disk full") || wk.Status().State != sink.StateError {
		t.Fatalf("human error: %v, %s", err, wk.Status().State)
	}
}

// TestSkipUndecodable: an operator skips undecodable messages that stood for
// a middle row, a first row and a last row: the rest of each transaction
// applies, and each skip is recorded.
func TestSkipUndecodable(t *testing.T) {
	s := script()
	for txn := int64(0); txn < 4; txn++ {
		for i := int64(0); i < 3; i++ {
			s.Insert("t", txn*10+i, "v")
		}
		s.Commit()
	}
	// Offsets: 0 epoch; txn 1 at 1-3; txn 2 at 4-6; txn 3 at 7-9; txn 4 at 10-12.
	bad := sink.Message{Err: fmt.Errorf("%w: garbage", pipeline.ErrMalformed)}
	skipped := []int64{2, 4, 9}
	for _, o := range skipped {
		s.Msgs[o] = bad
	}
	m := sinktest.NewMemory("db")
	var c sinktest.Counters
	wk, err := run(t, m, sinktest.NewInput(s.Msgs), sink.WorkerConfig{SkipOffsets: skipped, Operator: "alice"}, &c)
	if err != nil {
		t.Fatal(err)
	}
	sinktest.CompareRows(t, "t", m.Rows(t, "t"), []string{"0|v", "11|v", "12|v", "2|v", "20|v", "21|v", "30|v", "31|v", "32|v"})
	if st := wk.Status(); st.TxnSeq != 4 || st.Offset != 13 {
		t.Fatalf("status %+v", st)
	}
	if sk := m.Skips(); len(sk) != 3 || sk[0].Offset != 2 || sk[0].Operator != "alice" || !strings.Contains(sk[0].Reason, "garbage") {
		t.Fatalf("skips %+v", sk)
	}
	if c.Get(sink.OffsetsSkipped) != 3 {
		t.Fatalf("skips counted %d", c.Get(sink.OffsetsSkipped))
	}
}

// TestDDLOpeningTransaction: a DDL followed by rows of its own transaction
// (CREATE TABLE ... SELECT). A stop after the DDL leaves the checkpoint at
// the DDL with ddl_pending set; the next worker runs the DDL again and
// applies the rows.
func TestDDLOpeningTransaction(t *testing.T) {
	s := script()
	s.Insert("t", int64(1), "a")
	s.Commit()
	s.Append(&pipeline.Event{Kind: pipeline.KindDDL, Database: "db", Statement: "CREATE TABLE u SELECT * FROM t",
		Pos: pipeline.Position{Epoch: 1, TxnSeq: 2, Row: 0}})
	u := &pipeline.Table{Database: "db", Name: "u", Columns: cols, PrimaryKey: []int{0}}
	s.Append(&pipeline.Event{Kind: pipeline.KindRow, Table: u, Op: pipeline.OpInsert, After: []any{int64(1), "a"},
		Pos: pipeline.Position{Epoch: 1, TxnSeq: 2, Row: 1, Last: true}})
	m := sinktest.NewMemory("db")
	in := sinktest.NewInput(s.Msgs)
	in.Stop = 3 // the DDL (offset 2) is applied, its row (offset 3) is not
	if _, err := run(t, m, in, sink.WorkerConfig{}, nil); err != nil {
		t.Fatal(err)
	}
	if st, _ := m.Checkpoint(); st.Offset != 2 || st.TxnSeq != 1 || st.DDLPending != 2 {
		t.Fatalf("checkpoint after the DDL %+v; want offset 2, txn 1, ddl_pending 2", st)
	}
	if _, err := run(t, m, sinktest.NewInput(s.Msgs), sink.WorkerConfig{}, nil); err != nil {
		t.Fatal(err)
	}
	if st, _ := m.Checkpoint(); st.Offset != 4 || st.TxnSeq != 2 || st.DDLPending != 0 {
		t.Fatalf("final checkpoint %+v", st)
	}
	sinktest.CompareRows(t, "u", m.Rows(t, "u"), []string{"1|a"})
}

// TestFailClosed: positions that cannot be a prefix stop the worker with the
// offset.
func TestFailClosed(t *testing.T) {
	row := func(seq, r uint64, last bool, id int64) *pipeline.Event {
		return &pipeline.Event{Kind: pipeline.KindRow, Table: &pipeline.Table{Database: "db", Name: "t", Columns: cols, PrimaryKey: []int{0}},
			Op: pipeline.OpInsert, After: []any{id, "x"}, Pos: pipeline.Position{Epoch: 1, TxnSeq: seq, Row: r, Last: last}}
	}
	epoch := func(e, seq uint64) *pipeline.Event {
		return &pipeline.Event{Kind: pipeline.KindEpoch, Pos: pipeline.Position{Epoch: e}, Epoch: &pipeline.EpochRecord{Epoch: e, TxnSeq: seq}}
	}
	ddl := &pipeline.Event{Kind: pipeline.KindDDL, Statement: "DROP TABLE t", Pos: pipeline.Position{Epoch: 1, TxnSeq: 2, Row: 1, Last: true}}
	cases := []struct {
		name  string
		evs   []*pipeline.Event
		start int64
		want  string
		is    error
	}{
		{"txn jump", []*pipeline.Event{epoch(1, 0), row(1, 0, true, 1), row(3, 0, true, 2)}, 0, "offset 2", sink.ErrGap},
		{"row jump", []*pipeline.Event{epoch(1, 0), row(1, 0, false, 1), row(1, 2, true, 2)}, 0, "offset 2", sink.ErrGap},
		{"new txn while partial", []*pipeline.Event{epoch(1, 0), row(1, 0, false, 1), row(2, 0, true, 2)}, 0, "offset 2", sink.ErrGap},
		{"start inside a txn", []*pipeline.Event{row(1, 0, false, 1), row(1, 1, true, 2)}, 1, "start offset inside a transaction", sink.ErrGap},
		{"epoch record ahead", []*pipeline.Event{epoch(1, 0), row(1, 0, true, 1), epoch(2, 5)}, 0, "offset 2", sink.ErrGap},
		{"epoch record behind", []*pipeline.Event{epoch(1, 0), row(1, 0, true, 1), row(2, 0, true, 2), epoch(2, 1)}, 0, "re-seed it from the new master", pipeline.ErrUnsupported},
		{"DDL after rows", []*pipeline.Event{epoch(1, 0), row(1, 0, true, 1), row(2, 0, false, 2), ddl}, 0, "DDL after rows", pipeline.ErrUnsupported},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msgs := make([]sink.Message, len(c.evs))
			for i, ev := range c.evs {
				msgs[i] = sink.Message{Event: ev}
			}
			m := sinktest.NewMemory("db")
			_, err := run(t, m, sinktest.NewInput(msgs), sink.WorkerConfig{StartOffset: c.start}, nil)
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v; want %v containing %q", err, c.is, c.want)
			}
		})
	}
}

// TestStartOffset: a new replica seeded as of a later offset starts there;
// the first transaction sets the baseline.
func TestStartOffset(t *testing.T) {
	s := script()
	for i := int64(1); i <= 4; i++ {
		s.Insert("t", i, "v")
		s.Commit()
	}
	m := sinktest.NewMemory("db")
	wk, err := run(t, m, sinktest.NewInput(s.Msgs), sink.WorkerConfig{StartOffset: s.After(2).Offset}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sinktest.CompareRows(t, "t", m.Rows(t, "t"), []string{"3|v", "4|v"})
	if st := wk.Status(); st.TxnSeq != 4 {
		t.Fatalf("status %+v", st)
	}
}

// TestHeartbeatLag: heartbeats move the source clock and, while idle, are
// saved at most once per HeartbeatCommit.
func TestHeartbeatLag(t *testing.T) {
	s := script()
	s.Insert("t", int64(1), "v")
	s.Commit()
	clock := time.Now().Add(-90 * time.Second).UTC()
	for i := 0; i < 5; i++ {
		s.Append(&pipeline.Event{Kind: pipeline.KindHeartbeat, Pos: pipeline.Position{Epoch: 1}, CommitTime: clock, GTIDSet: "0-1-1"})
	}
	m := sinktest.NewMemory("db")
	in := sinktest.NewInput(s.Msgs)
	in.Live = true
	var c sinktest.Counters
	wk, err := run(t, m, in, sink.WorkerConfig{HeartbeatCommit: time.Hour}, &c)
	if err != nil {
		t.Fatal(err)
	}
	st := wk.Status()
	if !st.SourceTime.Equal(clock) || st.Lag < 90*time.Second || st.Offset != int64(len(s.Msgs)) {
		t.Fatalf("status %+v; want source time %v, lag >= 90s", st, clock)
	}
	// The epoch record, the transaction, and the heartbeats once at the end.
	if got := c.Get(sink.Commits); got != 3 {
		t.Fatalf("%d commits, want 3", got)
	}
}

// TestDDLAfterBufferedRows: rows still in the batch (not yet given to the
// target) when a DDL arrives are committed before it, never skipped.
func TestDDLAfterBufferedRows(t *testing.T) {
	s := script()
	s.Insert("t", int64(1), "a")
	s.Commit()
	s.DDL("ALTER TABLE t ADD COLUMN w INT")
	s.AddColumn("t", pipeline.Column{Name: "w", Kind: pipeline.VInt})
	s.Insert("t", int64(2), "b", int64(3))
	s.Commit()
	s.Insert("t", int64(4), "c", int64(5))
	s.Commit()
	bad := len(s.Msgs)
	s.Msgs = append(s.Msgs, sink.Message{Err: pipeline.ErrMalformed})
	m := sinktest.NewMemory("db")
	_, err := run(t, m, sinktest.NewInput(s.Msgs), sink.WorkerConfig{}, nil)
	if !errors.Is(err, pipeline.ErrMalformed) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", bad)) {
		t.Fatalf("worker: %v", err)
	}
	// Everything before the malformed message is committed, too.
	sinktest.CompareRows(t, "t", m.Rows(t, "t"), []string{"1|a|NULL", "2|b|3", "4|c|5"})
	if st, _ := m.Checkpoint(); st.Offset != int64(bad) || st.TxnSeq != 4 {
		t.Fatalf("checkpoint %+v", st)
	}
}

// TestVersionRowsLeftOut: a read replica's worker (no origin domain) leaves
// the masters' row versions out of what it applies; the data rows around
// them apply. (The versions table is in the script's database here.)
func TestVersionRowsLeftOut(t *testing.T) {
	s := script()
	s.Table("row_versions", []pipeline.Column{{Name: "table_name", Kind: pipeline.VString}, {Name: "row_key", Kind: pipeline.VBytes},
		{Name: "lvl", Kind: pipeline.VUint}, {Name: "ts", Kind: pipeline.VInt}, {Name: "domain", Kind: pipeline.VUint}, {Name: "deleted", Kind: pipeline.VInt}}, 0, 1)
	for i := int64(1); i <= 3; i++ {
		s.Insert("t", i, "v")
		s.Insert("row_versions", "db.t", []byte{byte(i)}, uint64(0), 1700000000000000+i, uint64(1), int64(0))
	}
	s.Commit()
	for _, c := range []struct {
		versions string
		want     int
	}{{"db.row_versions", 0}, {"", 3}} {
		m := sinktest.NewMemory("db")
		if _, err := run(t, m, sinktest.NewInput(s.Msgs), sink.WorkerConfig{Versions: c.versions}, nil); err != nil {
			t.Fatal(err)
		}
		sinktest.CompareRows(t, "t", m.Rows(t, "t"), []string{"1|v", "2|v", "3|v"})
		if rows := m.Rows(t, "row_versions"); len(rows) != c.want {
			t.Fatalf("Versions %q: the replica got %d version rows, want %d", c.versions, len(rows), c.want)
		}
	}
}

// TestMergeBytes: a worker that is behind merges transactions into one
// commit, but not past MaxMergeBytes of messages: after a big row's
// transaction it commits at once instead of holding the row.
func TestMergeBytes(t *testing.T) {
	commits := func(maxBytes int) int {
		s := script()
		for i := range 4 {
			s.Insert("t", int64(i), "v")
			s.Commit()
		}
		for i := range s.Msgs {
			s.Msgs[i].Size = 1000
		}
		var c sinktest.Counters
		if _, err := run(t, sinktest.NewMemory("db"), sinktest.NewInput(s.Msgs), sink.WorkerConfig{MaxMergeBytes: maxBytes}, &c); err != nil {
			t.Fatal(err)
		}
		return c.Get(sink.Commits)
	}
	merged, bounded := commits(0), commits(1000)
	if merged >= 4 || bounded < 4 {
		t.Fatalf("%d commits merging by default, %d with MaxMergeBytes 1000 (a transaction's size); want fewer than 4, then one per transaction", merged, bounded)
	}
}

// appliedRecorder is an input that records what the worker reports applied
// (the Kafka input lets go of the big message gate on it).
type appliedRecorder struct {
	*sinktest.Input
	applied []int64
}

func (a *appliedRecorder) Applied(offset int64) { a.applied = append(a.applied, offset) }

// TestDDLReportsApplied: a DDL committed alone reports its offset applied to
// the input, as a commit of rows does: a big row skipped before it would
// otherwise keep the gate, and the reader of `rowcast run` held back.
func TestDDLReportsApplied(t *testing.T) {
	s := script()
	s.Insert("t", int64(1), "a")
	s.Commit()
	s.DDL("ALTER TABLE t ADD COLUMN w INT")
	in := &appliedRecorder{Input: sinktest.NewInput(s.Msgs)}
	if _, err := run(t, sinktest.NewMemory("db"), in, sink.WorkerConfig{}, nil); err != nil {
		t.Fatal(err)
	}
	end := int64(len(s.Msgs))
	if len(in.applied) == 0 || in.applied[len(in.applied)-1] != end {
		t.Fatalf("applied reported %v; want it to end with %d, the offset after the DDL", in.applied, end)
	}
}
