package clone

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/internal/mysqlerr"
	"github.com/rowcast/rowcast/internal/testenv"
)

// typeMatrix creates the type matrix table on the source as the replication
// tests do: four rows of edge values, one of NULLs.
func (e *env) typeMatrix(t *testing.T) {
	t.Helper()
	defs, names := []string{"id INT PRIMARY KEY"}, []string{"id"}
	for _, c := range testenv.TypeMatrix {
		defs = append(defs, fmt.Sprintf("`%s` %s NULL", c.Name, strings.TrimSuffix(c.Def, " NULL")))
		names = append(names, "`"+c.Name+"`")
	}
	e.exec(t, "SET SESSION sql_mode = ''", "CREATE TABLE tm ("+strings.Join(defs, ", ")+")")
	for row := 0; row < 4; row++ {
		vals := []string{fmt.Sprint(row + 1)}
		for _, c := range testenv.TypeMatrix {
			vals = append(vals, c.Values[row])
		}
		e.exec(t, "SET SESSION sql_mode = ''", "INSERT INTO tm ("+strings.Join(names, ", ")+") VALUES ("+strings.Join(vals, ", ")+")")
	}
	e.exec(t, "INSERT INTO tm (id) VALUES (5)")
}

// shapes creates tables whose keys and columns take the other paths: a
// composite key of a case-insensitive latin1 string and a number walked in
// chunks, a key the chunks cannot walk (a prefix), no key, generated
// columns, an AUTO_INCREMENT 0, a name that needs quoting, an empty table,
// a FLOAT key, and an ENUM with ” as a member.
func (e *env) shapes(t *testing.T) {
	t.Helper()
	e.exec(t,
		"CREATE TABLE ck (name VARCHAR(20) CHARACTER SET latin1 COLLATE latin1_swedish_ci NOT NULL, n DECIMAL(20,5) NOT NULL, "+
			"at DATETIME(6) NOT NULL, note TEXT NULL, PRIMARY KEY (name, n, at))",
		"INSERT INTO ck SELECT ELT(1 + seq % 5, 'a', 'B', 'ä', 'Zz', 'b\\tc'), seq / 7, '2024-01-01' + INTERVAL seq SECOND, "+
			"IF(seq % 4 = 0, NULL, IF(seq % 4 = 1, '', REPEAT('n\\n\\\\', seq % 9))) FROM seq_1_to_300",
		"CREATE TABLE pre (v VARCHAR(40) NOT NULL, w INT, PRIMARY KEY (v(10)))",
		"INSERT INTO pre SELECT CONCAT('k', seq), seq FROM seq_1_to_50",
		"CREATE TABLE nokey (a INT NULL, b VARCHAR(5) NULL)",
		"INSERT INTO nokey VALUES (1, 'x'), (1, 'x'), (NULL, NULL), (2, '')",
		"CREATE TABLE gen (id INT AUTO_INCREMENT PRIMARY KEY, a INT, v INT AS (a * 2) VIRTUAL, s INT AS (a + 1) PERSISTENT, e ENUM('', 'x') NOT NULL)",
		"SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'",
		"INSERT INTO gen (id, a, e) VALUES (0, 10, ''), (5, 20, 'x'), (6, NULL, '')",
		"CREATE TABLE `odd ``name`` 1` (`k``ey` BIGINT UNSIGNED PRIMARY KEY, f FLOAT)",
		"INSERT INTO `odd ``name`` 1` VALUES (18446744073709551615, 16777216), (0, -0.1)",
		"CREATE TABLE fk (f FLOAT PRIMARY KEY)",
		"INSERT INTO fk VALUES (0.1), (1.5), (3.4028234e38)",
		"CREATE TABLE empty (id INT PRIMARY KEY) DEFAULT CHARSET=latin1",
	)
}

// TestCopiesLosslessly clones the type matrix and every path of keys and
// columns, and compares every value, CHECKSUM TABLE and every definition;
// the target's checkpoint is the source's in the view, and every table has
// its clone floor.
func TestCopiesLosslessly(t *testing.T) {
	e := newEnv(t)
	e.typeMatrix(t)
	e.shapes(t)
	var calls int
	res := e.mustRun(t, Options{Progress: func(Progress) { calls++ }})
	e.checkEqual(t)
	for _, table := range []string{"tm", "ck", "pre", "nokey", "gen", "odd `name` 1", "fk", "empty"} {
		name := qi(e.database) + "." + qi(table)
		if s, d := showCreate(t, e.src, name), showCreate(t, e.dst, name); s != d {
			t.Errorf("definitions differ:\nsource %s\ncopy   %s", s, d)
		}
	}
	if res.Copied != 8 || res.Kept != 0 || res.Rows != int64(5+300+50+4+3+2+3) || calls == 0 {
		t.Errorf("result %+v, progress calls %d", res, calls)
	}
	e.checkFinished(t, res, e.view, map[string]int64{"tm": 999, "ck": 999, "gen": 999, "empty": 999})
}

