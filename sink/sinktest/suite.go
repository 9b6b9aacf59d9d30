package sinktest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/sink"
)

// Topic is the topic name the suite's checkpoints are kept for.
const Topic = "rowcast.sinktest"

// Inspect reads a replica back for the suite, outside the Worker.
type Inspect interface {
	// Database is the (unique) database the suite's tables live in.
	Database() string
	// Setup runs MySQL DDL statements on the replica with Database selected,
	// before any worker runs. A non-MySQL target translates them.
	Setup(t testing.TB, stmts ...string)
	// Rows returns every row of a table of Database, each formatted by
	// FormatRow (columns in table order, NULL as "NULL", DECIMAL and DATETIME
	// as MySQL prints them), sorted.
	Rows(t testing.TB, table string) []string
	// Count returns the number of rows of a table of Database.
	Count(t testing.TB, table string) int
	// Reopen returns another Target on the same replica, for a restart.
	Reopen(t testing.TB) sink.Target
	// Bootstrap returns the replica's bootstrap entries of Topic (tables a
	// snapshot or a clone is loading), by "db.table".
	Bootstrap(t testing.TB) map[string]checkpoint.Bootstrap
	// SaveBootstrap records a bootstrap entry, as rowcast clone does. A
	// Target has been opened on the replica before.
	SaveBootstrap(t testing.TB, b checkpoint.Bootstrap)
}

// Run is the conformance suite. newTarget is called once per subtest and
// must return a Target on a fresh replica (its own database and bookkeeping
// schema), with the Inspect that reads it. The suite drives the Worker with
// in-memory inputs; no Kafka is needed.
//
// The big-transaction test applies 200,000 rows in one source transaction
// and checks the heap stays under 200 MB; with ROWCAST_LONG=1 it applies
// 1,000,000.
func Run(t *testing.T, newTarget func(t *testing.T) (sink.Target, Inspect)) {
	setup := func(t *testing.T) (sink.Target, Inspect) {
		tgt, insp := newTarget(t)
		insp.Setup(t, SetupSQL...)
		return tgt, insp
	}
	t.Run("Apply", func(t *testing.T) { testApply(t, setup, sink.WorkerConfig{}, false) })
	t.Run("ApplyLive", func(t *testing.T) { testApply(t, setup, sink.WorkerConfig{}, true) })
	t.Run("ApplySmallBatches", func(t *testing.T) {
		testApply(t, setup, sink.WorkerConfig{MaxBatchRows: 2, MaxTxnMerge: 7}, false)
	})
	t.Run("Restart", func(t *testing.T) { testRestart(t, setup) })
	t.Run("Replay", func(t *testing.T) { testReplay(t, setup) })
	t.Run("Idempotence", func(t *testing.T) { testIdempotence(t, setup) })
	t.Run("OldEpochIgnored", func(t *testing.T) { testOldEpoch(t, setup) })
	t.Run("AbandonPartialOnEpochRecord", func(t *testing.T) { testAbandon(t, setup, true, false) })
	t.Run("AbandonPartialOnEpochRecordLive", func(t *testing.T) { testAbandon(t, setup, true, true) })
	t.Run("AbandonPartialOnNewerEpochMessage", func(t *testing.T) { testAbandon(t, setup, false, false) })
	t.Run("Malformed", func(t *testing.T) { testMalformed(t, setup) })
	t.Run("Gap", func(t *testing.T) { testGap(t, setup) })
	t.Run("BigTransaction", func(t *testing.T) { testBigTxn(t, setup) })
	runBootstrap(t, setup)
}

// RunWorker runs a Worker over in until it stops and returns it with Run's
// error. cfg.Topic defaults to Topic.
func RunWorker(ctx context.Context, t testing.TB, tgt sink.Target, in sink.Input, cfg sink.WorkerConfig, m sink.Metrics) (*sink.Worker, error) {
	t.Helper()
	if cfg.Topic == "" {
		cfg.Topic = Topic
	}
	if cfg.RetryInitial == 0 {
		cfg.RetryInitial = 10 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	w := sink.NewWorker(cfg, tgt, in, Logger(t), m)
	return w, w.Run(ctx)
}

// Logger logs warnings and errors to the test log.
func Logger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel).With().Timestamp().Logger()
}

// mustRun runs a worker that must end cleanly.
func mustRun(t testing.TB, tgt sink.Target, in sink.Input, cfg sink.WorkerConfig, m sink.Metrics) sink.Status {
	t.Helper()
	w, err := RunWorker(context.Background(), t, tgt, in, cfg, m)
	if err != nil {
		t.Fatalf("worker: %v", err)
	}
	st := w.Status()
	if st.State != sink.StateStopped {
		t.Fatalf("worker state %s after a clean end", st.State)
	}
	return st
}

// Compare fails the test unless every table of the script holds exactly
// what it expects.
func Compare(t testing.TB, insp Inspect, s *Script) {
	t.Helper()
	for _, table := range s.Tables() {
		CompareRows(t, table, insp.Rows(t, table), s.Expected(table))
	}
}

// CompareRows fails the test unless got and want hold the same rows (in any
// order), showing the first differences.
func CompareRows(t testing.TB, table string, got, want []string) {
	t.Helper()
	got, want = slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
	if slices.Equal(got, want) {
		return
	}
	var diff []string
	for _, r := range want {
		if _, ok := slices.BinarySearch(got, r); !ok && len(diff) < 5 {
			diff = append(diff, "  missing "+r)
		}
	}
	for _, r := range got {
		if _, ok := slices.BinarySearch(want, r); !ok && len(diff) < 10 {
			diff = append(diff, "  extra   "+r)
		}
	}
	t.Fatalf("table %s: %d rows, want %d:\n%s", table, len(got), len(want), strings.Join(diff, "\n"))
}

