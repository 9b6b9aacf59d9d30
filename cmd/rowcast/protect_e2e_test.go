package main

import (
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
)

// TestProtectedWhileRunning: under `rowcast run` with protect_replicas,
// read_only turned OFF behind the sink worker (as a replica restarted
// without it in its my.cnf would be) is set ON again while the worker runs,
// and rowcast_sink_replica_read_only says so.
func TestProtectedWhileRunning(t *testing.T) {
	c := clusterConfig{topic: testenv.CreateTopic(t, 1), database: testenv.UniqueName(t, "pr"), nodes: []string{"db1", "db2"},
		http: freeAddr(t), protect: true, extra: "verify: {interval: \"off\"}\n"}
	root := testenv.DB(t, testenv.Replica1)
	t.Cleanup(func() { root.Exec("SET GLOBAL read_only=OFF") })
	run := startPublishing(t, "run", c.write(t), c.topic)
	defer run.stop(t)
	metric := func() float64 {
		v, err := scrape(c.http, `rowcast_sink_replica_read_only{replica="db2"}`)
		if err != nil {
			return -1
		}
		return v
	}
	readOnly := func() bool {
		var on bool
		if err := root.QueryRow("SELECT @@global.read_only").Scan(&on); err != nil {
			t.Fatal(err)
		}
		return on
	}
	waitFor(t, 30*time.Second, "db2 protected and the metric at 1", func() bool { return readOnly() && metric() == 1 })
	testenv.Exec(t, root, "SET GLOBAL read_only=OFF")
	waitFor(t, 30*time.Second, "the sink worker to set read_only ON again", readOnly)
	waitFor(t, 5*time.Second, "the metric at 1", func() bool { return metric() == 1 })
}
