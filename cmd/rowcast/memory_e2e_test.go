package main

import (
	"context"
	crand "crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/internal/testenv"
)

// TestSinkMemoryCatchingUp starts a sink worker on a backlog of 1000-row
// transactions (about 70 MB of compressible messages) and holds its peak RSS
// under 256 MiB with the default sink.buffer_mib: Kafka fetches are sized
// by what they decompress to, not by their compressed bytes.
func TestSinkMemoryCatchingUp(t *testing.T) {
	const txns, rows, limit = 300, 1000, 256 << 20
	r := replication{topic: testenv.CreateTopic(t, 1), database: testenv.UniqueName(t, "mem")}
	r.cfg = clusterConfig{database: r.database, topic: r.topic, nodes: []string{"db1", "db2"}, extra: "verify: {interval: \"off\"}\n"}.write(t)
	r.proc = startPublishing(t, "pipeline", r.cfg, r.topic)
	replicatedNamed(t, r.database)
	db := testenv.DBAt(t, testenv.Master, r.database)
	testenv.Exec(t, db, "CREATE TABLE t (id BIGINT PRIMARY KEY, a VARCHAR(100), b VARCHAR(100), c BIGINT)")
	for i := 0; i < txns; i++ {
		testenv.Exec(t, db, fmt.Sprintf("INSERT INTO t SELECT %d + seq, REPEAT('a', 100), REPEAT('b', 100), seq FROM seq_1_to_%d", i*rows, rows))
	}
	kc := changelog.Config{Brokers: testenv.KafkaBrokers(), Topic: r.topic}
	waitFor(t, 2*time.Minute, "the backlog in the topic", func() bool {
		end, err := changelog.EndOffset(context.Background(), kc)
		return err == nil && end >= txns*rows
	})

	sink := startRowcast(t, "sink", "--config", r.cfg, "--replica", "db2")
	peak := int64(0)
	waitFor(t, 3*time.Minute, "the replica to catch up", func() bool {
		peak = max(peak, statusKiB(t, sink.cmd.Process.Pid, "VmHWM")<<10)
		var n int
		err := testenv.DB(t, testenv.Replica1).QueryRow("SELECT COUNT(*) FROM `" + r.database + "`.t").Scan(&n)
		return err == nil && n == txns*rows
	})
	peak = max(peak, statusKiB(t, sink.cmd.Process.Pid, "VmHWM")<<10)
	sink.stop(t)
	r.proc.stop(t)
	t.Logf("sink peak RSS %d MiB applying %d rows", peak>>20, txns*rows)
	if peak > limit {
		t.Fatalf("sink peak RSS %d MiB catching up %d transactions of %d rows, want under %d MiB", peak>>20, txns, rows, limit>>20)
	}
}

