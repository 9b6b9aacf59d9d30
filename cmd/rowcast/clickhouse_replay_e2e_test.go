package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
)

// TestClickHouseReplay replays a ClickHouse replica: refused beside its
// running sink worker; from offset 0 after its table was emptied behind
// rowcast's back, it equals the master again; a range in the middle,
// replayed twice, leaves it equal (re-inserted rows collapse by version);
// and its worker continues from where the replay stopped.
func TestClickHouseReplay(t *testing.T) {
	r := olapCluster(t)
	pub := startPublishing(t, "pipeline", r.cfg, r.topic)
	createOnMaster(t, r.database)
	olap := startRowcast(t, "sink", "--config", r.cfg, "--replica", "olap")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bank := newBank(ctx, t, r.database, 100, 500)
	if err := bank.Run(ctx, 2, 300); err != nil {
		t.Fatal(err)
	}
	testenv.Exec(t, testenv.DBAt(t, testenv.Master, r.database), "DELETE FROM accounts WHERE id <= 5")
	waitCHConverged(t, r.database, time.Minute)

	if out, err := rowcastOut(t, "replay", "--config", r.cfg, "--replica", "olap", "--from-offset", "0"); err == nil || !strings.Contains(out, "sink worker is running") {
		t.Fatalf("replay beside a running ClickHouse sink worker: %v\n%s", err, out)
	}
	olap.stop(t)

	if _, err := chQuery("TRUNCATE TABLE `" + r.database + "`.accounts"); err != nil {
		t.Fatal(err)
	}
	if n, _, err := chTotal(r.database); err != nil || n != 0 {
		t.Fatalf("after TRUNCATE ClickHouse holds %d accounts (%v)", n, err)
	}
	replayOLAP(t, r, "0")
	waitCHConverged(t, r.database, 5*time.Second) // the replay inserted and saved everything before it returned
	for range 2 {
		replayOLAP(t, r, "40")
		waitCHConverged(t, r.database, 5*time.Second)
	}
	if n := chPhysicalDoubles(t, r.database); n != 0 {
		t.Fatalf("FINAL shows %d keys more than once after the replays", n)
	}

	olap = startRowcast(t, "sink", "--config", r.cfg, "--replica", "olap")
	if err := bank.Run(ctx, 2, bank.Transfers.Load()+100); err != nil {
		t.Fatal(err)
	}
	waitCHConverged(t, r.database, time.Minute)
	olap.stop(t)
	pub.stop(t)
}

// replayOLAP replays the ClickHouse replica from an offset to the end.
func replayOLAP(t *testing.T, r replication, from string) {
	t.Helper()
	out := mustRowcast(t, "replay", "--config", r.cfg, "--replica", "olap", "--from-offset", from)
	if !strings.Contains(out, "replayed olap") {
		t.Fatalf("replay --from-offset %s:\n%s", from, out)
	}
	t.Logf("replay --from-offset %s: %s", from, lastLines(out, 1))
}

// chPhysicalDoubles counts keys that FINAL shows more than once.
func chPhysicalDoubles(t *testing.T, database string) int {
	t.Helper()
	data, err := chQuery("SELECT toString(count()) FROM (SELECT id, count() AS n FROM `" + database + "`.accounts FINAL GROUP BY id HAVING n > 1)")
	if err != nil || len(data) == 0 {
		t.Fatalf("count keys shown twice: %v", err)
	}
	var n int
	fmt.Sscan(fmt.Sprint(data[0][0]), &n)
	return n
}
