package mysql

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// TestSQLSequence asserts the exact statements of small transactions: the
// rows and the checkpoint between one BEGIN and one COMMIT; a primary-key
// change as DELETE then upsert; DDL between two checkpoint-only
// transactions (ddl_pending, then done).
func TestSQLSequence(t *testing.T) {
	r := newReplica(t, testenv.Replica1)
	r.Setup(t, "CREATE TABLE `t` (`id` BIGINT NOT NULL PRIMARY KEY, `v` VARCHAR(10) NULL)")
	s := sequenceScript(r.db)

	tgt := r.target(t, sqlOnly)
	rec := record(tgt)
	in := sinktest.NewInput(s.Msgs)
	in.Live = true
	st, err := sinktest.RunWorker(context.Background(), t, tgt, in, sink.WorkerConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := rec.get()
	i := slices.Index(got, "BEGIN")
	if i < 0 || !strings.HasPrefix(got[i-1], "SELECT `next_offset`") {
		t.Fatalf("Open should end by loading the checkpoint, then BEGIN:\n%s", strings.Join(got, "\n"))
	}
	save := tgt.store.SaveSQL()
	tbl := q(r.db, "t")
	want := []string{
		"BEGIN", save, "COMMIT", // the epoch record
		"BEGIN",
		tableInfoSQL, // the table's engine, when rows first go to it
		"INSERT INTO " + tbl + " (`id`,`v`) VALUES (?,?),(?,?),(?,?) ON DUPLICATE KEY UPDATE `v`=VALUES(`v`)",
		"DELETE FROM " + tbl + " WHERE `id` IN (?)",
		save,
		"COMMIT",
		"BEGIN",
		"DELETE FROM " + tbl + " WHERE `id` IN (?)",
		"INSERT INTO " + tbl + " (`id`,`v`) VALUES (?,?) ON DUPLICATE KEY UPDATE `v`=VALUES(`v`)",
		save,
		"COMMIT",
		"BEGIN", save, "COMMIT", // ddl_pending
		"USE `" + r.db + "`",
		"ALTER TABLE `t` ADD COLUMN `w` INT NULL",
		"BEGIN", save, "COMMIT", // the DDL is done
	}
	if !slices.Equal(got[i:], want) {
		t.Fatalf("statements:\n%s\nwant:\n%s", strings.Join(got[i:], "\n"), strings.Join(want, "\n"))
	}
	sinktest.CompareRows(t, "t", r.Rows(t, "t"), []string{"5|c|NULL"})
	if got := st.Status(); got.Offset != int64(len(s.Msgs)) || got.TxnSeq != 3 {
		t.Fatalf("status %+v", got)
	}
	checkSequenceCheckpoint(t, tgt, r, int64(len(s.Msgs)))
}

// sequenceScript: a transaction of every op, a key change, a DDL.
func sequenceScript(db string) *sinktest.Script {
	s := sinktest.NewScript(db)
	s.Table("t", []pipeline.Column{{Name: "id", Kind: pipeline.VInt}, {Name: "v", Kind: pipeline.VString}}, 0)
	s.Insert("t", int64(1), "a")
	s.Insert("t", int64(2), "b")
	s.Update("t", []any{int64(1)}, int64(1), "c")
	s.Delete("t", int64(2))
	s.Commit()
	s.Update("t", []any{int64(1)}, int64(5), "c") // key change
	s.Commit()
	s.DDL("ALTER TABLE `t` ADD COLUMN `w` INT NULL")
	return s
}

// checkSequenceCheckpoint checks the checkpoint stored after sequenceScript.
func checkSequenceCheckpoint(t *testing.T, tgt *Target, r *replica, offset int64) {
	t.Helper()
	ck, found, err := tgt.store.Load(context.Background(), r.root, sinktest.Topic, 0)
	if err != nil || !found || ck.Offset != offset || ck.TxnSeq != 3 || ck.MaxTxnSeq != 3 ||
		ck.DDLPending != 0 || ck.Epoch != 1 || ck.GTIDSet != "0-1-3" || ck.CommitTime.IsZero() {
		t.Fatalf("stored checkpoint %+v, %v, %v", ck, found, err)
	}
}
