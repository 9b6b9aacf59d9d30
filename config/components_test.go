package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/mysql"
	"github.com/rowcast/rowcast/source"
	"github.com/rowcast/rowcast/verify"
)

// componentsYAML is a small cluster: two mysql nodes and a clickhouse one.
const componentsYAML = `
cluster: shop
master: db1
nodes:
  - {name: db1, dsn: "rc:pw1@tcp(h1:3306)/"}
  - {name: db2, dsn: "rc:pw2@tcp(h2:3306)/"}
  - {name: olap, kind: clickhouse, dsn: "http://h3:8123/shop"}
kafka: {brokers: ["k1:9092", "k2:9092"], retention: 24h, compression: zstd}
source: {server_id: 77, include: ['^shop\.'], exclude: ['\.tmp_']}
sink: {bookkeeping_schema: book, max_batch_rows: 500, max_txn_merge: 10}
verify: {rows_per_second: 300}
`

func parseComponents(t *testing.T) *Config {
	t.Helper()
	cfg, err := Parse([]byte(componentsYAML), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestChangelogConfig(t *testing.T) {
	t.Setenv(DefaultSigningKeyEnv, "components-test-key-0123456789")
	got := parseComponents(t).ChangelogConfig()
	if got.Signing == nil || got.SigningErr != nil {
		t.Fatalf("signing on by default with the key in %s: keys %v, error %v", DefaultSigningKeyEnv, got.Signing, got.SigningErr)
	}
	got.Signing = nil // checked above; its hash state does not compare
	want := changelog.Config{Brokers: []string{"k1:9092", "k2:9092"}, Topic: "rowcast.shop", Partitions: 1,
		ReplicationFactor: 1, Retention: 24 * time.Hour, Compression: "zstd"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ChangelogConfig:\n got %+v\nwant %+v", got, want)
	}
}

func TestSourceConfig(t *testing.T) {
	cfg := parseComponents(t)
	got, err := cfg.SourceConfig("db2")
	if err != nil {
		t.Fatal(err)
	}
	want := source.Config{Addr: "h2:3306", User: "rc", Password: "pw2", ServerID: 77,
		Include: []string{`^shop\.`}, Exclude: []string{`\.tmp_`}, BookkeepingSchema: "book"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("SourceConfig(db2):\n got %+v\nwant %+v", got, want)
	}
	for _, node := range []string{"olap", "db9"} {
		if _, err := cfg.SourceConfig(node); err == nil {
			t.Errorf("SourceConfig(%s): no error", node)
		}
	}
}

// source.user and source.password replace the node's account, each alone.
func TestSourceConfigAccountOverride(t *testing.T) {
	cfg := parseComponents(t)
	cfg.Source.User = "repl"
	got, err := cfg.SourceConfig("db1")
	if err != nil {
		t.Fatal(err)
	}
	if got.User != "repl" || got.Password != "pw1" || got.Addr != "h1:3306" {
		t.Fatalf("source.user only: %s/%s at %s, want repl/pw1 at h1:3306", got.User, got.Password, got.Addr)
	}
	cfg.Source.Password = "secret"
	if got, _ = cfg.SourceConfig("db1"); got.User != "repl" || got.Password != "secret" {
		t.Fatalf("source.user and password: %s/%s, want repl/secret", got.User, got.Password)
	}
}

func TestSourceConfigReplicateAccounts(t *testing.T) {
	cfg := parseComponents(t)
	if got, _ := cfg.SourceConfig("db1"); got.ReplicateAccounts {
		t.Fatal("account statements are published by default")
	}
	cfg.Source.ReplicateAccounts = true
	if got, _ := cfg.SourceConfig("db1"); !got.ReplicateAccounts {
		t.Fatal("source.replicate_accounts does not reach the reader")
	}
}

func TestSourceConfigs(t *testing.T) {
	cfg := parseComponents(t)
	got, err := cfg.SourceConfigs()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["db1"].Addr != "h1:3306" || got["db2"].Addr != "h2:3306" {
		t.Fatalf("SourceConfigs: %+v, want db1 and db2 (the clickhouse node cannot be a master)", got)
	}
}

func TestTargetConfig(t *testing.T) {
	got, err := parseComponents(t).TargetConfig("db2")
	if err != nil {
		t.Fatal(err)
	}
	want := mysql.Config{DSN: "rc:pw2@tcp(h2:3306)/", Node: "db2", Schema: "book", Topic: "rowcast.shop", Protect: true}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("TargetConfig(db2) with protect_replicas left out:\n got %+v\nwant %+v", got, want)
	}
	cfg := parseComponents(t)
	cfg.Sink.ProtectReplicas = nil // a Config built without Parse
	if got, _ := cfg.TargetConfig("db2"); !got.Protect {
		t.Error("a nil protect_replicas protects")
	}
	off := strings.Replace(componentsYAML, "max_txn_merge: 10}", "max_txn_merge: 10, protect_replicas: false}", 1)
	cfg, err = Parse([]byte(off), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := cfg.TargetConfig("db2"); got.Protect {
		t.Error("protect_replicas: false still protects")
	}
	allow := strings.Replace(componentsYAML, "max_txn_merge: 10}", "max_txn_merge: 10, allow_non_transactional: true}", 1)
	if cfg, err = Parse([]byte(allow), noEnv); err != nil {
		t.Fatal(err)
	}
	if got, _ := cfg.TargetConfig("db2"); !got.AllowNonTransactional {
		t.Error("allow_non_transactional: true is not passed to the target")
	}
	for node, want := range map[string]string{"olap": "not mysql", "db9": "not in the config"} {
		if _, err := cfg.TargetConfig(node); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("TargetConfig(%s): %v, want an error saying %q", node, err, want)
		}
	}
}

func TestWorkerConfig(t *testing.T) {
	got := parseComponents(t).WorkerConfig()
	want := sink.WorkerConfig{Topic: "rowcast.shop", MaxBatchRows: 500, MaxTxnMerge: 10, MaxBatchBytes: 4 << 20,
		DDLInclude: []string{`^shop\.`}, DDLExclude: []string{`\.tmp_`}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("WorkerConfig:\n got %+v\nwant %+v", got, want)
	}
}

// sink.buffer_mib splits into the consumer's prefetch and the batches.
func TestSinkBuffer(t *testing.T) {
	cfg := parseComponents(t)
	if kc := cfg.SinkChangelogConfig(); kc.PrefetchBytes != 16<<20 || kc.Topic != "rowcast.shop" {
		t.Errorf("default buffer: prefetch %d, topic %s", kc.PrefetchBytes, kc.Topic)
	}
	cfg.Sink.BufferMiB = 8
	if kc, wc := cfg.SinkChangelogConfig(), cfg.WorkerConfig(); kc.PrefetchBytes != 4<<20 || wc.MaxBatchBytes != 1<<20 {
		t.Errorf("buffer_mib 8: prefetch %d, batch %d", kc.PrefetchBytes, wc.MaxBatchBytes)
	}
	if cfg.ChangelogConfig().PrefetchBytes != 0 {
		t.Error("the reader's changelog config should keep the client's default prefetch")
	}
}

func TestVerifyConfig(t *testing.T) {
	cfg := parseComponents(t)
	got, err := cfg.VerifyConfig("db2")
	if err != nil {
		t.Fatal(err)
	}
	want := verify.Config{ReplicaName: "db2", ReplicaDSN: "rc:pw2@tcp(h2:3306)/", Topic: "rowcast.shop",
		Filter: verify.Filter{Include: []string{`^shop\.`}, Exclude: []string{`\.tmp_`}, Bookkeeping: "book"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("VerifyConfig(db2):\n got %+v\nwant %+v", got, want)
	}
	if _, err := cfg.VerifyConfig("db9"); err == nil {
		t.Error("VerifyConfig(db9): no error")
	}
	if ch, err := cfg.VerifyConfig("olap"); err != nil || ch.ReplicaDSN != "http://h3:8123/shop" {
		t.Errorf("VerifyConfig(olap): %v, dsn %q, want the clickhouse node's URL", err, ch.ReplicaDSN)
	}
	cont, err := cfg.ContinuousVerifyConfig("db2")
	want.RowsPerSecond = 300
	if err != nil || !reflect.DeepEqual(cont, want) {
		t.Fatalf("ContinuousVerifyConfig(db2): %v\n got %+v\nwant %+v", err, cont, want)
	}
}

func TestCheckpointStore(t *testing.T) {
	if got := parseComponents(t).CheckpointStore().Schema(); got != "book" {
		t.Fatalf("CheckpointStore schema %q, want book", got)
	}
}

// failover.user and failover.password replace the DSN's account for
// promotions; without them the DSN's is used.
func TestAdminNode(t *testing.T) {
	cfg := parseComponents(t)
	plain, _ := cfg.Node("db1")
	if n, ok := cfg.AdminNode("db1"); !ok || n != plain {
		t.Fatalf("AdminNode without failover.user: %+v, want %+v", n, plain)
	}
	cfg.Failover.User, cfg.Failover.Password = "admin", "a #pw"
	n, ok := cfg.AdminNode("db1")
	mc, err := n.MySQLConfig()
	if !ok || err != nil || mc.User != "admin" || mc.Passwd != "a #pw" || mc.Addr != "h1:3306" {
		t.Fatalf("AdminNode: %+v (%v)", mc, err)
	}
	if _, ok := cfg.AdminNode("db9"); ok {
		t.Error("AdminNode of a node not in the config")
	}
}

// The jobs in MySQL's names: READ_ONLY ADMIN is SYSTEM_VARIABLES_ADMIN and
// CONNECTION_ADMIN, each needed once; BINLOG REPLAY has no counterpart.
func TestMySQLJob(t *testing.T) {
	cfg := parseComponents(t)
	job := mysqlJob(cfg.jobOf([]string{"sink", "admin"}, "db2", []string{"shop"}))
	seen := map[string]int{}
	for _, n := range job.Needs {
		if n.DB == "*" {
			seen[n.Priv]++
		}
	}
	if seen["SYSTEM_VARIABLES_ADMIN"] != 1 || seen["CONNECTION_ADMIN"] != 1 || seen["READ_ONLY ADMIN"] != 0 || len(seen) != 2 {
		t.Errorf("global needs %v", seen)
	}
	if slices.Contains(job.Global, "BINLOG REPLAY") || !slices.Contains(job.Global, "REPLICATION CLIENT") {
		t.Errorf("allowed globally: %v", job.Global)
	}
}

// The databases --check-grants checks: those holding a published table,
// the bookkeeping schema aside.
func TestReplicatedDBs(t *testing.T) {
	cfg := parseComponents(t)
	cfg.Source.Include, cfg.Source.Exclude = []string{`^(shop|crm)\.`}, []string{`^crm\.`}
	got := cfg.replicatedDBs([]string{"shop.a", "shop.b", "crm.c", "other.d", cfg.Sink.BookkeepingSchema + ".checkpoint"})
	if strings.Join(got, ",") != "shop" {
		t.Errorf("replicated databases %v, want [shop]", got)
	}
}
