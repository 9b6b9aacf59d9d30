package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/service"
	"github.com/rowcast/rowcast/sink"
)

// healthzView is a process's /healthz.
type healthzView struct {
	code       int
	OK         bool                            `json:"ok"`
	Components map[string]string               `json:"components"`
	Details    map[string]service.WorkerReport `json:"details"`
}

func healthzOf(t testing.TB, addr string) healthzView {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	h := healthzView{code: resp.StatusCode}
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatalf("/healthz: %v\n%s", err, body)
	}
	return h
}

// replicasOf is `rowcast status --json`'s replicas by name.
func replicasOf(t testing.TB, cfg string) map[string]service.ReplicaInfo {
	t.Helper()
	out := mustRowcast(t, "status", "--config", cfg, "--json")
	var rep service.StatusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	byName := map[string]service.ReplicaInfo{}
	for _, r := range rep.Nodes {
		byName[r.Node] = r
	}
	return byName
}

// execNoBinlog runs statements on a node outside its binlog: a change made
// by hand on a replica that no other node should see.
func execNoBinlog(t testing.TB, node string, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := testenv.DB(t, node).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, s := range append([]string{"SET SESSION sql_log_bin = 0"}, stmts...) {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s on %s: %v", s, node, err)
		}
	}
}

// writeRows commits one row into t and one into u per transaction, ids
// from..to-1.
func writeRows(t testing.TB, database string, from, to int) {
	t.Helper()
	master := testenv.DB(t, testenv.Master)
	for i := from; i < to; i++ {
		testenv.Exec(t, master,
			fmt.Sprintf("INSERT INTO `%s`.u VALUES (%d, 'u%d')", database, i, i),
			fmt.Sprintf("INSERT INTO `%s`.t VALUES (%d, 't%d')", database, i, i))
	}
}

// firstRowOf is the offset of the topic's first row event of a table.
func firstRowOf(t testing.TB, topic, table string) int64 {
	t.Helper()
	for off, ev := range readTopic(t, topic) {
		if ev.Table != nil && ev.Table.Name == table {
			return int64(off)
		}
	}
	t.Fatalf("no row of %s in topic %s", table, topic)
	return -1
}

// TestRunStopsOneSinkAlone: under `rowcast run`, db3 lacks a table the
// master writes (dropped there by hand). db3's sink stops with MySQL's 1146
// and its fix, and stays stopped; the reader and db2's sink go on and db2
// equals the master. /healthz, the metrics and `rowcast status` show the
// stopped sink. Once the table is back, a restart of `rowcast run` resumes
// db3 from its checkpoint and it equals the master too.
func TestRunStopsOneSinkAlone(t *testing.T) {
	topic, database, addr := testenv.CreateTopic(t, 1), testenv.UniqueName(t, "rc"), freeAddr(t)
	cfg := clusterConfig{database: database, topic: topic, http: addr}.write(t)
	run := startPublishing(t, "run", cfg, topic)
	replicatedNamed(t, database)
	testenv.Exec(t, testenv.DB(t, testenv.Master),
		"CREATE TABLE `"+database+"`.t (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL)",
		"CREATE TABLE `"+database+"`.u (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL)")
	waitEqual(t, testenv.Master, testenv.Replica2, database, time.Minute)
	execNoBinlog(t, testenv.Replica2, "DROP TABLE `"+database+"`.t")
	writeRows(t, database, 0, 20)

	stop := waitSinkStopped(t, addr, "db3")
	checkStopped(t, stop, firstRowOf(t, topic, "t"))
	select {
	case err := <-run.done:
		t.Fatalf("rowcast run exited (%v) when one sink stopped:\n%s", err, run.out)
	default:
	}
	writeRows(t, database, 20, 60)
	waitEqual(t, testenv.Master, testenv.Replica1, database, time.Minute)
	checkServedStop(t, cfg, addr, stop)

	// The fix: the table as the master has it, then a restart.
	execNoBinlog(t, testenv.Replica2, "CREATE TABLE `"+database+"`.t (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL)")
	run.stop(t)
	run = startRowcast(t, "run", "--config", cfg)
	waitEqual(t, testenv.Master, testenv.Replica2, database, time.Minute)
	waitEqual(t, testenv.Master, testenv.Replica1, database, time.Minute)
	if h := healthzOf(t, addr); h.Components["sink/db3"] != "ok" || h.Details["sink/db3"].State != "running" {
		t.Fatalf("db3 after the fix and a restart: %+v", h)
	}
	checkStoppedMetric(t, addr, map[string]float64{"db2": 0, "db3": 0})
	run.stop(t)
}

