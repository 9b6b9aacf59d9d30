// Package config reads and checks rowcast's YAML configuration: the nodes of a
// replicated cluster (role-neutral names; which one is the master is a setting,
// since any MySQL replica can be promoted), the Kafka changelog topic, and the
// settings of the reader and the sink workers.
//
// Secrets come from the environment: `${NAME}` and `${NAME:-default}` are
// replaced in the file's text before it is parsed, and a variable that is unset
// and has no default is an error that names it.
package config

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"gopkg.in/yaml.v3"
)

// Node kinds.
const (
	KindMySQL      = "mysql"      // MySQL or MariaDB; may be the master
	KindClickHouse = "clickhouse" // analytics replica; never a master
)

// Config is the whole configuration file.
type Config struct {
	// Cluster is the logical name of the replicated cluster, carried in every
	// message as Debezium's source.name. Required.
	Cluster string `yaml:"cluster"`
	// Master names the node that currently takes writes. Required.
	Master string `yaml:"master"`
	// Nodes are every server of the cluster, the master included.
	Nodes []Node `yaml:"nodes"`
	// Replicas names the nodes that sink workers replicate into. Default: every
	// node but the master.
	Replicas []string `yaml:"replicas"`

	Kafka  Kafka  `yaml:"kafka"`
	Source Source `yaml:"source"`
	Sink   Sink   `yaml:"sink"`
	Verify Verify `yaml:"verify"`
	// Failover configures promotions (see Failover).
	Failover Failover `yaml:"failover"`
	// HTTP is the listen address of the metrics and health endpoint of
	// `rowcast pipeline` and `rowcast run`. Default 127.0.0.1:9464; "" after
	// defaults is impossible, use "off" to disable.
	HTTP string `yaml:"http"`
}

// Node is one database server.
type Node struct {
	// Name is role-neutral (db1, db2...): required, unique, [a-z0-9_-].
	Name string `yaml:"name"`
	// Kind is mysql (MySQL or MariaDB) or clickhouse. Default mysql.
	Kind string `yaml:"kind"`
	// DSN: for mysql a go-sql-driver DSN (user:password@tcp(host:port)/);
	// for clickhouse an HTTP URL (http://user:password@host:8123/db).
	DSN string `yaml:"dsn"`
	// HTTP is the metrics and health listen address of this node's sink worker
	// when it runs alone (`rowcast sink`). Default: none.
	HTTP string `yaml:"http"`
}

// Kafka describes the changelog topic.
type Kafka struct {
	// Brokers is the bootstrap list, host:port each. Required.
	Brokers []string `yaml:"brokers"`
	// Topic is the changelog topic of this cluster. Default "rowcast.<cluster>".
	Topic string `yaml:"topic"`
	// Partitions of the topic when rowcast creates it. Default 1: one partition
	// keeps the master's commit order, which prefix consistency needs.
	Partitions int `yaml:"partitions"`
	// ReplicationFactor when rowcast creates the topic. Default 1 (use 3 in
	// production).
	ReplicationFactor int `yaml:"replication_factor"`
	// Retention of the topic when rowcast creates it. Default 168h. A replica
	// older than the retention cannot be replayed and must be re-seeded.
	Retention Duration `yaml:"retention"`
	// Compression of produced batches: none, gzip, snappy, lz4, zstd. Default lz4.
	Compression string `yaml:"compression"`
}

// Source configures the binlog reader.
type Source struct {
	// ServerID is the replica server_id rowcast presents to the master. It must
	// be unique among the master's replicas. Default 1001.
	ServerID uint32 `yaml:"server_id"`
	// Include and Exclude are regular expressions matched against "db.table".
	// Exclude wins; an empty Include means every table.
	Include []string `yaml:"include"`
	Exclude []string `yaml:"exclude"`
	// Start says where a reader begins when the topic is empty: "current" (the
	// master's position now; the default), "earliest" (the oldest binlog still on
	// the master), or a GTID set.
	Start string `yaml:"start"`
	// HeartbeatInterval is how often an idle reader publishes a heartbeat, so
	// that sinks can measure lag. Default 5s.
	HeartbeatInterval Duration `yaml:"heartbeat_interval"`
	// User and Password override the master node's DSN credentials for the
	// binlog stream. Default: the DSN's.
	User     string `yaml:"user"`
	Password string `yaml:"password"`
}

