package config

import (
	"strings"
	"testing"

	"github.com/rowcast/rowcast/sink/clickhouse"
)

func TestClickHouseTargetConfig(t *testing.T) {
	cfg := parseComponents(t)
	got, err := cfg.ClickHouseTargetConfig("olap")
	if err != nil {
		t.Fatal(err)
	}
	if want := (clickhouse.Config{URL: "http://h3:8123/shop", Database: "book", Topic: "rowcast.shop"}); got != want {
		t.Fatalf("ClickHouseTargetConfig(olap):\n got %+v\nwant %+v", got, want)
	}
	if _, err := cfg.ClickHouseTargetConfig("db2"); err == nil || !strings.Contains(err.Error(), "not clickhouse") {
		t.Errorf("a mysql node: %v", err)
	}
	history := strings.Replace(componentsYAML, `dsn: "http://h3:8123/shop"}`, `dsn: "http://h3:8123/shop", history: true}`, 1)
	cfg, err = Parse([]byte(history), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := cfg.ClickHouseTargetConfig("olap"); !got.History {
		t.Error("history: true is not passed to the ClickHouse sink")
	}
}

func TestHistoryOnlyOnClickHouse(t *testing.T) {
	bad := strings.Replace(componentsYAML, `dsn: "rc:pw2@tcp(h2:3306)/"}`, `dsn: "rc:pw2@tcp(h2:3306)/", history: true}`, 1)
	_, err := Parse([]byte(bad), noEnv)
	if err == nil || !strings.Contains(err.Error(), "nodes[1] (db2).history: only a clickhouse node keeps history") {
		t.Fatalf("history on a mysql node: %v", err)
	}
}
