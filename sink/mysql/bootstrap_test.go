package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

var snapCols = []pipeline.Column{{Name: "id", Kind: pipeline.VInt, SQLType: "bigint(20)"},
	{Name: "v", Kind: pipeline.VString, SQLType: "varchar(10)"}}

// staleTable is a table t holding a row the master no longer has.
var staleTable = []string{"CREATE TABLE `t` (`id` BIGINT NOT NULL PRIMARY KEY, `v` VARCHAR(10) NULL, `old` INT NULL)",
	"INSERT INTO `t` VALUES (9, 'stale', 1)"}

// snapshotScript: rows 1 and 2 that were never published, then a snapshot
// of t in one chunk.
func snapshotScript(db string) (s *sinktest.Script, start int64) {
	s = sinktest.NewScript(db)
	s.Table("t", snapCols, 0)
	s.Hidden(func() {
		s.Insert("t", int64(1), "a")
		s.Insert("t", int64(2), "b")
	})
	start = int64(len(s.Msgs))
	s.Snapshot("t", 10)
	return s, start
}

// TestSnapshotSequence asserts the exact statements of a snapshot: the
// start marker's CREATE DATABASE, DROP, USE and CREATE outside any
// transaction, then the bootstrap entry with the checkpoint; the chunk; the
// end marker's delete of the entry with the checkpoint. The statements that
// hold read_only depend on what other tests do to the shared replica:
// TestReadOnlyWhileBootstrapping checks them on a server of its own.
func TestSnapshotSequence(t *testing.T) {
	r := newReplica(t, testenv.Replica1)
	r.Setup(t, staleTable...)
	s, _ := snapshotScript(r.db)
	tgt := r.target(t, sqlOnly)
	rec, err := runRecorded(t, tgt, s.Msgs, sink.WorkerConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := slices.DeleteFunc(rec.get(), readOnlyStatement)
	i := slices.Index(got, "BEGIN")
	boot := quoteIdent(r.schema) + ".`bootstrap`"
	if i < 0 || !strings.HasPrefix(got[i-1], "SELECT `next_offset`") || countPrefix(got, "SELECT `db`,`tbl`") != 1 {
		t.Fatalf("Open should read the bootstrap entries once, then the checkpoint:\n%s", strings.Join(got, "\n"))
	}
	save := tgt.store.SaveSQL()
	want := []string{
		"BEGIN", save, "COMMIT", // the epoch record
		"CREATE DATABASE IF NOT EXISTS `" + r.db + "`",
		"DROP TABLE IF EXISTS " + q(r.db, "t"),
		"USE `" + r.db + "`",
		"CREATE TABLE `t` (`id` bigint(20) NOT NULL, `v` varchar(10) NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB",
		"BEGIN",
		"REPLACE INTO " + boot + " (`topic`,`db`,`tbl`,`mode`,`floor_offset`,`since`) VALUES (?,?,?,?,?,?)",
		save, "COMMIT",
		"BEGIN",
		tableInfoSQL, // the table's engine, when rows first go to it
		"INSERT INTO " + q(r.db, "t") + " (`id`,`v`) VALUES (?,?),(?,?) ON DUPLICATE KEY UPDATE `v`=VALUES(`v`)",
		save, "COMMIT",
		"BEGIN",
		"DELETE FROM " + boot + " WHERE `topic`=? AND `db`=? AND `tbl`=?",
		save, "COMMIT",
	}
	if !slices.Equal(got[i:], want) {
		t.Fatalf("statements:\n%s\nwant:\n%s", strings.Join(got[i:], "\n"), strings.Join(want, "\n"))
	}
	sinktest.CompareRows(t, "t", r.Rows(t, "t"), []string{"1|a", "2|b"})
	if b := r.Bootstrap(t); len(b) != 0 {
		t.Fatalf("bootstrap entries left: %+v", b)
	}
}

// TestSnapshotCreatesDatabase: a start marker of a table whose database
// the replica lacks creates the database, with the server's default
// character set, and the table is loaded.
func TestSnapshotCreatesDatabase(t *testing.T) {
	r := newReplica(t, testenv.Replica1)
	missing := testenv.UniqueName(t, "rcnew")
	t.Cleanup(func() { r.root.Exec("DROP DATABASE IF EXISTS " + quoteIdent(missing)) })
	s, _ := snapshotScript(missing)
	runOK(t, r.target(t), s.Msgs)
	var got, want string
	err := r.root.QueryRow("SELECT DEFAULT_CHARACTER_SET_NAME, @@character_set_server FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=?", missing).Scan(&got, &want)
	if err != nil || got != want {
		t.Fatalf("database %s: character set %q (%v), want the server's %q", missing, got, err, want)
	}
	rows, err := r.root.Query("SELECT CONCAT(id, '|', v) FROM " + q(missing, "t") + " ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var all []string
	for rows.Next() {
		var row string
		rows.Scan(&row)
		all = append(all, row)
	}
	sinktest.CompareRows(t, "t", all, []string{"1|a", "2|b"})
}

// failAt fails the first statement with a prefix, with err.
type failAt struct {
	recorder
	prefix string
	err    error
	failed bool
}

func (f *failAt) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if !f.failed && strings.HasPrefix(q, f.prefix) {
		f.failed = true
		f.add(q)
		return nil, f.err
	}
	return f.recorder.ExecContext(ctx, q, args...)
}

// TestSnapshotCrashBeforeCommit: the start marker's table is replaced, then
// recording its bootstrap fails (a crash, or a deadlock the worker retries):
// nothing but the DDL happened, the checkpoint is still before the marker,
// and the next attempt replaces the table again and loads it.
func TestSnapshotCrashBeforeCommit(t *testing.T) {
	t.Run("stop", func(t *testing.T) {
		r := newReplica(t, testenv.Replica1)
		r.Setup(t, staleTable...)
		s, start := snapshotScript(r.db)
		_, err := runFailing(t, r, s.Msgs, errors.New("power cut"))
		if err == nil || !strings.Contains(err.Error(), "power cut") || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", start)) {
			t.Fatalf("worker: %v; want the failure at the start marker, offset %d", err, start)
		}
		st, _, _ := checkpoint.NewMySQL(r.schema).Load(context.Background(), r.root, sinktest.Topic, 0)
		if n, boot := r.Count(t, "t"), r.Bootstrap(t); n != 0 || len(boot) != 0 || st.Offset != start {
			t.Fatalf("after the failure: %d rows, bootstrap %+v, checkpoint %+v; want an empty table, none, offset %d", n, boot, st, start)
		}
		rec := runOK(t, r.target(t), s.Msgs)
		checkSnapshotDone(t, r, rec, 1)
	})
	t.Run("retry", func(t *testing.T) {
		r := newReplica(t, testenv.Replica1)
		r.Setup(t, staleTable...)
		s, _ := snapshotScript(r.db)
		f, err := runFailing(t, r, s.Msgs, &mysql.MySQLError{Number: gomysql.ER_LOCK_DEADLOCK, Message: "Deadlock found"})
		if err != nil {
			t.Fatal(err)
		}
		checkSnapshotDone(t, r, &f.recorder, 2)
	})
}

