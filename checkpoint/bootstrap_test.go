package checkpoint_test

import (
	"testing"
	"time"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/internal/testenv"
)

func TestBootstrapSaveLoadDelete(t *testing.T) {
	m, ctx := newStore(t)
	db := testenv.DB(t, testenv.Replica1)
	since := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	clone := checkpoint.Bootstrap{Topic: "t.a", DB: "shop", Table: "orders", Mode: checkpoint.ModeClone, FloorOffset: 41, Since: since}
	snap := checkpoint.Bootstrap{Topic: "t.a", DB: "shop", Table: "lines", Mode: checkpoint.ModeSnapshot, FloorOffset: 7, Since: since}
	other := checkpoint.Bootstrap{Topic: "t.b", DB: "shop", Table: "orders", Mode: checkpoint.ModeSnapshot}
	for _, b := range []checkpoint.Bootstrap{clone, snap, other} {
		if err := m.SaveBootstrap(ctx, db, b); err != nil {
			t.Fatal(err)
		}
	}
	got, err := m.LoadBootstrap(ctx, db, "t.a")
	if err != nil {
		t.Fatal(err)
	}
	snap.FloorOffset = -1 // only a clone has a floor
	if len(got) != 2 || got["shop.orders"] != clone || got["shop.lines"] != snap {
		t.Fatalf("loaded %+v, want %+v and %+v", got, clone, snap)
	}
	clone.FloorOffset = 90 // a second clone of the table replaces the first entry
	if err := m.SaveBootstrap(ctx, db, clone); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteBootstrap(ctx, db, "t.a", "shop", "lines"); err != nil {
		t.Fatal(err)
	}
	got, err = m.LoadBootstrap(ctx, db, "t.a")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["shop.orders"].FloorOffset != 90 {
		t.Fatalf("after replace and delete: %+v", got)
	}
}
