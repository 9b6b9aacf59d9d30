package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/internal/testenv"
)

const mmBenchTitle = "### `scripts/bench master-master`"

// TestBenchMasterMaster is `scripts/bench master-master`, not a test: with
// ROWCAST_BENCH_MM=1 it runs two masters of its own (startMasterSet) and
// measures (1) the lag, commit on one master to the row visible on the
// other, while both take a steady write load through their units, and (2)
// the rate at which a sink applies a full topic of the other master, against
// the master-replica sink applying the same rows between the same two nodes
// in the same run. ROWCAST_BENCH_MM_ROWS sets the rows of (2) (default
// 200,000); ROWCAST_BENCH_DOC names a BENCHMARKS.md to add the result to.
func TestBenchMasterMaster(t *testing.T) {
	if os.Getenv("ROWCAST_BENCH_MM") != "1" {
		t.Skip("a benchmark: `scripts/bench master-master` runs it (ROWCAST_BENCH_MM=1)")
	}
	rows, _ := strconv.Atoi(os.Getenv("ROWCAST_BENCH_MM_ROWS"))
	if rows <= 0 {
		rows = 200_000
	}
	s := startMasterSet(t, "db1", "db2")
	database, topic := testenv.UniqueName(t, "mm"), testenv.UniqueName(t, "rc")
	s.createBenchTable(t, database)
	cfg := s.config(t, database, topic, map[string]string{})
	lag := mmLag(t, s, cfg, database, 20*time.Second)
	mrCfg, mrDB, mrTopic := s.masterReplicaConfig(t)
	// Interleaved rounds, so that a drift of the machine's load falls on
	// both sides; the medians are compared.
	var mm, mr []float64
	for range mmRounds {
		mm = append(mm, mmApplyRate(t, s, cfg, database, topic+".db1", rows, []string{"--master", "db1"}))
		mr = append(mr, mmApplyRate(t, s, mrCfg, mrDB, mrTopic, rows, nil))
	}
	report := mmReport(lag, mm, mr, rows)
	t.Log("\n" + report)
	writeBenchReport(t, report, mmBenchTitle)
}

// mmLag runs both units while each master commits 100 transactions of 5 rows
// a second for d, and returns the lags seen on the other master, by
// direction ("db1 → db2").
func mmLag(t *testing.T, s *masterSet, cfg, database string, d time.Duration) map[string][]time.Duration {
	t.Helper()
	for _, n := range s.names {
		u := startMasterUnit(t, cfg, n)
		defer u.stop(t)
	}
	time.Sleep(5 * time.Second) // the units start and reach the binlogs' end
	lags := map[string][]time.Duration{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for i, from := range s.names {
		to := s.names[1-i]
		acked := &sync.Map{} // id -> ack time
		wg.Add(2)
		go func() {
			defer wg.Done()
			steadyInserts(ctx, s, from, database, acked)
		}()
		go func() {
			defer wg.Done()
			got := pollVisible(ctx, s, to, from, database, acked)
			mu.Lock()
			lags[from+" → "+to] = got
			mu.Unlock()
		}()
	}
	wg.Wait()
	return lags
}

// steadyInserts commits a 5-row transaction on node every 10 ms until ctx
// ends, recording each row's acknowledgement time by id.
func steadyInserts(ctx context.Context, s *masterSet, node, database string, acked *sync.Map) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	q := "INSERT INTO `" + database + "`.t (origin, n, pad) VALUES (?, 0, 'x'), (?, 1, 'x'), (?, 2, 'x'), (?, 3, 'x'), (?, 4, 'x')"
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		res, err := s.dbs[node].Exec(q, node, node, node, node, node)
		if err != nil {
			continue
		}
		now := time.Now()
		first, _ := res.LastInsertId()
		for i := range int64(5) {
			acked.Store(first+i*int64(len(s.names)), now)
		}
	}
}

// pollVisible polls node every 2 ms for the rows of origin it did not see
// yet, and returns how long after their acknowledgement each appeared.
func pollVisible(ctx context.Context, s *masterSet, node, origin, database string, acked *sync.Map) []time.Duration {
	var lags []time.Duration
	var last int64
	q := "SELECT id FROM `" + database + "`.t WHERE origin = ? AND id > ? ORDER BY id"
	for ctx.Err() == nil {
		rows, err := s.dbs[node].Query(q, origin, last)
		if err != nil {
			continue
		}
		now := time.Now()
		for rows.Next() {
			var id int64
			rows.Scan(&id)
			last = max(last, id)
			if at, ok := acked.Load(id); ok {
				lags = append(lags, now.Sub(at.(time.Time)))
			}
		}
		rows.Close()
		time.Sleep(2 * time.Millisecond)
	}
	return lags
}

