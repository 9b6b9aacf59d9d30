package mysql

import (
	"context"
	"fmt"
	"strings"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/internal/mysqlerr"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// TestRetryKilledConnection kills the worker's connection from root three
// times (inside a transaction, just before a transaction's last message,
// just before a DDL): each time the worker rolls back, reconnects, resumes
// from the checkpoint stored in the replica, and the result is exact.
func TestRetryKilledConnection(t *testing.T) {
	r := newReplica(t, testenv.Replica1)
	r.Setup(t, sinktest.SetupSQL...)
	w := sinktest.NewWorkload(r.db, 9, 150, false)
	n := len(w.Msgs)
	kills := killPoints(w.Msgs)
	tgt := r.target(t)
	in := sinktest.NewInput(w.Msgs)
	in.Live = true
	killed := map[int64]bool{}
	in.Hook = func(o int64) {
		if why, ok := kills[o]; ok && !killed[o] {
			killed[o] = true
			t.Logf("offset %d (%s): KILL %d", o, why, tgt.connID)
			testenv.Exec(t, r.root, fmt.Sprintf("KILL %d", tgt.connID))
		}
	}
	var c sinktest.Counters
	// One row per statement: a kill inside a transaction finds it open.
	wk, err := sinktest.RunWorker(context.Background(), t, tgt, in, sink.WorkerConfig{MaxBatchRows: 1}, &c)
	if err != nil {
		t.Fatal(err)
	}
	sinktest.Compare(t, r, w.Script)
	if len(killed) != 4 || c.Get(sink.Retries) != len(killed) || c.Errors("transient") != len(killed) {
		t.Fatalf("%d kills, %d retries, %d transient errors", len(killed), c.Get(sink.Retries), c.Errors("transient"))
	}
	if st := wk.Status(); st.Offset != int64(n) || st.TxnSeq != w.Seq() {
		t.Fatalf("status %+v", st)
	}
}

// killPoints are the offsets where TestRetryKilledConnection kills the
// connection, and why: inside a transaction, just before a transaction's
// last message, just before each DDL.
func killPoints(msgs []sink.Message) map[int64]string {
	n := len(msgs)
	kills := map[int64]string{}
	for i := n / 4; i < n; i++ {
		ev := msgs[i].Event
		switch {
		case len(kills) == 0 && ev.Kind == pipeline.KindRow && ev.Pos.Row > 0 && !ev.Pos.Last:
			kills[int64(i)] = "inside a transaction"
		case len(kills) == 1 && i > n/2 && ev.Kind == pipeline.KindRow && ev.Pos.Last && ev.Pos.Row > 0:
			kills[int64(i)] = "before a last message"
		}
	}
	for i, m := range msgs {
		if m.Event.Kind == pipeline.KindDDL {
			kills[int64(i)] = "before a DDL"
		}
	}
	return kills
}

// ddlScript: a row, a DDL, a row in the new shape.
func ddlScript(db string) (*sinktest.Script, int64) {
	s := sinktest.NewScript(db)
	cols := []pipeline.Column{{Name: "id", Kind: pipeline.VInt}, {Name: "v", Kind: pipeline.VString}}
	s.Table("t", cols, 0)
	s.Insert("t", int64(1), "a")
	s.Commit()
	ddlAt := int64(len(s.Msgs))
	s.DDL("ALTER TABLE `t` ADD COLUMN `w` INT NULL")
	s.AddColumn("t", pipeline.Column{Name: "w", Kind: pipeline.VInt})
	s.Insert("t", int64(2), "b", int64(7))
	s.Commit()
	return s, ddlAt
}

// TestDDLPending simulates a crash between a DDL and its checkpoint: the
// checkpoint says ddl_pending and the column already exists. The restarted
// worker accepts "duplicate column" for that DDL only. Without ddl_pending
// the same error stops the worker, and an operator skip gets past it.
func TestDDLPending(t *testing.T) {
	for _, pending := range []bool{true, false} {
		t.Run(fmt.Sprintf("pending=%v", pending), func(t *testing.T) {
			r := newReplica(t, testenv.Replica1)
			r.Setup(t, "CREATE TABLE `t` (`id` BIGINT NOT NULL PRIMARY KEY, `v` VARCHAR(10) NULL)")
			s, ddlAt := ddlScript(r.db)
			ctx := context.Background()
			store := crashAfterDDL(t, r, s, ddlAt, pending)
			if err := restartAfterDDL(t, r, s, ddlAt, pending); err != nil {
				t.Fatal(err)
			}
			sinktest.CompareRows(t, "t", r.Rows(t, "t"), []string{"1|a|NULL", "2|b|7"})
			st, _, _ := store.Load(ctx, r.root, sinktest.Topic, 0)
			if st.DDLPending != 0 || st.TxnSeq != 3 || st.Offset != int64(len(s.Msgs)) {
				t.Fatalf("final checkpoint %+v", st)
			}
			var skips int
			r.root.QueryRow("SELECT COUNT(*) FROM `" + r.schema + "`.`skipped`").Scan(&skips)
			if want := map[bool]int{true: 0, false: 1}[pending]; skips != want {
				t.Fatalf("%d skips recorded, want %d", skips, want)
			}
		})
	}
}

// crashAfterDDL applies s up to its DDL, then runs the DDL behind the sink's
// back; with pending, as after a crash between the DDL and its checkpoint,
// the checkpoint says ddl_pending.
func crashAfterDDL(t *testing.T, r *replica, s *sinktest.Script, ddlAt int64, pending bool) *checkpoint.MySQL {
	t.Helper()
	ctx := context.Background()
	in := sinktest.NewInput(s.Msgs)
	in.Stop = ddlAt
	if _, err := sinktest.RunWorker(ctx, t, r.target(t), in, sink.WorkerConfig{}, nil); err != nil {
		t.Fatal(err)
	}
	store := checkpoint.NewMySQL(r.schema)
	st, _, err := store.Load(ctx, r.root, sinktest.Topic, 0)
	if err != nil || st.Offset != ddlAt || st.TxnSeq != 1 {
		t.Fatalf("checkpoint before the DDL: %+v %v", st, err)
	}
	if pending { // the crash: ddl_pending saved, DDL run, final checkpoint lost
		st.DDLPending = 2
		if err := store.Save(ctx, r.root, st); err != nil {
			t.Fatal(err)
		}
	}
	r.Setup(t, "ALTER TABLE `t` ADD COLUMN `w` INT NULL")
	return store
}

// restartAfterDDL runs the worker again over s: with ddl_pending it accepts
// "duplicate column"; without, the same error stops it (again after a plain
// restart) until an operator skips the DDL.
func restartAfterDDL(t *testing.T, r *replica, s *sinktest.Script, ddlAt int64, pending bool) error {
	t.Helper()
	ctx := context.Background()
	_, err := sinktest.RunWorker(ctx, t, r.target(t), sinktest.NewInput(s.Msgs), sink.WorkerConfig{}, nil)
	if pending {
		return err
	}
	if err == nil || !mysqlerr.Is(err, gomysql.ER_DUP_FIELDNAME) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", ddlAt)) ||
		!strings.Contains(err.Error(), "skip this offset") {
		t.Fatalf("DDL that fails without ddl_pending: %v", err)
	}
	// The failed DDL left no ddl_pending: a plain restart fails again.
	_, err = sinktest.RunWorker(ctx, t, r.target(t), sinktest.NewInput(s.Msgs), sink.WorkerConfig{}, nil)
	if !mysqlerr.Is(err, gomysql.ER_DUP_FIELDNAME) {
		t.Fatalf("restart without a skip: %v", err)
	}
	_, err = sinktest.RunWorker(ctx, t, r.target(t), sinktest.NewInput(s.Msgs), sink.WorkerConfig{SkipOffsets: []int64{ddlAt}}, nil)
	return err
}

// TestBookkeepingDDL: DDL on the bookkeeping schema is never applied; a
// column that merely shares its name is.
func TestBookkeepingDDL(t *testing.T) {
	r := newReplica(t, testenv.Replica1)
	r.Setup(t, "CREATE TABLE `t` (`id` BIGINT NOT NULL PRIMARY KEY)")
	s := sinktest.NewScript(r.db)
	s.DDL("CREATE TABLE `" + r.schema + "`.`evil` (`id` INT)")
	s.DDL("DROP DATABASE IF EXISTS " + r.schema)
	s.DDL("ALTER TABLE `t` ADD COLUMN `" + r.schema + "` INT NULL")
	st, err := sinktest.RunWorker(context.Background(), t, r.target(t), sinktest.NewInput(s.Msgs), sink.WorkerConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var tables, cols int
	r.root.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=?", r.schema).Scan(&tables)
	r.root.QueryRow("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=? AND COLUMN_NAME=?", r.db, r.schema).Scan(&cols)
	// checkpoint, skipped and bootstrap: no "evil" table.
	if tables != 3 || cols != 1 || st.Status().TxnSeq != 3 {
		t.Fatalf("bookkeeping tables %d (want 3), added columns %d (want 1), status %+v", tables, cols, st.Status())
	}
}
