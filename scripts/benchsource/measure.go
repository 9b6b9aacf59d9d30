package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/pipeline/service"
	"github.com/rowcast/rowcast/source"
)

// Stages measured on the same binlog range.
const (
	stageRaw      = "raw"      // go-mysql BinlogSyncer alone
	stageReader   = "reader"   // source.Reader with an emit that counts
	stagePipeline = "pipeline" // service.Publisher into a fresh topic, until Kafka acks
)

var stages = []string{stageRaw, stageReader, stagePipeline}

// result is one measurement.
type result struct {
	Workload, Stage string
	Rows            int           // row changes seen (an update is one)
	Took            time.Duration // from the start of the stage's Run to the end condition
	FirstRow        time.Duration // from the start to the first row (setup)
	CPU             cpuTimes      // CPU seconds of this process, mariadbd and Kafka
	PeakRSS         int64         // bytes; pipeline only
	PeakHeap        int64         // bytes of live heap objects, sampled; pipeline only
	ImageBytes      int64         // raw only: bytes of ROWS event bodies (row images)
	Messages        int64         // pipeline only: messages in the topic up to the last one acked
	Overshoot       uint64        // pipeline only: transactions after the span acked with its last one
	Restarts        int64         // pipeline only: binlog stream reconnections
	ValueBytes      int64         // pipeline only: key+value bytes produced until the end
	Produced        int64         // pipeline only: messages produced until the end
	Requests        uint64        // pipeline only: produce requests
	ProduceTime     time.Duration // pipeline only: time spent in produce requests (send, wait for acks; encoding and compression run ahead, outside)
}

func (r result) rate() float64 {
	if r.Took <= 0 {
		return 0
	}
	return float64(r.Rows) / r.Took.Seconds()
}

// serverIDs gives every binlog connection of this run its own server_id, so
// that none replaces another reader's connection on the shared master.
var serverIDs = func() *atomic.Uint32 {
	var a atomic.Uint32
	a.Store(0x42430000 | uint32(time.Now().UnixNano()&0xfff)<<4)
	return &a
}()

func nextServerID() uint32 { return serverIDs.Add(1) }