// runFailing runs a worker over msgs whose first write of a bootstrap entry
// fails with err.
func runFailing(t *testing.T, r *replica, msgs []sink.Message, err error) (*failAt, error) {
	t.Helper()
	f := &failAt{prefix: "REPLACE INTO " + quoteIdent(r.schema) + ".`bootstrap`", err: err}
	tgt := r.target(t)
	tgt.wrap = f.wrap
	in := sinktest.NewInput(msgs)
	in.Live = true
	_, err = sinktest.RunWorker(context.Background(), t, tgt, in, sink.WorkerConfig{}, nil)
	return f, err
}

// wrap makes the target run its statements through f.
func (f *failAt) wrap(e execer) execer {
	f.execer = e
	return f
}

// checkSnapshotDone checks the result of snapshotScript, and that rec saw
// the table dropped drops times.
func checkSnapshotDone(t *testing.T, r *replica, rec *recorder, drops int) {
	t.Helper()
	sinktest.CompareRows(t, "t", r.Rows(t, "t"), []string{"1|a", "2|b"})
	if b := r.Bootstrap(t); len(b) != 0 {
		t.Fatalf("bootstrap entries left: %+v", b)
	}
	if n := countPrefix(rec.get(), "DROP TABLE IF EXISTS "+q(r.db, "t")); n != drops {
		t.Fatalf("the table was dropped %d times, want %d", n, drops)
	}
}

