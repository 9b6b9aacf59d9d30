package clickhouse

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

var errCrash = errors.New("simulated crash after the insert, before the checkpoint")

// TestCrashBetweenInsertAndCheckpoint stops a worker whose target dies
// after inserting rows and before saving the checkpoint that covers them.
// Queries with FINAL then see exactly the master's state at the last
// inserted transaction; the restarted worker inserts those rows again with
// the same versions, and FINAL sees neither doubles nor losses.
func TestCrashBetweenInsertAndCheckpoint(t *testing.T) {
	r := newReplica(t, Config{FlushInterval: -1})
	r.Setup(t, sinktest.SetupSQL...)
	w := sinktest.NewWorkload(r.db, 7, 90, true)
	tgt := r.target(t)
	flushes := 0
	var crashedAt uint64
	tgt.afterInsert = func(st *checkpoint.State) error { // once crashed, nothing more is saved
		if flushes++; flushes == 12 {
			crashedAt = st.TxnSeq
		}
		if crashedAt > 0 {
			return errCrash
		}
		return nil
	}
	_, err := sinktest.RunWorker(context.Background(), t, tgt, sinktest.NewInput(w.Msgs), sink.WorkerConfig{MaxTxnMerge: 3}, nil)
	if !errors.Is(err, errCrash) {
		t.Fatalf("worker: %v, want the simulated crash", err)
	}
	st, found, err := LoadCheckpoint(context.Background(), r.cfg)
	if err != nil || !found || st.TxnSeq >= crashedAt {
		t.Fatalf("stored checkpoint %v (found %v, %v); want one before transaction %d", st, found, err, crashedAt)
	}
	for _, table := range []string{"accounts", "items"} {
		sinktest.CompareRows(t, table, r.Rows(t, table), w.ExpectedAt(crashedAt, table))
	}

	sinktest.RunWorker(context.Background(), t, r.target(t), sinktest.NewInput(w.Msgs), sink.WorkerConfig{}, nil)
	sinktest.Compare(t, r, w.Script)
	if n := r.duplicateVersions(t, "accounts"); n == 0 {
		t.Fatal("no row was inserted twice with one version: the crash did not make the restart re-insert")
	}
}

// duplicateVersions counts physical rows of a table that share their key
// and version with another row (inserted again by a replay).
func (r *replica) duplicateVersions(t testing.TB, table string) int {
	rows := r.query(t, "SELECT count() FROM (SELECT id, _version, count() AS n FROM "+qualified(r.db, table)+
		" GROUP BY id, _version HAVING n > 1)")
	if len(rows) == 0 || strings.TrimSpace(rows[0][0]) == "0" {
		return 0
	}
	return 1
}
