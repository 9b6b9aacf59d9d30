package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/failover"
	"github.com/rowcast/rowcast/internal/testenv"
)

// autoFailover is the setting of the vantage point tests: a short
// unreachable period, checked every 250ms.
const autoFailover = "failover: {mode: auto, unreachable_after: 2s, check_interval: 250ms, lease_ttl: 15s}\n"

// TestAutoFailoverVantagePoints: a pipeline service in automatic mode that
// cannot reach db1 (its config names db1 at a closed port: a partition
// between it and the master). The replicas' sink workers reach db1;
// `rowcast observe` processes with the partitioned view do not. Seen down
// by 2 of 4 vantage points, db1 is not replaced; by 3 of 5, it is, after
// the fence command ran with the old and new master in its environment.
func TestAutoFailoverVantagePoints(t *testing.T) {
	e := newFailoverEnv(t, autoFailover)
	pipe, sink2, sink3 := e.start()
	waitCheckpoints(t, e.topic, "db2", "db3")
	pipe.stop(t)
	down1, down2 := e.observe(t), e.observe(t)
	fenced := filepath.Join(t.TempDir(), "fenced")
	fence := fmt.Sprintf("  fence_command: 'echo $ROWCAST_OLD_MASTER $ROWCAST_OLD_MASTER_ADDR $ROWCAST_NEW_MASTER >> %s'\n", fenced)

	cut := startRowcast(t, "pipeline", "--config", e.partitioned(t, fence, down1, "db2", "db3"))
	dumpOnFailure(t, []string{"pipeline cut from db1 (minority)"}, cut)
	waitFor(t, 30*time.Second, "the minority tally", func() bool {
		return strings.Contains(cut.out.String(), "2 of 4 vantage points see db1 down: this host (for ")
	})
	time.Sleep(3 * time.Second)
	out := cut.out.String()
	if strings.Contains(out, "promoting the replica") || fileExists(fenced) {
		t.Fatalf("a minority view promoted or fenced:\n%s", out)
	}
	for _, want := range []string{"; db2: reaches it", "; db3: reaches it", "no majority, not promoting"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	cut.stop(t)

	cut = startRowcast(t, "pipeline", "--config", e.partitioned(t, fence, down1, down2, "db2", "db3"))
	dumpOnFailure(t, []string{"pipeline cut from db1 (majority)"}, cut)
	waitFor(t, 60*time.Second, "the automatic failover", func() bool { return strings.Contains(cut.out.String(), "automatic failover done") })
	if out := cut.out.String(); !strings.Contains(out, "3 of 5 vantage points see db1 down") {
		t.Errorf("the log lacks the majority tally:\n%s", out)
	}
	st := statusJSON(t, e.cfg)
	b, _ := os.ReadFile(fenced)
	if want := fmt.Sprintf("db1 127.0.0.1:1 %s\n", st.Master.Node); st.Master.Epoch != 2 || string(b) != want {
		t.Fatalf("master %s, epoch %d; fence command ran with %q, want %q", st.Master.Node, st.Master.Epoch, b, want)
	}
	sinks := map[string]*proc{"db2": sink2, "db3": sink3}
	sinks[st.Master.Node].waitExit(t, 30*time.Second, "the sink of the promoted "+st.Master.Node)
	delete(sinks, st.Master.Node)
	for _, s := range sinks {
		s.stop(t)
	}
	cut.stop(t)
}

// TestObserveReports: `rowcast observe` and a sink worker in automatic
// mode report on /healthz whether they reach each mysql node.
func TestObserveReports(t *testing.T) {
	e := newFailoverEnv(t, autoFailover)
	sink := startRowcast(t, "sink", "--config", e.cfg, "--replica", "db2")
	dumpOnFailure(t, []string{"sink db2"}, sink)
	down := e.observe(t)
	for _, c := range []struct {
		addr   string
		db1    bool
		status string
	}{{e.nodeHTTP["db2"], true, "reaches"}, {down, false, "does not reach"}} {
		var rep failover.ReachReport
		waitFor(t, 30*time.Second, c.addr+" to report every node", func() bool {
			rep = reachOf(t, c.addr)
			return len(rep.Nodes) == 3
		})
		if db1 := rep.Nodes["db1"]; db1.OK != c.db1 || rep.Nodes["db2"].OK != true || rep.Nodes["db3"].OK != true {
			t.Errorf("%s (%s db1): %+v", c.addr, c.status, rep)
		}
		if !c.db1 && !strings.Contains(rep.Nodes["db1"].Error, "127.0.0.1:1") {
			t.Errorf("%s: db1's error %q", c.addr, rep.Nodes["db1"].Error)
		}
	}
	sink.stop(t)
}

// observe starts `rowcast observe` with the partitioned view (db1 at a
// closed port) and returns its address.
func (e *failoverEnv) observe(t *testing.T) string {
	addr := freeAddr(t)
	p := startRowcast(t, "observe", "--config", e.partitioned(t, ""), "--http", addr)
	dumpOnFailure(t, []string{"observe " + addr}, p)
	t.Cleanup(func() {
		if p.running() {
			p.stop(t)
		}
	})
	return addr
}

// partitioned writes e's config with db1 at a closed port, the observers
// named, and more lines of the failover section.
func (e *failoverEnv) partitioned(t *testing.T, failoverLines string, observers ...string) string {
	extra := autoFailover
	if len(observers) > 0 || failoverLines != "" {
		extra = "failover:\n  mode: auto\n  unreachable_after: 2s\n  check_interval: 250ms\n  lease_ttl: 15s\n" + failoverLines
		if len(observers) > 0 {
			extra += fmt.Sprintf("  observers: ['%s']\n", strings.Join(observers, "', '"))
		}
	}
	return clusterConfig{database: e.database, topic: e.topic, nodeHTTP: e.nodeHTTP, protect: true, http: e.http, extra: extra,
		addrs: map[string]string{"db1": "127.0.0.1:1"}}.write(t)
}

// reachOf reads what a process reports of the nodes on /healthz.
func reachOf(t *testing.T, addr string) failover.ReachReport {
	t.Helper()
	var body struct {
		Details struct {
			Reach failover.ReachReport `json:"reach"`
		} `json:"details"`
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return failover.ReachReport{}
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&body)
	return body.Details.Reach
}

// waitCheckpoints waits for the nodes' sink workers to have a checkpoint of
// the topic.
func waitCheckpoints(t *testing.T, topic string, nodes ...string) {
	t.Helper()
	for _, n := range nodes {
		db := testenv.DB(t, n)
		waitFor(t, 60*time.Second, "a checkpoint on "+n, func() bool {
			var c int
			db.QueryRow("SELECT COUNT(*) FROM rowcast.checkpoint WHERE topic = ?", topic).Scan(&c)
			return c > 0
		})
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
