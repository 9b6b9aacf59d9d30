package service

import (
	"strings"
	"testing"

	"github.com/rowcast/rowcast/config"
)

// TestCheckAdopt: --adopt-domain takes a domain no master has, and only in
// a master-master topology.
func TestCheckAdopt(t *testing.T) {
	mm, err := config.Parse([]byte(`
cluster: shop
topology: master-master
masters: [db1, db2]
nodes:
  - {name: db1, dsn: "u:p@tcp(h:1)/", gtid_domain_id: 1}
  - {name: db2, dsn: "u:p@tcp(h:2)/", gtid_domain_id: 2}
kafka: {brokers: ["h:9092"]}
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	mr, err := config.Parse([]byte(`
cluster: shop
master: db1
nodes:
  - {name: db1, dsn: "u:p@tcp(h:1)/"}
  - {name: db2, dsn: "u:p@tcp(h:2)/"}
replicas: [db2]
kafka: {brokers: ["h:9092"]}
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg     *config.Config
		domains []uint32
		want    string
	}{
		{mm, nil, ""},
		{mm, []uint32{0}, ""},
		{mm, []uint32{0, 2}, "that is a master's gtid_domain_id"},
		{mr, []uint32{0}, "master-master topology"},
	} {
		err := checkAdopt(tc.cfg, tc.domains)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("checkAdopt(%v): %v, want %q", tc.domains, err, tc.want)
		}
	}
}
