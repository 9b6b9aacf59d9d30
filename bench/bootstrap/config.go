package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/rowcast/rowcast/config"
)

// Node names of the rowcast config: the master, the replica the snapshot
// loads, the one clone copies it into, and the dump's (a node only for
// `rowcast verify`).
const (
	nodeMaster = "master"
	nodeSnap   = "snap"
	nodeClone  = "clone"
	nodeDump   = "dump"
)

// configText is the rowcast config of one round: the product's defaults
// (source.start: snapshot, sink batches, heartbeats) but for the nodes, the
// topic and the one database replicated.
func (b *bench) configText(topic string) string {
	return fmt.Sprintf(`cluster: bench-bootstrap
master: %s
nodes:
  - {name: %s, dsn: %q}
  - {name: %s, dsn: %q, http: %q}
  - {name: %s, dsn: %q, http: %q}
  - {name: %s, dsn: %q}
replicas: [%s, %s]
kafka:
  brokers: [%q]
  topic: %s
source:
  server_id: %d
  include: ['^%s\.']
  start: snapshot
http: %q
`, nodeMaster, nodeMaster, b.master.dsn(), nodeSnap, b.snap.dsn(), b.httpAddr(1), nodeClone, b.clone.dsn(), b.httpAddr(2),
		nodeDump, b.dump.dsn(), nodeSnap, nodeClone, b.o.Kafka.Broker, topic, 100000+rand.IntN(1<<30), benchDB, b.httpAddr(0))
}

// httpAddr is the metrics address of the pipeline (0) and of the sinks of
// snap (1) and clone (2).
func (b *bench) httpAddr(i int) string { return fmt.Sprintf("127.0.0.1:%d", b.o.httpPort+i) }

// writeConfig writes the round's config under the bench directory and
// parses it.
func (b *bench) writeConfig(topic string) (path string, cfg *config.Config, err error) {
	text := b.configText(topic)
	if cfg, err = config.Parse([]byte(text), func(string) (string, bool) { return "", false }); err != nil {
		return "", nil, fmt.Errorf("the benchmark's rowcast config: %w", err)
	}
	path = filepath.Join(b.o.dir, "rowcast.yaml")
	return path, cfg, os.WriteFile(path, []byte(text), 0o600)
}
