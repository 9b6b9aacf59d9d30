package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// ValidationError lists every problem of a config, each naming the field and
// the fix.
type ValidationError struct{ Problems []string }

func (e *ValidationError) Error() string {
	return fmt.Sprintf("%d problem(s):\n  - %s", len(e.Problems), strings.Join(e.Problems, "\n  - "))
}

var (
	nodeName  = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	topicName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)
)

// addFunc records one problem.
type addFunc func(format string, args ...any)

// Validate checks the whole config and reports every problem at once, section
// by section in the file's order.
func (c *Config) Validate() error {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	c.validateCluster(add)
	c.validateNodes(add)
	c.validateMaster(add)
	c.validateReplicas(add)
	c.validateTopology(add)
	if c.HTTP != "off" {
		checkAddr(add, "http", c.HTTP)
	}
	if c.MemoryLimitMiB < 64 {
		add("memory_limit_mib: %d must be at least 64, e.g. 256 (GOMEMLIMIT=off in the environment lifts the limit)", c.MemoryLimitMiB)
	}
	c.Kafka.validate(add)
	c.Source.validate(add)
	c.Sink.validate(add)
	c.Verify.validate(add)
	c.Failover.validate(c, add)
	if len(p) > 0 {
		return &ValidationError{Problems: p}
	}
	return nil
}

func (c *Config) validateCluster(add addFunc) {
	if c.Cluster == "" {
		add("cluster: required; name the replicated cluster, e.g. `cluster: shop`")
	} else if !nodeName.MatchString(c.Cluster) {
		add("cluster: %q must match [a-z0-9][a-z0-9_-]*", c.Cluster)
	}
}

func (c *Config) validateNodes(add addFunc) {
	if len(c.Nodes) == 0 {
		add("nodes: required; list the master and its replicas (name, kind, dsn)")
	}
	seen := map[string]bool{}
	for i, n := range c.Nodes {
		where := fmt.Sprintf("nodes[%d]", i)
		if n.Name != "" {
			where = fmt.Sprintf("nodes[%d] (%s)", i, n.Name)
		}
		n.validateName(add, where, seen[n.Name])
		seen[n.Name] = true
		n.validateDSN(add, where)
		n.validateTLS(add, where)
		if n.History && n.Kind != KindClickHouse {
			add("%s.history: only a clickhouse node keeps history; remove it from this %s node", where, n.Kind)
		}
		if n.HTTP != "" {
			checkAddr(add, where+".http", n.HTTP)
		}
	}
}

func (n Node) validateName(add addFunc, where string, twice bool) {
	switch {
	case n.Name == "":
		add("%s.name: required, e.g. db1", where)
	case !nodeName.MatchString(n.Name):
		add("%s.name: %q must match [a-z0-9][a-z0-9_-]*", where, n.Name)
	case twice:
		add("%s.name: %q is used twice; node names must be unique", where, n.Name)
	}
}

// validateDSN checks the DSN as the node's kind reads it.
func (n Node) validateDSN(add addFunc, where string) {
	switch n.Kind {
	case KindMySQL:
		validateMySQLDSN(add, where, n.DSN)
	case KindClickHouse:
		if u, err := url.Parse(n.DSN); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("%s.dsn: not a ClickHouse HTTP URL; write http://user:password@host:8123/database", where)
		}
	default:
		add("%s.kind: %q is not a node kind; use mysql or clickhouse", where, n.Kind)
	}
}

// validateMySQLDSN checks a go-sql-driver DSN.
func validateMySQLDSN(add addFunc, where, dsn string) {
	if dsn == "" {
		add("%s.dsn: required, e.g. rowcast:${ROWCAST_DB_PASSWORD}@tcp(127.0.0.1:3307)/", where)
		return
	}
	_, err := mysql.ParseDSN(dsn)
	switch {
	case err == nil:
	case strings.Contains(err.Error(), "unknown config name"):
		add("%s.dsn: %v: rowcast knows no TLS config by name; write tls=true and a tls: section on the node", where, err)
	default:
		add("%s.dsn: not a MySQL DSN (%v); write user:password@tcp(host:port)/", where, err)
	}
}

