package mysql

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// rerunCase is a DDL run again after a crash between it and its checkpoint.
type rerunCase struct {
	name  string
	setup []string // the replica's tables before the script
	ddl   string
	// ran is what the crashed worker did after saving ddl_pending: the
	// DDL itself, unless the case says otherwise.
	ran []string
	// rows adds rows after the DDL to the script, and returns the rows
	// the replica holds in the end (table, rows).
	rows func(s *sinktest.Script) (string, []string)
	// fix is a substring of the fix of the error that stops the worker;
	// "" when the restarted worker goes on.
	fix string
}

var rerunCols = []pipeline.Column{{Name: "id", Kind: pipeline.VInt}, {Name: "v", Kind: pipeline.VString}}

const rerunTable = "CREATE TABLE `%s` (`id` BIGINT NOT NULL PRIMARY KEY, `v` VARCHAR(10) NULL)"

func table(name string) string { return strings.Replace(rerunTable, "%s", name, 1) }

// insertInto adds a row to table (declared with the script's columns).
func insertInto(table string, want ...string) func(s *sinktest.Script) (string, []string) {
	return func(s *sinktest.Script) (string, []string) {
		s.Table(table, rerunCols, 0)
		s.Insert(table, int64(2), "b")
		s.Commit()
		return table, want
	}
}

// TestDDLRerun simulates a crash between a DDL and its checkpoint
// (ddl_pending saved, the DDL run, the checkpoint after it lost) and
// restarts the worker: a DDL whose effect the replica shows is accepted, one
// that cannot be told applied or that meets another object stops the
// worker with the right fix.
func TestDDLRerun(t *testing.T) {
	trigger := "CREATE DEFINER=`root`@`localhost` TRIGGER `trg` BEFORE INSERT ON `t` FOR EACH ROW SET NEW.v = UPPER(NEW.v)"
	for _, c := range []rerunCase{
		{name: "rename", ddl: "RENAME TABLE `t` TO `t2`", rows: insertInto("t2", "1|a", "2|b")},
		{name: "alter rename", ddl: "ALTER TABLE `t` RENAME TO `t2`", rows: insertInto("t2", "1|a", "2|b")},
		{name: "rename not run, new name taken", ddl: "RENAME TABLE `t` TO `t2`", ran: []string{table("t2")},
			fix: "a new name of the rename is already taken"},
		{name: "swap", setup: []string{table("u")}, ddl: "RENAME TABLE `t` TO `tmp`, `u` TO `t`, `tmp` TO `u`",
			fix: "if the replica already holds the rename's result, skip this offset"},
		{name: "trigger", ddl: trigger},
		{name: "trigger of another definition", ddl: trigger,
			ran: []string{strings.Replace(trigger, "UPPER", "LOWER", 1)}, fix: "SHOW CREATE TRIGGER"},
		{name: "procedure", ddl: "CREATE DEFINER=`root`@`localhost` PROCEDURE `p`(IN x INT)\nBEGIN\n  SET @y = x;\nEND"},
		{name: "function", ddl: "CREATE DEFINER=`root`@`localhost` FUNCTION `f`(x INT) RETURNS int(11)\n    DETERMINISTIC\nRETURN x*2"},
		{name: "event", ddl: "CREATE DEFINER=`root`@`localhost` EVENT `e` ON SCHEDULE AT '2037-01-01 00:00:00' DO SET @x = 1"},
		{name: "drop trigger", setup: []string{trigger}, ddl: "DROP TRIGGER `trg`"},
		{name: "drop event", setup: []string{"CREATE EVENT `e` ON SCHEDULE AT '2037-01-01 00:00:00' DO SET @x = 1"}, ddl: "DROP EVENT `e`"},
	} {
		t.Run(c.name, func(t *testing.T) { runRerun(t, c) })
	}
}