// checkFinished checks what a finished clone leaves on the target: the
// checkpoint (view's position, maxSeq the newest view's), the floors, no
// progress.
func (e *env) checkFinished(t *testing.T, res *Result, view checkpoint.State, floors map[string]int64) {
	t.Helper()
	e.checkCheckpoint(t, res, view)
	e.checkFloors(t, floors)
	if left, err := e.store.LoadCloneTables(context.Background(), e.dst, e.cfg.Kafka.Topic); err != nil || len(left) != 0 {
		t.Errorf("clone progress left: %+v (%v)", left, err)
	}
}

func (e *env) checkCheckpoint(t *testing.T, res *Result, view checkpoint.State) {
	t.Helper()
	cp, found, err := e.store.Load(context.Background(), e.dst, e.cfg.Kafka.Topic, 0)
	if err != nil || !found {
		t.Fatalf("no checkpoint on the target (%v)", err)
	}
	got := fmt.Sprint(cp.Offset, cp.Epoch, cp.TxnSeq, cp.MaxTxnSeq, cp.GTIDSet, cp.CommitTime.UnixMicro(), res.Checkpoint.Offset)
	want := fmt.Sprint(view.Offset, view.Epoch, view.TxnSeq, res.Views[len(res.Views)-1].TxnSeq, view.GTIDSet, view.CommitTime.UnixMicro(), view.Offset)
	if got != want {
		t.Errorf("checkpoint %+v, want the view's %+v, max_txn_seq the newest view's (result %+v)", cp, view, res.Checkpoint)
	}
}

func (e *env) checkFloors(t *testing.T, floors map[string]int64) {
	t.Helper()
	boot, err := e.store.LoadBootstrap(context.Background(), e.dst, e.cfg.Kafka.Topic)
	if err != nil {
		t.Fatal(err)
	}
	for table, floor := range floors {
		if b := boot[e.database+"."+table]; b.Mode != checkpoint.ModeClone || b.FloorOffset != floor {
			t.Errorf("bootstrap of %s: %+v, want a clone floor at %d", table, b, floor)
		}
	}
}

// TestRefusals: the same node twice, the master, a node outside the config,
// a source without a checkpoint, a target with rows (named, with the fix),
// and a target that already has a checkpoint; --overwrite then clones anew.
func TestRefusals(t *testing.T) {
	e := newEnv(t)
	e.exec(t, "CREATE TABLE a (id INT PRIMARY KEY)", "INSERT INTO a VALUES (1), (2)")
	ctx := context.Background()
	e.checkNodeRefusals(t)
	testenv.Exec(t, e.dst, "CREATE DATABASE `"+e.database+"`", "CREATE TABLE `"+e.database+"`.mine (x INT)",
		"INSERT INTO `"+e.database+"`.mine VALUES (7)")
	_, err := e.run(ctx, t, Options{})
	if !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("a target with rows: %v", err)
	}
	wantErr(t, err, e.database+".mine", "--overwrite", "databases "+e.database+" on db9")

	res := e.mustRun(t, Options{Overwrite: true})
	e.checkEqual(t)
	if res.Copied != 1 || e.count(t, e.dst, "a") != 2 {
		t.Fatalf("--overwrite: %+v", res)
	}
	var n int
	if err := e.dst.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=? AND TABLE_NAME='mine'", e.database).Scan(&n); err != nil || n != 0 {
		t.Fatalf("--overwrite left the target's own table (%d, %v)", n, err)
	}
	_, err = e.run(ctx, t, Options{})
	if !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("a target with a checkpoint: %v", err)
	}
	wantErr(t, err, "holds a rowcast checkpoint", "rowcast sink --replica db9", "--overwrite")

	testenv.Exec(t, e.src, "DELETE FROM `"+e.store.Schema()+"`.checkpoint")
	_, err = e.run(ctx, t, Options{Overwrite: true})
	if !errors.Is(err, ErrSource) {
		t.Fatalf("a source without a checkpoint: %v", err)
	}
	wantErr(t, err, "db2 holds no rowcast checkpoint")
}

