package clickhouse

import (
	"context"
	"strings"
	"testing"

	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// TestExistingTables applies rows to tables ClickHouse already has: one
// whose key is not in column order (accepted by a second target, which
// reads the table back), one keyless (refused with the table and the fix)
// and one whose column has another type than the rows map to (refused).
func TestExistingTables(t *testing.T) {
	r := newReplica(t, Config{})
	s := sinktest.NewScript(r.db)
	s.Table("k", []pipeline.Column{{Name: "a", Kind: pipeline.VInt, SQLType: "int(11)"},
		{Name: "b", Kind: pipeline.VString, SQLType: "varchar(5)"}, {Name: "c", Kind: pipeline.VString, SQLType: "text"}}, 1, 0)
	s.Insert("k", int64(1), "x", nil)
	s.Commit()
	runAll(t, r, s.Msgs)
	s.Insert("k", int64(2), "y", "c")
	s.Commit()
	runAll(t, r, s.Msgs)
	sinktest.CompareRows(t, "k", r.Rows(t, "k"), []string{"1|x|NULL", "2|y|c"})

	r2 := newReplica(t, Config{}) // a checkpoint of its own
	keyless := sinktest.NewScript(r2.db)
	keyless.Table("nokey", []pipeline.Column{{Name: "a", Kind: pipeline.VInt, SQLType: "int(11)"}})
	keyless.Insert("nokey", int64(1))
	keyless.Commit()
	expectError(t, r2, keyless.Msgs, r2.db+"`.`nokey", "add a primary key")

	r.exec(t, "ALTER TABLE "+qualified(r.db, "k")+" MODIFY COLUMN c Nullable(FixedString(5))")
	s.Insert("k", int64(3), "z", "c")
	s.Commit()
	expectError(t, r, s.Msgs, "is Nullable(FixedString(5)) in ClickHouse, but the changelog's rows map to Nullable(String)", "MODIFY COLUMN `c` Nullable(String)")
}

func expectError(t *testing.T, r *replica, msgs []sink.Message, wants ...string) {
	t.Helper()
	_, err := sinktest.RunWorker(context.Background(), t, r.target(t), sinktest.NewInput(msgs), sink.WorkerConfig{}, nil)
	for _, want := range wants {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("worker error %v; want one with %q", err, want)
		}
	}
}
