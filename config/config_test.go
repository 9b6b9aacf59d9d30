package config

import (
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func noEnv(string) (string, bool) { return "", false }

func TestLocalConfigMatchesStack(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "deployments", "local", "rowcast.yaml")
	t.Setenv("ROWCAST_DB_PASSWORD", "s3cret")
	// The file's defaults are the stack's defaults, whatever ports this run's
	// stack overrides (${NAME:-default} takes the default for an empty NAME).
	for _, v := range []string{"ROWCAST_DB1_PORT", "ROWCAST_DB2_PORT", "ROWCAST_DB3_PORT", "ROWCAST_KAFKA_PORT", "ROWCAST_CLICKHOUSE_HTTP_PORT"} {
		t.Setenv(v, "")
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Master != "db1" || strings.Join(cfg.Replicas, ",") != "db2,db3,olap" {
		t.Fatalf("master %q replicas %v, want db1 and db2,db3,olap", cfg.Master, cfg.Replicas)
	}
	checkLocalOLAP(t, cfg)
	wantPorts := map[string]string{"db1": "127.0.0.1:3307", "db2": "127.0.0.1:3308", "db3": "127.0.0.1:3309"}
	for name, addr := range wantPorts {
		n, ok := cfg.Node(name)
		if !ok {
			t.Fatalf("node %s missing", name)
		}
		mc, err := n.MySQLConfig()
		if err != nil {
			t.Fatal(err)
		}
		if mc.Addr != addr || mc.User != "rowcast_sink" || mc.Passwd != "s3cret" {
			t.Errorf("node %s: addr %s user %s pass %s, want %s rowcast_sink s3cret", name, mc.Addr, mc.User, mc.Passwd, addr)
		}
	}
	checkLocalAccounts(t, cfg)
	if got := cfg.Kafka.Brokers; len(got) != 1 || got[0] != "127.0.0.1:9092" {
		t.Errorf("brokers %v", got)
	}
	if cfg.Kafka.Retention.D() != 168*time.Hour || cfg.Source.HeartbeatInterval.D() != time.Second {
		t.Errorf("durations: retention %v heartbeat %v", cfg.Kafka.Retention.D(), cfg.Source.HeartbeatInterval.D())
	}
}

// checkLocalAccounts: the local config uses one account per job, as
// scripts/lib/mariadb.sh creates them.
func checkLocalAccounts(t *testing.T, cfg *Config) {
	t.Helper()
	if s := cfg.Source; s.User != "rowcast_reader" || s.Password != "s3cret" || s.ReplicateAccounts {
		t.Errorf("source account %s/%s, replicate_accounts %v", s.User, s.Password, s.ReplicateAccounts)
	}
	if f := cfg.Failover; f.User != "rowcast_admin" || f.Password != "s3cret" {
		t.Errorf("failover account %s/%s", f.User, f.Password)
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse([]byte(`
cluster: shop
master: a
nodes:
  - {name: a, dsn: "u:p@tcp(h:1)/"}
  - {name: b, dsn: "u:p@tcp(h:2)/"}
  - {name: olap, kind: clickhouse, dsn: "http://h:8123/shop"}
kafka: {brokers: ["k:9092"]}
`), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Replicas, ","); got != "b,olap" {
		t.Errorf("replicas %q, want b,olap", got)
	}
	if cfg.Kafka.Topic != "rowcast.shop" || cfg.Kafka.Partitions != 1 || cfg.Kafka.Compression != "lz4" {
		t.Errorf("kafka defaults: %+v", cfg.Kafka)
	}
	if cfg.Source.ServerID != 1001 || cfg.Source.Start != "snapshot" || cfg.Sink.BookkeepingSchema != "rowcast" || !*cfg.Sink.ProtectReplicas {
		t.Errorf("defaults: %+v %+v", cfg.Source, cfg.Sink)
	}
	if cfg.Nodes[0].Kind != KindMySQL {
		t.Errorf("default kind %q", cfg.Nodes[0].Kind)
	}
}

// checkLocalOLAP checks the local config's ClickHouse replica.
func checkLocalOLAP(t *testing.T, cfg *Config) {
	t.Helper()
	if n, ok := cfg.Node("olap"); !ok || n.Kind != KindClickHouse || n.DSN != "http://127.0.0.1:8123/" {
		t.Errorf("node olap %+v, want the stack's ClickHouse at http://127.0.0.1:8123/", n)
	}
}

func TestValidateNamesEveryProblem(t *testing.T) {
	_, err := Parse([]byte(`
cluster: "Bad Name"
master: olap
nodes:
  - {name: a, dsn: "not a dsn"}
  - {name: a, dsn: "u:p@tcp(h:2)/"}
  - {name: olap, kind: clickhouse, dsn: "ftp://x"}
  - {name: c, kind: oracle, dsn: "x"}
replicas: [zz]
kafka: {brokers: ["nohostport"], topic: "bad topic!", partitions: 3, compression: brotli}
source: {include: ["("]}
`), noEnv)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want ValidationError, got %v", err)
	}
	want := []string{
		"cluster:", "nodes[0] (a).dsn", "nodes[1] (a).name", "nodes[2] (olap).dsn", "nodes[3] (c).kind",
		"master: \"olap\" is a clickhouse node", "replicas[0]: \"zz\"", "kafka.brokers[0]", "kafka.topic",
		"kafka.partitions", "kafka.compression", "source.include[0]",
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error does not mention %q:\n%s", w, msg)
		}
	}
	if len(ve.Problems) != len(want) {
		t.Errorf("%d problems, want %d:\n%s", len(ve.Problems), len(want), msg)
	}
}