// checkNodeRefusals runs clones between nodes that cannot take those roles.
func (e *env) checkNodeRefusals(t *testing.T) {
	t.Helper()
	for _, c := range []struct {
		from, to string
		err      error
		parts    []string
	}{
		{"db2", "db2", ErrNodes, []string{"both name db2"}},
		{"db1", "db9", ErrSource, []string{"db1 is the current master", "--from db2"}},
		{"db2", "db1", ErrNodes, []string{"db1 is the current master"}},
		{"db2", "db7", ErrNodes, []string{`"db7" is not a node`}},
	} {
		_, err := Run(context.Background(), e.cfg, Options{From: c.from, To: c.to})
		if !errors.Is(err, c.err) {
			t.Errorf("%s -> %s: %v, want %v", c.from, c.to, err, c.err)
		}
		wantErr(t, err, c.parts...)
	}
}

// TestResumes stops a clone in the middle of its second table; the next run
// keeps the first table as it was copied (a change on the source since then
// does not reach it), copies the cut table again and the rest in a new view,
// and writes the oldest view's checkpoint, with each table's own floor.
func TestResumes(t *testing.T) {
	e := newEnv(t)
	e.exec(t,
		"CREATE TABLE a_small (id INT PRIMARY KEY, v INT)", "INSERT INTO a_small SELECT seq, seq FROM seq_1_to_20",
		"CREATE TABLE b_big (id INT PRIMARY KEY, v VARCHAR(100))", "INSERT INTO b_big SELECT seq, REPEAT('x', 90) FROM seq_1_to_3000",
		"CREATE TABLE c_after (id INT PRIMARY KEY)", "INSERT INTO c_after SELECT seq FROM seq_1_to_10",
	)
	e.stopIn(t, "b_big", 500)
	first := e.view
	e.exec(t, "UPDATE a_small SET v = -1", "UPDATE b_big SET v = 'changed' WHERE id = 2999", "INSERT INTO c_after VALUES (11)")
	e.setView(t, checkpoint.State{Offset: 2000, Epoch: 1, TxnSeq: 800, MaxTxnSeq: 800, GTIDSet: "0-1-8000"})

	res := e.mustRun(t, Options{ChunkRows: 100, BatchBytes: 2000})
	if res.Copied != 2 || res.Kept != 1 || len(res.Views) != 2 {
		t.Fatalf("resumed: %+v", res)
	}
	var v int
	if err := e.dst.QueryRow("SELECT MIN(v) FROM `" + e.database + "`.a_small").Scan(&v); err != nil || v != 1 {
		t.Fatalf("a_small was copied again (min v %d, %v): it should be kept as copied in the first view", v, err)
	}
	if b, c := e.count(t, e.dst, "b_big"), e.count(t, e.dst, "c_after"); b != 3000 || c != 11 {
		t.Fatalf("b_big %d rows, c_after %d rows", b, c)
	}
	e.checkFinished(t, res, first, map[string]int64{"a_small": 999, "b_big": 1999, "c_after": 1999})
}

