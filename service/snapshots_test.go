package service

import (
	"errors"
	"testing"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/source"
)

// TestSnapshotAdvance records chunks, table ends and the job's end in a
// snapshot's row as the reader reports them.
func TestSnapshotAdvance(t *testing.T) {
	row := checkpoint.Snapshot{Tables: []string{"d.a", "d.b"}, State: checkpoint.SnapshotRunning}
	steps := []struct {
		p                 source.SnapshotProgress
		state, table, key string
		rows              int64
	}{
		{source.SnapshotProgress{Table: "d.a", Rows: 10, LastKey: "[10]"}, "running", "d.a", "[10]", 10},
		{source.SnapshotProgress{Table: "d.a", Rows: 3, LastKey: "[13]", TableDone: true}, "running", "d.b", "", 13},
		{source.SnapshotProgress{Table: "d.b", Rows: 4, LastKey: "[4]"}, "running", "d.b", "[4]", 17},
		{source.SnapshotProgress{Table: "d.b", Rows: 1, TableDone: true}, "done", "", "", 18},
		{source.SnapshotProgress{Done: true}, "done", "", "", 18},
	}
	for i, s := range steps {
		advance(&row, s.p)
		if row.State != s.state || row.CurrentTable != s.table || row.LastKey != s.key || row.RowsDone != s.rows {
			t.Fatalf("step %d: %+v", i, row)
		}
	}
	advance(&row, source.SnapshotProgress{Done: true, Err: errors.New("boom")})
	if row.State != checkpoint.SnapshotFailed || row.Error != "boom" {
		t.Fatalf("after a failure: %+v", row)
	}
}

// TestSnapshotJobFrom resumes a snapshot's row from its current table,
// after its last key.
func TestSnapshotJobFrom(t *testing.T) {
	sn := &snapshots{}
	row := &checkpoint.Snapshot{ID: 4, Tables: []string{"d.a", "d.b", "d.c"}, CurrentTable: "d.b", LastKey: "[7]", Throttle: 9}
	j := sn.job(row, true)
	if j.ID != 4 || len(j.Tables) != 2 || j.Tables[0] != "d.b" || j.After != "[7]" || j.Throttle != 9 || !j.MarkFirst {
		t.Fatalf("job %+v", j)
	}
	row.CurrentTable, row.LastKey = "", ""
	if j := sn.job(row, false); len(j.Tables) != 3 || j.After != "" || j.MarkFirst {
		t.Fatalf("job of a row not started %+v", j)
	}
}
