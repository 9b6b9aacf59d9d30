package config

import (
	"fmt"
	"strings"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/clickhouse"
	"github.com/rowcast/rowcast/sink/mysql"
	"github.com/rowcast/rowcast/source"
	"github.com/rowcast/rowcast/verify"
)

// This file is the one place where the YAML is mapped to the typed config of
// each component. Components take their own Config and never read this
// package's structs, so a setting is copied exactly once.

// ChangelogConfig is the Kafka changelog topic's client config.
// Signing keys come from the environment; without them (and without
// `signing: off`) the config's SigningErr makes every use of the topic fail.
func (c *Config) ChangelogConfig() changelog.Config {
	keys, err := c.Kafka.Signing.keys()
	return changelog.Config{
		Brokers:           c.Kafka.Brokers,
		Topic:             c.Kafka.Topic,
		Partitions:        c.Kafka.Partitions,
		ReplicationFactor: c.Kafka.ReplicationFactor,
		Retention:         c.Kafka.Retention.D(),
		Compression:       c.Kafka.Compression,
		MinInsyncReplicas: c.Kafka.MinInsyncReplicas,
		MaxMessageBytes:   c.Kafka.MaxMessageBytes,
		TLS:               changelogTLS(c.Kafka.TLS),
		SASL:              changelogSASL(c.Kafka.SASL),
		Signing:           keys,
		SigningErr:        err,
	}
}

