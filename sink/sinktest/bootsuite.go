package sinktest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
)

// The bootstrap cases of the suite: snapshots in the changelog (a start
// marker replaces the table, its rows are applied leniently until the end
// marker) and clone floors. docs/DESIGN.md, "Bootstrap".

func runBootstrap(t *testing.T, setup func(*testing.T) (sink.Target, Inspect)) {
	t.Run("SnapshotReplacesTable", func(t *testing.T) { testSnapshotReplaces(t, setup) })
	t.Run("SnapshotLenient", func(t *testing.T) { testSnapshotLenient(t, setup) })
	t.Run("SnapshotOtherTablesStrict", func(t *testing.T) { testSnapshotOthersStrict(t, setup) })
	t.Run("SnapshotRestart", func(t *testing.T) { testSnapshotRestart(t, setup) })
	t.Run("SnapshotReplay", func(t *testing.T) { testSnapshotReplay(t, setup) })
	t.Run("CloneFloors", func(t *testing.T) { testCloneFloors(t, setup) })
}

// BootSetupSQL creates the tables of the bootstrap cases: snap, which a
// snapshot loads (with a stale column its definition drops), and other.
var BootSetupSQL = []string{
	"CREATE TABLE `snap` (`id` BIGINT NOT NULL PRIMARY KEY, `v` VARCHAR(20) NULL, `stale` INT NULL) ENGINE=InnoDB",
	"CREATE TABLE `other` (`id` BIGINT NOT NULL PRIMARY KEY, `v` VARCHAR(20) NULL) ENGINE=InnoDB",
}

// BootScript is a script over the tables of BootSetupSQL (snap without its
// stale column), keeping the expected contents after every transaction.
func BootScript(db string) *Script {
	cols := []pipeline.Column{{Name: "id", Kind: pipeline.VInt, SQLType: "bigint(20)"},
		{Name: "v", Kind: pipeline.VString, SQLType: "varchar(20)"}}
	s := NewScript(db)
	s.Snapshots = true
	s.Table("snap", cols, 0)
	s.Table("other", slices.Clone(cols), 0)
	return s
}

// bootSetup is setup plus the tables of the bootstrap cases.
func bootSetup(t *testing.T, setup func(*testing.T) (sink.Target, Inspect)) (sink.Target, Inspect, *Script) {
	tgt, insp := setup(t)
	insp.Setup(t, BootSetupSQL...)
	return tgt, insp, BootScript(insp.Database())
}

// checkBootstrap fails the test unless the replica's bootstrap entries, and
// the worker's status, name exactly tables (in mode snapshot).
func checkBootstrap(t testing.TB, insp Inspect, st sink.Status, tables ...string) {
	t.Helper()
	got := insp.Bootstrap(t)
	want := make([]string, len(tables))
	for i, n := range tables {
		want[i] = insp.Database() + "." + n
		if got[want[i]].Mode != checkpoint.ModeSnapshot {
			t.Fatalf("bootstrap entry of %s: %+v", want[i], got[want[i]])
		}
	}
	if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, want) {
		t.Fatalf("bootstrap entries %v, want %v", keys, want)
	}
	if st.Bootstrapping != len(want) || !slices.Equal(st.BootstrapTables, want) {
		t.Fatalf("status shows %d bootstrapping tables %v, want %v", st.Bootstrapping, st.BootstrapTables, want)
	}
}

// testSnapshotReplaces: the start marker replaces a table whose rows and
// shape are stale (the master changed them while they were not replicated)
// with an empty one of the marker's definition, recorded as bootstrapping
// with the checkpoint after the marker; the chunks and the end marker bring
// it to the master's state.
func testSnapshotReplaces(t *testing.T, setup func(*testing.T) (sink.Target, Inspect)) {
	tgt, insp, s := bootSetup(t, setup)
	for id := int64(1); id <= 4; id++ {
		s.Insert("snap", id, fmt.Sprintf("v%d", id))
	}
	s.Insert("other", int64(1), "o1")
	s.Commit()
	s.Hidden(func() {
		s.AddColumn("snap", pipeline.Column{Name: "w", Kind: pipeline.VInt, SQLType: "int(11)"})
		s.Update("snap", []any{int64(2)}, int64(2), "v2 new", int64(20))
		s.Delete("snap", int64(3))
		s.Insert("snap", int64(5), "v5", int64(50))
	})
	start := int64(len(s.Msgs))
	s.Snapshot("snap", 2)
	s.Insert("snap", int64(6), "v6", int64(60))
	s.Update("other", []any{int64(1)}, int64(1), "o1 new")
	s.Commit()

	in := NewInput(s.Msgs)
	in.Stop = start + 1
	st := mustRun(t, tgt, in, sink.WorkerConfig{}, nil)
	if st.Offset != start+1 || insp.Count(t, "snap") != 0 {
		t.Fatalf("after the start marker: offset %d (want %d), %d rows in snap (want 0)", st.Offset, start+1, insp.Count(t, "snap"))
	}
	CompareRows(t, "other", insp.Rows(t, "other"), []string{"1|o1"})
	checkBootstrap(t, insp, st, "snap")

	st = mustRun(t, insp.Reopen(t), NewInput(s.Msgs), sink.WorkerConfig{}, nil)
	Compare(t, insp, s)
	checkBootstrap(t, insp, st)
	if st.Offset != int64(len(s.Msgs)) || st.TxnSeq != s.Seq() {
		t.Fatalf("status %+v, want offset %d, txn %d", st, len(s.Msgs), s.Seq())
	}
}

