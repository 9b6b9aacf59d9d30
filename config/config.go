// Package config reads and checks rowcast's YAML configuration: the nodes of a
// replicated cluster (role-neutral names; which one is the master is a setting,
// since any MySQL replica can be promoted), the Kafka changelog topic, and the
// settings of the reader and the sink workers.
//
// Secrets come from the environment: `${NAME}` and `${NAME:-default}` are
// replaced inside the values after the file is parsed, so that a value stays
// one value whatever it holds (` #`, quotes, new lines), and a variable that
// is unset and has no default is an error that names it.
package config

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
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
	// Topology is master-replica (the default: one master, replicas follow
	// it, a replica can be promoted) or master-master (every node of
	// Masters takes writes; see topology.go).
	Topology string `yaml:"topology"`
	// Master names the node that currently takes writes. Required in a
	// master-replica topology; in master-master, the first of Masters.
	Master string `yaml:"master"`
	// Masters are the writable nodes of a master-master topology, each
	// with its own gtid_domain_id.
	Masters []string `yaml:"masters"`
	// ReadReplicas, in a master-master topology, names each master's read
	// replicas: they follow that master's topic.
	ReadReplicas map[string][]string `yaml:"read_replicas"`
	// Conflicts says how a master-master set resolves concurrent changes
	// of one row (conflicts.go).
	Conflicts Conflicts `yaml:"conflicts"`
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
	// MemoryLimitMiB is the Go runtime's soft memory limit for each
	// component a process runs (the reader, each sink worker). Default 256;
	// the GOMEMLIMIT environment variable, when set, takes its place.
	MemoryLimitMiB int `yaml:"memory_limit_mib"`
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
	// TLS makes every link to a mysql node TLS (see NodeTLS). Default none:
	// the dsn's own tls= parameter, if any, applies to every link alike.
	TLS *NodeTLS `yaml:"tls"`
	// History, on a clickhouse node, keeps every change as its own row with
	// its operation and commit time (docs/CLICKHOUSE.md). Default false.
	History bool `yaml:"history"`
	// GTIDDomainID is the node's @@gtid_domain_id: required of every
	// master of a master-master topology, distinct among them.
	GTIDDomainID *uint32 `yaml:"gtid_domain_id"`
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
	// MinInsyncReplicas is the topic's min.insync.replicas, set when rowcast
	// creates the topic and required of an existing one. Default 2 from a
	// replication factor of 3 on, else 1.
	MinInsyncReplicas int `yaml:"min_insync_replicas"`
	// MaxMessageBytes is the topic's max.message.bytes, which bounds the
	// largest row change: set when rowcast creates the topic, required of an
	// existing one. Default 8388608 (8 MiB).
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// TLS encrypts the links to the brokers (see KafkaTLS). Default off.
	TLS KafkaTLS `yaml:"tls"`
	// SASL authenticates rowcast to the brokers (see KafkaSASL). Default
	// none.
	SASL KafkaSASL `yaml:"sasl"`
	// Signing is how messages are signed and checked (config/signing.go).
	// Default: on, with the key in ROWCAST_SIGNING_KEY.
	Signing Signing `yaml:"signing"`
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
	// Start says where a reader begins when the topic is empty: "snapshot"
	// (the default: a snapshot of every included table into the topic, then
	// the binlog from the snapshot's position), "current" (the master's
	// position now, no rows of existing tables), "earliest" (the oldest
	// binlog still on the master), or a GTID set.
	Start string `yaml:"start"`
	// HeartbeatInterval is how often an idle reader publishes a heartbeat, so
	// that sinks can measure lag. Default 5s.
	HeartbeatInterval Duration `yaml:"heartbeat_interval"`
	// User and Password override the master node's DSN credentials for the
	// binlog stream. Default: the DSN's.
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	// ReplicateAccounts publishes account and privilege statements (CREATE
	// USER, GRANT, SET PASSWORD, roles...) with clear-text passwords
	// replaced by their mysql_native_password hash. Default false: they are
	// not published (each is logged, cut before its first literal).
	ReplicateAccounts bool `yaml:"replicate_accounts"`
}

