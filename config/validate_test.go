package config

import (
	"errors"
	"strings"
	"testing"
)

// TestValidateOrder pins every problem's text and their order: section by
// section, as the file is read.
func TestValidateOrder(t *testing.T) {
	_, err := Parse([]byte(`
cluster: "Bad Name"
master: olap
http: "nope"
memory_limit_mib: 10
nodes:
  - {name: a, dsn: "not a dsn", http: "x"}
  - {name: a, dsn: "u:p@tcp(h:2)/"}
  - {name: olap, kind: clickhouse, dsn: "ftp://x"}
  - {name: c, kind: oracle, dsn: "x"}
  - {name: "", dsn: ""}
  - {name: "BAD", dsn: "u:p@tcp(h:2)/"}
replicas: [zz, olap, a, a]
kafka: {brokers: ["nohostport", "h:1"], topic: "bad topic!", partitions: 3, replication_factor: -1, retention: -1s, compression: brotli}
source: {include: ["(", "ok"], exclude: ["[", "a"], heartbeat_interval: -1s}
sink: {bookkeeping_schema: "Bad", max_batch_rows: -1, max_txn_merge: -2, buffer_mib: 2}
verify: {interval: -1s, slice_rows: -2, rows_per_second: -3}
failover: {mode: auto, unreachable_after: 1s, check_interval: 1s, lease_ttl: 1s, catchup_timeout: -1s}
`), noEnv)
	want := []string{
		`cluster: "Bad Name" must match [a-z0-9][a-z0-9_-]*`,
		`nodes[0] (a).dsn: not a MySQL DSN (invalid DSN: missing the slash separating the database name); write user:password@tcp(host:port)/`,
		`nodes[0] (a).http: "x" is not host:port, e.g. 127.0.0.1:9092`,
		`nodes[1] (a).name: "a" is used twice; node names must be unique`,
		`nodes[2] (olap).dsn: not a ClickHouse HTTP URL; write http://user:password@host:8123/database`,
		`nodes[3] (c).kind: "oracle" is not a node kind; use mysql or clickhouse`,
		`nodes[4].name: required, e.g. db1`,
		`nodes[4].dsn: required, e.g. rowcast:${ROWCAST_DB_PASSWORD}@tcp(127.0.0.1:3307)/`,
		`nodes[5] (BAD).name: "BAD" must match [a-z0-9][a-z0-9_-]*`,
		`master: "olap" is a clickhouse node; only a mysql node can be the master`,
		`replicas[0]: "zz" is not a node; use one of , BAD, a, a, c, olap`,
		`replicas[1]: "olap" is the master; a node cannot replicate from itself`,
		`replicas[3]: "a" is listed twice`,
		`http: "nope" is not host:port, e.g. 127.0.0.1:9092`,
		`memory_limit_mib: 10 must be at least 64, e.g. 256 (GOMEMLIMIT=off in the environment lifts the limit)`,
		`kafka.brokers[0]: "nohostport" is not host:port, e.g. 127.0.0.1:9092`,
		`kafka.topic: "bad topic!" is not a valid Kafka topic name ([A-Za-z0-9._-], at most 249)`,
		`kafka.partitions: 3; rowcast needs exactly 1 partition to keep the master's commit order`,
		`kafka.replication_factor: -1 must be at least 1`,
		`kafka.retention: must be positive, e.g. 168h`,
		`kafka.compression: "brotli"; use none, gzip, snappy, lz4 or zstd`,
		"source.include[0]: \"(\" is not a regular expression: error parsing regexp: missing closing ): `(`",
		"source.exclude[0]: \"[\" is not a regular expression: error parsing regexp: missing closing ]: `[`",
		`source.heartbeat_interval: must be positive, e.g. 5s`,
		`sink.bookkeeping_schema: "Bad" must match [a-z0-9][a-z0-9_-]*`,
		`sink.max_batch_rows: -1 must be at least 1`,
		`sink.max_txn_merge: -2 must be at least 1 (1 disables merging)`,
		`sink.buffer_mib: 2 must be at least 4, e.g. 32`,
		`verify.interval: must be positive, e.g. 1m (write off to turn continuous verification off)`,
		`verify.slice_rows: -2 must be at least 1, e.g. 10000`,
		`verify.rows_per_second: -3 must be at least 1, e.g. 5000`,
		`failover.unreachable_after (1s) must be at least twice failover.check_interval (1s), both positive`,
		`failover.lease_ttl: 1s; use at least 3s (it is renewed every third of it)`,
		`failover.catchup_timeout: must be positive, e.g. 60s`,
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want a ValidationError, got %v", err)
	}
	if got := strings.Join(ve.Problems, "\n"); got != strings.Join(want, "\n") {
		t.Fatalf("problems:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}
