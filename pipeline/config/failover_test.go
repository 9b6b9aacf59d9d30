package config

import (
	"strings"
	"testing"
	"time"
)

func TestFailoverSection(t *testing.T) {
	base := "cluster: c\nmaster: db1\nkafka: {brokers: ['k:9092']}\nnodes:\n" +
		"  - {name: db1, dsn: 'u:p@tcp(h:1)/'}\n  - {name: db2, dsn: 'u:p@tcp(h:2)/'}\n"
	cfg, err := Parse([]byte(base), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	f := cfg.Failover
	if f.Mode != FailoverManual || f.UnreachableAfter.D() != 30*time.Second || f.CheckInterval.D() != time.Second ||
		f.LeaseTTL.D() != 30*time.Second || f.CatchupTimeout.D() != time.Minute {
		t.Fatalf("defaults %+v", f)
	}
	_, err = Parse([]byte(base+"failover: {mode: auto, unreachable_after: 1s, check_interval: 1s, lease_ttl: 1s}\n"), noEnv)
	for _, want := range []string{"auto needs at least 3 mysql nodes", "failover.unreachable_after (1s) must be at least twice", "failover.lease_ttl: 1s"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	_, err = Parse([]byte(base+"  - {name: db3, dsn: 'u:p@tcp(h:3)/'}\nfailover: {mode: sometimes}\n"), noEnv)
	if err == nil || !strings.Contains(err.Error(), `failover.mode: "sometimes"`) {
		t.Errorf("bad mode: %v", err)
	}
	cfg, err = Parse([]byte(base+"  - {name: db3, dsn: 'u:p@tcp(h:3)/'}\nfailover: {mode: auto, unreachable_after: 10s}\n"), noEnv)
	if err != nil || cfg.Failover.Mode != FailoverAuto || cfg.Failover.UnreachableAfter.D() != 10*time.Second {
		t.Fatalf("auto: %+v, %v", cfg.Failover, err)
	}
}
