package main

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/internal/workload"
)

// snapshotEnv is a database of its own, filled on the master before rowcast
// starts, under a bank load, replicated through a topic of its own with
// source.start: snapshot.
type snapshotEnv struct {
	t               *testing.T
	database, topic string
	cfg             string
	bank            *workload.Bank
	stopLoad        context.CancelFunc
	loadDone        chan error
}

// newSnapshotEnv creates the database on every node (empty on the
// replicas), the bank's accounts and a table of bigRows rows with a pad,
// and a table without a key on the master, and starts the bank load.
func newSnapshotEnv(t *testing.T, bigRows int) *snapshotEnv {
	t.Helper()
	e := &snapshotEnv{t: t, topic: testenv.CreateTopic(t, 1)}
	e.database = testenv.CreateDatabase(t, testenv.Master, testenv.Replica1, testenv.Replica2)
	q := "`" + e.database + "`"
	testenv.Exec(t, testenv.DB(t, testenv.Master),
		"CREATE TABLE "+q+".big (id INT PRIMARY KEY, k VARCHAR(20) NOT NULL, pad VARCHAR(200), n DECIMAL(12,3), at DATETIME(6))",
		"INSERT INTO "+q+".big SELECT seq, CONCAT('k', seq % 977), REPEAT(CHAR(65 + seq % 26), 150 + seq % 50), seq / 7, '2024-01-01' + INTERVAL seq SECOND FROM "+q+".seq_1_to_"+strconv.Itoa(bigRows),
		"CREATE TABLE "+q+".nokey (kind VARCHAR(10), n INT)",
		"INSERT INTO "+q+".nokey VALUES ('a', 1), ('a', 1), ('b', NULL), (NULL, 3)")
	e.bank = newBank(context.Background(), t, e.database, 300, 1000)
	e.cfg = snapshotConfig(t, e.database, e.topic, "snapshot")
	return e
}

// snapshotConfig is e2eConfig with source.start set to start.
func snapshotConfig(t *testing.T, database, topic, start string) string {
	t.Helper()
	path := e2eConfig(t, database, topic)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(raw), "start: current", "start: "+start, 1)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// load runs the bank's transfers until stop.
func (e *snapshotEnv) load() {
	ctx, cancel := context.WithCancel(context.Background())
	e.stopLoad, e.loadDone = cancel, make(chan error, 1)
	go func() { e.loadDone <- e.bank.Run(ctx, 4, 0) }()
}

// stop ends the load and fails the test on its error.
func (e *snapshotEnv) stop() {
	e.t.Helper()
	e.stopLoad()
	if err := <-e.loadDone; err != nil {
		e.t.Fatal(err)
	}
}

// snapshots reads the topic's snapshots on the master.
func (e *snapshotEnv) snapshots() []checkpoint.Snapshot {
	e.t.Helper()
	list, err := checkpoint.NewMySQL("rowcast").Snapshots(context.Background(), testenv.DB(e.t, testenv.Master), e.topic)
	if err != nil {
		e.t.Fatal(err)
	}
	return list
}

// waitSnapshot waits until the topic's newest snapshot is done and
// returns it; a failed one fails the test.
func (e *snapshotEnv) waitSnapshot(timeout time.Duration) checkpoint.Snapshot {
	e.t.Helper()
	var last checkpoint.Snapshot
	waitFor(e.t, timeout, "the snapshot to end", func() bool {
		list := e.snapshots()
		if len(list) == 0 {
			return false
		}
		last = list[len(list)-1]
		if last.State == checkpoint.SnapshotFailed || last.State == checkpoint.SnapshotCancelled {
			e.t.Fatalf("snapshot %d %s: %s", last.ID, last.State, last.Error)
		}
		return last.State == checkpoint.SnapshotDone
	})
	return last
}

// verified checks, after the load stopped, that both replicas equal the
// master: by checksums, and by `rowcast verify`, which exits 0.
func (e *snapshotEnv) verified() {
	e.t.Helper()
	waitConverged(e.t, e.database, 2*time.Minute)
	for _, replica := range []string{testenv.Replica1, testenv.Replica2} {
		code, out, errs := runVerifyCmd(e.t, "--config", e.cfg, "--replica", replica)
		if code != 0 {
			e.t.Fatalf("rowcast verify --replica %s exited %d:\n%s\n%s", replica, code, out, errs)
		}
	}
}

// TestSnapshotInitialUnderLoad starts `rowcast run` with source.start:
// snapshot on tables filled before it started, while transfers run: the
// initial snapshot copies them and the stream goes on from its position,
// and both replicas end equal to the master.
func TestSnapshotInitialUnderLoad(t *testing.T) {
	e := newSnapshotEnv(t, 20000)
	e.load()
	run := startRowcast(t, "run", "--config", e.cfg)
	s := e.waitSnapshot(2 * time.Minute)
	time.Sleep(2 * time.Second) // transfers after the snapshot
	e.stop()
	e.verified()
	run.stop(t)
	if s.RowsDone < 20000+300+4 || len(s.Tables) != 3 {
		t.Fatalf("snapshot %+v: want the 3 tables and at least %d rows", s, 20000+300+4)
	}
	t.Logf("initial snapshot of %d rows; %d transfers", s.RowsDone, e.bank.Transfers.Load())
}