// testSnapshotLenient: while a snapshot loads snap, a delete of a row the
// replica lacks does nothing, an update of one (with or without a key
// change) inserts its after image, an insert of a key the replica holds
// replaces the row; the result is the master's. After the end marker a
// delete of a missing row stops the worker as before.
func testSnapshotLenient(t *testing.T, setup func(*testing.T) (sink.Target, Inspect)) {
	tgt, insp, s := bootSetup(t, setup)
	for id := int64(1); id <= 6; id++ {
		s.Insert("snap", id, "a")
	}
	s.Insert("other", int64(1), "o")
	s.Commit()
	s.Hidden(func() {
		for id := int64(7); id <= 9; id++ {
			s.Insert("snap", id, "hidden")
		}
	})
	s.SnapshotStart("snap")
	s.Delete("snap", int64(1))                       // the replica has no row yet
	s.Update("snap", []any{int64(7)}, int64(7), "u") // inserted
	s.Insert("snap", int64(10), "new")
	s.Commit()
	s.SnapshotChunk("snap", 4) // keys 10, 2, 3, 4 (in key string order)
	s.Hidden(func() { s.Delete("snap", int64(3)) })
	s.Insert("snap", int64(3), "again")                   // the replica holds 3 from the chunk
	s.Update("snap", []any{int64(8)}, int64(8), "u")      // inserted
	s.Update("snap", []any{int64(9)}, int64(90), "moved") // its old key is missing
	s.Commit()
	for s.SnapshotChunk("snap", 4) {
	}
	s.SnapshotEnd("snap")
	s.Update("snap", []any{int64(2)}, int64(2), "after")
	s.Commit()
	ok := s.Seq()
	s.Hidden(func() { s.Insert("snap", int64(50), "hidden") })
	bad := int64(len(s.Msgs))
	s.Delete("snap", int64(50))
	s.Commit()

	in := NewInput(s.Msgs)
	in.Live = true
	var c Counters
	wk, err := RunWorker(context.Background(), t, tgt, in, sink.WorkerConfig{}, &c)
	if !errors.Is(err, sink.ErrRowMissing) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", bad)) {
		t.Fatalf("worker error %v; want a missing row at offset %d, after the end marker", err, bad)
	}
	for _, table := range s.Tables() {
		CompareRows(t, table, insp.Rows(t, table), s.ExpectedAt(ok, table))
	}
	checkBootstrap(t, insp, wk.Status())
	if st := wk.Status(); st.TxnSeq != ok || c.Errors("row_missing") != 1 {
		t.Fatalf("status %+v, %d row_missing errors; want txn %d, 1", st, c.Errors("row_missing"), ok)
	}
}

// testSnapshotOthersStrict: while a snapshot loads snap, a delete of a
// missing row of another table stops the worker.
func testSnapshotOthersStrict(t *testing.T, setup func(*testing.T) (sink.Target, Inspect)) {
	tgt, insp, s := bootSetup(t, setup)
	s.Insert("snap", int64(1), "a")
	s.Insert("other", int64(1), "o")
	s.Commit()
	s.SnapshotStart("snap")
	s.SnapshotChunk("snap", 10)
	s.Hidden(func() { s.Insert("other", int64(9), "hidden") })
	bad := int64(len(s.Msgs))
	s.Delete("other", int64(9))
	s.Commit()

	in := NewInput(s.Msgs)
	in.Live = true
	wk, err := RunWorker(context.Background(), t, tgt, in, sink.WorkerConfig{}, nil)
	if !errors.Is(err, sink.ErrRowMissing) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", bad)) {
		t.Fatalf("worker error %v; want a missing row of other at offset %d", err, bad)
	}
	CompareRows(t, "snap", insp.Rows(t, "snap"), []string{"1|a"})
	checkBootstrap(t, insp, wk.Status(), "snap")
}

