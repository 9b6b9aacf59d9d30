package service

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/source"
)

func TestFilesAhead(t *testing.T) {
	files := []source.BinlogFile{{Name: "b.000007", Size: 100}, {Name: "b.000008", Size: 200}, {Name: "b.000009", Size: 50}}
	cases := []struct {
		at    binlogAt
		n     int
		bytes int64
		found bool
	}{
		{binlogAt{file: "b.000007"}, 0, 0, true},
		{binlogAt{file: "b.000008"}, 1, 100, true},
		{binlogAt{file: "b.000007", end: true}, 2, 300, true}, // idle at the end: the newest file
		{binlogAt{file: "b.000003"}, 0, 0, false},             // purged
	}
	for _, c := range cases {
		n, bytes, found := filesAhead(files, c.at)
		if n != c.n || bytes != c.bytes || found != c.found {
			t.Errorf("%+v: %d files, %d bytes, found %v; want %d, %d, %v", c.at, n, bytes, found, c.n, c.bytes, c.found)
		}
	}
}

// The purge margin as the reader's poll of the real master reads it.
func TestPollPurgeOnMaster(t *testing.T) {
	testenv.Need(t, testenv.Master)
	ctx := context.Background()
	files, err := listBinlogs(ctx, testenv.DB(t, testenv.Master))
	if err != nil || len(files) == 0 {
		t.Fatalf("SHOW BINARY LOGS: %v, %d files", err, len(files))
	}
	p := NewPublisher(PublisherConfig{Epoch: 3}, zerolog.Nop(), nil, nil)
	db, err := openMaster(source.Config{Addr: testenv.Addr(testenv.Master), User: "root"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	newest := files[len(files)-1]
	var before int64
	for _, f := range files[:len(files)-1] {
		before += f.Size
	}
	for _, step := range []struct {
		what   string
		move   func()
		files  float64
		bytes  float64
		behind float64
	}{
		{"reading the newest file", func() { p.binlog.event(newest.Name) }, float64(len(files) - 1), float64(before), 0},
		{"idle at the end", p.binlog.idle, float64(len(files) - 1), float64(before), 0},
		{"reading the oldest file", func() { p.binlog.event(files[0].Name) }, 0, 0, float64(len(files) - 1)},
		{"reading a purged file", func() { p.binlog.event("gone-bin.000001") }, -1, 0, float64(len(files))},
		{"another master, nothing read yet", p.binlog.reset, -1, 0, float64(len(files))}, // unchanged
	} {
		step.move()
		p.pollPurge(ctx, db)
		m := p.metrics.purge
		if got := value(t, m.filesAhead); got != step.files {
			t.Errorf("%s: files ahead of purge %v, want %v", step.what, got, step.files)
		}
		if got := value(t, m.bytesAhead); got != step.bytes {
			t.Errorf("%s: bytes ahead of purge %v, want %v", step.what, got, step.bytes)
		}
		if got := value(t, m.behind); got != step.behind {
			t.Errorf("%s: files behind %v, want %v", step.what, got, step.behind)
		}
		if value(t, m.reachable) != 1 || value(t, m.epoch) != 3 {
			t.Errorf("%s: master reachable %v, epoch %v; want 1, 3", step.what, value(t, m.reachable), value(t, m.epoch))
		}
	}
}

// A master that does not answer shows as unreachable.
func TestPollPurgeUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := NewPublisher(PublisherConfig{}, zerolog.Nop(), nil, nil)
	p.metrics.purge.reachable.WithLabelValues().Set(1)
	db, err := openMaster(source.Config{Addr: addr, User: "root"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p.pollPurge(context.Background(), db)
	if got := value(t, p.metrics.purge.reachable); got != 0 {
		t.Errorf("master reachable %v with nothing listening at %s, want 0", got, addr)
	}
}

// The retention margin of a replica against a real topic's earliest offset.
func TestRetentionMargin(t *testing.T) {
	testenv.Need(t, "kafka")
	topic := testenv.CreateTopic(t, 1)
	kc := changelog.Config{Brokers: testenv.KafkaBrokers(), Topic: topic, Retention: 2 * time.Hour}
	m := NewSinkMetrics(nil, nil)
	w := retentionWatch{kc: kc, replica: "r1", m: m.retention}
	w.observe(context.Background(), sink.Status{Offset: 7, SourceTime: time.Now().Add(-time.Hour)})
	if got := value(t, m.retention.offsets.WithLabelValues("r1")); got != 7 {
		t.Errorf("offset margin %v, want 7 (the topic starts at 0)", got)
	}
	got := value(t, m.retention.seconds.WithLabelValues("r1"))
	if got < 3590 || got > 3600 {
		t.Errorf("seconds margin %v, want about 3600 (2h retention, position 1h old)", got)
	}
	// Until the next poll, the margin stays as it was read.
	w.observe(context.Background(), sink.Status{Offset: 9})
	if got := value(t, m.retention.offsets.WithLabelValues("r1")); got != 7 {
		t.Errorf("offset margin %v before the next poll, want 7", got)
	}
}

// value is the value of a collector's one gauge.
func value(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("gather: %v, %d families", err, len(mfs))
	}
	return mfs[0].GetMetric()[0].GetGauge().GetValue()
}

// A process without a reader (rowcast sink registers the pipeline's metrics
// for its Kafka counters) exports no reader's master series: no false alert.
func TestNoMasterSeriesWithoutReader(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	NewSinkMetrics(reg, NewMetrics(reg))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "rowcast_source_epoch", "rowcast_source_master_reachable", "rowcast_source_binlog_files_ahead_of_purge", "rowcast_source_binlog_files_behind":
			t.Errorf("%s exported before any reader polled its master", mf.GetName())
		}
	}
}