// waitSinkStopped waits until the process at addr reports the replica's
// sink stopped, and returns its report.
func waitSinkStopped(t testing.TB, addr, replica string) service.WorkerReport {
	t.Helper()
	var h healthzView
	waitFor(t, time.Minute, replica+"'s sink to stop", func() bool {
		h = healthzOf(t, addr)
		return h.Details["sink/"+replica].Stopped()
	})
	rep := h.Details["sink/"+replica]
	want := fmt.Sprintf("stopped at offset %d: %s; fix: %s", rep.Offset, rep.Error, rep.Fix)
	if h.code != http.StatusServiceUnavailable || h.OK || h.Components["sink/"+replica] != want ||
		h.Components["sink/db2"] != "ok" || h.Components["pipeline"] != "ok" {
		t.Fatalf("/healthz with %s stopped: %+v", replica, h)
	}
	return rep
}

// checkStopped checks that a sink stopped at the first row of the missing
// table with MySQL's error and its fix.
func checkStopped(t testing.TB, rep service.WorkerReport, offset int64) {
	t.Helper()
	fix := sink.Advice(&mysql.MySQLError{Number: gomysql.ER_NO_SUCH_TABLE})
	if rep.Offset != offset || !strings.Contains(rep.Error, "Error 1146") || rep.Fix != fix || fix == "" {
		t.Fatalf("stopped sink %+v; want offset %d, error 1146 and fix %q", rep, offset, fix)
	}
}

// checkServedStop checks the stopped db3 sink, while db2's runs, in
// `rowcast status` and the metrics.
func checkServedStop(t testing.TB, cfg, addr string, stop service.WorkerReport) {
	t.Helper()
	nodes := replicasOf(t, cfg)
	db2, db3 := nodes["db2"], nodes["db3"]
	if db3.WorkerState == nil || *db3.WorkerState != stop || db3.Offset > stop.Offset || db3.State != "behind" {
		t.Fatalf("status of db3: %+v (worker %+v); want stopped as %+v", db3, db3.WorkerState, stop)
	}
	if db2.WorkerState == nil || db2.WorkerState.State != "running" || db2.Worker != "healthy" {
		t.Fatalf("status of db2: %+v (worker %+v)", db2, db2.WorkerState)
	}
	out := mustRowcast(t, "status", "--config", cfg)
	if !strings.Contains(out, fmt.Sprintf("db3: worker stopped at offset %d: ", stop.Offset)) || !strings.Contains(out, "db3: fix: "+stop.Fix) {
		t.Fatalf("status lacks db3's stop:\n%s", out)
	}
	checkStoppedMetric(t, addr, map[string]float64{"db2": 0, "db3": 1})
}

// checkStoppedMetric checks rowcast_sink_stopped of each replica.
func checkStoppedMetric(t testing.TB, addr string, want map[string]float64) {
	t.Helper()
	for replica, w := range want {
		if v, err := scrape(addr, fmt.Sprintf(`rowcast_sink_stopped{replica=%q}`, replica)); err != nil || v != w {
			t.Fatalf("rowcast_sink_stopped of %s: %v (%v), want %v", replica, v, err, w)
		}
	}
}
