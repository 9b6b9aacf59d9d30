package mysql

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
)

// callWaitFor calls the schema's wait_for and returns its answer.
func callWaitFor(t testing.TB, db *sql.DB, schema, gtid string, timeout float64) int {
	t.Helper()
	var got int
	if err := db.QueryRow("CALL "+quoteIdent(schema)+".wait_for(?, ?)", gtid, timeout).Scan(&got); err != nil {
		t.Fatalf("wait_for(%s): %v", gtid, err)
	}
	return got
}

func setGTIDs(t testing.TB, r *replica, set string) {
	t.Helper()
	testenv.Exec(t, r.root, "REPLACE INTO "+quoteIdent(r.schema)+".checkpoint (topic, partition_id, next_offset, epoch, txn_seq, max_txn_seq, gtid_set, updated_at) "+
		"VALUES ('t', 0, 1, 1, 1, 1, '"+set+"', NOW(6))")
}

// TestWaitForComparesPerDomain checks wait_for's answers against a
// checkpoint row: per domain, the server id aside, -1 on timeout.
func TestWaitForComparesPerDomain(t *testing.T) {
	testenv.Need(t, "db2")
	r := newReplica(t, "db2")
	r.open(t, func(c *Config) { c.DSN = testenv.RootDSN("db2", "") })
	if got := callWaitFor(t, r.root, r.schema, "0-1-1", 0.05); got != -1 {
		t.Fatalf("no checkpoint: wait_for = %d, want -1", got)
	}
	setGTIDs(t, r, "0-1-10,1-2-3")
	cases := []struct {
		gtid string
		want int
	}{
		{"0-1-5", 0}, {"0-1-10", 0}, {"0-7-10", 0}, {"0-1-5,1-2-3", 0}, {"1-2-3", 0},
		{"0-1-11", -1}, {"0-1-5,1-2-4", -1}, {"2-1-1", -1},
	}
	for _, c := range cases {
		if got := callWaitFor(t, r.root, r.schema, c.gtid, 0.05); got != c.want {
			t.Errorf("wait_for(%s) = %d, want %d", c.gtid, got, c.want)
		}
	}
}

// TestWaitForSeesLaterCommits checks that a waiting call sees a checkpoint
// committed after it began (each poll is a fresh read view).
func TestWaitForSeesLaterCommits(t *testing.T) {
	testenv.Need(t, "db2")
	r := newReplica(t, "db2")
	r.open(t, func(c *Config) { c.DSN = testenv.RootDSN("db2", "") })
	setGTIDs(t, r, "0-1-10")
	go func() {
		time.Sleep(200 * time.Millisecond)
		r.root.ExecContext(context.Background(), "UPDATE "+quoteIdent(r.schema)+".checkpoint SET gtid_set = '0-1-20'")
	}()
	start := time.Now()
	if got := callWaitFor(t, r.root, r.schema, "0-1-20", 5); got != 0 {
		t.Fatalf("wait_for = %d, want 0", got)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("wait_for took %s after the commit", d)
	}
}