// Values of source.start besides a GTID set.
const (
	StartSnapshot = "snapshot" // snapshot the included tables, then stream
	StartCurrent  = "current"  // stream from the master's position now
	StartEarliest = "earliest" // stream from the oldest binlog kept
)

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
	// BufferMiB bounds the changelog messages a sink worker holds, in MiB of
	// message bytes: half prefetched from Kafka, a quarter decoded ahead, an
	// eighth in one batch. Default 32 (about 160 MiB peak RSS).
	BufferMiB int `yaml:"buffer_mib"`
	// AllowNonTransactional applies rows to replica tables whose engine
	// cannot roll back (MyISAM, Aria, MEMORY), with a warning per table,
	// instead of stopping the worker: such rows are not exactly-once.
	// Default false.
	AllowNonTransactional bool `yaml:"allow_non_transactional"`
	// AllowDDL lists statement kinds sinks apply although they are not
	// schema statements of replicated objects ("CREATE DATABASE", "GRANT";
	// "*": every statement). Default none: such a DDL stops the sink.
	AllowDDL []string `yaml:"allow_ddl"`
}

// Verify configures the continuous verification that each MySQL sink worker
// runs beside applying: every Interval it compares the next slice of its
// replica's rows with the master's (pipeline/verify), round-robin over the
// replicated tables, and counts rows verified and differences found.
type Verify struct {
	// Interval between two slices. Default 1m; "off" turns continuous
	// verification off.
	Interval OffDuration `yaml:"interval"`
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
	// Observers are the other vantage points the automatic mode asks
	// before it promotes: a node name (that node's sink worker, at the
	// node's http address) or the host:port of any rowcast process's http
	// (`rowcast observe`, another pipeline service). The master must be
	// unreachable from a majority of the vantage points, this host
	// included. Default none: this host decides alone.
	Observers []string `yaml:"observers"`
	// FenceCommand is run by /bin/sh before an emergency promotion (the
	// automatic mode's or `promote --force`) writes its epoch record, with
	// the old master's name and address in the environment: a STONITH or a
	// proxy switch. It must exit 0 within FenceCommandTimeout, or nothing
	// is promoted. Default none.
	FenceCommand string `yaml:"fence_command"`
	// FenceCommandTimeout bounds FenceCommand. Default 30s.
	FenceCommandTimeout Duration `yaml:"fence_command_timeout"`
	// User and Password override the nodes' DSN credentials for promotions,
	// fencing and rejoin (the account that may set read_only and kill
	// sessions), so that sink workers need not hold it. Default: the DSN's.
	User     string `yaml:"user"`
	Password string `yaml:"password"`
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

// OffDuration is a Duration that may also be written "off".
type OffDuration struct {
	Duration
	Off bool
}

// UnmarshalYAML parses "off" or a Go duration string.
func (d *OffDuration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err == nil && s == "off" {
		d.Off, d.Duration = true, 0
		return nil
	}
	return d.Duration.UnmarshalYAML(n)
}

// On reports whether the duration is set and not off.
func (d OffDuration) On() bool { return !d.Off && d.Duration > 0 }

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

// Parse is Load without the file: parse, expand ${NAME} in the values,
// decode strictly (unknown fields are errors), set defaults and validate.
func Parse(raw []byte, lookup func(string) (string, bool)) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	if root.Kind == 0 {
		return nil, fmt.Errorf("parse YAML: %w", io.EOF)
	}
	if err := expandTree(&root, lookup); err != nil {
		return nil, err
	}
	var cfg Config
	if err := knownFields(&root, reflect.TypeOf(cfg)); err != nil {
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	if err := root.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	cfg.Kafka.SASL.readPassword(lookup)
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func (c *Config) setDefaults() {
	for i := range c.Nodes {
		setDefault(&c.Nodes[i].Kind, KindMySQL)
	}
	c.setTopologyDefaults()
	if len(c.Replicas) == 0 && !c.MasterMaster() {
		c.Replicas = c.allBut(c.Master)
	}
	setDefault(&c.HTTP, "127.0.0.1:9464")
	setDefault(&c.MemoryLimitMiB, 256)
	c.Kafka.setDefaults(c.Cluster)
	c.Source.setDefaults()
	c.Sink.setDefaults()
	c.Verify.setDefaults()
	c.Failover.setDefaults()
}

// setDefault sets *field to def when it holds its zero value.
func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// allBut names every node but one.
func (c *Config) allBut(name string) []string {
	var out []string
	for _, n := range c.Nodes {
		if n.Name != name {
			out = append(out, n.Name)
		}
	}
	return out
}

func (k *Kafka) setDefaults(cluster string) {
	if cluster != "" {
		setDefault(&k.Topic, "rowcast."+cluster)
	}
	setDefault(&k.Partitions, 1)
	setDefault(&k.ReplicationFactor, 1)
	setDefault(&k.Retention, Duration(168*time.Hour))
	k.Signing.setDefaults()
	setDefault(&k.Compression, "lz4")
}

func (s *Source) setDefaults() {
	setDefault(&s.ServerID, 1001)
	setDefault(&s.Start, StartSnapshot)
	setDefault(&s.HeartbeatInterval, Duration(5*time.Second))
}

func (s *Sink) setDefaults() {
	setDefault(&s.BookkeepingSchema, "rowcast")
	if s.ProtectReplicas == nil {
		t := true
		s.ProtectReplicas = &t
	}
	setDefault(&s.MaxBatchRows, 2000)
	setDefault(&s.MaxTxnMerge, 100)
	setDefault(&s.BufferMiB, 32)
}

func (v *Verify) setDefaults() {
	if !v.Interval.Off {
		setDefault(&v.Interval.Duration, Duration(time.Minute))
	}
	setDefault(&v.SliceRows, 10000)
	setDefault(&v.RowsPerSecond, 5000)
}

func (f *Failover) setDefaults() {
	setDefault(&f.Mode, FailoverManual)
	setDefault(&f.UnreachableAfter, Duration(30*time.Second))
	setDefault(&f.CheckInterval, Duration(time.Second))
	setDefault(&f.LeaseTTL, Duration(30*time.Second))
	setDefault(&f.CatchupTimeout, Duration(60*time.Second))
	setDefault(&f.FenceCommandTimeout, Duration(30*time.Second))
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

// AdminNode is the node as promotions, fencing and rejoin connect to it:
// with failover.user and failover.password, when set, in its DSN.
func (c *Config) AdminNode(name string) (Node, bool) {
	n, ok := c.Node(name)
	if !ok || n.Kind != KindMySQL || (c.Failover.User == "" && c.Failover.Password == "") {
		return n, ok
	}
	mc, err := mysql.ParseDSN(n.DSN)
	if err != nil {
		return n, ok // Validate reports it
	}
	if c.Failover.User != "" {
		mc.User = c.Failover.User
	}
	if c.Failover.Password != "" {
		mc.Passwd = c.Failover.Password
	}
	n.DSN = mc.FormatDSN()
	return n, true
}

// MySQLConfig parses a mysql node's DSN, with the node's TLS settings
// applied (see NodeTLS).
func (n Node) MySQLConfig() (*mysql.Config, error) {
	if n.Kind != KindMySQL {
		return nil, fmt.Errorf("node %s is a %s node, not mysql", n.Name, n.Kind)
	}
	cfg, err := mysql.ParseDSN(n.DSN)
	if err != nil {
		return nil, fmt.Errorf("node %s: dsn: %w", n.Name, err)
	}
	return n.withTLS(cfg)
}

// Open opens a small pool to a mysql node and checks, within timeout, that it
// answers. Reads and writes time out after 30 s, so a hung node cannot stall
// the operator workflows that use it.
func (n Node) Open(ctx context.Context, timeout time.Duration) (*sql.DB, error) {
	mc, err := n.MySQLConfig()
	if err != nil {
		return nil, err
	}
	mc.Timeout = timeout
	mc.ReadTimeout = 30 * time.Second
	mc.WriteTimeout = 30 * time.Second
	mc.InterpolateParams = true
	db, err := sql.Open("mysql", mc.FormatDSN())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("node %s at %s: %w", n.Name, mc.Addr, err)
	}
	return db, nil
}
