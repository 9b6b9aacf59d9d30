package checkpoint_test

import (
	"context"
	"testing"
	"time"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/internal/testenv"
)

func TestCloneTablesSaveLoadDelete(t *testing.T) {
	m, ctx := newStore(t)
	db := testenv.DB(t, testenv.Replica1)
	for i := 0; i < 2; i++ { // InitClone is idempotent, and adds to Init's tables
		if err := m.InitClone(ctx, db); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	view := checkpoint.State{Topic: "t.a", Offset: 42, Epoch: 2, TxnSeq: 17, MaxTxnSeq: 20, GTIDSet: "0-2-99", CommitTime: at}
	done := checkpoint.CloneTable{Topic: "t.a", DB: "shop", Table: "orders", State: checkpoint.CloneDone, Source: "db2",
		View: view, Rows: 1000, StartedAt: at, UpdatedAt: at.Add(time.Second)}
	cut := checkpoint.CloneTable{Topic: "t.a", DB: "shop", Table: "lines", State: checkpoint.CloneCopying, Source: "db3",
		View: checkpoint.State{Topic: "t.a", Offset: 50, TxnSeq: 21}, StartedAt: at, UpdatedAt: at}
	other := checkpoint.CloneTable{Topic: "t.b", DB: "shop", Table: "orders", State: checkpoint.CloneCopying, View: view}
	for _, c := range []checkpoint.CloneTable{done, cut, other} {
		if err := m.SaveCloneTable(ctx, db, c); err != nil {
			t.Fatal(err)
		}
	}
	got := loadCloneTables(t, m, "t.a", 2)
	cut.View.MaxTxnSeq = 21 // never below the view's own transaction
	if got["shop.orders"] != done || got["shop.lines"] != cut {
		t.Fatalf("loaded %+v,\nwant %+v and %+v", got, done, cut)
	}
	if err := m.DeleteCloneTables(ctx, db, "t.a"); err != nil {
		t.Fatal(err)
	}
	loadCloneTables(t, m, "t.a", 0)
	loadCloneTables(t, m, "t.b", 1) // another topic's clone stays
}

// loadCloneTables loads topic's clone progress from Replica1 and checks how
// many tables it holds.
func loadCloneTables(t *testing.T, m *checkpoint.MySQL, topic string, want int) map[string]checkpoint.CloneTable {
	t.Helper()
	got, err := m.LoadCloneTables(context.Background(), testenv.DB(t, testenv.Replica1), topic)
	if err != nil || len(got) != want {
		t.Fatalf("clone progress of %s: %+v (%v), want %d tables", topic, got, err, want)
	}
	return got
}