// stopIn cancels a clone once it loaded more than rows of table, and checks
// that the table is cut.
func (e *env) stopIn(t *testing.T, table string, rows int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	_, err := e.run(ctx, t, Options{ChunkRows: 100, BatchBytes: 2000, Progress: func(p Progress) {
		if p.Table == e.database+"."+table && p.Rows > rows {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped run: %v", err)
	}
	if got := e.count(t, e.dst, table); got == 0 || int64(got) >= int64(e.count(t, e.src, table)) {
		t.Fatalf("the stopped run should have cut %s: %d rows", table, got)
	}
}

// TestTablesLockedAgainstDDL: while the clone copies its first table, the
// tables it has not copied yet cannot change their definition (it would
// not be the view's): DDL on them waits for the clone.
func TestTablesLockedAgainstDDL(t *testing.T) {
	e := newEnv(t)
	e.exec(t, "CREATE TABLE a (id INT PRIMARY KEY)", "INSERT INTO a SELECT seq FROM seq_1_to_100", "CREATE TABLE b (id INT PRIMARY KEY)")
	var ddl error
	tried := false
	e.mustRun(t, Options{Progress: func(p Progress) {
		if p.Table == e.database+".a" && !tried {
			tried = true
			ddl = alterWithin(e, "b", "1")
		}
	}})
	if !mysqlerr.Is(ddl, gomysql.ER_LOCK_WAIT_TIMEOUT) {
		t.Fatalf("ALTER TABLE of a table the clone has yet to copy: %v, want a lock wait timeout", ddl)
	}
	if err := alterWithin(e, "b", "5"); err != nil {
		t.Fatalf("after the clone: %v", err)
	}
}

// alterWithin adds a column to a table of the source, waiting at most
// seconds for its metadata lock.
func alterWithin(e *env, table, seconds string) error {
	conn, err := e.src.Conn(context.Background())
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, q := range []string{"SET SESSION lock_wait_timeout = " + seconds, "ALTER TABLE " + qi(e.database) + "." + qi(table) + " ADD COLUMN x INT"} {
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			return err
		}
	}
	return nil
}

// TestDDLPendingWaits: a source checkpoint saved in the middle of a DDL
// statement cannot tell whether the statement ran: the view is opened again
// until it can, then the clone gives up with advice.
func TestDDLPendingWaits(t *testing.T) {
	e := newEnv(t)
	e.exec(t, "CREATE TABLE a (id INT PRIMARY KEY)")
	e.setView(t, checkpoint.State{Offset: 10, Epoch: 1, TxnSeq: 4, DDLPending: 5})
	attempts, retry := viewAttempts, viewRetry
	viewAttempts, viewRetry = 2, 0
	t.Cleanup(func() { viewAttempts, viewRetry = attempts, retry })
	_, err := e.run(context.Background(), t, Options{})
	if !errors.Is(err, ErrUnstable) {
		t.Fatalf("%v, want %v", err, ErrUnstable)
	}
	wantErr(t, err, "in the middle of a DDL statement (transaction 5)", "rowcast status")
}

// TestMemoryBounded copies a table of about 60 MB with small batches: the
// heap stays within a few batches, whatever the table's size.
func TestMemoryBounded(t *testing.T) {
	e := newEnv(t)
	e.exec(t, "CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(1000) NOT NULL)",
		"INSERT INTO big SELECT seq, REPEAT(CHAR(65 + seq % 26), 1000) FROM seq_1_to_60000")
	stop := testenv.HeapPeak(5*time.Millisecond, func(ms *runtime.MemStats) uint64 { return ms.HeapAlloc })
	res := e.mustRun(t, Options{ChunkRows: 5000, BatchBytes: 256 << 10})
	peak := stop()
	if res.Rows != 60000 {
		t.Fatalf("copied %d rows", res.Rows)
	}
	t.Logf("heap peak %.1f MB for a table of about 60 MB", float64(peak)/(1<<20))
	if peak > 24<<20 {
		t.Fatalf("heap peak %.1f MB: the copy holds more than a few batches", float64(peak)/(1<<20))
	}
}

// TestResumeDropsGoneTable: a table the stopped run cut, and that the source
// dropped since, is dropped on the target too.
func TestResumeDropsGoneTable(t *testing.T) {
	e := newEnv(t)
	e.exec(t, "CREATE TABLE a (id INT PRIMARY KEY)", "INSERT INTO a SELECT seq FROM seq_1_to_10",
		"CREATE TABLE b (id INT PRIMARY KEY, v VARCHAR(100))", "INSERT INTO b SELECT seq, REPEAT('x', 90) FROM seq_1_to_2000")
	e.stopIn(t, "b", 300)
	e.exec(t, "DROP TABLE b")
	res := e.mustRun(t, Options{})
	var n int
	if err := e.dst.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=? AND TABLE_NAME='b'", e.database).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the cut table b is still on the target (%d, %v)", n, err)
	}
	if res.Kept != 1 || res.Copied != 0 {
		t.Fatalf("result %+v", res)
	}
	e.checkEqual(t)
}

// TestTargetLeftReadOnly: the clone makes the target read-only, for its
// sink worker to put back once it has passed the clone's floors: a plain
// user (without READ_ONLY ADMIN) cannot write it when the clone ends.
func TestTargetLeftReadOnly(t *testing.T) {
	e := newEnv(t)
	e.exec(t, "CREATE TABLE a (id INT PRIMARY KEY)", "INSERT INTO a VALUES (1)")
	testenv.Exec(t, e.dst, "CREATE USER 'app'@'127.0.0.1'", "GRANT INSERT ON `"+e.database+"`.* TO 'app'@'127.0.0.1'")
	res := e.mustRun(t, Options{})
	var ro bool
	if err := e.dst.QueryRow("SELECT @@global.read_only").Scan(&ro); err != nil || !ro || !res.ReadOnly {
		t.Fatalf("after the clone: read_only %v (%v), result %+v; want ON", ro, err, res)
	}
	app, err := sql.Open("mysql", "app@tcp("+e.target.Addr()+")/")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	_, err = app.Exec("INSERT INTO `" + e.database + "`.a VALUES (2)")
	if !mysqlerr.Is(err, gomysql.ER_OPTION_PREVENTS_STATEMENT) {
		t.Fatalf("a plain user's write to the cloned target: %v, want error 1290", err)
	}
}