// statusKiB reads a kB field of /proc/PID/status.
func statusKiB(t testing.TB, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// TestPipelineMemoryBigRow publishes rows of random hex (ROWCAST_BIG_ROW_MIB,
// default 24 MiB each) and holds the pipeline's peak RSS, while it publishes
// them and while it starts with them at the tail of the topic, to its
// footprint before plus publishRowFactor and startRowFactor times the row
// (publishing once took 16 times the row).
func TestPipelineMemoryBigRow(t *testing.T) {
	rowBytes := envInt(t, "ROWCAST_BIG_ROW_MIB", 24) << 20
	const rows = 3
	database, topic := testenv.UniqueName(t, "mem"), testenv.UniqueName(t, "rc")
	t.Cleanup(func() { testenv.DeleteTopic(t, topic) })
	raiseMaxPacket(t, testenv.Master, 3*rowBytes)
	cfg := clusterConfig{database: database, topic: topic, nodes: []string{"db1", "db2"},
		kafkaExtra: fmt.Sprintf("  max_message_bytes: %d\n", 2*rowBytes+(1<<20)), extra: "verify: {interval: \"off\"}\nmemory_limit_mib: 64\n"}.write(t)
	pl := startPublishing(t, "pipeline", cfg, topic)
	db := bigRowDB(t, database)
	base := statusKiB(t, pl.cmd.Process.Pid, "VmRSS") << 10
	clearRefs(t, pl.cmd.Process.Pid)
	var publish int64
	for id := range rows {
		insertBigRow(t, db, topic, id, rowBytes)
		publish = max(publish, statusKiB(t, pl.cmd.Process.Pid, "VmHWM")<<10)
	}
	pl.stop(t)

	pl = startRowcast(t, "pipeline", "--config", cfg)
	end := topicEnd(t, topic)
	waitFor(t, 2*time.Minute, "a heartbeat after the restart", func() bool { return topicEnd(t, topic) > end })
	start := statusKiB(t, pl.cmd.Process.Pid, "VmHWM") << 10
	pl.stop(t)
	t.Logf("pipeline RSS %d MiB before, peak %d MiB publishing %d rows of %d MiB, peak %d MiB starting with them at the tail",
		base>>20, publish>>20, rows, rowBytes>>20, start>>20)
	if limit := base + publishRowFactor*int64(rowBytes); publish > limit {
		t.Fatalf("pipeline peak RSS %d MiB publishing: want under %d MiB (%d MiB before, rows of %d MiB)",
			publish>>20, limit>>20, base>>20, rowBytes>>20)
	}
	if limit := base + startRowFactor*int64(rowBytes); start > limit {
		t.Fatalf("pipeline peak RSS %d MiB starting: want under %d MiB (%d MiB before, rows of %d MiB)",
			start>>20, limit>>20, base>>20, rowBytes>>20)
	}
}

// publishRowFactor bounds the pipeline's peak RSS publishing, beyond its
// footprint before, in rows: the copies of docs/DESIGN.md, "Large rows",
// and the garbage collector's headroom. 2.6 to 2.7 rows' worth measured in
// six runs, three with both cores busy; 3.3 without the collections between
// the copies (service.Publisher.emit, Producer.produce), which this bound
// is set to catch; 6.7 with a copy of each value and a batch buffer the size
// of the uncompressed row.
const publishRowFactor = 3

// startRowFactor bounds the pipeline's peak RSS while it starts with big
// rows at the tail of the topic (the walk back to the resume point): 2.5 to
// 3.6 rows' worth measured.
const startRowFactor = 5

func envInt(t testing.TB, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
	}
	return n
}

// raiseMaxPacket raises the node's max_allowed_packet to at least n until
// the test ends.
func raiseMaxPacket(t testing.TB, node string, n int) {
	db := testenv.DB(t, node)
	var old int
	if err := db.QueryRow("SELECT @@GLOBAL.max_allowed_packet").Scan(&old); err != nil {
		t.Fatal(err)
	}
	if old >= n {
		return
	}
	testenv.Exec(t, db, fmt.Sprintf("SET GLOBAL max_allowed_packet = %d", n))
	t.Cleanup(func() { testenv.Exec(t, testenv.DB(t, node), fmt.Sprintf("SET GLOBAL max_allowed_packet = %d", old)) })
}

// bigRowDB creates database with a table of LONGBLOBs on the master and
// returns a connection to it that takes big packets.
func bigRowDB(t testing.TB, database string) *sql.DB {
	testenv.Exec(t, testenv.DB(t, testenv.Master), "CREATE DATABASE `"+database+"`")
	t.Cleanup(func() { testenv.Exec(t, testenv.DB(t, testenv.Master), "DROP DATABASE IF EXISTS `"+database+"`") })
	db, err := sql.Open("mysql", testenv.RootDSN(testenv.Master, database)+"&maxAllowedPacket=0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	testenv.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY, doc LONGBLOB)")
	return db
}

// insertBigRow inserts a row of n random hex bytes and waits for the
// pipeline to publish it.
func insertBigRow(t testing.TB, db *sql.DB, topic string, id, n int) {
	raw := make([]byte, n/2)
	if _, err := crand.Read(raw); err != nil {
		t.Fatal(err)
	}
	end := topicEnd(t, topic)
	if _, err := db.Exec("INSERT INTO t VALUES (?, ?)", id, []byte(hex.EncodeToString(raw))); err != nil {
		t.Fatal(err)
	}
	kc := changelog.Config{Brokers: testenv.KafkaBrokers(), Topic: topic}
	waitFor(t, 2*time.Minute, "the big row in the topic", func() bool {
		for ; end < topicEnd(t, topic); end++ {
			msgs, err := changelog.ReadAt(context.Background(), kc, end, 1)
			if err == nil && len(msgs) == 1 && len(msgs[0].Value) > n {
				return true
			}
		}
		return false
	})
}

