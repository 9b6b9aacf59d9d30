package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

const masterMasterYAML = `
cluster: shop
topology: master-master
masters: [db1, db2, db3]
read_replicas: {db1: [db4]}
nodes:
  - {name: db1, dsn: "u:p@tcp(h:1)/", gtid_domain_id: 1, http: "127.0.0.1:9471"}
  - {name: db2, dsn: "u:p@tcp(h:2)/", gtid_domain_id: 2}
  - {name: db3, dsn: "u:p@tcp(h:3)/", gtid_domain_id: 3}
  - {name: db4, dsn: "u:p@tcp(h:4)/"}
kafka: {brokers: ["h:9092"]}
`

// TestForMaster: a master's unit replicates its topic into the other
// masters and its own read replicas, reads with a server_id of its own,
// serves on its node's http, and commits source transactions one by one;
// only the other masters apply under origin GTIDs and are never protected.
func TestForMaster(t *testing.T) {
	c, err := Parse([]byte(masterMasterYAML), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Master != "db1" || c.Source.Start != StartCurrent {
		t.Fatalf("defaults: master %q, source.start %q; want db1 and current", c.Master, c.Source.Start)
	}
	u1, err := c.ForMaster("db1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(u1.Replicas, []string{"db2", "db3", "db4"}) || u1.Kafka.Topic != "rowcast.shop.db1" ||
		u1.HTTP != "127.0.0.1:9471" || u1.Sink.MaxTxnMerge != 1 || u1.Source.ServerID != c.Source.ServerID {
		t.Fatalf("unit db1: replicas %v, topic %s, http %s, max_txn_merge %d, server_id %d", u1.Replicas, u1.Kafka.Topic, u1.HTTP, u1.Sink.MaxTxnMerge, u1.Source.ServerID)
	}
	u2, _ := c.ForMaster("db2")
	if !slices.Equal(u2.Replicas, []string{"db1", "db3"}) || u2.HTTP != "off" || u2.Source.ServerID != c.Source.ServerID+1 {
		t.Fatalf("unit db2: replicas %v, http %s, server_id %d", u2.Replicas, u2.HTTP, u2.Source.ServerID)
	}
	for node, want := range map[string]bool{"db2": true, "db3": true, "db4": false} {
		tc, err := u1.TargetConfig(node)
		if err != nil {
			t.Fatal(err)
		}
		if peer := tc.OriginDomain != nil; peer != want || tc.Protect == want {
			t.Errorf("unit db1, target %s: origin domain set %v, protected %v; want origin %v", node, peer, tc.Protect, want)
		} else if peer && *tc.OriginDomain != 1 {
			t.Errorf("unit db1, target %s: origin domain %d, want 1", node, *tc.OriginDomain)
		}
	}
	if _, err := c.ForMaster("db4"); err == nil {
		t.Fatal("ForMaster of a read replica worked")
	}
}

// TestValidateMasterMaster pins the problems of a master-master config.
func TestValidateMasterMaster(t *testing.T) {
	_, err := Parse([]byte(`
cluster: shop
topology: master-master
master: db9
masters: [db1, db1, olap, db2]
replicas: [db2]
read_replicas: {db1: [db2, zz, db3], db7: [db3]}
nodes:
  - {name: db1, dsn: "u:p@tcp(h:1)/", gtid_domain_id: 1}
  - {name: db2, dsn: "u:p@tcp(h:2)/", gtid_domain_id: 1}
  - {name: db3, dsn: "u:p@tcp(h:3)/"}
  - {name: olap, kind: clickhouse, dsn: "http://h:8123/x"}
kafka: {brokers: ["h:9092"]}
source: {start: snapshot}
failover: {mode: auto}
`), noEnv)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v, want a ValidationError", err)
	}
	want := []string{
		`master: "db9" is not a node; use one of db1, db2, db3, olap`,
		`master: "db9" is not one of masters; leave it out in a master-master topology`,
		`replicas: not used in a master-master topology, where every master applies the others' topics; list each master's read replicas in read_replicas`,
		`masters[1]: "db1" is listed twice`,
		`masters[2]: "olap" is a clickhouse node; only mysql nodes take writes`,
		`nodes (db2).gtid_domain_id: 1 is db1's too; each master needs its own GTID domain, or their transactions cannot be told apart`,
		`read_replicas.db1: "db2" is a master; a master applies the other masters' topics by itself`,
		`read_replicas.db1: "zz" is not a node; use one of db1, db2, db3, olap`,
		`read_replicas: "db7" is not one of masters (db1, db1, olap, db2)`,
		`read_replicas.db7: "db3" already follows db1; a read replica follows one master`,
		`source.start: snapshot is not for a master-master set, whose masters start from the same data: use current (the default), or a GTID set`,
		`failover.mode: auto promotes a replica of one master; in a master-master topology every master already takes writes: set it to manual`,
	}
	for _, w := range want {
		if !slices.Contains(ve.Problems, w) {
			t.Errorf("missing problem %q", w)
		}
	}
	if t.Failed() {
		t.Logf("problems:\n%v", ve.Problems)
	}
}

// TestMasterDomains lists the masters' GTID domains in their order.
func TestMasterDomains(t *testing.T) {
	c, err := Parse([]byte(masterMasterYAML), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.MasterDomains(); !slices.Equal(got, []uint32{1, 2, 3}) {
		t.Fatalf("MasterDomains %v, want [1 2 3]", got)
	}
}

// TestMasterMasterSinkGrants: on a master of a master-master set the sink's
// account needs BINLOG REPLAY (session gtid_domain_id, server_id,
// gtid_seq_no) and BINLOG ADMIN (session sql_log_bin), and not READ_ONLY
// ADMIN (masters are never protected); a read replica's does not.
func TestMasterMasterSinkGrants(t *testing.T) {
	c, err := Parse([]byte(masterMasterYAML), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	needs := func(node string) []string {
		var out []string
		for _, n := range c.jobOf([]string{"sink"}, node, []string{"shop"}).Needs {
			if n.DB == "*" {
				out = append(out, n.Priv)
			}
		}
		return out
	}
	if got := needs("db2"); !slices.Equal(got, []string{"BINLOG REPLAY", "BINLOG ADMIN"}) {
		t.Errorf("master db2's sink needs %v globally", got)
	}
	if got := needs("db4"); !slices.Equal(got, []string{"READ_ONLY ADMIN"}) {
		t.Errorf("read replica db4's sink needs %v globally", got)
	}
}

// TestConflictPolicies: the default, a table's override, and the mistakes
// config validate names.
func TestConflictPolicies(t *testing.T) {
	c, err := Parse([]byte(masterMasterYAML+"conflicts: {policy: last-writer-wins, tables: {shop.stock: {policy: priority, priority: db2}}}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if p, w := c.ConflictPolicy("shop", "orders"); p != PolicyLastWriterWins || w != "" {
		t.Errorf("shop.orders: %s %s", p, w)
	}
	if p, w := c.ConflictPolicy("shop", "stock"); p != PolicyPriority || w != "db2" {
		t.Errorf("shop.stock: %s %s", p, w)
	}
	if !c.Versioned() {
		t.Error("Versioned: false")
	}
	for _, bad := range []struct{ yaml, want string }{
		{"conflicts: {policy: newest}\n", `"newest" is not a policy`},
		{"conflicts: {policy: priority, priority: db4}\n", `"db4" is not one of masters`},
		{"conflicts: {policy: stop, priority: db1}\n", "only for policy priority"},
		{"conflicts: {tables: {orders: {policy: stop}}}\n", `"orders" is not db.table`},
	} {
		_, err := Parse([]byte(masterMasterYAML+bad.yaml), noEnv)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want %q", bad.yaml, err, bad.want)
		}
	}
	def, _ := Parse([]byte(masterMasterYAML), noEnv)
	if p, _ := def.ConflictPolicy("shop", "orders"); p != PolicyStop || def.Versioned() {
		t.Errorf("default policy %s, versioned %v", p, def.Versioned())
	}
}