// snapshotWorkload is the standard workload, then a snapshot of accounts
// in chunks of 7 rows with stream transactions between the chunks, then
// more transactions. start and end are the offsets of the markers, chunk
// the TxnSeq of the first chunk.
func snapshotWorkload(db string, seed uint64) (w *Workload, start, end int64, chunk uint64) {
	w = NewWorkload(db, seed, 60, true)
	start = int64(len(w.Msgs))
	w.SnapshotStart("accounts")
	chunk = w.Seq() + 1
	for w.SnapshotChunk("accounts", 7) {
		for range 2 {
			w.randomOp()
			w.Commit()
		}
	}
	end = int64(len(w.Msgs))
	w.SnapshotEnd("accounts")
	for range 10 {
		w.randomOp()
		w.Commit()
	}
	return w, start, end, chunk
}

// testSnapshotRestart stops the worker at the start marker, inside and
// between chunks, at the end marker and after it: the tables no snapshot
// loads hold an exact prefix each time, and the last worker converges.
func testSnapshotRestart(t *testing.T, setup func(*testing.T) (sink.Target, Inspect)) {
	tgt, insp := setup(t)
	w, start, end, _ := snapshotWorkload(insp.Database(), 23)
	for i, stop := range []int64{start, start + 1, start + 3, (start + end) / 2, end, end + 1, end + 4} {
		in := NewInput(w.Msgs)
		in.Stop = stop
		in.Live = i%2 == 1
		if i > 0 {
			tgt = insp.Reopen(t)
		}
		st := mustRun(t, tgt, in, sink.WorkerConfig{MaxBatchRows: 3}, nil)
		for _, table := range w.Tables() {
			if table == "accounts" && st.Offset > start && st.Offset <= end {
				continue // loading: a subset of the master's rows
			}
			CompareRows(t, table, insp.Rows(t, table), w.ExpectedAt(st.TxnSeq, table))
		}
	}
	st := mustRun(t, insp.Reopen(t), NewInput(w.Msgs), sink.WorkerConfig{}, nil)
	Compare(t, insp, w.Script)
	checkBootstrap(t, insp, st)
}

// testSnapshotReplay applies a history with a snapshot, rewinds before the
// snapshot, into it, and to the start, and applies again: the contents
// converge each time.
func testSnapshotReplay(t *testing.T, setup func(*testing.T) (sink.Target, Inspect)) {
	tgt, insp := setup(t)
	w, start, _, chunk := snapshotWorkload(insp.Database(), 24)
	mustRun(t, tgt, NewInput(w.Msgs), sink.WorkerConfig{}, nil)
	Compare(t, insp, w.Script)
	_ = start
	for _, from := range []checkpoint.State{w.After(chunk - 2), w.After(chunk + 2), {}} { // before the start marker, inside the snapshot, the start
		Rewind(t, insp.Reopen(t), from)
		st := mustRun(t, insp.Reopen(t), NewInput(w.Msgs), sink.WorkerConfig{}, nil)
		Compare(t, insp, w.Script)
		checkBootstrap(t, insp, st)
		if st.Offset != int64(len(w.Msgs)) || st.TxnSeq != w.Seq() {
			t.Fatalf("replay from %s ended at %+v", from, st)
		}
	}
}

