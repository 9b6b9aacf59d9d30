package service

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/internal/testenv"
)

// tlsConfig is a config whose master is the stack's TLS-only node, reached
// as root with a tls: section trusting caFile, and whose replica db1 is too.
func tlsConfig(t *testing.T, caFile string) *config.Config {
	t.Helper()
	testenv.Need(t, testenv.TLSNode)
	yaml := fmt.Sprintf(`
cluster: tlstest
master: db4
nodes:
  - {name: db4, dsn: %q, tls: {ca_file: %q}}
  - {name: db1, dsn: %q}
kafka: {brokers: ["127.0.0.1:1"]}
http: "off"
`, testenv.RootDSN(testenv.TLSNode, ""), caFile, testenv.RootDSN(testenv.Master, ""))
	cfg, err := config.Parse([]byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestStatusOfTLSOnlyNodes: status reads a TLS-only master and replica
// through the node's tls: section, and a wrong CA makes the node
// unreachable with the handshake's reason.
func TestStatusOfTLSOnlyNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := tlsConfig(t, testenv.TLSCAFile(t))
	// A freshly started db4 has written no transaction, so no GTID set yet.
	db := testenv.UniqueName(t, "tls")
	testenv.Exec(t, testenv.TLSDB(t), "CREATE DATABASE `"+db+"`", "DROP DATABASE `"+db+"`")
	ms, _ := masterStatus(ctx, cfg, "db4", "rowcast.tlstest")
	if ms.Error != "" || ms.Flavor != "mariadb" || ms.GTIDSet == "" {
		t.Fatalf("master status over TLS: %+v", ms)
	}
	if ri := replicaStatus(ctx, cfg, "db4", "rowcast.tlstest"); ri.State != "no-checkpoint" {
		t.Fatalf("replica status over TLS: %+v", ri)
	}
	wrong := tlsConfig(t, testenv.WriteTLSFiles(t).CA)
	ri := replicaStatus(ctx, wrong, "db4", "rowcast.tlstest")
	if ri.State != "unreachable" || !strings.Contains(ri.Error, "certificate signed by unknown authority") {
		t.Fatalf("replica status with a wrong CA: %+v", ri)
	}
}