// mmApplyRate loads rows into db1 in 1000-row transactions with the reader
// of cfg running, waits for the topic to hold them, then starts the sink of
// db2 alone and returns the rows it applied per second.
func mmApplyRate(t *testing.T, s *masterSet, cfg, database, topic string, rows int, unit []string) float64 {
	t.Helper()
	pipe := startRowcast(t, append([]string{"pipeline", "--config", cfg}, unit...)...)
	defer pipe.stop(t)
	time.Sleep(5 * time.Second)
	before := mmCount(t, s, "db2", database)
	for done := 0; done < rows; done += 1000 {
		var b strings.Builder
		b.WriteString("INSERT INTO `" + database + "`.t (origin, n, pad) VALUES ")
		for i := range 1000 {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "('db1', %d, REPEAT('p', 100))", done+i)
		}
		mustExec(t, s.dbs["db1"], b.String())
	}
	waitTopicStill(t, topic)
	start := time.Now()
	sink := startRowcast(t, append([]string{"sink", "--config", cfg, "--replica", "db2"}, unit...)...)
	defer sink.stop(t)
	waitFor(t, 10*time.Minute, "db2 to apply the loaded rows", func() bool {
		return mmCount(t, s, "db2", database) >= before+rows
	})
	return float64(rows) / time.Since(start).Seconds()
}

func mmCount(t *testing.T, s *masterSet, node, database string) int {
	var n int
	if err := s.dbs[node].QueryRow("SELECT COUNT(*) FROM `" + database + "`.t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitTopicStill waits until the topic grows by no more than the idle
// reader's heartbeats (one a second) for 2 s.
func waitTopicStill(t *testing.T, topic string) {
	t.Helper()
	kc := changelog.Config{Brokers: testenv.KafkaBrokers(), Topic: topic}
	var ends []int64
	waitFor(t, 5*time.Minute, "the reader to publish the loaded rows", func() bool {
		end, err := changelog.EndOffset(context.Background(), kc)
		if err != nil {
			return false
		}
		ends = append(ends, end)
		time.Sleep(time.Second)
		return len(ends) > 2 && end-ends[len(ends)-3] <= 2
	})
}

// masterReplicaConfig is a master-replica config of the same two nodes (db1
// the master, db2 its replica, not protected) for a database of its own,
// created on both: the baseline of the apply rate.
func (s *masterSet) masterReplicaConfig(t *testing.T) (cfg, database, topic string) {
	t.Helper()
	database, topic = testenv.UniqueName(t, "mr"), testenv.UniqueName(t, "rc")
	s.createBenchTable(t, database)
	text := fmt.Sprintf(`cluster: mr
master: db1
replicas: [db2]
nodes:
  - {name: db1, dsn: "root@tcp(%s)/"}
  - {name: db2, dsn: "root@tcp(%s)/"}
kafka:
  brokers: [%q]
  topic: %s
source:
  include: ['^%s\.']
  start: current
  server_id: %d
sink:
  protect_replicas: false
verify:
  interval: "off"
http: "off"
`, s.addrs["db1"], s.addrs["db2"], testenv.Addr("kafka"), topic, database, 300000+time.Now().UnixNano()%(1<<29))
	cfg = filepath.Join(t.TempDir(), "mr.yaml")
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, database, topic
}

// createBenchTable creates database and its table t on every node, out of
// the binlogs.
func (s *masterSet) createBenchTable(t *testing.T, database string) {
	for _, n := range s.names {
		s.admin(t, n, "SET SESSION sql_log_bin=0; CREATE DATABASE `"+database+"`; CREATE TABLE `"+database+"`.t (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, origin VARCHAR(8) NOT NULL, n INT NOT NULL, pad VARCHAR(120) NOT NULL) ENGINE=InnoDB")
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))].Round(100 * time.Microsecond)
}

// mmRounds is how many times each apply rate is measured.
const mmRounds = 3

func mmReport(lag map[string][]time.Duration, mmRuns, mrRuns []float64, rows int) string {
	mm, mr := medianRate(mmRuns), medianRate(mrRuns)
	var b strings.Builder
	commit := orDash(os.Getenv("ROWCAST_BENCH_COMMIT"))
	fmt.Fprintf(&b, "%s, %s\n\n", mmBenchTitle, time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Commit %s; load average before: %s; two MariaDB masters of the benchmark's own beside the stack's Kafka.\n\n", commit, orDash(os.Getenv("ROWCAST_BENCH_LOAD")))
	b.WriteString("| measure | rowcast master-master | baseline, same run | ratio |\n|---|--:|--:|--:|\n")
	dirs := make([]string, 0, len(lag))
	for d := range lag {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	for _, d := range dirs {
		fmt.Fprintf(&b, "| lag %s, 100 transactions/s of 5 rows on each master at once (%d rows seen) | p50 %v, p99 %v | - | - |\n",
			d, len(lag[d]), percentile(lag[d], 0.5), percentile(lag[d], 0.99))
	}
	fmt.Fprintf(&b, "| apply rate db1 → db2 from a full topic, %d rows of ~130 B in 1000-row transactions, median of %d interleaved rounds (each: %s) | %.1fk rows/s | master-replica sink, same nodes and rows: %.1fk rows/s (each: %s) | %.2fx |\n",
		rows, len(mmRuns), kRates(mmRuns), mm/1000, mr/1000, kRates(mrRuns), mm/mr)
	b.WriteString("\nGoals: lag p99 under 1 s in both directions; apply rate at least 0.9x the master-replica sink's.\n")
	return b.String()
}

func medianRate(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// kRates lists rates in thousands of rows per second.
func kRates(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.1fk", x/1000)
	}
	return strings.Join(parts, ", ")
}