// cloneScript is a history of snap and other: transactions 1-2, after
// which a clone copies other; 3-5, after which it copies snap; 6-7; then a
// delete of a row snap does not hold. Row 1 of each table changes in every
// transaction, so that a message applied twice shows. It returns the
// offsets of other's messages in transactions 3-5.
func cloneScript(s *Script) (otherLater []int64) {
	for id := int64(1); id <= 3; id++ {
		s.Insert("snap", id, "a")
		s.Insert("other", id, "a")
	}
	s.Commit()
	more := map[int]func(){
		3: func() { s.Delete("other", int64(2)); s.Insert("snap", int64(4), "a") },
		4: func() { s.Insert("other", int64(2), "back"); s.Delete("snap", int64(2)) },
		6: func() { s.Delete("snap", int64(3)) },
		7: func() { s.Insert("snap", int64(7), "a"); s.Insert("other", int64(7), "a") },
	}
	for txn := 2; txn <= 7; txn++ {
		v := fmt.Sprintf("t%d", txn)
		s.Update("snap", []any{int64(1)}, int64(1), v)
		s.Update("other", []any{int64(1)}, int64(1), v)
		if f := more[txn]; f != nil {
			f()
		}
		s.Commit()
	}
	s.Hidden(func() { s.Insert("snap", int64(99), "hidden") })
	s.Delete("snap", int64(99))
	s.Commit()
	for o := s.After(2).Offset; o < s.After(5).Offset; o++ {
		if s.Msgs[o].Event.Table.Name == "other" {
			otherLater = append(otherLater, o)
		}
	}
	return otherLater
}

// testCloneFloors: a clone copied other as of transaction 2 and snap as of
// transaction 5, and wrote the checkpoint after transaction 2. The worker
// skips snap's messages up to its floor (counted as duplicates), applies
// other's, deletes each clone entry once its checkpoint passes the floor,
// and applies strictly after it.
func testCloneFloors(t *testing.T, setup func(*testing.T) (sink.Target, Inspect)) {
	tgt, insp, s := bootSetup(t, setup)
	insp.Setup(t, "ALTER TABLE `snap` DROP COLUMN `stale`") // no snapshot recreates it here
	otherLater := cloneScript(s)
	floorOther, floorSnap := s.After(2).Offset-1, s.After(5).Offset-1
	seedClone(t, tgt, insp, s, otherLater, floorSnap+1)
	insp.SaveBootstrap(t, checkpoint.Bootstrap{Topic: Topic, DB: s.DB, Table: "other", Mode: checkpoint.ModeClone, FloorOffset: floorOther})
	insp.SaveBootstrap(t, checkpoint.Bootstrap{Topic: Topic, DB: s.DB, Table: "snap", Mode: checkpoint.ModeClone, FloorOffset: floorSnap})

	in := NewInput(s.Msgs)
	in.Stop = s.After(3).Offset
	var c Counters
	st := mustRun(t, insp.Reopen(t), in, sink.WorkerConfig{}, &c)
	CompareRows(t, "other", insp.Rows(t, "other"), s.ExpectedAt(3, "other"))
	CompareRows(t, "snap", insp.Rows(t, "snap"), s.ExpectedAt(5, "snap"))
	if boot := insp.Bootstrap(t); len(boot) != 1 || boot[s.DB+".snap"].FloorOffset != floorSnap || st.Bootstrapping != 1 {
		t.Fatalf("bootstrap entries %+v, status %+v; want snap's alone", boot, st)
	}
	if got := c.Get(sink.DuplicatesSkipped); got != 2 {
		t.Fatalf("%d duplicates skipped in transaction 3, want snap's 2 messages", got)
	}

	in = NewInput(s.Msgs)
	in.Live = true
	c = Counters{}
	wk, err := RunWorker(context.Background(), t, insp.Reopen(t), in, sink.WorkerConfig{}, &c)
	if !errors.Is(err, sink.ErrRowMissing) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", s.After(7).Offset)) {
		t.Fatalf("worker error %v; want a missing row of snap after its floor, at offset %d", err, s.After(7).Offset)
	}
	for _, table := range s.Tables() {
		CompareRows(t, table, insp.Rows(t, table), s.ExpectedAt(7, table))
	}
	checkBootstrap(t, insp, wk.Status())
	if got := c.Get(sink.DuplicatesSkipped); got != 3 {
		t.Fatalf("%d duplicates skipped in transactions 4-5, want snap's 3 messages", got)
	}
}

// seedClone leaves the replica as the clone would: other as of transaction
// 2 (its later messages skipped), snap as of transaction 5 (stop), and the
// checkpoint after transaction 2.
func seedClone(t *testing.T, tgt sink.Target, insp Inspect, s *Script, otherLater []int64, stop int64) {
	t.Helper()
	in := NewInput(s.Msgs)
	in.Stop = stop
	mustRun(t, tgt, in, sink.WorkerConfig{SkipOffsets: otherLater}, nil)
	CompareRows(t, "other", insp.Rows(t, "other"), s.ExpectedAt(2, "other"))
	CompareRows(t, "snap", insp.Rows(t, "snap"), s.ExpectedAt(5, "snap"))
	Rewind(t, insp.Reopen(t), s.After(2))
}
