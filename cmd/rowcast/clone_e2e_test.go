package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/clone/clonetest"
	"github.com/rowcast/rowcast/internal/mysqlerr"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/internal/workload"
)

// cloneCluster replicates a database of the test's own from db1 to db2
// (`rowcast pipeline` and `rowcast sink --replica db2`, processes of the
// test's own), with db9, an empty MariaDB server of the test's own, in the
// config as a fourth node to clone db2 into.
type cloneCluster struct {
	cfg, topic, database string
	target               *clonetest.Server
	db9                  *sql.DB
	procs                []*proc
}

func startCloneCluster(t *testing.T) *cloneCluster {
	t.Helper()
	c := &cloneCluster{topic: testenv.CreateTopic(t, 1), database: testenv.UniqueName(t, "rc"), target: clonetest.Start(t)}
	c.db9 = c.target.DB(t)
	c.cfg = c.writeConfig(t)
	c.procs = append(c.procs, startPublishing(t, "pipeline", c.cfg, c.topic))
	replicatedNamed(t, c.database)
	c.procs = append(c.procs, startRowcast(t, "sink", "--config", c.cfg, "--replica", "db2"))
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range c.procs {
				t.Logf("%s:\n%s", strings.Join(p.cmd.Args[1:], " "), lastChars(p.out.String(), 4000))
			}
		}
	})
	return c
}

