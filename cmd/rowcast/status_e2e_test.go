package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/service"
)

// statusOf is `rowcast status --json`.
func statusOf(t testing.TB, cfg string) service.StatusReport {
	t.Helper()
	out := mustRowcast(t, "status", "--config", cfg, "--json")
	var rep service.StatusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return rep
}

// TestStatusReaderDown stops `rowcast run` after the replicas caught up,
// then writes on the master: status must not call the replicas caught up,
// and must say that the reader is down and how far the master is ahead.
func TestStatusReaderDown(t *testing.T) {
	r := replication{topic: testenv.CreateTopic(t, 1), database: testenv.UniqueName(t, "rd")}
	r.cfg = clusterConfig{database: r.database, topic: r.topic, http: freeAddr(t)}.write(t)
	r.proc = startPublishing(t, "run", r.cfg, r.topic)
	replicatedNamed(t, r.database)
	testenv.Exec(t, testenv.DB(t, testenv.Master), fmt.Sprintf("CREATE TABLE `%s`.t (id INT PRIMARY KEY, v VARCHAR(20))", r.database),
		fmt.Sprintf("CREATE TABLE `%s`.u (id INT PRIMARY KEY, v VARCHAR(20))", r.database))
	writeRows(t, r.database, 0, 5)
	waitConverged(t, r.database, time.Minute)
	waitFor(t, 30*time.Second, "status: caught up with a healthy reader", func() bool {
		rep := statusOf(t, r.cfg)
		return rep.Reader.Health == "healthy" && rep.Reader.MasterAhead == 0 && allStates(rep, "caught-up")
	})
	r.proc.stop(t)

	writeRows(t, r.database, 5, 8)
	rep := statusOf(t, r.cfg)
	if rep.Reader.Health != service.WorkerNotRunning || rep.Reader.MasterAhead < 6 {
		t.Fatalf("reader %+v: want %q and the master at least 6 transactions ahead", rep.Reader, service.WorkerNotRunning)
	}
	if !allStates(rep, "behind") {
		t.Fatalf("replicas %+v: want behind while the reader is down", rep.Nodes)
	}
	out := mustRowcast(t, "status", "--config", r.cfg)
	if !strings.Contains(out, "no healthy reader publishes them") {
		t.Fatalf("status does not warn that the reader is down:\n%s", out)
	}
}

// allStates reports whether every replica of a status report is in state.
func allStates(rep service.StatusReport, state string) bool {
	for _, n := range rep.Nodes {
		if n.State != state {
			return false
		}
	}
	return len(rep.Nodes) > 0
}
