package checkpoint_test

import (
	"context"
	"testing"
	"time"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/pipeline/testenv"
)

func newStore(t *testing.T) (*checkpoint.MySQL, context.Context) {
	t.Helper()
	db := testenv.DB(t, testenv.Replica1)
	schema := testenv.UniqueName(t, "rcbk")
	t.Cleanup(func() { db.Exec("DROP DATABASE IF EXISTS `" + schema + "`") })
	m := checkpoint.NewMySQL(schema)
	ctx := context.Background()
	for i := 0; i < 2; i++ { // Init is idempotent
		if err := m.Init(ctx, db); err != nil {
			t.Fatal(err)
		}
	}
	return m, ctx
}

func TestMySQLSaveLoad(t *testing.T) {
	m, ctx := newStore(t)
	db := testenv.DB(t, testenv.Replica1)

	if st, found, err := m.Load(ctx, db, "topic.a", 0); err != nil || found || st.Topic != "topic.a" {
		t.Fatalf("empty store: %+v %v %v", st, found, err)
	}

	commit := time.Date(2024, 2, 29, 23, 59, 58, 123456000, time.UTC)
	want := checkpoint.State{Topic: "topic.a", Partition: 0, Offset: 42, Epoch: 3, TxnSeq: 17,
		GTIDSet: "0-1-17", CommitTime: commit, UpdatedAt: time.Date(2024, 3, 1, 0, 0, 0, 5000, time.UTC)}

	// A rolled-back transaction leaves no checkpoint: Save writes in the caller's transaction.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Save(ctx, tx, want); err != nil {
		t.Fatal(err)
	}
	tx.Rollback()
	if _, found, _ := m.Load(ctx, db, "topic.a", 0); found {
		t.Fatal("checkpoint visible after rollback")
	}

	tx, _ = db.BeginTx(ctx, nil)
	if err := m.Save(ctx, tx, want); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	got, found, err := m.Load(ctx, db, "topic.a", 0)
	if err != nil || !found {
		t.Fatalf("load: %v %v", found, err)
	}
	want.MaxTxnSeq = 17
	if got != want {
		t.Fatalf("load:\n got %+v\nwant %+v", got, want)
	}

	// Rewinding keeps the high-water mark; other partitions are separate rows.
	rewound := want
	rewound.Offset, rewound.TxnSeq, rewound.CommitTime, rewound.DDLPending = 10, 5, time.Time{}, 6
	if err := m.Save(ctx, db, rewound); err != nil {
		t.Fatal(err)
	}
	if err := m.Save(ctx, db, checkpoint.State{Topic: "topic.a", Partition: 1, Offset: 1, TxnSeq: 1}); err != nil {
		t.Fatal(err)
	}
	got, _, _ = m.Load(ctx, db, "topic.a", 0)
	if got.Offset != 10 || got.TxnSeq != 5 || got.MaxTxnSeq != 17 || got.DDLPending != 6 || !got.CommitTime.IsZero() {
		t.Fatalf("after rewind: %+v", got)
	}
	got, _, _ = m.Load(ctx, db, "topic.a", 1)
	if got.Offset != 1 || got.MaxTxnSeq != 1 {
		t.Fatalf("partition 1: %+v", got)
	}

	if err := m.Delete(ctx, db, "topic.a", 0); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := m.Load(ctx, db, "topic.a", 0); found {
		t.Fatal("checkpoint still there after Delete")
	}
}

func TestMySQLRecordSkip(t *testing.T) {
	m, ctx := newStore(t)
	db := testenv.DB(t, testenv.Replica1)
	s := checkpoint.Skip{Topic: "t", Partition: 0, Offset: 7, Position: "e1/t3/r0", Reason: "malformed", Operator: "alice"}
	for i := 0; i < 2; i++ { // replaying a skipped offset records it once
		if err := m.RecordSkip(ctx, db, s); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	var op, pos string
	if err := db.QueryRow("SELECT COUNT(*), MAX(`operator`), MAX(`position`) FROM `"+m.Schema()+"`.`skipped`").Scan(&n, &op, &pos); err != nil {
		t.Fatal(err)
	}
	if n != 1 || op != "alice" || pos != "e1/t3/r0" {
		t.Fatalf("skipped: n=%d operator=%q position=%q", n, op, pos)
	}
}