func (c *Config) validateMaster(add addFunc) {
	n, ok := c.Node(c.Master)
	switch {
	case c.Master == "":
		add("master: required; name the node that takes writes, e.g. `master: db1`")
	case !ok && len(c.Nodes) > 0:
		add("master: %q is not a node; use one of %s", c.Master, strings.Join(c.nodeNames(), ", "))
	case n.Kind != KindMySQL:
		add("master: %q is a %s node; only a mysql node can be the master", c.Master, n.Kind)
	}
}

func (c *Config) validateReplicas(add addFunc) {
	seen := map[string]bool{}
	for i, r := range c.Replicas {
		_, isNode := c.Node(r)
		switch {
		case r == c.Master:
			add("replicas[%d]: %q is the master; a node cannot replicate from itself", i, r)
		case seen[r]:
			add("replicas[%d]: %q is listed twice", i, r)
		case !isNode:
			add("replicas[%d]: %q is not a node; use one of %s", i, r, strings.Join(c.nodeNames(), ", "))
		}
		seen[r] = true
	}
}

func (k Kafka) validate(add addFunc) {
	if len(k.Brokers) == 0 {
		add("kafka.brokers: required, e.g. [127.0.0.1:9092]")
	}
	for i, b := range k.Brokers {
		checkAddr(add, fmt.Sprintf("kafka.brokers[%d]", i), b)
	}
	if k.Topic != "" && !topicName.MatchString(k.Topic) {
		add("kafka.topic: %q is not a valid Kafka topic name ([A-Za-z0-9._-], at most 249)", k.Topic)
	}
	if k.Partitions != 1 {
		add("kafka.partitions: %d; rowcast needs exactly 1 partition to keep the master's commit order", k.Partitions)
	}
	if k.ReplicationFactor < 1 {
		add("kafka.replication_factor: %d must be at least 1", k.ReplicationFactor)
	}
	if k.Retention < 0 {
		add("kafka.retention: must be positive, e.g. 168h")
	}
	switch k.Compression {
	case "none", "gzip", "snappy", "lz4", "zstd":
	default:
		add("kafka.compression: %q; use none, gzip, snappy, lz4 or zstd", k.Compression)
	}
	k.validateTopicSettings(add)
	k.validateSecurity(add)
	k.Signing.validate(add)
}

// validateTopicSettings checks the settings rowcast gives the topic and
// requires of it.
func (k Kafka) validateTopicSettings(add addFunc) {
	if k.MinInsyncReplicas < 0 || k.MinInsyncReplicas > max(k.ReplicationFactor, 1) {
		add("kafka.min_insync_replicas: %d; use 1 to kafka.replication_factor (%d), or leave it out for the default", k.MinInsyncReplicas, k.ReplicationFactor)
	}
	if k.MaxMessageBytes != 0 && k.MaxMessageBytes < 1<<16 {
		add("kafka.max_message_bytes: %d; use at least 65536, or leave it out for the default 8388608 (8 MiB)", k.MaxMessageBytes)
	}
}

func (s Source) validate(add addFunc) {
	checkRegexps(add, "source.include", s.Include)
	checkRegexps(add, "source.exclude", s.Exclude)
	if s.HeartbeatInterval < 0 {
		add("source.heartbeat_interval: must be positive, e.g. 5s")
	}
	if s.Start == "" {
		add("source.start: use snapshot, current, earliest or a GTID set")
	}
}

func checkRegexps(add addFunc, field string, res []string) {
	for i, re := range res {
		if _, err := regexp.Compile(re); err != nil {
			add("%s[%d]: %q is not a regular expression: %v", field, i, re, err)
		}
	}
}