func rowMessages(s *Script) int {
	n := 0
	for _, m := range s.Msgs {
		if m.Event != nil && m.Event.Table != nil {
			n++
		}
	}
	return n
}

// testApply applies a mixed changelog and checks contents, checkpoint and
// counters.
func testApply(t *testing.T, setup func(*testing.T) (sink.Target, Inspect), cfg sink.WorkerConfig, live bool) {
	tgt, insp := setup(t)
	w := NewWorkload(insp.Database(), 1, 150, false)
	in := NewInput(w.Msgs)
	in.Live = live
	var c Counters
	st := mustRun(t, tgt, in, cfg, &c)
	Compare(t, insp, w.Script)
	if st.Offset != int64(len(w.Msgs)) || st.TxnSeq != w.Seq() || st.Epoch != 1 || st.GTIDSet != w.After(w.Seq()).GTIDSet {
		t.Fatalf("status %+v; want offset %d, txn %d, epoch 1", st, len(w.Msgs), w.Seq())
	}
	if got := c.Get(sink.TxnsApplied); got != int(w.Seq()) {
		t.Errorf("txns applied %d, want %d", got, w.Seq())
	}
	if got, want := c.Get(sink.RowsApplied), rowMessages(w.Script); got != want {
		t.Errorf("rows applied %d, want %d", got, want)
	}
	if live && c.Get(sink.Commits) < int(w.Seq()) {
		t.Errorf("live: %d commits for %d transactions; each should commit alone", c.Get(sink.Commits), w.Seq())
	}
	if !live && c.Get(sink.Commits) >= int(w.Seq()) {
		t.Errorf("behind: %d commits for %d transactions; they should merge", c.Get(sink.Commits), w.Seq())
	}
}

// testRestart stops workers at several offsets, some inside transactions,
// checks that each stop leaves an exact prefix, and that a new worker from
// the stored checkpoint finishes with the same result.
func testRestart(t *testing.T, setup func(*testing.T) (sink.Target, Inspect)) {
	tgt, insp := setup(t)
	w := NewWorkload(insp.Database(), 2, 120, true)
	n := int64(len(w.Msgs))
	check := func(st sink.Status, stop int64) {
		t.Helper()
		if st.Offset > stop {
			t.Fatalf("stopped at %d but the checkpoint says %d", stop, st.Offset)
		}
		for _, table := range w.Tables() {
			if table == "extra" && st.TxnSeq <= uint64(w.txns/3) { // not created yet
				continue
			}
			CompareRows(t, table, insp.Rows(t, table), w.ExpectedAt(st.TxnSeq, table))
		}
	}
	for i, stop := range []int64{n / 7, n/7 + 3, n / 3, n/2 + 1, 2*n/3 + 2} {
		in := NewInput(w.Msgs)
		in.Stop = stop
		in.Live = i%2 == 0
		if i > 0 {
			tgt = insp.Reopen(t)
		}
		check(mustRun(t, tgt, in, sink.WorkerConfig{}, nil), stop)
	}
	// A canceled context (SIGTERM) commits what is complete and stops.
	ctx, cancel := context.WithCancel(context.Background())
	in := NewInput(w.Msgs)
	in.Hook = func(o int64) {
		if o == 5*n/6 {
			cancel()
		}
	}
	wk, err := RunWorker(ctx, t, insp.Reopen(t), in, sink.WorkerConfig{}, nil)
	if err != nil || wk.Status().State != sink.StateStopped {
		t.Fatalf("canceled worker: %v, %s", err, wk.Status().State)
	}
	check(wk.Status(), 5*n/6)

	st := mustRun(t, insp.Reopen(t), NewInput(w.Msgs), sink.WorkerConfig{}, nil)
	Compare(t, insp, w.Script)
	if st.Offset != n {
		t.Fatalf("final offset %d, want %d", st.Offset, n)
	}
}

// Rewind stores st (for Topic) as the replica's checkpoint, as an operator
// who replays a range does.
func Rewind(t testing.TB, tgt sink.Target, st checkpoint.State) {
	t.Helper()
	ctx := context.Background()
	defer tgt.Close()
	st.Topic = Topic
	if _, _, err := tgt.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tgt.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tgt.Commit(ctx, st); err != nil {
		t.Fatal(err)
	}
}

// testReplay applies everything, rewinds the checkpoint and applies again,
// twice: the contents converge to the same result.
func testReplay(t *testing.T, setup func(*testing.T) (sink.Target, Inspect)) {
	tgt, insp := setup(t)
	w := NewWorkload(insp.Database(), 3, 100, false)
	mustRun(t, tgt, NewInput(w.Msgs), sink.WorkerConfig{}, nil)
	Compare(t, insp, w.Script)
	for _, from := range []checkpoint.State{w.After(w.Seq() / 3), w.After(w.Seq() * 2 / 3), {}} {
		Rewind(t, insp.Reopen(t), from)
		var c Counters
		st := mustRun(t, insp.Reopen(t), NewInput(w.Msgs), sink.WorkerConfig{}, &c)
		Compare(t, insp, w.Script)
		if st.Offset != int64(len(w.Msgs)) || st.TxnSeq != w.Seq() {
			t.Fatalf("replay from %s ended at %+v", from, st)
		}
		if got, want := c.Get(sink.TxnsApplied), int(w.Seq()-from.TxnSeq); got != want {
			t.Fatalf("replay from %s applied %d transactions, want %d", from, got, want)
		}
	}
}