func TestUnknownFieldIsAnError(t *testing.T) {
	_, err := Parse([]byte("cluster: x\nmastr: a\n"), noEnv)
	if err == nil || !strings.Contains(err.Error(), "mastr") {
		t.Fatalf("want an error naming the unknown field mastr, got %v", err)
	}
}

func TestExpand(t *testing.T) {
	env := map[string]string{"PW": "p@ss", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	out, err := Expand([]byte("a ${PW} b ${EMPTY} c ${UNSET:-dflt} d ${PORT:-} e ${EMPTY:-e1}"), lookup)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out); got != "a p@ss b  c dflt d  e e1" {
		t.Errorf("got %q", got)
	}
	_, err = Expand([]byte("${A1} ${B2:-x} ${C3}"), lookup)
	if err == nil || !strings.Contains(err.Error(), "A1, C3") {
		t.Errorf("want error naming A1, C3, got %v", err)
	}
}

func TestBadDuration(t *testing.T) {
	_, err := Parse([]byte("cluster: x\nsource: {heartbeat_interval: soon}\n"), noEnv)
	if err == nil || !strings.Contains(err.Error(), `"soon" is not a duration`) {
		t.Fatalf("got %v", err)
	}
}

func TestVerifySection(t *testing.T) {
	base := `
cluster: shop
master: a
nodes:
  - {name: a, dsn: "u:p@tcp(h:1)/"}
  - {name: b, dsn: "u:p@tcp(h:2)/"}
kafka: {brokers: ["k:9092"]}
`
	cfg, err := Parse([]byte(base), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Verify.Interval.On() || cfg.Verify.Interval.D() != time.Minute || cfg.Verify.SliceRows != 10000 || cfg.Verify.RowsPerSecond != 5000 {
		t.Errorf("verify defaults (on, every minute): %+v", cfg.Verify)
	}
	cfg, err = Parse([]byte(base+"verify: {interval: off}\n"), noEnv)
	if err != nil || cfg.Verify.Interval.On() {
		t.Errorf("verify.interval off: %+v, %v", cfg.Verify, err)
	}
	cfg, err = Parse([]byte(base+"verify: {interval: 30s, slice_rows: 500, rows_per_second: 200}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Verify.Interval.D() != 30*time.Second || cfg.Verify.SliceRows != 500 || cfg.Verify.RowsPerSecond != 200 {
		t.Errorf("verify: %+v", cfg.Verify)
	}
	_, err = Parse([]byte(base+"verify: {interval: -1s, slice_rows: -2, rows_per_second: -3}\n"), noEnv)
	for _, w := range []string{"verify.interval", "verify.slice_rows", "verify.rows_per_second"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error does not name %s: %v", w, err)
		}
	}
}

// A password from the environment stays one value whatever it holds, in a
// quoted or plain DSN and in a plain password field; a number stays a
// number.
func TestExpandAfterParsing(t *testing.T) {
	pw := "a #b'c\"d}e\nf: g"
	env := map[string]string{"PW": pw, "PARTS": "1", "RF": "3", "NULLISH": "null"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := Parse([]byte(`
cluster: shop
master: a
nodes:
  - {name: a, dsn: "u:${PW}@tcp(h:1)/"}
  - name: b
    dsn: u:${PW}@tcp(h:2)/ # a comment: ${UNSET}
kafka:
  brokers: ["k:9092"]
  partitions: ${PARTS}
  replication_factor: ${RF}
source:
  user: ${NULLISH}
  password: ${PW}
`), lookup)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range cfg.Nodes {
		mc, err := n.MySQLConfig()
		if err != nil || mc.Passwd != pw {
			t.Errorf("node %s: password %q, %v; want %q", n.Name, mc.Passwd, err, pw)
		}
	}
	if cfg.Source.Password != pw || cfg.Source.User != "null" || cfg.Kafka.Partitions != 1 || cfg.Kafka.ReplicationFactor != 3 {
		t.Errorf("source password %q user %q, kafka %+v", cfg.Source.Password, cfg.Source.User, cfg.Kafka)
	}
}

func TestUnknownFieldsAreFoundEverywhere(t *testing.T) {
	_, err := Parse([]byte("cluster: x\nnodes:\n  - {name: a, dns: x}\nkafka: {brokers: [k], topik: t}\n"), noEnv)
	if err == nil || !strings.Contains(err.Error(), "line 3: field dns not found") || !strings.Contains(err.Error(), "line 4: field topik not found") {
		t.Fatalf("want both unknown fields named with their lines, got %v", err)
	}
}