func topicEnd(t testing.TB, topic string) int64 {
	end, err := changelog.EndOffset(context.Background(), changelog.Config{Brokers: testenv.KafkaBrokers(), Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	return end
}

// clearRefs resets the process's VmHWM to its current RSS.
func clearRefs(t testing.TB, pid int) {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		t.Fatal(err)
	}
}

// TestRunMemoryBigRow: `rowcast run` with three replicas (two MariaDB, one
// ClickHouse) holds a big row in the reader and one sink at a time, not
// once per replica: the sinks take big rows in turn (the process's big
// message gate) and the reader publishes one at a time. Then a transaction
// of two big rows goes through (neither waits on itself).
// ROWCAST_BIG_ROW_MIB sets the row size (default 40: at 24 the reader held
// back by HoldReads or not differed by less than the collector's noise).
func TestRunMemoryBigRow(t *testing.T) {
	testenv.Need(t, "clickhouse_http")
	rowBytes := envInt(t, "ROWCAST_BIG_ROW_MIB", 40) << 20
	const rows = 2
	database, topic := testenv.UniqueName(t, "memrun"), testenv.UniqueName(t, "rc")
	t.Cleanup(func() {
		testenv.DeleteTopic(t, topic)
		chQuery("DROP DATABASE IF EXISTS `" + database + "`")
		chQuery("ALTER TABLE rowcast.checkpoints DELETE WHERE topic = '" + topic + "'")
	})
	for _, n := range []string{testenv.Master, testenv.Replica1, testenv.Replica2} {
		raiseMaxPacket(t, n, 3*rowBytes)
	}
	cfg := clusterConfig{database: database, topic: topic, olap: true,
		kafkaExtra: fmt.Sprintf("  max_message_bytes: %d\n", 2*rowBytes+(1<<20)), extra: "verify: {interval: \"off\"}\nmemory_limit_mib: 64\n"}.write(t)
	run := startPublishing(t, "run", cfg, topic)
	db := bigRowDB(t, database)
	waitAll := func(timeout time.Duration, n int) {
		t.Helper()
		waitEqual(t, testenv.Master, testenv.Replica1, database, timeout)
		waitEqual(t, testenv.Master, testenv.Replica2, database, timeout)
		waitFor(t, timeout, fmt.Sprintf("%d rows in ClickHouse", n), func() bool {
			got, err := chQuery("SELECT count(), ifNull(sum(length(doc)), 0) FROM `" + database + "`.t FINAL")
			return err == nil && len(got) == 1 && len(got[0]) == 2 &&
				fmt.Sprintf("%v/%v", got[0][0], got[0][1]) == fmt.Sprintf("%d/%d", n, n*rowBytes)
		})
	}
	waitAll(time.Minute, 0)
	base := statusKiB(t, run.cmd.Process.Pid, "VmRSS") << 10
	clearRefs(t, run.cmd.Process.Pid)
	for id := range rows {
		insertBigRow(t, db, topic, id, rowBytes)
	}
	waitAll(2*time.Minute, rows)
	peak := statusKiB(t, run.cmd.Process.Pid, "VmHWM") << 10
	t.Logf("run RSS %d MiB before, peak %d MiB applying %d rows of %d MiB on three replicas", base>>20, peak>>20, rows, rowBytes>>20)
	if limit := base + runBigRowFactor*int64(rowBytes); peak > limit {
		t.Fatalf("run peak RSS %d MiB: want under %d MiB (%d MiB before, rows of %d MiB)", peak>>20, limit>>20, base>>20, rowBytes>>20)
	}

	// Two big rows in one transaction, two statements: neither the reader
	// nor a sink waits for the first to be published or applied alone.
	insertBigRows(t, db, rowBytes, rows, rows+1)
	waitAll(2*time.Minute, rows+2)
	run.stop(t)
}

// insertBigRows inserts rows of n random hex bytes with ids, one statement
// each, in one transaction.
func insertBigRows(t testing.TB, db *sql.DB, n int, ids ...int) {
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		raw := make([]byte, n/2)
		if _, err := crand.Read(raw); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec("INSERT INTO t VALUES (?, ?)", id, []byte(hex.EncodeToString(raw))); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// runBigRowFactor bounds `rowcast run`'s peak RSS beyond its footprint
// before, in rows: the reader's copies or one sink's, and the collector's
// headroom (docs/DESIGN.md, "Large rows"). With rows of 40 MiB: 3.1 rows'
// worth measured; 4.3 to 5.5 when the reader read the next big row while a
// sink applied the last (source.Config.HoldReads unset). With rows of 24
// MiB, earlier: 4.8 to 5.7 before the reader collected between its copies,
// 9 to 10 with the reader's copies beside a sink's, 13 to 14 without the
// gate.
const runBigRowFactor = 4