func (s Sink) validate(add addFunc) {
	if s.BookkeepingSchema != "" && !nodeName.MatchString(s.BookkeepingSchema) {
		add("sink.bookkeeping_schema: %q must match [a-z0-9][a-z0-9_-]*", s.BookkeepingSchema)
	}
	if s.MaxBatchRows < 1 {
		add("sink.max_batch_rows: %d must be at least 1", s.MaxBatchRows)
	}
	if s.MaxTxnMerge < 1 {
		add("sink.max_txn_merge: %d must be at least 1 (1 disables merging)", s.MaxTxnMerge)
	}
	if s.BufferMiB < 4 {
		add("sink.buffer_mib: %d must be at least 4, e.g. 32", s.BufferMiB)
	}
}

func (v Verify) validate(add addFunc) {
	if v.Interval.Duration < 0 {
		add("verify.interval: must be positive, e.g. 1m (write off to turn continuous verification off)")
	}
	if v.SliceRows < 1 {
		add("verify.slice_rows: %d must be at least 1, e.g. 10000", v.SliceRows)
	}
	if v.RowsPerSecond < 1 {
		add("verify.rows_per_second: %d must be at least 1, e.g. 5000", v.RowsPerSecond)
	}
}

func (f Failover) validate(c *Config, add addFunc) {
	switch f.Mode {
	case FailoverManual, FailoverAuto:
	default:
		add("failover.mode: %q; use manual or auto", f.Mode)
	}
	f.validateDurations(add)
	if n := c.mysqlNodes(); f.Mode == FailoverAuto && n < 3 {
		add("failover.mode: auto needs at least 3 mysql nodes (the promotion lease is taken on a majority, which must survive the master's loss); this config has %d", n)
	}
	f.validateObservers(c, add)
}

// validateDurations checks the failover section's periods and timeouts.
func (f Failover) validateDurations(add addFunc) {
	if f.CheckInterval <= 0 || f.UnreachableAfter < 2*f.CheckInterval {
		add("failover.unreachable_after (%v) must be at least twice failover.check_interval (%v), both positive", f.UnreachableAfter.D(), f.CheckInterval.D())
	}
	if f.LeaseTTL < Duration(3*time.Second) {
		add("failover.lease_ttl: %v; use at least 3s (it is renewed every third of it)", f.LeaseTTL.D())
	}
	if f.CatchupTimeout <= 0 {
		add("failover.catchup_timeout: must be positive, e.g. 60s")
	}
	if f.FenceCommandTimeout <= 0 {
		add("failover.fence_command_timeout: must be positive, e.g. 30s")
	}
}

// validateObservers checks that each observer is a node with an http
// address or a host:port, named once, and not this config's own http.
func (f Failover) validateObservers(c *Config, add addFunc) {
	seen := map[string]bool{}
	for i, o := range f.Observers {
		addr, problem := c.observerAddr(o)
		switch {
		case problem != "":
			add("failover.observers[%d]: %s", i, problem)
		case addr == c.HTTP:
			add("failover.observers[%d]: %s is this config's own http address; an observer is another vantage point", i, o)
		case seen[addr]:
			add("failover.observers[%d]: %s is listed twice", i, o)
		}
		seen[addr] = true
	}
}

// observerAddr is the http address of an observer (a node's sink worker's,
// or a host:port), or what is wrong with it.
func (c *Config) observerAddr(o string) (addr, problem string) {
	if n, ok := c.Node(o); ok {
		if n.HTTP == "" || n.HTTP == "off" {
			return "", fmt.Sprintf("node %s has no http address: set nodes[].http for its sink worker (`rowcast sink`), which reports what it reaches", o)
		}
		return n.HTTP, ""
	}
	if _, port, err := net.SplitHostPort(o); err != nil || port == "" {
		return "", fmt.Sprintf("%q is neither a node name nor host:port, e.g. db2 or 10.0.0.7:9464", o)
	}
	return o, ""
}

// mysqlNodes counts the nodes that may be the master.
func (c *Config) mysqlNodes() int {
	n := 0
	for _, node := range c.Nodes {
		if node.Kind == KindMySQL {
			n++
		}
	}
	return n
}

func checkAddr(add addFunc, field, addr string) {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		add("%s: %q is not host:port, e.g. 127.0.0.1:9092", field, addr)
	}
}
