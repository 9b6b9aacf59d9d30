package mysql

import (
	"errors"
	"strings"
	"testing"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/sink"
)

// TestBinaryApplyIdempotentReplica: on a replica running
// slave_exec_mode=IDEMPOTENT, row events would skip a delete of a missing
// row; the target keeps such a replica on the SQL path, which stops there.
// (The variable is global: it is set back to what it was at the end.)
func TestBinaryApplyIdempotentReplica(t *testing.T) {
	r := newReplica(t, testenv.Replica1)
	r.Setup(t, "CREATE TABLE `t` (`id` BIGINT NOT NULL PRIMARY KEY, `v` VARCHAR(10) NULL, `n` INT NOT NULL)")
	s := conflictScript(r.db)
	s.Delete("t", int64(1))
	s.Commit()
	cut := len(s.Msgs) - 2
	rec := runOK(t, r.target(t), s.Msgs[:cut])
	testenv.Exec(t, r.root, "DELETE FROM `t` WHERE `id` = 1")

	var mode string
	if err := r.root.QueryRow("SELECT @@GLOBAL.slave_exec_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	testenv.Exec(t, r.root, "SET GLOBAL slave_exec_mode='IDEMPOTENT'")
	t.Cleanup(func() { r.root.Exec("SET GLOBAL slave_exec_mode='" + mode + "'") })
	n := countPrefix(rec.get(), binRowsPrefix)
	_, err := runRecorded(t, r.target(t), s.Msgs, sink.WorkerConfig{}, rec)
	testenv.Exec(t, r.root, "SET GLOBAL slave_exec_mode='"+mode+"'")
	if !errors.Is(err, sink.ErrRowMissing) {
		t.Fatalf("delete of a missing row on an IDEMPOTENT replica: %v, want ErrRowMissing", err)
	}
	if got := countPrefix(rec.get(), binRowsPrefix); got != n {
		t.Errorf("%d BINLOG statements on an IDEMPOTENT replica, want none", got-n)
	}
}

// TestStrictErrors: the decision behind the binary apply's check of the
// replica's error settings. slave_skip_errors cannot be set at runtime, so
// only this unit test covers it.
func TestStrictErrors(t *testing.T) {
	for _, c := range []struct {
		mode, skip string
		want       []string // substrings of the reason; none: strict
	}{
		{"STRICT", "OFF", nil},
		{"strict", "", nil},
		{"IDEMPOTENT", "OFF", []string{"slave_exec_mode=IDEMPOTENT"}},
		{"STRICT", "1032,1062", []string{"slave_skip_errors=1032,1062"}},
		{"STRICT", "ALL", []string{"slave_skip_errors=ALL"}},
		{"IDEMPOTENT", "1032", []string{"slave_exec_mode=IDEMPOTENT", "slave_skip_errors=1032"}},
	} {
		got := strictErrors(c.mode, c.skip)
		if (got == "") != (len(c.want) == 0) {
			t.Errorf("strictErrors(%q, %q) = %q", c.mode, c.skip, got)
		}
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("strictErrors(%q, %q) = %q, want it to say %q", c.mode, c.skip, got, w)
			}
		}
	}
}
