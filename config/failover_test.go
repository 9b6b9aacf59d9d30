package config

import (
	"slices"
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

// observersBase is a cluster whose db2 has a sink http address, db3 none.
const observersBase = "cluster: c\nmaster: db1\nkafka: {brokers: ['k:9092']}\nhttp: '10.0.0.1:9464'\nnodes:\n" +
	"  - {name: db1, dsn: 'u:p@tcp(h:1)/'}\n  - {name: db2, dsn: 'u:p@tcp(h:2)/', http: '10.0.0.2:9464'}\n  - {name: db3, dsn: 'u:p@tcp(h:3)/'}\n"

func TestFailoverObservers(t *testing.T) {
	cfg, err := Parse([]byte(observersBase), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if f := cfg.Failover; len(f.Observers) != 0 || f.FenceCommand != "" || f.FenceCommandTimeout.D() != 30*time.Second {
		t.Fatalf("defaults %+v", f)
	}
	cfg, err = Parse([]byte(observersBase+"failover: {mode: auto, observers: [db2, '10.0.0.9:9470'], fence_command: 'stonith $ROWCAST_OLD_MASTER', fence_command_timeout: 5s}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := []Observer{{Name: "db2", Addr: "10.0.0.2:9464"}, {Name: "10.0.0.9:9470", Addr: "10.0.0.9:9470"}}
	if got := cfg.FailoverObservers(); !slices.Equal(got, want) {
		t.Fatalf("observers %+v, want %+v", got, want)
	}
	if cfg.Failover.FenceCommand != "stonith $ROWCAST_OLD_MASTER" || cfg.Failover.FenceCommandTimeout.D() != 5*time.Second {
		t.Fatalf("fence command %+v", cfg.Failover)
	}
}

func TestFailoverObserversInvalid(t *testing.T) {
	_, err := Parse([]byte(observersBase+"failover: {observers: [db3, nohost, '10.0.0.1:9464', db2, '10.0.0.2:9464'], fence_command_timeout: -1s}\n"), noEnv)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"failover.observers[0]: node db3 has no http address",
		`failover.observers[1]: "nohost" is neither a node name nor host:port`,
		"failover.observers[2]: 10.0.0.1:9464 is this config's own http address",
		"failover.observers[4]: 10.0.0.2:9464 is listed twice",
		"failover.fence_command_timeout: must be positive",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "failover.observers[3]") {
		t.Errorf("db2 (with an http address) refused: %v", err)
	}
}