func runRerun(t *testing.T, c rerunCase) {
	r := newReplica(t, testenv.Replica1)
	r.Setup(t, table("t"), "INSERT INTO `t` VALUES (1, 'a')")
	r.Setup(t, c.setup...)
	s := sinktest.NewScript(r.db)
	s.Table("t", rerunCols, 0)
	ddlAt := int64(len(s.Msgs))
	s.DDL(c.ddl)
	var tbl string
	var want []string
	if c.rows != nil {
		tbl, want = c.rows(s)
	}
	if c.ran == nil {
		c.ran = []string{c.ddl}
	}
	crashInDDL(t, r, s, ddlAt, c.ran)
	restart := func() error {
		_, err := sinktest.RunWorker(context.Background(), t, rootTarget(t, r), sinktest.NewInput(s.Msgs), sink.WorkerConfig{}, nil)
		return err
	}
	err := restart()
	if c.fix == "" {
		if err != nil {
			t.Fatalf("restart after a crash in %q: %v", c.ddl, err)
		}
		if tbl != "" {
			sinktest.CompareRows(t, tbl, r.Rows(t, tbl), want)
		}
		return
	}
	checkRerunRefused(t, r, err, c, ddlAt)
	if errors.Is(err, ErrDDLUndecided) {
		checkUndecidedStays(t, r, restart)
	}
}

// rootTarget is a Target on the replica running as root, which may create
// routines and events for another definer.
func rootTarget(t *testing.T, r *replica) *Target {
	return r.target(t, func(c *Config) { c.DSN = testenv.RootDSN(r.node, "") })
}

// crashInDDL applies s up to its DDL at ddlAt, then leaves what a crash
// after the DDL leaves: ddl_pending saved, ran run, no checkpoint after.
func crashInDDL(t *testing.T, r *replica, s *sinktest.Script, ddlAt int64, ran []string) {
	t.Helper()
	ctx := context.Background()
	in := sinktest.NewInput(s.Msgs)
	in.Stop = ddlAt
	if _, err := sinktest.RunWorker(ctx, t, r.target(t), in, sink.WorkerConfig{}, nil); err != nil {
		t.Fatal(err)
	}
	store := checkpoint.NewMySQL(r.schema)
	st, _, err := store.Load(ctx, r.root, sinktest.Topic, 0)
	if err != nil || st.Offset != ddlAt {
		t.Fatalf("checkpoint before the DDL: %+v %v", st, err)
	}
	st.DDLPending = s.Msgs[ddlAt].Event.Pos.TxnSeq
	if err := store.Save(ctx, r.root, st); err != nil {
		t.Fatal(err)
	}
	r.Setup(t, ran...)
}

// checkRerunRefused checks the error that stopped the restarted worker: at
// the DDL, with c.fix.
func checkRerunRefused(t *testing.T, r *replica, err error, c rerunCase, ddlAt int64) {
	t.Helper()
	var ae *sink.ApplyError
	if !errors.As(err, &ae) || ae.Offset != ddlAt || !strings.Contains(sink.Advice(err), c.fix) {
		t.Fatalf("restart after a crash in %q: %v; want it stopped at offset %d with the fix %q", c.ddl, err, ddlAt, c.fix)
	}
}

// checkUndecidedStays checks that after a refused swap ddl_pending stays,
// so that another restart refuses it again, and the tables stay swapped
// once (t's row is in u).
func checkUndecidedStays(t *testing.T, r *replica, restart func() error) {
	t.Helper()
	st, _, err := checkpoint.NewMySQL(r.schema).Load(context.Background(), r.root, sinktest.Topic, 0)
	if err != nil || st.DDLPending == 0 {
		t.Fatalf("ddl_pending cleared after an undecided DDL: %+v %v", st, err)
	}
	if err := restart(); !errors.Is(err, ErrDDLUndecided) {
		t.Fatalf("second restart: %v, want ErrDDLUndecided again", err)
	}
	if got := r.Count(t, "u"); got != 1 {
		t.Fatalf("u holds %d rows, want the 1 of t before the swap", got)
	}
}