// changelogTLS maps kafka.tls; settings of a TLS turned off are dropped.
func changelogTLS(t KafkaTLS) changelog.TLS {
	if !t.On() {
		return changelog.TLS{}
	}
	return changelog.TLS{Enabled: true, CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile,
		ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
}

// changelogSASL maps kafka.sasl: the mechanism by its Kafka name, the
// password from where the config says.
func changelogSASL(s KafkaSASL) changelog.SASL {
	if s.Mechanism == "" {
		return changelog.SASL{}
	}
	return changelog.SASL{Mechanism: strings.ToUpper(s.Mechanism), Username: s.Username, Password: s.password()}
}

// SinkChangelogConfig is ChangelogConfig for a sink worker's consumer: it
// prefetches half of sink.buffer_mib.
func (c *Config) SinkChangelogConfig() changelog.Config {
	kc := c.ChangelogConfig()
	kc.PrefetchBytes = c.Sink.BufferMiB << 20 / 2
	return kc
}

// SourceConfig is how the reader reads node when that node is the master: the
// node's address, account (source.user/password override the account) and
// TLS, and the source section's filters.
func (c *Config) SourceConfig(node string) (source.Config, error) {
	n, ok := c.Node(node)
	if !ok {
		return source.Config{}, fmt.Errorf("node %q is not in the config: add it to nodes", node)
	}
	mc, err := n.MySQLConfig()
	if err != nil {
		return source.Config{}, err
	}
	sc := source.Config{
		Addr:              mc.Addr,
		User:              mc.User,
		Password:          mc.Passwd,
		TLS:               mc.TLS,
		ServerID:          c.Source.ServerID,
		Include:           c.Source.Include,
		Exclude:           c.Source.Exclude,
		BookkeepingSchema: c.Sink.BookkeepingSchema,
		PublishVersions:   c.Versioned(),
		ReplicateAccounts: c.Source.ReplicateAccounts,
	}
	if c.Source.User != "" {
		sc.User = c.Source.User
	}
	if c.Source.Password != "" {
		sc.Password = c.Source.Password
	}
	return sc, nil
}

// SourceConfigs maps every mysql node: any of them may become the master.
func (c *Config) SourceConfigs() (map[string]source.Config, error) {
	nodes := map[string]source.Config{}
	for _, n := range c.Nodes {
		if n.Kind != KindMySQL {
			continue
		}
		sc, err := c.SourceConfig(n.Name)
		if err != nil {
			return nil, err
		}
		nodes[n.Name] = sc
	}
	return nodes, nil
}

// TargetConfig is the MySQL sink's config for node: its DSN, the bookkeeping schema
// and the topic its checkpoint row is kept for.
func (c *Config) TargetConfig(node string) (mysql.Config, error) {
	n, ok := c.Node(node)
	if !ok {
		return mysql.Config{}, fmt.Errorf("node %q is not in the config: add it to nodes", node)
	}
	if n.Kind != KindMySQL {
		return mysql.Config{}, fmt.Errorf("node %s is a %s node, not mysql", node, n.Kind)
	}
	dsn, err := n.ConnDSN()
	if err != nil {
		return mysql.Config{}, err
	}
	// Another master of a master-master topology takes writes: never
	// read-only.
	origin, peer := c.OriginDomain(node)
	protect := (c.Sink.ProtectReplicas == nil || *c.Sink.ProtectReplicas) && !peer
	mc := mysql.Config{DSN: dsn, Node: node, Schema: c.Sink.BookkeepingSchema, Topic: c.Kafka.Topic, Protect: protect,
		AllowNonTransactional: c.Sink.AllowNonTransactional}
	if peer {
		mc.OriginDomain = &origin
		if c.Versioned() {
			mc.Resolve = func(db, table string) mysql.Resolution {
				p, winner := c.ConflictPolicy(db, table)
				return mysql.Resolution{Policy: p, Winner: winner}
			}
			mc.MasterDomains = c.MasterDomains()
		}
	}
	return mc, nil
}

// ClickHouseTargetConfig is the ClickHouse sink's config for node: its HTTP
// URL, the bookkeeping database (sink.bookkeeping_schema) and the topic its
// checkpoint is kept for.
func (c *Config) ClickHouseTargetConfig(node string) (clickhouse.Config, error) {
	n, ok := c.Node(node)
	if !ok {
		return clickhouse.Config{}, fmt.Errorf("node %q is not in the config: add it to nodes", node)
	}
	if n.Kind != KindClickHouse {
		return clickhouse.Config{}, fmt.Errorf("node %s is a %s node, not clickhouse", node, n.Kind)
	}
	return clickhouse.Config{URL: n.DSN, Database: c.Sink.BookkeepingSchema, Topic: c.Kafka.Topic, History: n.History}, nil
}

// CheckpointStore is where the mysql nodes keep each sink's checkpoint: the
// bookkeeping schema.
func (c *Config) CheckpointStore() *checkpoint.MySQL {
	return checkpoint.NewMySQL(c.Sink.BookkeepingSchema)
}

// WorkerConfig is the sink worker's config from the sink section; the caller adds
// what an operator action decides (start and stop offsets, skips).
func (c *Config) WorkerConfig() sink.WorkerConfig {
	return sink.WorkerConfig{Topic: c.Kafka.Topic, MaxBatchRows: c.Sink.MaxBatchRows, MaxTxnMerge: c.Sink.MaxTxnMerge,
		MaxBatchBytes: c.Sink.BufferMiB << 20 / 8, DDLInclude: c.Source.Include, DDLExclude: c.Source.Exclude,
		AllowDDL: c.Sink.AllowDDL}
}

// VerifyConfig is verify's config for comparing replica with the master; the
// caller adds how the master is found and the run's own options.
func (c *Config) VerifyConfig(replica string) (verify.Config, error) {
	n, ok := c.Node(replica)
	if !ok {
		return verify.Config{}, fmt.Errorf("node %q is not in the config: add it to nodes", replica)
	}
	dsn := n.DSN // a clickhouse node's URL as it is
	if n.Kind == KindMySQL {
		var err error
		if dsn, err = n.ConnDSN(); err != nil {
			return verify.Config{}, err
		}
	}
	return verify.Config{
		ReplicaName: replica,
		ReplicaDSN:  dsn,
		Filter:      verify.Filter{Include: c.Source.Include, Exclude: c.Source.Exclude, Bookkeeping: c.Sink.BookkeepingSchema},
		Topic:       c.Kafka.Topic,
	}, nil
}

// ContinuousVerifyConfig is VerifyConfig for the continuous verification
// beside replica's sink worker, with the verify section's read rate.
func (c *Config) ContinuousVerifyConfig(replica string) (verify.Config, error) {
	vc, err := c.VerifyConfig(replica)
	vc.RowsPerSecond = c.Verify.RowsPerSecond
	return vc, err
}

// Observer is a vantage point of the automatic failover: its name in logs
// and the http address of the rowcast process that reports from there.
type Observer struct {
	Name string
	Addr string
}

// FailoverObservers maps failover.observers: a node name stands for its
// sink worker's http address.
func (c *Config) FailoverObservers() []Observer {
	out := make([]Observer, 0, len(c.Failover.Observers))
	for _, o := range c.Failover.Observers {
		addr, _ := c.observerAddr(o)
		out = append(out, Observer{Name: o, Addr: addr})
	}
	return out
}
