package checkpoint_test

import (
	"context"
	"database/sql"
	"maps"
	"testing"
	"time"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/internal/testenv"
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
	saveInTx(t, m, db, want, false)
	if _, found, _ := m.Load(ctx, db, "topic.a", 0); found {
		t.Fatal("checkpoint visible after rollback")
	}

	saveInTx(t, m, db, want, true)
	got := mustLoad(t, m, db, "topic.a", 0)
	want.MaxTxnSeq = 17
	if got != want {
		t.Fatalf("load:\n got %+v\nwant %+v", got, want)
	}

	// Rewinding keeps the high-water mark; other partitions are separate rows.
	rewound := want
	rewound.Offset, rewound.TxnSeq, rewound.CommitTime, rewound.DDLPending = 10, 5, time.Time{}, 6
	mustSave(t, m, db, rewound)
	mustSave(t, m, db, checkpoint.State{Topic: "topic.a", Partition: 1, Offset: 1, TxnSeq: 1})
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

// saveInTx saves st in a transaction that commits or rolls back.
func saveInTx(t *testing.T, m *checkpoint.MySQL, db *sql.DB, st checkpoint.State, commit bool) {
	t.Helper()
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	mustSave(t, m, tx, st)
	if !commit {
		return
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func mustSave(t *testing.T, m *checkpoint.MySQL, ex checkpoint.Execer, st checkpoint.State) {
	t.Helper()
	if err := m.Save(context.Background(), ex, st); err != nil {
		t.Fatal(err)
	}
}

func mustLoad(t *testing.T, m *checkpoint.MySQL, q checkpoint.Querier, topic string, partition int32) checkpoint.State {
	t.Helper()
	st, found, err := m.Load(context.Background(), q, topic, partition)
	if err != nil || !found {
		t.Fatalf("load: %v %v", found, err)
	}
	return st
}

// TestMySQLInitPromotion: the promotion tables are created beside the
// sink's, idempotently, with their keys.
func TestMySQLInitPromotion(t *testing.T) {
	m, ctx := newStore(t)
	db := testenv.DB(t, testenv.Replica1)
	for i := 0; i < 2; i++ {
		if err := m.InitPromotion(ctx, db); err != nil {
			t.Fatal(err)
		}
	}
	keys := map[string]string{}
	rows, err := db.Query("SELECT TABLE_NAME, GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION) FROM information_schema.KEY_COLUMN_USAGE"+
		" WHERE TABLE_SCHEMA = ? AND CONSTRAINT_NAME = 'PRIMARY' GROUP BY TABLE_NAME", m.Schema())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var table, cols string
		if err := rows.Scan(&table, &cols); err != nil {
			t.Fatal(err)
		}
		keys[table] = cols
	}
	want := map[string]string{checkpoint.CheckpointTable: "topic,partition_id", checkpoint.SkippedTable: "topic,partition_id,offset",
		checkpoint.EpochsTable: "topic,epoch", checkpoint.LeaseTable: "topic", checkpoint.BootstrapTable: "topic,db,tbl"}
	if !maps.Equal(keys, want) {
		t.Fatalf("primary keys of %s: %v, want %v", m.Schema(), keys, want)
	}
	if got := m.Table(checkpoint.LeaseTable); got != "`"+m.Schema()+"`.`promotion_lease`" {
		t.Fatalf("Table: %s", got)
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
