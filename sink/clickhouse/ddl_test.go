package clickhouse

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// ddlScript is a changelog that creates, alters, renames, truncates and
// drops tables between its rows.
func ddlScript(db string) *sinktest.Script {
	s := sinktest.NewScript(db)
	s.DDL("CREATE TABLE t (id INT NOT NULL PRIMARY KEY, a VARCHAR(10), c DECIMAL(10,2)) ENGINE=InnoDB")
	s.Table("t", []pipeline.Column{{Name: "id", Kind: pipeline.VInt, SQLType: "int(11)"},
		{Name: "a", Kind: pipeline.VString, SQLType: "varchar(10)"}, {Name: "c", Kind: pipeline.VDecimal, SQLType: "decimal(10,2)"}}, 0)
	s.Insert("t", int64(1), "x", "1.50")
	s.Insert("t", int64(2), "y", nil)
	s.Commit()
	s.DDL("ALTER TABLE t ADD COLUMN b INT NULL, ADD INDEX ia (a)")
	s.AddColumn("t", pipeline.Column{Name: "b", Kind: pipeline.VInt, SQLType: "int(11)"})
	s.Insert("t", int64(3), "z", "-2.00", int64(7))
	s.Delete("t", int64(2))
	s.Commit()
	s.DDL("ALTER TABLE t MODIFY COLUMN b BIGINT NULL")
	s.DDL("ALTER TABLE t DROP COLUMN c")
	s.DDL("CREATE INDEX ib ON t (b)")
	s.DDL("RENAME TABLE t TO t2")
	s.DDL("CREATE TABLE u (k INT PRIMARY KEY)")
	s.Table("u", []pipeline.Column{{Name: "k", Kind: pipeline.VInt, SQLType: "int(11)"}}, 0)
	s.Insert("u", int64(1))
	s.Commit()
	s.DDL("TRUNCATE TABLE u")
	s.DDL("CREATE TABLE gone (k INT PRIMARY KEY)")
	s.DDL("DROP TABLE gone")
	return s
}

// TestDDLSequence applies DDL between rows through the worker and reads the
// tables' columns and current rows back from ClickHouse; then applies the
// same changelog again from the start of the DDL that follows the rename
// (the statements are idempotent), and finally meets a statement the sink
// cannot map.
func TestDDLSequence(t *testing.T) {
	r := newReplica(t, Config{})
	s := ddlScript(r.db)
	runAll(t, r, s.Msgs)
	r.checkDDLResult(t)

	sinktest.Rewind(t, r.target(t), s.After(8)) // before CREATE TABLE u
	runAll(t, r, s.Msgs)
	r.checkDDLResult(t)

	s.DDL("ALTER TABLE t2 RENAME COLUMN a TO aa")
	_, err := sinktest.RunWorker(context.Background(), t, r.target(t), sinktest.NewInput(s.Msgs), sink.WorkerConfig{}, nil)
	offset := len(s.Msgs) - 1
	for _, want := range []string{"RENAME COLUMN a TO aa", "offset " + strconv.Itoa(offset), "fix: apply the equivalent change"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("worker error %v; want one with %q", err, want)
		}
	}
}

func runAll(t *testing.T, r *replica, msgs []sink.Message) {
	t.Helper()
	if _, err := sinktest.RunWorker(context.Background(), t, r.target(t), sinktest.NewInput(msgs), sink.WorkerConfig{}, nil); err != nil {
		t.Fatal(err)
	}
}

func (r *replica) checkDDLResult(t *testing.T) {
	t.Helper()
	var cols []string
	for _, row := range r.query(t, "SELECT name, type FROM system.columns WHERE database = "+quoteString(r.db)+" AND table = 't2'") {
		cols = append(cols, row[0]+" "+row[1])
	}
	want := []string{"id Int32", "a Nullable(String)", "_version UInt64", "_deleted UInt8", "b Nullable(Int64)"}
	if !slices.Equal(cols, want) {
		t.Errorf("t2 columns %v, want %v", cols, want)
	}
	sinktest.CompareRows(t, "t2", r.Rows(t, "t2"), []string{"1|x|NULL", "3|z|7"})
	sinktest.CompareRows(t, "u", r.Rows(t, "u"), []string{})
	for _, gone := range []string{"t", "gone"} {
		if n := r.query(t, "SELECT count() FROM system.tables WHERE database = "+quoteString(r.db)+" AND name = "+quoteString(gone)); n[0][0] != "0" {
			t.Errorf("table %s exists", gone)
		}
	}
}
