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
// footprint before plus bigRowFactor times the row (with margin: publishing
// once took 16 times the row).
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
	if limit := base + bigRowFactor*int64(rowBytes); publish > limit || start > limit {
		t.Fatalf("pipeline peak RSS %d MiB publishing, %d MiB starting: want under %d MiB (%d MiB before, rows of %d MiB)",
			publish>>20, start>>20, limit>>20, base>>20, rowBytes>>20)
	}
}

// bigRowFactor bounds the pipeline's peak RSS, beyond its footprint before,
// in rows: the copies of docs/DESIGN.md, "Large rows", and the garbage
// collector's headroom.
const bigRowFactor = 8

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
