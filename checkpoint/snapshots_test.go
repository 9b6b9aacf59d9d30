package checkpoint_test

import (
	"context"
	"database/sql"
	"reflect"
	"testing"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/internal/testenv"
)

// snapshotStore is a store with the snapshots table.
func snapshotStore(t *testing.T) (*checkpoint.MySQL, context.Context, *sql.DB) {
	t.Helper()
	m, ctx := newStore(t)
	db := testenv.DB(t, testenv.Replica1)
	if err := m.InitSnapshots(ctx, db); err != nil {
		t.Fatal(err)
	}
	return m, ctx, db
}

// TestSnapshotsRequestAndClaim lists requested snapshots oldest first, by
// topic, and lets one reader claim each once.
func TestSnapshotsRequestAndClaim(t *testing.T) {
	m, ctx, db := snapshotStore(t)
	req := checkpoint.Snapshot{Topic: "t.a", Tables: []string{"shop.orders", "shop.lines"}, Throttle: 500, State: checkpoint.SnapshotRequested, RowsTotal: 90}
	first, err := m.InsertSnapshot(ctx, db, req)
	if err != nil {
		t.Fatal(err)
	}
	m.InsertSnapshot(ctx, db, req)
	m.InsertSnapshot(ctx, db, checkpoint.Snapshot{Topic: "t.b", Tables: []string{"x.y"}, State: checkpoint.SnapshotRequested})
	pending, err := m.Snapshots(ctx, db, "t.a", checkpoint.SnapshotRequested)
	if err != nil || len(pending) != 2 || pending[0].ID != first || !reflect.DeepEqual(pending[0].Tables, req.Tables) || pending[0].Throttle != 500 {
		t.Fatalf("requested snapshots %+v (%v)", pending, err)
	}
	for i, want := range []bool{true, false} {
		if ok, err := m.ClaimSnapshot(ctx, db, first); ok != want || err != nil {
			t.Fatalf("claim %d: %v %v, want %v", i, ok, err, want)
		}
	}
}

// TestSnapshotsProgressAndEnd records progress, an end and a cancel.
func TestSnapshotsProgressAndEnd(t *testing.T) {
	m, ctx, db := snapshotStore(t)
	s := checkpoint.Snapshot{Topic: "t.a", Tables: []string{"shop.orders", "shop.lines"}, State: checkpoint.SnapshotRunning}
	s.ID, _ = m.InsertSnapshot(ctx, db, s)
	other, _ := m.InsertSnapshot(ctx, db, checkpoint.Snapshot{Topic: "t.a", Tables: []string{"x.y"}, State: checkpoint.SnapshotRequested})
	s.CurrentTable, s.LastKey, s.RowsDone = "shop.lines", `[7,"a"]`, 42
	if err := m.UpdateSnapshot(ctx, db, s); err != nil {
		t.Fatal(err)
	}
	got, found, err := m.SnapshotByID(ctx, db, s.ID)
	if err != nil || !found || got.CurrentTable != "shop.lines" || got.LastKey != `[7,"a"]` || got.RowsDone != 42 || !got.FinishedAt.IsZero() {
		t.Fatalf("after progress: %+v %v %v", got, found, err)
	}
	s.State, s.LastKey = checkpoint.SnapshotDone, ""
	m.UpdateSnapshot(ctx, db, s)
	if err := m.CancelSnapshots(ctx, db, "t.a", "promoted", checkpoint.SnapshotRequested, checkpoint.SnapshotRunning); err != nil {
		t.Fatal(err)
	}
	checkRecent(t, m, db, other)
}

// checkRecent checks the newest snapshots: cancelled, then done.
func checkRecent(t *testing.T, m *checkpoint.MySQL, db *sql.DB, cancelled int64) {
	t.Helper()
	recent, err := m.RecentSnapshots(context.Background(), db, "t.a", 5)
	if err != nil || len(recent) != 2 {
		t.Fatalf("recent %+v (%v)", recent, err)
	}
	if c := recent[0]; c.ID != cancelled || c.State != checkpoint.SnapshotCancelled || c.Error != "promoted" {
		t.Fatalf("cancelled snapshot %+v", c)
	}
	if done := recent[1]; done.State != checkpoint.SnapshotDone || done.LastKey != "" || done.FinishedAt.IsZero() || !done.Finished() {
		t.Fatalf("finished snapshot %+v", done)
	}
}