// lenientScript: 100 rows never published, then a snapshot of t with a
// transaction before its chunk that updates 40 of them (inserted), deletes
// 40 (nothing to delete) and moves one to a new key, and one after it that
// inserts 10 keys the replica holds (replaced).
func lenientScript(db string) *sinktest.Script {
	s := sinktest.NewScript(db)
	s.Table("t", snapCols, 0)
	s.Hidden(func() {
		for id := int64(1); id <= 100; id++ {
			s.Insert("t", id, "h")
		}
	})
	s.SnapshotStart("t")
	for id := int64(1); id <= 40; id++ {
		s.Update("t", []any{id}, id, "u")
	}
	for id := int64(41); id <= 80; id++ {
		s.Delete("t", id)
	}
	s.Update("t", []any{int64(81)}, int64(181), "moved")
	s.Commit()
	for s.SnapshotChunk("t", 1000) {
	}
	s.Hidden(func() {
		for id := int64(90); id < 100; id++ {
			s.Delete("t", id)
		}
	})
	for id := int64(90); id < 100; id++ {
		s.Insert("t", id, "again")
	}
	s.Commit()
	s.SnapshotEnd("t")
	return s
}

// TestLenientApplyPaths: rows of a table a snapshot loads that meet missing
// or existing rows converge through every apply path: row events (which
// fall back to SQL for them), LOAD DATA and INSERT upserts, keyed deletes.
func TestLenientApplyPaths(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(*Config)
	}{
		{"binary", func(*Config) {}},
		{"sql", sqlOnly},
		{"sql-insert", func(c *Config) { c.NoBinlog, c.NoLoadData = true, true }},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newReplica(t, testenv.Replica1)
			r.Setup(t, staleTable...)
			s := lenientScript(r.db)
			rec := runOK(t, r.target(t, c.mod), s.Msgs)
			sinktest.Compare(t, r, s)
			if b := r.Bootstrap(t); len(b) != 0 {
				t.Fatalf("bootstrap entries left: %+v", b)
			}
			stmts := rec.get()
			if c.name == "binary" && countPrefix(stmts, binRowsPrefix) == 0 {
				t.Fatal("the binary apply was not tried")
			}
			if c.name == "sql" && countPrefix(stmts, "LOAD DATA") == 0 {
				t.Fatal("LOAD DATA was not used")
			}
		})
	}
}

// TestLenientNoKey: while a snapshot loads a table without a primary key,
// an update that matches no row inserts its after image and a delete that
// matches none does nothing; after the end marker, a delete that matches
// nothing stops the worker.
func TestLenientNoKey(t *testing.T) {
	r := newReplica(t, testenv.Replica1)
	r.Setup(t, "CREATE TABLE `n` (`a` INT NULL, `b` VARCHAR(10) NULL) ENGINE=InnoDB", "INSERT INTO `n` VALUES (7, 'stale')")
	tbl := &pipeline.Table{Database: r.db, Name: "n", Columns: []pipeline.Column{
		{Name: "a", Kind: pipeline.VInt, SQLType: "int(11)"}, {Name: "b", Kind: pipeline.VString, SQLType: "varchar(10)"}}}
	marker := func(which string) *pipeline.Event {
		ev := &pipeline.Event{Kind: pipeline.KindSnapshot, Snapshot: which, Table: tbl, Database: r.db}
		if which == "start" {
			ev.Statement = sinktest.Definition(tbl)
		}
		return ev
	}
	row := func(op pipeline.Op, before, after []any) *pipeline.Event {
		return &pipeline.Event{Kind: pipeline.KindRow, Table: tbl, Op: op, Before: before, After: after}
	}
	msgs := txns(
		[]*pipeline.Event{marker("start")},
		[]*pipeline.Event{row(pipeline.OpUpdate, []any{int64(1), "x"}, []any{int64(1), "x2"}), row(pipeline.OpDelete, []any{int64(2), "y"}, nil)},
		[]*pipeline.Event{marker("end")},
		[]*pipeline.Event{row(pipeline.OpDelete, []any{int64(1), "x"}, nil)},
	)
	in := sinktest.NewInput(msgs)
	in.Live = true
	_, err := sinktest.RunWorker(context.Background(), t, r.target(t), in, sink.WorkerConfig{}, nil)
	if !errors.Is(err, sink.ErrRowMissing) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", len(msgs)-1)) {
		t.Fatalf("worker: %v; want a missing row after the end marker, at offset %d", err, len(msgs)-1)
	}
	sinktest.CompareRows(t, "n", r.Rows(t, "n"), []string{"1|x2"})
}
