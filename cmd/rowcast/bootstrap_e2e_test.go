package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/rowcast/rowcast/clone/clonetest"
	"github.com/rowcast/rowcast/internal/mysqlerr"
	"github.com/rowcast/rowcast/internal/testenv"
)

// appUser is an application's user on a server of the test's own, without
// READ_ONLY ADMIN: read_only stops it.
type appUser struct {
	db       *sql.DB
	database string
}

func newAppUser(t *testing.T, srv *clonetest.Server, database string) *appUser {
	t.Helper()
	testenv.Exec(t, srv.DB(t), "CREATE USER 'app'@'127.0.0.1'", "GRANT DELETE ON `"+database+"`.* TO 'app'@'127.0.0.1'")
	db, err := sql.Open("mysql", "app@tcp("+srv.Addr()+")/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &appUser{db: db, database: database}
}

// write is a write that changes nothing, which read_only refuses.
func (a *appUser) write(table string) error {
	_, err := a.db.Exec("DELETE FROM `" + a.database + "`.`" + table + "` WHERE 1=0")
	return err
}

// writeWhileBootstrapping waits until a table of node bootstraps, then
// writes to it as the application: the write must be refused, and the
// table still bootstrapping afterwards (else the bootstrap was too short
// to tell).
func (a *appUser) writeWhileBootstrapping(t *testing.T, node *sql.DB, topic string) {
	t.Helper()
	var table string
	waitFor(t, 2*time.Minute, "a table to bootstrap", func() bool {
		return node.QueryRow("SELECT tbl FROM rowcast.bootstrap WHERE topic=? AND db=? LIMIT 1", topic, a.database).Scan(&table) == nil
	})
	err := a.write(table)
	var still int
	node.QueryRow("SELECT COUNT(*) FROM rowcast.bootstrap WHERE topic=?", topic).Scan(&still)
	if err == nil && still == 0 {
		t.Fatal("the bootstrap ended before the application's write: make the tables bigger")
	}
	if !mysqlerr.Is(err, gomysql.ER_OPTION_PREVENTS_STATEMENT) {
		t.Fatalf("the application's write to %s while it bootstraps: %v, want error 1290 (read_only)", table, err)
	}
}

// writeAfter waits until the application may write to table again.
func (a *appUser) writeAfter(t *testing.T, table string) {
	t.Helper()
	var err error
	waitFor(t, time.Minute, "the replica to take writes again", func() bool { err = a.write(table); return err == nil })
}

// newServerConfig replicates database from db1 into db9, a server of the
// test's own, with source.start: snapshot and protect_replicas off.
func newServerConfig(t *testing.T, database, topic string, db9 *clonetest.Server) string {
	t.Helper()
	text := fmt.Sprintf(`cluster: e2e
master: db1
nodes:
  - {name: db1, dsn: "root@tcp(%s)/"}
  - {name: db9, dsn: "root@tcp(%s)/"}
kafka:
  brokers: [%q]
  topic: %s
source:
  include: ['^%s\.']
  heartbeat_interval: 1s
  start: snapshot
  server_id: %d
sink:
  protect_replicas: false
http: "off"
`, testenv.Addr(testenv.Master), db9.Addr(), testenv.Addr("kafka"), topic, database, 100000+rand.IntN(1<<30))
	path := filepath.Join(t.TempDir(), "rowcast.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSnapshotIntoNewServer: a replica that is a brand-new, empty server
// (not even the database) bootstraps from the topic alone, by the initial
// snapshot of tables filled before rowcast started, under transfers. While
// it loads, it is read-only for an application's user; with
// protect_replicas off it takes the application's writes again once it is
// loaded, and verifies equal to the master.
func TestSnapshotIntoNewServer(t *testing.T) {
	database := testenv.CreateDatabase(t, testenv.Master)
	topic := testenv.CreateTopic(t, 1)
	db9 := clonetest.Start(t)
	testenv.Exec(t, testenv.DBAt(t, testenv.Master, database),
		"CREATE TABLE big (id INT PRIMARY KEY, pad VARCHAR(200) NOT NULL)",
		"INSERT INTO big SELECT seq, REPEAT(CHAR(65 + seq % 26), 150 + seq % 50) FROM seq_1_to_"+strconv.Itoa(200000))
	e := &snapshotEnv{t: t, database: database, topic: topic, bank: newBank(context.Background(), t, database, 300, 1000)}
	e.cfg = newServerConfig(t, database, topic, db9)
	app := newAppUser(t, db9, database)
	e.load()
	run := startRowcast(t, "run", "--config", e.cfg)
	app.writeWhileBootstrapping(t, db9.DB(t), topic)
	e.waitSnapshot(3 * time.Minute)
	time.Sleep(time.Second)
	e.stop()
	waitReaches(t, db9.DB(t), "db9", database, 2*time.Minute)
	app.writeAfter(t, "accounts")
	if code, out, errs := runVerifyCmd(t, "--config", e.cfg, "--replica", "db9"); code != 0 {
		t.Fatalf("rowcast verify --replica db9: exit %d\n%s\n%s", code, out, errs)
	}
	run.stop(t)
}

// TestSnapshotOnDemandWithDDL snapshots the bank's table with `rowcast
// snapshot --throttle --wait` while it is written and altered: an instant
// ADD COLUMN, then an ADD INDEX (which InnoDB's older read views refuse
// with ER_TABLE_DEF_CHANGED). Both replicas end with the master's
// definition and rows.
func TestSnapshotOnDemandWithDDL(t *testing.T) {
	r := startReplication(t, "run")
	bank := newBank(context.Background(), t, r.database, 2000, 100)
	waitConverged(t, r.database, time.Minute)
	e := &snapshotEnv{t: t, database: r.database, topic: r.topic, cfg: r.cfg, bank: bank}
	e.load()
	snap := startRowcast(t, "snapshot", "--config", r.cfg, "--tables", r.database+".accounts", "--throttle", "400", "--wait")
	table := "`" + r.database + "`.accounts"
	for _, alter := range []string{"ADD COLUMN memo VARCHAR(20) NOT NULL DEFAULT 'm'", "ADD INDEX (updated)"} {
		time.Sleep(1500 * time.Millisecond)
		testenv.Exec(t, testenv.DB(t, testenv.Master), "ALTER TABLE "+table+" "+alter)
	}
	snap.waitExit(t, 2*time.Minute, "rowcast snapshot --wait")
	if out := snap.out.String(); !strings.Contains(out, "done: 2000 rows") {
		t.Fatalf("rowcast snapshot --wait:\n%s", out)
	}
	e.stop()
	e.verified()
	want := showCreateOf(t, testenv.Master, table)
	for _, node := range []string{testenv.Replica1, testenv.Replica2} {
		if got := showCreateOf(t, node, table); got != want {
			t.Errorf("%s's table:\n%s\nthe master's:\n%s", node, got, want)
		}
	}
	r.proc.stop(t)
}

// showCreateOf is a table's definition on a node.
func showCreateOf(t *testing.T, node, table string) string {
	t.Helper()
	var name, def string
	if err := testenv.DB(t, node).QueryRow("SHOW CREATE TABLE "+table).Scan(&name, &def); err != nil {
		t.Fatal(err)
	}
	return def
}