func lastChars(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func (c *cloneCluster) writeConfig(t *testing.T) string {
	t.Helper()
	text := fmt.Sprintf(`cluster: e2e
master: db1
nodes:
  - {name: db1, dsn: "root@tcp(%s)/"}
  - {name: db2, dsn: "root@tcp(%s)/"}
  - {name: db9, dsn: "root@tcp(%s)/"}
kafka:
  brokers: [%q]
  topic: %s
source:
  include: ['^%s\.']
  heartbeat_interval: 1s
  start: current
  server_id: %d
sink:
  protect_replicas: false
http: "off"
`, testenv.Addr(testenv.Master), testenv.Addr(testenv.Replica1), c.target.Addr(), testenv.Addr("kafka"), c.topic, c.database,
		100000+rand.IntN(1<<30))
	path := filepath.Join(t.TempDir(), "rowcast.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// fill creates the tables on the master: the bank's accounts, a big table
// of rows of about 190 bytes, the type matrix, and zz, which the churn
// writer changes. It waits until db2 holds them.
func (c *cloneCluster) fill(t *testing.T, bigRows int) {
	t.Helper()
	master := testenv.DBAt(t, testenv.Master, c.database)
	newBank(context.Background(), t, c.database, 500, 1000)
	testenv.Exec(t, master, "CREATE TABLE big (id INT PRIMARY KEY, a BIGINT NOT NULL, b VARCHAR(100) NOT NULL, "+
		"c DATETIME(6) NOT NULL, d DECIMAL(12,2) NOT NULL, e VARCHAR(60) NULL)")
	for lo := 1; lo <= bigRows; lo += 50000 {
		testenv.Exec(t, master, fmt.Sprintf("INSERT INTO big SELECT seq, seq * 7919, REPEAT(CHAR(65 + seq %% 26), 100), "+
			"'2024-01-01' + INTERVAL seq SECOND, seq / 100, IF(seq %% 5 = 0, NULL, MD5(seq)) FROM seq_%d_to_%d", lo, min(lo+49999, bigRows)))
	}
	createTypeMatrix(t, master)
	testenv.Exec(t, master, "CREATE TABLE zz (id INT PRIMARY KEY, n INT NOT NULL, s VARCHAR(20) NULL)",
		"INSERT INTO zz SELECT seq, seq, CONCAT('s', seq) FROM seq_1_to_200")
	waitReaches(t, testenv.DB(t, testenv.Replica1), "db2", c.database, 3*time.Minute)
}

// createTypeMatrix creates the type matrix table as TestTypeMatrixReplicates
// does: four rows of edge values and one of NULLs.
func createTypeMatrix(t *testing.T, db *sql.DB) {
	t.Helper()
	defs, names := []string{"id INT PRIMARY KEY"}, []string{"id"}
	for _, c := range testenv.TypeMatrix {
		defs = append(defs, fmt.Sprintf("`%s` %s NULL", c.Name, strings.TrimSuffix(c.Def, " NULL")))
		names = append(names, "`"+c.Name+"`")
	}
	testenv.Exec(t, db, "SET SESSION sql_mode = ''", "CREATE TABLE tm ("+strings.Join(defs, ", ")+")")
	for row := 0; row < 4; row++ {
		vals := []string{fmt.Sprint(row + 1)}
		for _, c := range testenv.TypeMatrix {
			vals = append(vals, c.Values[row])
		}
		testenv.Exec(t, db, "INSERT INTO tm ("+strings.Join(names, ", ")+") VALUES ("+strings.Join(vals, ", ")+")")
	}
	testenv.Exec(t, db, "INSERT INTO tm (id) VALUES (5)")
}

// waitReaches waits until node holds what the master holds of database
// (while the master changes: it compares again and again).
func waitReaches(t *testing.T, db *sql.DB, node, database string, timeout time.Duration) {
	t.Helper()
	master := testenv.DB(t, testenv.Master)
	deadline := time.Now().Add(timeout)
	for {
		want, err := workload.Checksum(context.Background(), master, database)
		if err != nil {
			t.Fatal(err)
		}
		got, err := workload.Checksum(context.Background(), db, database)
		diff := workload.Diff(want, got)
		if err == nil && diff == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not reach the master's %s within %v: %v %s", node, database, timeout, err, diff)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// writers change the master while they run: bank transfers, and inserts,
// updates and deletes of zz.
type writers struct {
	stop func()
	wg   sync.WaitGroup
	errs chan error
}

func (c *cloneCluster) startWriters(t *testing.T) *writers {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &writers{stop: cancel, errs: make(chan error, 2)}
	bank := &workload.Bank{DB: testenv.DB(t, testenv.Master), Database: c.database, Accounts: 500, Initial: 1000}
	w.wg.Go(func() { w.errs <- bank.Run(ctx, 2, 0) })
	master := testenv.DBAt(t, testenv.Master, c.database)
	w.wg.Go(func() { w.errs <- churn(ctx, master) })
	return w
}

// churn inserts, updates and deletes rows of zz until ctx ends.
func churn(ctx context.Context, db *sql.DB) error {
	rnd := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	for next := 1000; ctx.Err() == nil; next++ {
		id := 1 + rnd.IntN(next)
		stmts := []string{
			fmt.Sprintf("INSERT INTO zz VALUES (%d, %d, 'new')", next, next),
			fmt.Sprintf("UPDATE zz SET n = n + 1, s = NULL WHERE id = %d", id),
			fmt.Sprintf("DELETE FROM zz WHERE id = %d", id+1),
		}
		if _, err := db.ExecContext(ctx, stmts[rnd.IntN(len(stmts))]); err != nil && ctx.Err() == nil {
			return err
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

// end stops the writers and fails the test on their errors.
func (w *writers) end(t *testing.T) {
	t.Helper()
	w.stop()
	w.wg.Wait()
	close(w.errs)
	for err := range w.errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	}
}

// finishOnTarget starts db9's sink worker, stops the writers, waits until
// db9 equals the master and checks it with `rowcast verify`.
func (c *cloneCluster) finishOnTarget(t *testing.T, w *writers) {
	t.Helper()
	sink9 := startRowcast(t, "sink", "--config", c.cfg, "--replica", "db9")
	c.procs = append(c.procs, sink9)
	time.Sleep(2 * time.Second) // the sink applies the writers' changes while they run
	w.end(t)
	waitReaches(t, c.db9, "db9", c.database, 3*time.Minute)
	if code, out, errs := runVerifyCmd(t, "--config", c.cfg, "--replica", "db9"); code != 0 {
		t.Fatalf("rowcast verify --replica db9: exit %d\n%s\n%s", code, out, errs)
	}
	sum, n, err := workload.Total(context.Background(), c.db9, c.database)
	if err != nil || n != 500 || sum != 500*1000 {
		t.Fatalf("the bank on db9: %d accounts, total %d (%v)", n, sum, err)
	}
	for _, p := range c.procs {
		p.stop(t)
	}
}

// TestCloneFromReplica: a target holding rows is refused (named, with the
// fix), the master is refused as source; `rowcast clone --overwrite` copies
// db2 while writers load the master and db2's sink applies; db9's sink then
// goes on from the clone's checkpoint, and db9 verifies equal to the master.
// db9 is read-only for an application's user from the clone until its sink
// has passed the clone's floors (protect_replicas is off).
func TestCloneFromReplica(t *testing.T) {
	c := startCloneCluster(t)
	c.fill(t, 20000)
	app := newAppUser(t, c.target, c.database)
	testenv.Exec(t, c.db9, "CREATE DATABASE `"+c.database+"`", "CREATE TABLE `"+c.database+"`.old (x INT)",
		"INSERT INTO `"+c.database+"`.old VALUES (1)")
	code, _, errs := runCloneCmd(t, "--config", c.cfg, "--from", "db2", "--to", "db9")
	if code != 1 || !strings.Contains(errs, c.database+".old") || !strings.Contains(errs, "--overwrite") {
		t.Fatalf("a target with rows: exit %d\n%s", code, errs)
	}
	if code, _, errs = runCloneCmd(t, "--config", c.cfg, "--from", "db1", "--to", "db9"); code != 1 || !strings.Contains(errs, "db1 is the current master") {
		t.Fatalf("--from the master: exit %d\n%s", code, errs)
	}

	w := c.startWriters(t)
	time.Sleep(time.Second)
	code, out, errs := runCloneCmd(t, "--config", c.cfg, "--from", "db2", "--to", "db9", "--overwrite")
	if code != 0 || !strings.Contains(out, "cloned db2 into db9: 4 tables copied") || !strings.Contains(out, "rowcast sink --config") {
		t.Fatalf("rowcast clone --overwrite: exit %d\n%s\n%s", code, out, errs)
	}
	t.Logf("rowcast clone:\n%s", out)
	if err := app.write("accounts"); !strings.Contains(out, "db9 stays read-only") || !mysqlerr.Is(err, gomysql.ER_OPTION_PREVENTS_STATEMENT) {
		t.Fatalf("after the clone, before db9's sink ran: the application's write %v, want error 1290 (read_only)", err)
	}
	c.finishOnTarget(t, w)
	app.writeAfter(t, "accounts")
}

// TestCloneKilledResumes SIGKILLs `rowcast clone` while it copies the big
// table. Run again, it keeps the table it had copied (not copied again: the
// log and the floors say so), copies the rest in a new read view, and
// writes the oldest view's checkpoint; db9 then verifies equal to the
// master.
func TestCloneKilledResumes(t *testing.T) {
	c := startCloneCluster(t)
	c.fill(t, 300000)
	w := c.startWriters(t)
	c.killWhileCopying(t, "big")
	first := c.progress(t)
	if first["accounts"].State != checkpoint.CloneDone || first["big"].State != checkpoint.CloneCopying {
		t.Fatalf("after the kill: %+v", first)
	}
	o1 := first["accounts"].View.Offset
	waitFor(t, time.Minute, "db2 to move past the first view", func() bool { return c.sourceOffset(t) > o1 })

	code, out, errs := runCloneCmd(t, "--config", c.cfg, "--from", "db2", "--to", "db9", "--parallel", "1")
	if code != 0 || !strings.Contains(out, "3 tables copied") || !strings.Contains(out, "1 kept from an earlier run") ||
		!strings.Contains(errs, "resuming a stopped clone") || strings.Contains(errs, c.database+".accounts\"") {
		t.Fatalf("resumed clone: exit %d\n%s\n%s", code, out, errs)
	}
	t.Logf("resumed clone:\n%s", out)
	c.checkResumed(t, o1)
	c.finishOnTarget(t, w)
}

// killWhileCopying starts `rowcast clone` and SIGKILLs it once the target
// holds rows of table, while its copy runs.
func (c *cloneCluster) killWhileCopying(t *testing.T, table string) {
	t.Helper()
	p := startRowcast(t, "clone", "--config", c.cfg, "--from", "db2", "--to", "db9", "--parallel", "1")
	waitFor(t, 3*time.Minute, "the clone to copy "+table, func() bool {
		var one int
		return c.progress(t)[table].State == checkpoint.CloneCopying &&
			c.db9.QueryRow("SELECT 1 FROM `"+c.database+"`.`"+table+"` LIMIT 1").Scan(&one) == nil
	})
	p.kill(t)
	t.Logf("killed the clone while it copied %s:\n%s", table, lastChars(p.out.String(), 2000))
}

// progress reads db9's clone progress by table (none before the clone
// created it).
func (c *cloneCluster) progress(t *testing.T) map[string]checkpoint.CloneTable {
	t.Helper()
	got, err := checkpoint.NewMySQL("rowcast").LoadCloneTables(context.Background(), c.db9, c.topic)
	out := map[string]checkpoint.CloneTable{}
	if err != nil {
		return out
	}
	for _, p := range got {
		out[p.Table] = p
	}
	return out
}

// sourceOffset is db2's checkpoint offset.
func (c *cloneCluster) sourceOffset(t *testing.T) int64 {
	t.Helper()
	st, _, err := checkpoint.NewMySQL("rowcast").Load(context.Background(), testenv.DB(t, testenv.Replica1), c.topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	return st.Offset
}

// checkResumed checks what the two runs wrote on db9: accounts with the
// first view's floor, the other tables with the second's, and the
// checkpoint at the first view.
func (c *cloneCluster) checkResumed(t *testing.T, o1 int64) {
	t.Helper()
	store := checkpoint.NewMySQL("rowcast")
	boot, err := store.LoadBootstrap(context.Background(), c.db9, c.topic)
	if err != nil {
		t.Fatal(err)
	}
	second := boot[c.database+".big"].FloorOffset
	if boot[c.database+".accounts"].FloorOffset != o1-1 || second < o1 {
		t.Fatalf("floors %+v: accounts should be at the first view's %d, the rest later", boot, o1-1)
	}
	for _, table := range []string{"tm", "zz"} {
		if b := boot[c.database+"."+table]; b.FloorOffset != second || b.Mode != checkpoint.ModeClone {
			t.Errorf("%s: %+v, want floor %d", table, b, second)
		}
	}
	cp, found, err := store.Load(context.Background(), c.db9, c.topic, 0)
	if err != nil || !found || cp.Offset != o1 {
		t.Fatalf("checkpoint %+v (%v): want the first view's offset %d", cp, err, o1)
	}
	if len(c.progress(t)) != 0 {
		t.Fatalf("progress left after the clone: %+v", c.progress(t))
	}
}

// runCloneCmd runs `rowcast clone` to the end: its exit code, its report
// and its log.
func runCloneCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCLIProcess(t, append([]string{"clone"}, args...)...)
}