// TestSnapshotInitialKilled SIGKILLs `rowcast run` twice in the middle of
// the initial snapshot of a 200k-row table, under transfers: the restarted
// reader resumes the snapshot from its progress, in new read views, and
// both replicas end equal to the master.
func TestSnapshotInitialKilled(t *testing.T) {
	e := newSnapshotEnv(t, 200000)
	e.load()
	run := startRowcast(t, "run", "--config", e.cfg)
	// The first kill comes early (the reader resumes with the tables it
	// has not reached), the second inside the big table (it resumes after
	// the last key recorded).
	var done int64
	runs := []*proc{run}
	for kill, after := range []int64{0, 60000} {
		done = e.killMidway(run, max(done, after))
		t.Logf("kill %d after %d rows recorded", kill+1, done)
		run = startRowcast(t, "run", "--config", e.cfg)
		runs = append(runs, run)
	}
	s := e.waitSnapshot(3 * time.Minute)
	time.Sleep(2 * time.Second)
	e.stop()
	e.verified()
	run.stop(t)
	// The topic reads as the sinks read it: every transaction complete, in
	// sequence, copies only of what a transaction already held.
	txns := dedupe(t, readTopic(t, e.topic))
	cut := 0
	for _, r := range runs {
		cut += strings.Count(r.out.String(), "ended it with a copy of its last row")
	}
	t.Logf("snapshot %d done with %d rows across two kills (%d chunks cut and ended); %d transfers; %d transactions in the topic",
		s.ID, s.RowsDone, cut, e.bank.Transfers.Load(), len(txns))
}

// killMidway SIGKILLs run once the snapshot recorded more rows than after,
// while it still runs, and returns the rows recorded then.
func (e *snapshotEnv) killMidway(run *proc, after int64) int64 {
	e.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		list := e.snapshots()
		if n := len(list); n > 0 && list[n-1].State == checkpoint.SnapshotRunning && list[n-1].RowsDone > after {
			run.kill(e.t)
			return list[n-1].RowsDone
		}
		if n := len(list); n > 0 && list[n-1].Finished() {
			e.t.Fatalf("the snapshot ended (%s) before the kill: make the table bigger", list[n-1].State)
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("the snapshot recorded no progress beyond %d rows within 2 minutes:\n%s", after, run.out)
	return 0
}

// TestSnapshotOnDemandUnderLoad snapshots the bank's table with `rowcast
// snapshot --throttle --wait` while it is written and after a replica's
// copy was damaged: the snapshot rebuilds it, and every replica ends equal
// to the master.
func TestSnapshotOnDemandUnderLoad(t *testing.T) {
	r := startReplication(t, "run")
	bank := newBank(context.Background(), t, r.database, 2000, 100)
	waitConverged(t, r.database, time.Minute)
	testenv.Exec(t, testenv.DB(t, testenv.Replica1), "UPDATE `"+r.database+"`.accounts SET balance = -1 WHERE id % 10 = 0")
	e := &snapshotEnv{t: t, database: r.database, topic: r.topic, cfg: r.cfg, bank: bank}
	e.load()
	code, out, errs := runCLIProcess(t, "snapshot", "--config", r.cfg, "--tables", r.database+".accounts", "--throttle", "1000", "--wait")
	if code != 0 || !strings.Contains(out, "done: 2000 rows") {
		t.Fatalf("rowcast snapshot --wait exited %d:\n%s\n%s", code, out, errs)
	}
	e.stop()
	e.verified()
	code, out, _ = runCLIProcess(t, "status", "--config", r.cfg)
	if code != 0 || !strings.Contains(out, "SNAPSHOT") || !strings.Contains(out, " done ") {
		t.Errorf("rowcast status does not show the snapshot:\n%s", out)
	}
	code, _, errs = runCLIProcess(t, "snapshot", "--config", r.cfg, "--tables", r.database+".nope")
	if code != 2 || !strings.Contains(errs, "no such base table") {
		t.Errorf("a snapshot of a missing table: exit %d, %s", code, errs)
	}
	r.proc.stop(t)
}

// TestDisruptiveSnapshotAfterPurge is TestSnapshotInitialUnderLoad on a
// master whose earlier binlogs were purged, as on a master that ran long
// before rowcast came: the snapshot needs no binlog before its read view.
// PURGE BINARY LOGS breaks every other reader that has not read them yet,
// so it runs in the serial phase.
func TestDisruptiveSnapshotAfterPurge(t *testing.T) {
	needDisruptive(t)
	e := newSnapshotEnv(t, 20000)
	master := testenv.DB(t, testenv.Master)
	testenv.Exec(t, master, "FLUSH BINARY LOGS")
	status, err := master.Query("SHOW MASTER STATUS")
	if err != nil {
		t.Fatal(err)
	}
	cols, _ := status.Columns()
	vals := make([]any, len(cols))
	var file string
	vals[0] = &file
	for i := 1; i < len(vals); i++ {
		vals[i] = new(any)
	}
	if !status.Next() || status.Scan(vals...) != nil {
		t.Fatal("SHOW MASTER STATUS returned no binlog")
	}
	status.Close()
	testenv.Exec(t, master, "PURGE BINARY LOGS TO '"+file+"'")
	e.load()
	run := startRowcast(t, "run", "--config", e.cfg)
	s := e.waitSnapshot(2 * time.Minute)
	time.Sleep(2 * time.Second)
	e.stop()
	e.verified()
	run.stop(t)
	t.Logf("snapshot of %d rows after purging the binlogs before %s", s.RowsDone, file)
}
