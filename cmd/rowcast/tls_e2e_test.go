package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
)

// tlsClusterConfig replicates database from the stack's TLS-only node db4
// (its tls: section trusting caFile) to db2, through topic.
func tlsClusterConfig(t *testing.T, database, topic, caFile string) string {
	t.Helper()
	text := fmt.Sprintf(`cluster: e2etls
master: db4
nodes:
  - {name: db4, dsn: "root@tcp(%s)/", tls: {ca_file: %q}}
  - {name: db2, dsn: "root@tcp(%s)/"}
kafka: {brokers: [%q], topic: %s}
source: {include: ['^%s\.'], heartbeat_interval: 1s, start: current, server_id: %d}
sink: {protect_replicas: false}
http: "off"
`, testenv.Addr(testenv.TLSNode), caFile, testenv.Addr(testenv.Replica1), testenv.Addr("kafka"), topic, database,
		100000+rand.IntN(1<<30))
	path := filepath.Join(t.TempDir(), "rowcast.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTLSOnlyMaster: `rowcast run` streams the binlog of a master that
// refuses plaintext and applies it to db2; `verify` and `status` reach that
// master over TLS too.
func TestTLSOnlyMaster(t *testing.T) {
	ca := testenv.TLSCAFile(t)
	master, replica := testenv.TLSDB(t), testenv.DB(t, testenv.Replica1)
	topic, database := testenv.CreateTopic(t, 1), testenv.UniqueName(t, "rc")
	cfg := tlsClusterConfig(t, database, topic, ca)
	p := startPublishing(t, "run", cfg, topic)
	q := "`" + database + "`"
	t.Cleanup(func() {
		master.Exec("DROP DATABASE IF EXISTS " + q)
		replica.Exec("DROP DATABASE IF EXISTS " + q)
	})
	testenv.Exec(t, master, "CREATE DATABASE "+q, "CREATE TABLE "+q+".t (id INT PRIMARY KEY, v VARCHAR(10))",
		"INSERT INTO "+q+".t SELECT seq, CONCAT('v', seq) FROM "+q+".seq_1_to_50")
	waitFor(t, time.Minute, "the 50 rows on db2", func() bool {
		var n int
		return replica.QueryRow("SELECT COUNT(*) FROM "+q+".t").Scan(&n) == nil && n == 50
	})
	if code, out, errs := runCLIProcess(t, "verify", "--config", cfg, "--replica", "db2"); code != 0 {
		t.Fatalf("rowcast verify exited %d:\n%s\n%s", code, out, errs)
	}
	code, out, errs := runCLIProcess(t, "status", "--config", cfg)
	if code != 0 || !strings.Contains(out, "db4") || strings.Contains(out, "unreachable") || strings.Contains(out, "error") {
		t.Fatalf("rowcast status exited %d:\n%s\n%s", code, out, errs)
	}
	p.stop(t)
}

// TestTLSRefusedWhereImpossible: a node that asks for TLS where a link
// cannot honour it stops every command before it connects, naming the
// node, the setting and the fix.
func TestTLSRefusedWhereImpossible(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rowcast.yaml")
	text := `cluster: x
master: db1
nodes:
  - {name: db1, dsn: "u:p@tcp(127.0.0.1:1)/?tls=preferred"}
  - {name: olap, kind: clickhouse, dsn: "http://127.0.0.1:1/x", tls: {ca_file: ca.pem}}
kafka: {brokers: ["127.0.0.1:1"]}
`
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"pipeline", "status"} {
		code, _, errs := runCLI(t, cmd, "--config", path)
		for _, want := range []string{"nodes[0] (db1).dsn: tls=preferred", "fall back to plaintext", "write tls=true",
			"nodes[1] (olap).tls: only mysql nodes take a tls: section"} {
			if !strings.Contains(errs, want) {
				t.Errorf("rowcast %s: stderr lacks %q:\n%s", cmd, want, errs)
			}
		}
		if code != 1 {
			t.Errorf("rowcast %s: exit code %d, want 1", cmd, code)
		}
	}
}