// measureRaw streams the span with go-mysql alone and counts the row changes
// of the bench table. The syncer is configured as source.Reader configures
// it (Reader.SyncerConfig), except that go-mysql decodes the rows events
// itself: this is go-mysql's raw decode rate, the baseline of the issue's
// goal; the reader's own decoder counts as the reader's work.
func measureRaw(ctx context.Context, o *options, m *master, sp span) (result, error) {
	res := result{Workload: sp.Name, Stage: stageRaw}
	set, err := mysql.ParseGTIDSet(m.flavor, sp.Start)
	if err != nil {
		return res, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	cpu0 := o.cpuNow()
	start := time.Now()
	cfg := source.NewReader(sourceConfig(o, m), zerolog.Nop()).SyncerConfig(m.flavor)
	// go-mysql's own rows-event decoding: the issue's "raw go-mysql decode
	// rate". The reader replaces part of it with its own decoder
	// (source/decode.go), which is the reader's work, measured in its stage.
	cfg.RowsEventDecodeFunc = nil
	syncer := replication.NewBinlogSyncer(cfg)
	defer syncer.Close()
	streamer, err := syncer.StartSyncGTID(set)
	if err != nil {
		return res, fmt.Errorf("raw: start binlog stream: %w", err)
	}
	var cur mysql.MariadbGTID
	bench := map[uint64]bool{}
	for {
		ev, err := streamer.GetEvent(ctx)
		if err != nil {
			return res, fmt.Errorf("raw: after %d rows: %w", res.Rows, err)
		}
		switch e := ev.Event.(type) {
		case *replication.MariadbGTIDEvent:
			cur = e.GTID
		case *replication.TableMapEvent:
			bench[e.TableID] = string(e.Schema) == m.name && string(e.Table) == benchTable
		case *replication.RowsEvent:
			if !bench[e.TableID] {
				continue
			}
			if res.Rows == 0 {
				res.FirstRow = time.Since(start)
			}
			n := len(e.Rows)
			switch ev.Header.EventType {
			case replication.UPDATE_ROWS_EVENTv0, replication.UPDATE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv2,
				replication.MARIADB_UPDATE_ROWS_COMPRESSED_EVENT_V1:
				n /= 2
			}
			res.Rows += n
			res.ImageBytes += int64(len(ev.RawData) - replication.EventHeaderSize)
		case *replication.XIDEvent:
			if cur == sp.Last {
				res.Took = time.Since(start)
				res.CPU = o.cpuNow().sub(cpu0)
				return res, nil
			}
		}
	}
}

// sourceConfig is the reader's config for the bench database only, so that
// other writes on the shared master are read but not counted or published.
func sourceConfig(o *options, m *master) source.Config {
	return source.Config{
		Addr: o.dbAddr, User: o.dbUser, Password: o.dbPassword, ServerID: nextServerID(),
		Flavor:      m.flavor,
		Include:     []string{"^" + regexp.QuoteMeta(m.name) + `\.`},
		EventBuffer: o.eventBuffer,
	}
}

// measureReader runs source.Reader over the span with an emit that counts.
func measureReader(ctx context.Context, o *options, m *master, sp span) (result, error) {
	res := result{Workload: sp.Name, Stage: stageReader}
	reader := source.NewReader(sourceConfig(o, m), zerolog.Nop())
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	done := false
	cpu0 := o.cpuNow()
	start := time.Now()
	err := reader.Run(rctx, source.Start{GTIDSet: sp.Start, NextTxnSeq: 1, Epoch: 1}, func(_ context.Context, ev *pipeline.Event) error {
		if done {
			// Events the reader had buffered keep coming until it sees
			// the cancellation: they are after the span.
			return nil
		}
		if ev.Kind == pipeline.KindRow {
			if res.Rows == 0 {
				res.FirstRow = time.Since(start)
			}
			res.Rows++
		}
		if ev.Pos.Last && ev.GTID == sp.LastText {
			res.Took = time.Since(start)
			res.CPU = o.cpuNow().sub(cpu0)
			done = true
			stop()
		}
		return nil
	})
	if done {
		return res, nil
	}
	if err == nil {
		err = errors.New("returned early")
	}
	return res, fmt.Errorf("reader: after %d rows: %w", res.Rows, err)
}

// measurePipeline runs the pipeline service from the span's start into a
// fresh topic (lz4, the other KafkaConfig defaults) and stops when Kafka has
// acknowledged the span's last transaction.
func measurePipeline(ctx context.Context, o *options, m *master, sp span, rep int) (result, error) {
	res := result{Workload: sp.Name, Stage: stagePipeline}
	kcfg := pipeline.KafkaConfig{Brokers: []string{o.kafka}, Topic: fmt.Sprintf("%s_%s_%d", m.name, sp.Name, rep),
		Compression: o.compression, MaxBatchBytes: o.maxBatchBytes}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	// The topic is created before the clock starts: creating it is not
	// publishing (Run then finds it and checks its layout).
	if _, err := pipeline.EnsureTopic(ctx, kcfg); err != nil {
		return res, fmt.Errorf("pipeline: create topic %s: %w", kcfg.Topic, err)
	}
	defer deleteTopic(o, kcfg.Topic)
	end, err := mysql.ParseMariadbGTIDSet(sp.LastText)
	if err != nil {
		return res, err
	}
	reg := prometheus.NewRegistry()
	metrics := service.NewMetrics(reg)
	pub := service.NewPublisher(service.PublisherConfig{Cluster: "bench", Kafka: kcfg, Source: sourceConfig(o, m), Start: sp.Start},
		zerolog.Nop(), metrics, nil)

	rctx, stop := context.WithCancel(ctx)
	defer stop()
	mem := startMemSampler()
	cpu0 := o.cpuNow()
	start := time.Now()
	runErr := make(chan error, 1)
	go func() { runErr <- pub.Run(rctx) }()

	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var seen *service.Acked
	var busy float64
	started := pub.Started()
	for {
		select {
		case err := <-runErr:
			mem.stop()
			if err == nil {
				err = errors.New("returned early")
			}
			return res, fmt.Errorf("pipeline: %w", err)
		case <-started:
			res.FirstRow = time.Since(start)
			started = nil
			continue
		case <-tick.C:
		}
		a := pub.Acked()
		if a == nil || a == seen {
			continue
		}
		seen = a
		set, err := mysql.ParseMariadbGTIDSet(a.GTIDSet)
		if err != nil {
			mem.stop()
			return res, fmt.Errorf("pipeline: acked GTID set %q: %w", a.GTIDSet, err)
		}
		if set.Contain(end) {
			res.Took = time.Since(start)
			res.CPU = o.cpuNow().sub(cpu0)
			res.Messages = a.Offset + 1
			// The ack that covers the span's last transaction may cover
			// the next workload's first ones too (one produce request).
			res.Overshoot = a.Pos.TxnSeq - uint64(sp.Txns)
			// Read before the shutdown, which drains what the reader
			// queued after the span.
			res.ValueBytes = counterValue(reg, "rowcast_kafka_bytes_total")
			res.Produced = counterValue(reg, "rowcast_kafka_messages_total")
			res.Requests, busy = histogram(reg, "rowcast_kafka_request_seconds")
			break
		}
	}
	res.PeakRSS, res.PeakHeap = mem.stop()
	stop()
	if err := <-runErr; err != nil && !errors.Is(err, context.Canceled) {
		return res, fmt.Errorf("pipeline: stop: %w", err)
	}
	res.Rows = sp.Rows
	res.Restarts = counterValue(reg, "rowcast_source_stream_restarts_total")
	res.ProduceTime = time.Duration(busy * float64(time.Second))
	return res, nil
}

func deleteTopic(o *options, topic string) {
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(o.kafka), Timeout: 30 * time.Second, Transport: tr}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	if err == nil {
		err = resp.Errors[topic]
	}
	if err != nil {
		o.logf("warning: delete topic %s: %v", topic, err)
	}
}
