package main

import (
	"slices"
	"testing"
	"time"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/service"
)

func TestParseParallel(t *testing.T) {
	got, err := parseParallel("2, 1,4")
	if err != nil || !slices.Equal(got, []int{2, 1, 4}) {
		t.Fatalf("parseParallel = %v, %v; want [2 1 4]", got, err)
	}
	for _, bad := range []string{"", "0", "2,x", "-1"} {
		if _, err := parseParallel(bad); err == nil {
			t.Errorf("parseParallel(%q) accepted", bad)
		}
	}
}

func TestRowsOf(t *testing.T) {
	got := rowsOf(1001)
	if !slices.Equal(got, []int{500, 300, 201}) || sum(got) != 1001 {
		t.Fatalf("rowsOf(1001) = %v, want [500 300 201]", got)
	}
}

func TestCaughtUp(t *testing.T) {
	clone := func(floor int64) checkpoint.Bootstrap {
		return checkpoint.Bootstrap{Mode: checkpoint.ModeClone, FloorOffset: floor}
	}
	snap := checkpoint.Bootstrap{Mode: checkpoint.ModeSnapshot, FloorOffset: -1}
	for _, c := range []struct {
		name   string
		offset int64
		boots  map[string]checkpoint.Bootstrap
		want   bool
	}{
		{"at the target", 100, nil, true},
		{"behind", 99, nil, false},
		{"a snapshot loading", 100, map[string]checkpoint.Bootstrap{"d.t": snap}, false},
		{"clone floors behind", 100, map[string]checkpoint.Bootstrap{"d.t": clone(99), "d.u": clone(50)}, true},
		{"a clone floor ahead", 100, map[string]checkpoint.Bootstrap{"d.t": clone(100)}, false},
	} {
		if got := caughtUp(checkpoint.State{Offset: c.offset}, c.boots, 100); got != c.want {
			t.Errorf("%s: caughtUp = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSeriesValue(t *testing.T) {
	match := []string{`counter="rows_applied"`}
	for _, c := range []struct {
		line string
		want float64
	}{
		{`rowcast_sink_total{counter="rows_applied",replica="snap"} 1.5e+06`, 1.5e6},
		{`rowcast_sink_total{counter="commits",replica="snap"} 7`, 0},
		{`rowcast_sink_totals{counter="rows_applied"} 7`, 0},
		{`# HELP rowcast_sink_total Rows.`, 0},
	} {
		if got := seriesValue(c.line, "rowcast_sink_total", match); got != c.want {
			t.Errorf("seriesValue(%q) = %v, want %v", c.line, got, c.want)
		}
	}
	if got := seriesValue("go_goroutines 12", "go_goroutines", nil); got != 12 {
		t.Errorf("a series without labels: %v, want 12", got)
	}
}

func TestStatusDone(t *testing.T) {
	rep := service.StatusReport{Nodes: []service.ReplicaInfo{
		{Node: "snap", State: "caught-up"},
		{Node: "clone", State: "caught-up", Bootstrapping: []string{"d.t"}},
		{Node: "other", State: "behind"},
	}}
	if ok, _ := statusDone(rep, "snap", "clone"); ok {
		t.Fatal("a replica bootstrapping counted as done")
	}
	rep.Nodes[1].Bootstrapping = nil
	if ok, seen := statusDone(rep, "snap", "clone"); !ok {
		t.Fatalf("both caught up, not done: %s", seen)
	}
	if ok, _ := statusDone(rep, "snap", "missing"); ok {
		t.Fatal("a node missing from the report counted as done")
	}
}

func TestConfigText(t *testing.T) {
	o := &options{httpPort: 9491, dir: t.TempDir()}
	o.Kafka.Broker = "127.0.0.1:9092"
	b := newBench(o)
	_, cfg, err := b.writeConfig("t1")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Source.Start != "snapshot" || cfg.Kafka.Topic != "t1" || !slices.Equal(cfg.Replicas, []string{nodeSnap, nodeClone}) {
		t.Fatalf("config: start %q, topic %q, replicas %v", cfg.Source.Start, cfg.Kafka.Topic, cfg.Replicas)
	}
	if n, ok := cfg.Node(nodeClone); !ok || n.HTTP != "127.0.0.1:9493" || n.DSN != b.clone.dsn() {
		t.Fatalf("clone node %+v", n)
	}
}

func TestLastData(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ddl := &pipeline.Event{Kind: pipeline.KindDDL, Database: "d", Statement: "CREATE TABLE t (id INT)", GTID: "0-1-1", GTIDSet: "0-1-1",
		Flavor: "mariadb", ServerID: 1, CommitTime: at, Pos: pipeline.Position{Epoch: 1, TxnSeq: 1, Last: true}}
	hb := &pipeline.Event{Kind: pipeline.KindHeartbeat, GTIDSet: "0-1-1", Flavor: "mariadb", ServerID: 1, CommitTime: at,
		Pos: pipeline.Position{Epoch: 1, TxnSeq: 1, Last: true}}
	msgs := []changelog.Message{message(t, 10, ddl), message(t, 11, hb), message(t, 12, hb)}
	if off, ok := lastData(msgs, 13); !ok || off != 10 {
		t.Fatalf("lastData = %d, %v; want 10", off, ok)
	}
	if _, ok := lastData(msgs[1:], 13); ok {
		t.Fatal("heartbeats only: found data")
	}
	if off, ok := lastData(append(msgs, message(t, 13, ddl)), 13); !ok || off != 10 {
		t.Fatalf("a message at the upper bound counted: %d, %v", off, ok)
	}
}

// message encodes e as the record at offset.
func message(t *testing.T, offset int64, e *pipeline.Event) changelog.Message {
	t.Helper()
	var c pipeline.Codec
	key, err := c.AppendKey(nil, e)
	if err != nil {
		t.Fatal(err)
	}
	value, err := c.AppendValue(nil, e)
	if err != nil {
		t.Fatal(err)
	}
	return changelog.Message{Offset: offset, Key: key, Value: value}
}

func TestSnapSteps(t *testing.T) {
	got := snapSteps(40, 60, 4e6, 10_000_000)
	want := "all in the topic after 40.0 s, 40% of the rows applied then (100.0k rows/s); caught up 20.0 s later (300.0k rows/s)"
	if got != want {
		t.Fatalf("snapSteps =\n%s\nwant\n%s", got, want)
	}
}
