package failover

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
)

// The order of the statements each step sends, on the stack's MariaDB
// nodes. Other tests use the nodes at the same time, so these tests keep to
// a bookkeeping schema of their own, make only db2 read-only (and only
// briefly: cleanups turn read_only off again), never kill a connection but
// their own, and leave db1, the suite's master, writable.

// The statements of the promotion bookkeeping in schema s.
func createTables(node, s string) []string {
	return []string{
		node + ": CREATE DATABASE IF NOT EXISTS `" + s + "` DEFAULT CHARACTER SET utf8mb4",
		"/" + node + ": CREATE TABLE IF NOT EXISTS `" + s + "`\\.`epochs` \\(.*\\) ENGINE=InnoDB .*",
		"/" + node + ": CREATE TABLE IF NOT EXISTS `" + s + "`\\.`promotion_lease` \\(.*\\) ENGINE=InnoDB .*",
	}
}

func selectLease(node, s, lock string) string {
	return node + ": SELECT `holder`,`from_offset`,TIMESTAMPDIFF(MICROSECOND,NOW(6),`expires_at`)/1e6 FROM `" + s + "`.`promotion_lease` WHERE `topic`=?" + lock
}

func takeLease(node, s string) []string {
	return append(createTables(node, s),
		node+": begin",
		selectLease(node, s, " FOR UPDATE"),
		"/"+node+": INSERT INTO `"+s+"`\\.`promotion_lease` \\(`topic`,`holder`,`expires_at`,`from_offset`,`acquired_at`\\) VALUES \\(\\?,\\?,NOW\\(6\\) \\+ INTERVAL \\? MICROSECOND,\\?,NOW\\(6\\)\\) ON DUPLICATE KEY UPDATE .*",
		node+": commit")
}

func releaseLease(node, s string) string {
	return node + ": UPDATE `" + s + "`.`promotion_lease` SET `expires_at`=NULL WHERE `topic`=? AND `holder`=?"
}

func readIndex(node, s string) []string {
	return []string{
		node + ": SELECT `epoch`,`master`,`record_offset`,`start_gtid_set`,`flavor`,`txn_seq`,`promoted_by`,CAST(`promoted_at` AS CHAR) FROM `" + s + "`.`epochs` WHERE `topic`=? ORDER BY `epoch`",
		selectLease(node, s, ""),
	}
}

func saveEpoch(node, s string) string {
	return "/" + node + ": INSERT INTO `" + s + "`\\.`epochs` \\(`topic`,`epoch`,`master`,`record_offset`,`start_gtid_set`,`flavor`,`txn_seq`,`promoted_by`,`promoted_at`\\) VALUES \\(\\?,\\?,\\?,\\?,\\?,\\?,\\?,\\?,\\?\\) ON DUPLICATE KEY UPDATE .*"
}

func loadCheckpoint(node, s string) string {
	return "/" + node + ": SELECT `next_offset`,.* FROM `" + s + "`\\.`checkpoint` WHERE `topic`=\\? AND `partition_id`=\\?"
}

const listWriters = `/db2: SELECT t\.trx_mysql_thread_id, .* FROM information_schema\.INNODB_TRX t .*`