// Sink configures the sink workers.
type Sink struct {
	// BookkeepingSchema is the database on each replica that holds rowcast's
	// checkpoint and audit tables; it is never replicated. Default "rowcast".
	BookkeepingSchema string `yaml:"bookkeeping_schema"`
	// ProtectReplicas makes each MySQL replica read-only for everyone but the
	// sink worker. Default true.
	ProtectReplicas *bool `yaml:"protect_replicas"`
	// MaxBatchRows bounds the rows of one multi-row statement (or LOAD DATA).
	// Default 2000.
	MaxBatchRows int `yaml:"max_batch_rows"`
	// MaxTxnMerge bounds how many source transactions a worker that is behind
	// merges into one target commit. Default 100; 1 disables merging.
	MaxTxnMerge int `yaml:"max_txn_merge"`
}

// Verify configures the continuous verification that each MySQL sink worker
// runs beside applying: every Interval it compares the next slice of its
// replica's rows with the master's (pipeline/verify), round-robin over the
// replicated tables, and counts rows verified and differences found.
type Verify struct {
	// Interval between two slices. Default 0: continuous verification is
	// off.
	Interval Duration `yaml:"interval"`
	// SliceRows is about how many rows one slice compares. Default 10000.
	SliceRows int `yaml:"slice_rows"`
	// RowsPerSecond caps the rows read per second on each side. Default
	// 5000.
	RowsPerSecond int `yaml:"rows_per_second"`
}

// Failover configures promotions of a replica to master.
//
// Master names the node that was the master when the changelog started
// (epoch 1). After a promotion the current master is the one the topic's
// newest epoch record names; `rowcast status` shows it, and every command
// follows it without editing this file.
type Failover struct {
	// Mode is "manual" (default: only `rowcast promote` promotes) or "auto":
	// the pipeline service promotes the replica with the highest applied
	// offset once the master has failed every check for UnreachableAfter.
	Mode string `yaml:"mode"`
	// UnreachableAfter is how long the master must stay unreachable before
	// the automatic mode promotes. Default 30s.
	UnreachableAfter Duration `yaml:"unreachable_after"`
	// CheckInterval is how often the automatic mode checks the master.
	// Default 1s.
	CheckInterval Duration `yaml:"check_interval"`
	// LeaseTTL is the time to live of the promotion lease. Default 30s.
	LeaseTTL Duration `yaml:"lease_ttl"`
	// CatchupTimeout bounds how long a promotion waits for the chosen
	// replica to apply the whole topic. Default 60s.
	CatchupTimeout Duration `yaml:"catchup_timeout"`
}

// Failover modes.
const (
	FailoverManual = "manual"
	FailoverAuto   = "auto"
)

// Duration is a time.Duration written as "5s" or "168h" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (write e.g. 5s, 10m, 168h)", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// D returns the duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// Expand replaces ${NAME} and ${NAME:-default} with the environment's values,
// except on comment lines. Every variable that is unset and has no default is
// reported.
func Expand(text []byte, lookup func(string) (string, bool)) ([]byte, error) {
	var missing []string
	lines := bytes.SplitAfter(text, []byte("\n"))
	for i, line := range lines {
		if bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			continue
		}
		lines[i] = envRef.ReplaceAllFunc(line, func(m []byte) []byte {
			sub := envRef.FindSubmatch(m)
			name := string(sub[1])
			if v, ok := lookup(name); ok {
				return []byte(v)
			}
			if sub[2] != nil {
				return sub[3]
			}
			missing = append(missing, name)
			return m
		})
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("environment variable(s) %s not set: export them or write ${NAME:-default}", strings.Join(missing, ", "))
	}
	return bytes.Join(lines, nil), nil
}

