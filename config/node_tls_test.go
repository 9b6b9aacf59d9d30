package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/internal/testenv"
)

// tlsYAML is a cluster whose master db1 is configured by nodeYAML.
func tlsYAML(db1 string) []byte {
	return fmt.Appendf(nil, `
cluster: shop
master: db1
nodes:
  - %s
  - {name: db2, dsn: "rc:pw2@tcp(h2:3306)/"}
kafka: {brokers: ["k1:9092"]}
`, db1)
}

// TestTLSReachesEveryLink: the dsn's tls= and a tls: section both reach the
// reader's config (binlog stream, checks) and the DSNs of sinks, verify and
// every Node.Open.
func TestTLSReachesEveryLink(t *testing.T) {
	f := testenv.WriteTLSFiles(t)
	for _, c := range []struct {
		name, db1  string
		serverName string
		skipVerify bool
		section    bool
	}{
		{"dsn tls=true", `{name: db1, dsn: "rc:pw@tcp(h1:3306)/?tls=true"}`, "h1", false, false},
		{"dsn skip-verify", `{name: db1, dsn: "rc:pw@tcp(h1:3306)/?tls=skip-verify"}`, "", true, false},
		{"section", fmt.Sprintf(`{name: db1, dsn: "rc:pw@tcp(h1:3306)/", tls: {ca_file: %q}}`, f.CA), "h1", false, true},
		{"section and tls=true", fmt.Sprintf(`{name: db1, dsn: "rc:pw@tcp(h1:3306)/?tls=true", tls: {ca_file: %q, server_name: db.example}}`, f.CA), "db.example", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse(tlsYAML(c.db1), noEnv)
			if err != nil {
				t.Fatal(err)
			}
			sc, err := cfg.SourceConfig("db1")
			if err != nil || sc.TLS == nil {
				t.Fatalf("source config: TLS %v, err %v", sc.TLS, err)
			}
			if sc.TLS.ServerName != c.serverName || sc.TLS.InsecureSkipVerify != c.skipVerify || (sc.TLS.RootCAs != nil) != c.section {
				t.Fatalf("source TLS: ServerName %q skip %v roots %v", sc.TLS.ServerName, sc.TLS.InsecureSkipVerify, sc.TLS.RootCAs != nil)
			}
			tc, _ := cfg.TargetConfig("db1")
			vc, _ := cfg.VerifyConfig("db1")
			for what, dsn := range map[string]string{"sink": tc.DSN, "verify": vc.ReplicaDSN} {
				checkDSNTLS(t, what, dsn, sc.TLS.ServerName, c.section)
			}
			n, _ := cfg.Node("db1")
			mc, err := n.MySQLConfig()
			if err != nil || mc.TLS == nil {
				t.Fatalf("Node.MySQLConfig (Node.Open): TLS %v, err %v", mc.TLS, err)
			}
		})
	}
}

// checkDSNTLS parses dsn as go-sql-driver does and checks its TLS.
func checkDSNTLS(t *testing.T, what, dsn, serverName string, roots bool) {
	t.Helper()
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("%s DSN %q: %v", what, dsn, err)
	}
	if mc.TLS == nil || mc.TLS.ServerName != serverName || (mc.TLS.RootCAs != nil) != roots {
		t.Fatalf("%s DSN %q: TLS %+v", what, dsn, mc.TLS)
	}
}

func TestNoTLSLeavesTheDSNAlone(t *testing.T) {
	cfg, err := Parse(tlsYAML(`{name: db1, dsn: "rc:pw@tcp(h1:3306)/?timeout=3s"}`), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := cfg.SourceConfig("db1")
	tc, _ := cfg.TargetConfig("db1")
	if sc.TLS != nil || tc.DSN != "rc:pw@tcp(h1:3306)/?timeout=3s" {
		t.Fatalf("TLS %v, sink DSN %q", sc.TLS, tc.DSN)
	}
}

// TestTLSRefusals: settings some link cannot honour stop the config from
// loading, naming the node, the field and the fix.
func TestTLSRefusals(t *testing.T) {
	f := testenv.WriteTLSFiles(t)
	for _, c := range []struct{ db1, want string }{
		{`{name: db1, dsn: "rc:pw@tcp(h1:3306)/?tls=preferred"}`,
			"nodes[0] (db1).dsn: tls=preferred (allowFallbackToPlaintext) would let a link fall back to plaintext"},
		{`{name: db1, dsn: "rc:pw@tcp(h1:3306)/?tls=true&allowFallbackToPlaintext=true"}`,
			"write tls=true with a tls: section (ca_file), or tls=skip-verify"},
		{fmt.Sprintf(`{name: db1, dsn: "rc:pw@tcp(h1:3306)/?tls=skip-verify", tls: {ca_file: %q}}`, f.CA),
			"nodes[0] (db1).tls: the dsn sets tls=skip-verify as well: set TLS in one place"},
		{`{name: db1, dsn: "rc:pw@tcp(h1:3306)/", tls: {cert_file: c.pem}}`,
			"nodes[0] (db1).tls: tls settings: cert_file and key_file go together"},
		{`{name: db1, dsn: "rc:pw@tcp(h1:3306)/", tls: {ca_file: /nonexistent/ca.pem}}`,
			"nodes[0] (db1).tls: tls files: ca_file: open /nonexistent/ca.pem"},
		{`{name: db1, dsn: "rc:pw@tcp(h1:3306)/", tls: {insecure_skip_verify: true, ca_file: x}}`,
			"insecure_skip_verify checks no certificate"},
		{`{name: db1, dsn: "rc:pw@tcp(h1:3306)/?tls=corp"}`,
			"nodes[0] (db1).dsn: invalid value / unknown config name: corp: rowcast knows no TLS config by name; write tls=true and a tls: section"},
	} {
		_, err := Parse(tlsYAML(c.db1), noEnv)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got %v\nwant %q", c.db1, err, c.want)
		}
	}
}

func TestTLSOnClickHouseRefused(t *testing.T) {
	_, err := Parse([]byte(`
cluster: shop
master: db1
nodes:
  - {name: db1, dsn: "rc:pw@tcp(h1:3306)/"}
  - {name: olap, kind: clickhouse, dsn: "http://h3:8123/shop", tls: {ca_file: ca.pem}}
kafka: {brokers: ["k1:9092"]}
`), noEnv)
	want := "nodes[1] (olap).tls: only mysql nodes take a tls: section"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %q", err, want)
	}
}

// TestMySQLConfigRefusesUnvalidated: a node never validated (built in code)
// is refused at the first connection all the same.
func TestMySQLConfigRefusesUnvalidated(t *testing.T) {
	n := Node{Name: "db7", Kind: KindMySQL, DSN: "rc:pw@tcp(h:1)/?tls=preferred"}
	if _, err := n.MySQLConfig(); err == nil || !strings.HasPrefix(err.Error(), "node db7: dsn: tls=preferred") {
		t.Fatalf("MySQLConfig: %v", err)
	}
	if _, err := n.ConnDSN(); err == nil {
		t.Fatal("ConnDSN accepted tls=preferred")
	}
}