// TestFenceStatements: the fence reads read_only, sets it in a session
// whose lock_wait_timeout bounds the wait, then lists the open write
// transactions until none is left (here it waits for one of the test's
// own); the undo puts read_only back. The fence runs in wait mode: kill
// mode would kill the transactions of other tests on db2 (see
// TestKillStatements).
func TestFenceStatements(t *testing.T) {
	ctx := context.Background()
	log := &stmtLog{}
	srv := recordedServer(t, "db2", log)
	keepWritable(t, "db2")
	_, w := openWriter(t, "db2")
	go func() {
		time.Sleep(300 * time.Millisecond)
		w.ExecContext(ctx, "ROLLBACK")
	}()
	fr, err := srv.fence(ctx, FenceWait, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if fr.waited < 300*time.Millisecond || fr.killed != 0 || !fr.visible {
		t.Fatalf("fence: %+v, want a wait of at least 300ms for the open transaction", fr)
	}
	if ro := readOnlyOf(t, "db2"); !ro {
		t.Fatal("db2 is not read-only after the fence")
	}
	if msg := undoFence(ctx, srv, fr); msg != "read_only of db2 restored to "+onOff(fr.before.ro) {
		t.Fatalf("undo: %s", msg)
	}
	// The open transactions are listed until none is left: one entry.
	expect(t, collapse(log.of("db2")),
		"db2: SELECT VERSION()",
		"db2: SELECT @@GLOBAL.read_only",
		"db2: SET SESSION lock_wait_timeout=10",
		"db2: SET GLOBAL read_only=ON",
		listWriters,
		"db2: SET GLOBAL read_only="+onOff(fr.before.ro))
}

// TestKillStatements: kill mode kills each writer once, by its connection
// id, and a killed writer whose connection is gone counts as ended. Only
// the test's own writer is killed.
func TestKillStatements(t *testing.T) {
	ctx := context.Background()
	log := &stmtLog{}
	srv := recordedServer(t, "db2", log)
	id, w := openWriter(t, "db2")
	mine := findWriter(t, srv, id)
	killed := map[int64]bool{}
	var fr fenceResult
	for range 2 { // the second time it is rolling back: not killed again
		if err := srv.kill(ctx, []writer{mine}, killed, &fr); err != nil {
			t.Fatal(err)
		}
	}
	// The writers are listed until the test's own is among them.
	expect(t, collapse(log.of("db2")),
		"db2: SELECT VERSION()",
		listWriters,
		fmt.Sprintf("db2: KILL CONNECTION %d", id))
	if fr.killed != 1 || !killed[id] {
		t.Fatalf("killed %d, %v", fr.killed, killed)
	}
	if err := w.PingContext(ctx); err == nil {
		t.Fatal("the killed connection still answers")
	}
	waitFor(t, "the killed writer to end", func() bool {
		ws, _, err := srv.openWriters(ctx)
		return err == nil && !slices.ContainsFunc(alive(ws, killed), func(w writer) bool { return w.id == id })
	})
}

// TestLeaseStatements: taking the lease creates the tables, then reads the
// lease row for update and writes it in one transaction on each node; a
// second holder reads it and rolls back; releasing clears the expiry.
func TestLeaseStatements(t *testing.T) {
	ctx := context.Background()
	topic := testenv.UniqueName(t, "lease")
	cfg := testConfig(t, topic, "db1") // the lease is taken on db2 and db3, a majority
	s := ownBookkeeping(t, cfg, "db2", "db3")
	log := &stmtLog{}
	l, err := acquireLease(ctx, cfg, topic, "a", time.Minute, 7, zerolog.Nop(), log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acquireLease(ctx, cfg, topic, "b", time.Minute, 8, zerolog.Nop(), log); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("second holder: %v, want ErrLeaseHeld", err)
	}
	l.Release(ctx)
	for _, n := range []string{"db2", "db3"} {
		want := takeLease(n, s)
		want = append(want, createTables(n, s)...)
		want = append(want, n+": begin", selectLease(n, s, " FOR UPDATE"), n+": rollback", releaseLease(n, s))
		expect(t, log.of(n), want...)
	}
	if l.FromOffset != 7 {
		t.Fatalf("from offset %d, want 7", l.FromOffset)
	}
}

// TestEpochIndexStatements: the epoch record goes into the index of every
// node that holds the lease; Locate reads the index and the lease of each
// node back.
func TestEpochIndexStatements(t *testing.T) {
	ctx := context.Background()
	topic := testenv.CreateTopic(t, 1)
	cfg := testConfig(t, topic, "db1")
	s := ownBookkeeping(t, cfg, "db2", "db3")
	kc := changelog.Config{Brokers: testenv.KafkaBrokers(), Topic: topic}
	log := &stmtLog{}
	l, err := acquireLease(ctx, cfg, topic, "p", time.Minute, 0, zerolog.Nop(), log)
	if err != nil {
		t.Fatal(err)
	}
	rec, off := writeRecord(t, kc, 2, "db2")
	log.reset()
	if err := l.RecordEpoch(ctx, epochRow{Offset: off, Record: rec, PromotedBy: "p", PromotedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	l.Release(ctx)
	loc := NewLocator(cfg, kc, zerolog.Nop())
	loc.rec = log
	if cur, err := loc.Current(ctx); err != nil || cur.Master != "db2" || cur.Epoch != 2 || cur.Offset != off {
		t.Fatalf("after recording epoch 2: %+v, %v", cur, err)
	}
	for _, n := range []string{"db2", "db3"} {
		expect(t, log.of(n), append([]string{saveEpoch(n, s), releaseLease(n, s)}, readIndex(n, s)...)...)
	}
}

// TestEmergencyPromoteStatements: a whole forced promotion while the master
// (db1) does not answer. It picks db2, which applied more than db3, waits
// for its checkpoint, reads its GTID set for the epoch record, makes it
// writable and records the epoch in the index of db2 and db3.
func TestEmergencyPromoteStatements(t *testing.T) {
	ctx := context.Background()
	topic := testenv.CreateTopic(t, 1)
	cfg := testConfig(t, topic, "db1")
	s := ownBookkeeping(t, cfg, "db2", "db3")
	saveCheckpoint(t, "db2", s, topic, 5)
	saveCheckpoint(t, "db3", s, topic, 3)
	keepWritable(t, "db2")
	log := &stmtLog{}
	p := &Promoter{Cfg: cfg, Kafka: changelog.Config{Brokers: testenv.KafkaBrokers(), Topic: topic}, Log: zerolog.Nop(), OnStep: log.step, rec: log}
	res, err := p.Promote(ctx, Options{Force: true, Holder: "test", LeaseTTL: time.Minute, CatchupTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.OldMaster != "db1" || res.NewMaster != "db2" || res.Epoch != 2 || res.RecordOffset != 0 || res.WriteDowntime != 0 {
		t.Fatalf("result %+v", res)
	}
	checkSteps(t, res, "look up the current master", "take the promotion lease", "check that the master does not answer",
		"pick the replica with the highest applied offset", "wait for db2 to apply the whole topic", "write the epoch record",
		"check that no other promotion came first", "make db2 writable", "record the epoch in the nodes' index")
	expect(t, log.of("step", "db2"), emergencyOnNew("db2", s)...)
	expect(t, log.of("step", "db3"), emergencyOnOther("db3", s)...)
}

// emergencyOnNew is what a forced promotion sends the new master.
func emergencyOnNew(n, s string) []string {
	var w []string
	w = append(w, readIndex(n, s)...)
	w = append(w, "step: look up the current master")
	w = append(w, takeLease(n, s)...)
	w = append(w, readIndex(n, s)...)
	w = append(w, "step: take the promotion lease", "step: check that the master does not answer",
		loadCheckpoint(n, s), "step: pick the replica with the highest applied offset",
		n+": SELECT VERSION()", loadCheckpoint(n, s), "step: wait for "+n+" to apply the whole topic",
		n+": SELECT @@GLOBAL.gtid_binlog_pos", n+": SELECT @@server_id", "step: write the epoch record",
		"step: check that no other promotion came first",
		n+": SET GLOBAL read_only=OFF", "step: make "+n+" writable",
		saveEpoch(n, s), releaseLease(n, s), "step: record the epoch in the nodes' index")
	return w
}

// emergencyOnOther is what a forced promotion sends another replica.
func emergencyOnOther(n, s string) []string {
	var w []string
	w = append(w, readIndex(n, s)...)
	w = append(w, "step: look up the current master")
	w = append(w, takeLease(n, s)...)
	w = append(w, readIndex(n, s)...)
	w = append(w, "step: take the promotion lease", "step: check that the master does not answer",
		loadCheckpoint(n, s), "step: pick the replica with the highest applied offset",
		"step: wait for db2 to apply the whole topic", "step: write the epoch record",
		"step: check that no other promotion came first", "step: make db2 writable",
		saveEpoch(n, s), releaseLease(n, s), "step: record the epoch in the nodes' index")
	return w
}

// TestPlannedPromoteStatements: a whole planned promotion from db2 to db1
// (db3 does not answer; the lease holds on the other two). The old master
// is fenced before the reader is waited for, the epoch record is written
// after the new master applied the topic, and only then is the new master
// made writable. db2 is read-only from the fence until Promote returns.
func TestPlannedPromoteStatements(t *testing.T) {
	ctx := context.Background()
	pt := newPlannedTest(t, true)
	res, err := pt.p.Promote(ctx, pt.opts)
	restoreWritable(t, "db2")
	if err != nil {
		t.Fatal(err)
	}
	if res.OldMaster != "db2" || res.NewMaster != "db1" || res.Epoch != 2 || res.WriteDowntime <= 0 {
		t.Fatalf("result %+v", res)
	}
	checkSteps(t, res, "look up the current master", "take the promotion lease", "connect to the master and the replica", "fence db2",
		"wait for the reader to publish the master's last transaction", "wait for db1 to apply the whole topic", "write the epoch record",
		"check that no other promotion came first", "make db1 writable", "record the epoch in the nodes' index")
	s := pt.schema
	// The open write transactions of db2 are listed until none is left
	// (other tests write there): one entry.
	expect(t, collapse(pt.log.of("step", "db2")), plannedOnOld(s)...)
	expect(t, pt.log.of("step", "db1"), plannedOnNew(s)...)
	// Across the nodes: the old master refuses writes before the new one
	// takes them.
	expect(t, pt.log.only("/db.: SET GLOBAL read_only=.*", "/step: .*"),
		"step: look up the current master", "step: take the promotion lease", "step: connect to the master and the replica",
		"db2: SET GLOBAL read_only=ON", "step: fence db2",
		"step: wait for the reader to publish the master's last transaction", "step: wait for db1 to apply the whole topic",
		"step: write the epoch record", "step: check that no other promotion came first",
		"db1: SET GLOBAL read_only=OFF", "step: make db1 writable", "step: record the epoch in the nodes' index")
}

// plannedOnOld is what a planned promotion sends the old master, db2.
func plannedOnOld(s string) []string {
	var w []string
	w = append(w, readIndex("db2", s)...)
	w = append(w, "step: look up the current master")
	w = append(w, takeLease("db2", s)...)
	w = append(w, readIndex("db2", s)...)
	return append(w, "step: take the promotion lease",
		"db2: SELECT VERSION()", "step: connect to the master and the replica",
		"db2: SELECT @@GLOBAL.read_only", "db2: SET SESSION lock_wait_timeout=10", "db2: SET GLOBAL read_only=ON", listWriters, "step: fence db2",
		"db2: SELECT @@GLOBAL.gtid_binlog_pos", "step: wait for the reader to publish the master's last transaction",
		"step: wait for db1 to apply the whole topic", "step: write the epoch record", "step: check that no other promotion came first",
		"step: make db1 writable", saveEpoch("db2", s), releaseLease("db2", s), "step: record the epoch in the nodes' index")
}

// plannedOnNew is what a planned promotion sends the new master, db1.
func plannedOnNew(s string) []string {
	var w []string
	w = append(w, readIndex("db1", s)...)
	w = append(w, "step: look up the current master")
	w = append(w, takeLease("db1", s)...)
	w = append(w, readIndex("db1", s)...)
	return append(w, "step: take the promotion lease",
		"db1: SELECT VERSION()", loadCheckpoint("db1", s), "step: connect to the master and the replica",
		"step: fence db2", "step: wait for the reader to publish the master's last transaction",
		loadCheckpoint("db1", s), "step: wait for db1 to apply the whole topic",
		"db1: SELECT @@GLOBAL.gtid_binlog_pos", "db1: SELECT @@server_id", "step: write the epoch record",
		"step: check that no other promotion came first", "db1: SET GLOBAL read_only=OFF", "step: make db1 writable",
		saveEpoch("db1", s), releaseLease("db1", s), "step: record the epoch in the nodes' index")
}

// TestPlannedPromoteUndo: a planned promotion whose reader never publishes
// the fenced master's last transaction is aborted there; the undo restores
// the old master's read_only first, then releases the lease.
func TestPlannedPromoteUndo(t *testing.T) {
	ctx := context.Background()
	pt := newPlannedTest(t, false)
	pt.opts.CatchupTimeout = 300 * time.Millisecond
	// Another package's test may hold db2 read-only (a bootstrap) right now:
	// the undo restores what the fence found.
	before := readOnlyOf(t, "db2")
	_, err := pt.p.Promote(ctx, pt.opts)
	var ae *AbortError
	if !errors.As(err, &ae) || ae.Step != "wait for the reader to publish the master's last transaction" ||
		ae.Undo != "read_only of db2 restored to "+onOff(before)+"; promotion lease released" || !strings.Contains(ae.Err.Error(), "has not published") {
		t.Fatalf("Promote: %v, want an abort while waiting for the reader", err)
	}
	if readOnlyOf(t, "db2") != before {
		t.Fatalf("db2's read_only is not back to %s after the abort", onOff(before))
	}
	s := pt.schema
	got := collapse(pt.log.of("step", "db2"))
	i := slices.Index(got, "step: fence db2")
	if i < 0 {
		t.Fatalf("no fence:%s", numbered(got))
	}
	expect(t, got[i:], "step: fence db2", "db2: SELECT @@GLOBAL.gtid_binlog_pos", "db2: SET GLOBAL read_only="+onOff(before), releaseLease("db2", s))
	got = pt.log.of("step", "db1")
	expect(t, got[len(got)-2:], "step: fence db2", releaseLease("db1", s))
}

// plannedTest is a planned promotion from db2 to db1, with db3 down: db1
// has a checkpoint of epoch 1 in a bookkeeping schema of the test, and a
// stand-in for the pipeline service's /healthz says how far it has read
// db2 (all of it, when published, else nothing).
type plannedTest struct {
	p      *Promoter
	opts   Options
	log    *stmtLog
	schema string
}

func newPlannedTest(t *testing.T, published bool) *plannedTest {
	topic := testenv.CreateTopic(t, 1)
	cfg := clusterConfig(t, topic, "db2", "db3")
	keepWritable(t, "db2")
	pt := &plannedTest{log: &stmtLog{}, schema: ownBookkeeping(t, cfg, "db1", "db2")}
	saveCheckpoint(t, "db1", pt.schema, topic, 0)
	pt.p = &Promoter{Cfg: cfg, Kafka: changelog.Config{Brokers: testenv.KafkaBrokers(), Topic: topic}, Log: zerolog.Nop(), OnStep: pt.log.step, rec: pt.log}
	pt.opts = Options{Replica: "db1", Fence: FenceWait, FenceTimeout: 10 * time.Second, CatchupTimeout: 10 * time.Second,
		LeaseTTL: time.Minute, Holder: "test", PipelineHTTP: fakePipeline(t, topic, "db2", published)}
	return pt
}

// fakePipeline serves a pipeline service's /healthz that reads master in
// epoch 1; its read GTID set is the master's now when published, else
// empty.
func fakePipeline(t *testing.T, topic, master string, published bool) string {
	db := testenv.DB(t, master)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		set := ""
		if published {
			db.QueryRowContext(r.Context(), "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&set)
		}
		pos := pipelinePos{Topic: topic, Master: master, Epoch: 1, ReadGTIDSet: set}
		json.NewEncoder(w).Encode(map[string]any{"details": map[string]any{"pipeline": pos}})
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// checkSteps checks the names of the steps a promotion reported.
func checkSteps(t *testing.T, res *Result, names ...string) {
	t.Helper()
	var got []string
	for i, s := range res.Steps {
		if s.N != i+1 {
			t.Fatalf("step %d is numbered %d", i+1, s.N)
		}
		got = append(got, s.Name)
	}
	if !slices.Equal(got, names) {
		t.Fatalf("steps:%s\nwant:%s", numbered(got), numbered(names))
	}
}

// recordedServer connects to a node of the stack with its statements
// recorded.
func recordedServer(t *testing.T, name string, log *stmtLog) *server {
	t.Helper()
	testenv.Need(t, name)
	n := config.Node{Name: name, Kind: config.KindMySQL, DSN: "root@tcp(" + testenv.Addr(name) + ")/"}
	srv, err := connect(context.Background(), n, 3*time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.close() })
	return srv
}

// openWriter opens a transaction that changed a row of a database of its
// own on node, and returns its connection and id.
func openWriter(t *testing.T, node string) (int64, *sql.Conn) {
	t.Helper()
	ctx := context.Background()
	db := testenv.DB(t, node)
	name := testenv.CreateDatabase(t, node)
	testenv.Exec(t, db, "CREATE TABLE `"+name+"`.t (id INT NOT NULL PRIMARY KEY)")
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var id int64
	for _, q := range []string{"BEGIN", "INSERT INTO `" + name + "`.t VALUES (1)"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id, conn
}

// findWriter is the open write transaction of connection id.
func findWriter(t *testing.T, srv *server, id int64) writer {
	t.Helper()
	var mine writer
	waitFor(t, fmt.Sprintf("connection %d among the open writers", id), func() bool {
		ws, known, err := srv.openWriters(context.Background())
		if err != nil || !known {
			t.Fatalf("open writers: %v (visible %v)", err, known)
		}
		i := slices.IndexFunc(ws, func(w writer) bool { return w.id == id })
		if i >= 0 {
			mine = ws[i]
		}
		return i >= 0
	})
	return mine
}

// ownBookkeeping gives cfg a bookkeeping schema of its own, dropped at the
// end on the nodes named.
func ownBookkeeping(t *testing.T, cfg *config.Config, nodes ...string) string {
	t.Helper()
	s := testenv.UniqueName(t, "rcbk")
	cfg.Sink.BookkeepingSchema = s
	for _, n := range nodes {
		db := testenv.DB(t, n)
		t.Cleanup(func() { db.Exec("DROP DATABASE IF EXISTS `" + s + "`") })
	}
	return s
}

// saveCheckpoint gives node a checkpoint of topic at offset, in epoch 1.
func saveCheckpoint(t *testing.T, node, schema, topic string, offset int64) {
	t.Helper()
	ctx := context.Background()
	db := testenv.DB(t, node)
	m := checkpoint.NewMySQL(schema)
	if err := m.Init(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := m.Save(ctx, db, checkpoint.State{Topic: topic, Offset: offset, Epoch: 1, GTIDSet: "0-1-1"}); err != nil {
		t.Fatal(err)
	}
}

func readOnlyOf(t *testing.T, node string) bool {
	t.Helper()
	var ro bool
	if err := testenv.DB(t, node).QueryRow("SELECT @@GLOBAL.read_only").Scan(&ro); err != nil {
		t.Fatal(err)
	}
	return ro
}

// keepWritable turns read_only off on node when the test ends.
func keepWritable(t *testing.T, node string) {
	db := testenv.DB(t, node)
	t.Cleanup(func() {
		if _, err := db.Exec("SET GLOBAL read_only=OFF"); err != nil {
			t.Errorf("restore read_only on %s: %v", node, err)
		}
	})
}

// restoreWritable turns read_only off on node now.
func restoreWritable(t *testing.T, node string) {
	t.Helper()
	testenv.Exec(t, testenv.DB(t, node), "SET GLOBAL read_only=OFF")
}

// waitFor waits for ok, asking every 150ms: InnoDB's INNODB_TRX is not
// refreshed while it is read more often than every 100ms.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(150 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// writeRecord writes an epoch record naming master to the topic, as a
// promotion does, and returns it and its offset.
func writeRecord(t *testing.T, kc changelog.Config, epoch uint64, master string) (pipeline.EpochRecord, int64) {
	t.Helper()
	ctx := context.Background()
	w, err := newRecordWriter(ctx, kc, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	rec := pipeline.EpochRecord{Epoch: epoch, Master: master, StartGTIDSet: fmt.Sprintf("0-%s-5", master[2:]), Flavor: "mariadb", TxnSeq: 10}
	off, err := w.write(ctx, &pipeline.Event{Kind: pipeline.KindEpoch, Pos: pipeline.Position{Epoch: epoch, TxnSeq: 10, Last: true},
		Flavor: "mariadb", CommitTime: time.Now(), Epoch: &rec})
	if err != nil {
		t.Fatal(err)
	}
	return rec, off
}