// Load reads, expands, parses, defaults and validates a config file.
func Load(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(raw, os.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse is Load without the file: expand, decode strictly (unknown fields are
// errors), set defaults and validate.
func Parse(raw []byte, lookup func(string) (string, bool)) (*Config, error) {
	text, err := Expand(raw, lookup)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(text))
	dec.KnownFields(true)
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func (c *Config) setDefaults() {
	for i := range c.Nodes {
		if c.Nodes[i].Kind == "" {
			c.Nodes[i].Kind = KindMySQL
		}
	}
	if len(c.Replicas) == 0 {
		for _, n := range c.Nodes {
			if n.Name != c.Master {
				c.Replicas = append(c.Replicas, n.Name)
			}
		}
	}
	if c.HTTP == "" {
		c.HTTP = "127.0.0.1:9464"
	}
	k := &c.Kafka
	if k.Topic == "" && c.Cluster != "" {
		k.Topic = "rowcast." + c.Cluster
	}
	if k.Partitions == 0 {
		k.Partitions = 1
	}
	if k.ReplicationFactor == 0 {
		k.ReplicationFactor = 1
	}
	if k.Retention == 0 {
		k.Retention = Duration(168 * time.Hour)
	}
	if k.Compression == "" {
		k.Compression = "lz4"
	}
	s := &c.Source
	if s.ServerID == 0 {
		s.ServerID = 1001
	}
	if s.Start == "" {
		s.Start = "current"
	}
	if s.HeartbeatInterval == 0 {
		s.HeartbeatInterval = Duration(5 * time.Second)
	}
	k2 := &c.Sink
	if k2.BookkeepingSchema == "" {
		k2.BookkeepingSchema = "rowcast"
	}
	if k2.ProtectReplicas == nil {
		t := true
		k2.ProtectReplicas = &t
	}
	if k2.MaxBatchRows == 0 {
		k2.MaxBatchRows = 2000
	}
	if k2.MaxTxnMerge == 0 {
		k2.MaxTxnMerge = 100
	}
	if c.Verify.SliceRows == 0 {
		c.Verify.SliceRows = 10000
	}
	if c.Verify.RowsPerSecond == 0 {
		c.Verify.RowsPerSecond = 5000
	}
	c.Failover.setDefaults()
}

func (f *Failover) setDefaults() {
	if f.Mode == "" {
		f.Mode = FailoverManual
	}
	if f.UnreachableAfter == 0 {
		f.UnreachableAfter = Duration(30 * time.Second)
	}
	if f.CheckInterval == 0 {
		f.CheckInterval = Duration(time.Second)
	}
	if f.LeaseTTL == 0 {
		f.LeaseTTL = Duration(30 * time.Second)
	}
	if f.CatchupTimeout == 0 {
		f.CatchupTimeout = Duration(60 * time.Second)
	}
}

// validate adds the failover section's problems.
func (f Failover) validate(c *Config, add func(string, ...any)) {
	switch f.Mode {
	case FailoverManual, FailoverAuto:
	default:
		add("failover.mode: %q; use manual or auto", f.Mode)
	}
	if f.CheckInterval <= 0 || f.UnreachableAfter < 2*f.CheckInterval {
		add("failover.unreachable_after (%v) must be at least twice failover.check_interval (%v), both positive", f.UnreachableAfter.D(), f.CheckInterval.D())
	}
	if f.LeaseTTL < Duration(3*time.Second) {
		add("failover.lease_ttl: %v; use at least 3s (it is renewed every third of it)", f.LeaseTTL.D())
	}
	if f.CatchupTimeout <= 0 {
		add("failover.catchup_timeout: must be positive, e.g. 60s")
	}
	if f.Mode == FailoverAuto {
		n := 0
		for _, node := range c.Nodes {
			if node.Kind == KindMySQL {
				n++
			}
		}
		if n < 3 {
			add("failover.mode: auto needs at least 3 mysql nodes (the promotion lease is taken on a majority, which must survive the master's loss); this config has %d", n)
		}
	}
}

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

// Validate checks the whole config and reports every problem at once.
func (c *Config) Validate() error {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }

	if c.Cluster == "" {
		add("cluster: required; name the replicated cluster, e.g. `cluster: shop`")
	} else if !nodeName.MatchString(c.Cluster) {
		add("cluster: %q must match [a-z0-9][a-z0-9_-]*", c.Cluster)
	}
	if len(c.Nodes) == 0 {
		add("nodes: required; list the master and its replicas (name, kind, dsn)")
	}
	seen := map[string]bool{}
	for i, n := range c.Nodes {
		where := fmt.Sprintf("nodes[%d]", i)
		if n.Name != "" {
			where = fmt.Sprintf("nodes[%d] (%s)", i, n.Name)
		}
		switch {
		case n.Name == "":
			add("%s.name: required, e.g. db1", where)
		case !nodeName.MatchString(n.Name):
			add("%s.name: %q must match [a-z0-9][a-z0-9_-]*", where, n.Name)
		case seen[n.Name]:
			add("%s.name: %q is used twice; node names must be unique", where, n.Name)
		}
		seen[n.Name] = true
		switch n.Kind {
		case KindMySQL:
			if n.DSN == "" {
				add("%s.dsn: required, e.g. rowcast:${ROWCAST_DB_PASSWORD}@tcp(127.0.0.1:3307)/", where)
			} else if _, err := mysql.ParseDSN(n.DSN); err != nil {
				add("%s.dsn: not a MySQL DSN (%v); write user:password@tcp(host:port)/", where, err)
			}
		case KindClickHouse:
			if u, err := url.Parse(n.DSN); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				add("%s.dsn: not a ClickHouse HTTP URL; write http://user:password@host:8123/database", where)
			}
		default:
			add("%s.kind: %q is not a node kind; use mysql or clickhouse", where, n.Kind)
		}
		if n.HTTP != "" {
			checkAddr(add, where+".http", n.HTTP)
		}
	}
	if c.Master == "" {
		add("master: required; name the node that takes writes, e.g. `master: db1`")
	} else if n, ok := c.Node(c.Master); !ok && len(c.Nodes) > 0 {
		add("master: %q is not a node; use one of %s", c.Master, strings.Join(c.nodeNames(), ", "))
	} else if n.Kind != KindMySQL {
		add("master: %q is a %s node; only a mysql node can be the master", c.Master, n.Kind)
	}
	rseen := map[string]bool{}
	for i, r := range c.Replicas {
		switch {
		case r == c.Master:
			add("replicas[%d]: %q is the master; a node cannot replicate from itself", i, r)
		case rseen[r]:
			add("replicas[%d]: %q is listed twice", i, r)
		default:
			if _, ok := c.Node(r); !ok {
				add("replicas[%d]: %q is not a node; use one of %s", i, r, strings.Join(c.nodeNames(), ", "))
			}
		}
		rseen[r] = true
	}
	if c.HTTP != "off" {
		checkAddr(add, "http", c.HTTP)
	}

	k := c.Kafka
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

	s := c.Source
	for i, re := range s.Include {
		if _, err := regexp.Compile(re); err != nil {
			add("source.include[%d]: %q is not a regular expression: %v", i, re, err)
		}
	}
	for i, re := range s.Exclude {
		if _, err := regexp.Compile(re); err != nil {
			add("source.exclude[%d]: %q is not a regular expression: %v", i, re, err)
		}
	}
	if s.HeartbeatInterval < 0 {
		add("source.heartbeat_interval: must be positive, e.g. 5s")
	}
	if s.Start == "" {
		add("source.start: use current, earliest or a GTID set")
	}
	if c.Sink.BookkeepingSchema != "" && !nodeName.MatchString(c.Sink.BookkeepingSchema) {
		add("sink.bookkeeping_schema: %q must match [a-z0-9][a-z0-9_-]*", c.Sink.BookkeepingSchema)
	}
	if c.Sink.MaxBatchRows < 1 {
		add("sink.max_batch_rows: %d must be at least 1", c.Sink.MaxBatchRows)
	}
	if c.Sink.MaxTxnMerge < 1 {
		add("sink.max_txn_merge: %d must be at least 1 (1 disables merging)", c.Sink.MaxTxnMerge)
	}
	if c.Verify.Interval < 0 {
		add("verify.interval: must be positive, e.g. 1m (leave it out to turn continuous verification off)")
	}
	if c.Verify.SliceRows < 1 {
		add("verify.slice_rows: %d must be at least 1, e.g. 10000", c.Verify.SliceRows)
	}
	if c.Verify.RowsPerSecond < 1 {
		add("verify.rows_per_second: %d must be at least 1, e.g. 5000", c.Verify.RowsPerSecond)
	}
	c.Failover.validate(c, add)
	if len(p) > 0 {
		return &ValidationError{Problems: p}
	}
	return nil
}

func checkAddr(add func(string, ...any), field, addr string) {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		add("%s: %q is not host:port, e.g. 127.0.0.1:9092", field, addr)
	}
}

// Node returns the node with the given name.
func (c *Config) Node(name string) (Node, bool) {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

func (c *Config) nodeNames() []string {
	out := make([]string, 0, len(c.Nodes))
	for _, n := range c.Nodes {
		out = append(out, n.Name)
	}
	sort.Strings(out)
	return out
}

// MySQLConfig parses a mysql node's DSN.
func (n Node) MySQLConfig() (*mysql.Config, error) {
	if n.Kind != KindMySQL {
		return nil, fmt.Errorf("node %s is a %s node, not mysql", n.Name, n.Kind)
	}
	cfg, err := mysql.ParseDSN(n.DSN)
	if err != nil {
		return nil, fmt.Errorf("node %s: dsn: %w", n.Name, err)
	}
	return cfg, nil
}
