package main

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
)

// rywIterations is how many write-then-read rounds the read-your-writes test runs.
const rywIterations = 2000

// TestReadYourWrites writes a row on the master, waits on a replica with
// wait_for for the master's GTID of the write, then reads the row there:
// after a successful wait it is never stale. A steady write load runs beside
// it; the wait's p50 and p99 are logged (docs/BENCHMARKS.md).
func TestReadYourWrites(t *testing.T) {
	topic, database := testenv.CreateTopic(t, 1), testenv.UniqueName(t, "rc")
	schema := testenv.UniqueName(t, "rcbk")
	cfg := clusterConfig{database: database, topic: topic, sinkExtra: "  bookkeeping_schema: " + schema + "\n"}.write(t)
	dropSchema(t, schema) // after the process stops: cleanups run last first
	startPublishing(t, "run", cfg, topic)
	replicatedNamed(t, database)
	master := testenv.DB(t, testenv.Master)
	testenv.Exec(t, master, "CREATE TABLE `"+database+"`.ryw (id INT PRIMARY KEY, v INT NOT NULL)",
		"CREATE TABLE `"+database+"`.load (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6))",
		"INSERT INTO `"+database+"`.ryw VALUES (1, 0)")
	replica := testenv.DBAt(t, testenv.Replica1, database)
	waitFor(t, 60*time.Second, "the table on db2", func() bool { return readV(replica) == 0 })
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); steadyLoad(ctx, master, database) }()
	waits := rywRounds(t, master, replica, database, schema)
	lags := lagRounds(t, master, replica, database, rywIterations+1)
	cancel()
	wg.Wait()
	t.Logf("wait_for over %d rounds: %s", len(waits), percentiles(waits))
	t.Logf("replica lag over %d rounds (the row polled every ms): %s", len(lags), percentiles(lags))
	if got := callWait(t, replica, schema, "0-1-999999999999", 0.1); got != -1 {
		t.Fatalf("wait_for of a GTID never written = %d, want -1", got)
	}
}

// rywRounds runs the rounds and returns each wait's duration.
func rywRounds(t *testing.T, master, replica *sql.DB, database, schema string) []time.Duration {
	ctx := context.Background()
	conn, err := master.Conn(ctx) // @@last_gtid is the session's
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waits := make([]time.Duration, 0, rywIterations)
	for i := 1; i <= rywIterations; i++ {
		gtid := writeRound(t, conn, database, i)
		start := time.Now()
		if got := callWait(t, replica, schema, gtid, 10); got != 0 {
			t.Fatalf("round %d: wait_for(%s) = %d, want 0", i, gtid, got)
		}
		waits = append(waits, time.Since(start))
		if v := readV(replica); v != i {
			t.Fatalf("round %d: read %d after wait_for(%s) returned 0: stale", i, v, gtid)
		}
	}
	return waits
}

// lagRounds measures the replica's lag as a reader polling the row sees
// it, the baseline of wait_for's wait: from round first on.
func lagRounds(t *testing.T, master, replica *sql.DB, database string, first int) []time.Duration {
	ctx := context.Background()
	conn, err := master.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	lags := make([]time.Duration, 0, rywIterations/4)
	for i := first; i < first+rywIterations/4; i++ {
		writeRound(t, conn, database, i)
		start := time.Now()
		for readV(replica) != i {
			if time.Since(start) > 10*time.Second {
				t.Fatalf("round %d: the row did not reach db2 in 10s", i)
			}
			time.Sleep(time.Millisecond)
		}
		lags = append(lags, time.Since(start))
	}
	return lags
}

// percentiles formats p50, p99 and max of ds, which it sorts.
func percentiles(ds []time.Duration) string {
	slices.Sort(ds)
	return fmt.Sprintf("p50 %s, p99 %s, max %s", ds[len(ds)/2].Round(100*time.Microsecond),
		ds[len(ds)*99/100].Round(100*time.Microsecond), ds[len(ds)-1].Round(100*time.Microsecond))
}

// writeRound sets the row to i on the master and returns the write's GTID.
func writeRound(t *testing.T, conn *sql.Conn, database string, i int) string {
	ctx := context.Background()
	if _, err := conn.ExecContext(ctx, "UPDATE `"+database+"`.ryw SET v = ? WHERE id = 1", i); err != nil {
		t.Fatal(err)
	}
	var gtid string
	if err := conn.QueryRowContext(ctx, "SELECT @@last_gtid").Scan(&gtid); err != nil {
		t.Fatal(err)
	}
	return gtid
}

func callWait(t *testing.T, db *sql.DB, schema, gtid string, timeout float64) int {
	t.Helper()
	var got int
	if err := db.QueryRow("CALL `"+schema+"`.wait_for(?, ?)", gtid, timeout).Scan(&got); err != nil {
		t.Fatalf("wait_for(%s): %v", gtid, err)
	}
	return got
}

// readV reads the row on the replica, -1 when it cannot.
func readV(db *sql.DB) int {
	v := -1
	db.QueryRow("SELECT v FROM ryw WHERE id = 1").Scan(&v)
	return v
}

// steadyLoad commits about 100 small transactions a second until ctx ends.
func steadyLoad(ctx context.Context, master *sql.DB, database string) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	stmt := fmt.Sprintf("INSERT INTO `%s`.load (at) VALUES (NOW(6))", database)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			master.ExecContext(ctx, stmt)
		}
	}
}

// dropSchema drops a bookkeeping schema on the replicas when the test ends.
func dropSchema(t *testing.T, schema string) {
	for _, node := range []string{testenv.Replica1, testenv.Replica2} {
		db := testenv.DB(t, node)
		t.Cleanup(func() { db.Exec("DROP DATABASE IF EXISTS `" + schema + "`") })
	}
}
