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

	"github.com/rowcast/rowcast/bench/internal/benchkit"
	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/service"
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
	CPU             benchkit.CPU  // CPU seconds of this process, mariadbd and Kafka (procMariaDB, procKafka)
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

// measureChecked measures one stage on a span, logs it and checks that it
// saw the whole span.
func measureChecked(ctx context.Context, o *options, m *master, sp span, stage string, rep int) (result, error) {
	r, err := measure(ctx, o, m, sp, stage, rep)
	if err != nil {
		return r, err
	}
	logf("%-6s %-8s run %d: %8d rows in %6.2fs = %7.0f rows/s (first row after %v; CPU s self %.1f mariadbd %.1f kafka %.1f others %.1f)",
		sp.Name, stage, rep+1, r.Rows, r.Took.Seconds(), r.rate(), r.FirstRow.Round(time.Millisecond),
		r.CPU.Self, r.CPU.Proc(procMariaDB), r.CPU.Proc(procKafka), r.CPU.Others())
	if r.Rows != sp.Rows {
		return r, fmt.Errorf("counted %d rows, the workload wrote %d", r.Rows, sp.Rows)
	}
	if stage == stagePipeline {
		return r, checkPipeline(r, sp, rep)
	}
	return r, nil
}

// checkPipeline logs what the pipeline's producer did and checks that the
// topic holds a message per row.
func checkPipeline(r result, sp span, rep int) error {
	logf("%-6s %-8s run %d: %d produce requests (%.0f messages each), in requests %.0f%% of the time",
		sp.Name, stagePipeline, rep+1, r.Requests, float64(r.Messages)/float64(max(1, r.Requests)), 100*r.ProduceTime.Seconds()/r.Took.Seconds())
	if r.Overshoot == 0 && r.Messages != int64(sp.Rows) {
		return fmt.Errorf("%d messages in the topic for %d rows", r.Messages, sp.Rows)
	}
	if r.Restarts > 0 {
		logf("warning: %s pipeline: the binlog stream was reopened %d times", sp.Name, r.Restarts)
	}
	return nil
}

// measure runs one stage, under a CPU profile for the first run when
// --cpuprofile asks for one.
func measure(ctx context.Context, o *options, m *master, sp span, stage string, rep int) (result, error) {
	if rep == 0 {
		stop, err := benchkit.StartCPUProfile(o.cpuProfile, stage+"-"+sp.Name+".pprof")
		if err != nil {
			return result{}, err
		}
		defer stop()
	}
	switch stage {
	case stageRaw:
		return measureRaw(ctx, o, m, sp)
	case stageReader:
		return measureReader(ctx, o, m, sp)
	default:
		return measurePipeline(ctx, o, m, sp, rep)
	}
}

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
	meter := o.cpuMeter()
	cpu0 := meter.Now()
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
	c := rawCounter{res: &res, schema: m.name, last: sp.Last, start: start, bench: map[uint64]bool{}}
	for {
		ev, err := streamer.GetEvent(ctx)
		if err != nil {
			return res, fmt.Errorf("raw: after %d rows: %w", res.Rows, err)
		}
		if c.event(ev) {
			res.Took = time.Since(start)
			res.CPU = meter.Now().Since(cpu0)
			return res, nil
		}
	}
}

// rawCounter counts the bench table's row changes in a binlog stream.
type rawCounter struct {
	res    *result
	schema string
	last   mysql.MariadbGTID // the span's last transaction
	start  time.Time
	cur    mysql.MariadbGTID
	bench  map[uint64]bool // table ids of the bench table
}

// event counts ev; it reports the end of the span's last transaction.
func (c *rawCounter) event(ev *replication.BinlogEvent) bool {
	switch e := ev.Event.(type) {
	case *replication.MariadbGTIDEvent:
		c.cur = e.GTID
	case *replication.TableMapEvent:
		c.bench[e.TableID] = string(e.Schema) == c.schema && string(e.Table) == benchTable
	case *replication.RowsEvent:
		if c.bench[e.TableID] {
			c.rows(ev, e)
		}
	case *replication.XIDEvent:
		return c.cur == c.last
	}
	return false
}

// rows counts a rows event of the bench table: an update is one change of
// two images.
func (c *rawCounter) rows(ev *replication.BinlogEvent, e *replication.RowsEvent) {
	if c.res.Rows == 0 {
		c.res.FirstRow = time.Since(c.start)
	}
	n := len(e.Rows)
	switch ev.Header.EventType {
	case replication.UPDATE_ROWS_EVENTv0, replication.UPDATE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv2,
		replication.MARIADB_UPDATE_ROWS_COMPRESSED_EVENT_V1:
		n /= 2
	}
	c.res.Rows += n
	c.res.ImageBytes += int64(len(ev.RawData) - replication.EventHeaderSize)
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
	meter := o.cpuMeter()
	cpu0 := meter.Now()
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
			res.CPU = meter.Now().Since(cpu0)
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
	kcfg := changelog.Config{Brokers: []string{o.Kafka.Broker}, Topic: fmt.Sprintf("%s_%s_%d", m.name, sp.Name, rep),
		Compression: o.compression, MaxBatchBytes: o.maxBatchBytes}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	// The topic is created before the clock starts: creating it is not
	// publishing (Run then finds it and checks its layout).
	if _, err := changelog.EnsureTopic(ctx, kcfg); err != nil {
		return res, fmt.Errorf("pipeline: create topic %s: %w", kcfg.Topic, err)
	}
	defer deleteTopic(o, kcfg.Topic)
	end, err := mysql.ParseMariadbGTIDSet(sp.LastText)
	if err != nil {
		return res, err
	}
	reg := prometheus.NewRegistry()
	pub := service.NewPublisher(service.PublisherConfig{Cluster: "bench", Kafka: kcfg, Source: sourceConfig(o, m), Start: sp.Start},
		zerolog.Nop(), service.NewMetrics(reg), nil)
	p := &pipelineRun{pub: pub, reg: reg, end: end, res: &res, meter: o.cpuMeter()}
	if err := p.run(ctx); err != nil {
		return res, fmt.Errorf("pipeline: %w", err)
	}
	res.Rows = sp.Rows
	// The ack that covers the span's last transaction may cover the next
	// workload's first ones too (one produce request).
	res.Overshoot = p.acked.Pos.TxnSeq - uint64(sp.Txns)
	return res, nil
}

// pipelineRun is one timed run of the pipeline service.
type pipelineRun struct {
	pub   *service.Publisher
	reg   *prometheus.Registry
	end   mysql.GTIDSet // the span's last transaction
	res   *result
	meter *benchkit.CPUMeter
	acked *service.Acked // the first ack that covers end
}

// run runs the publisher until Kafka acknowledged end, and stops it.
func (p *pipelineRun) run(ctx context.Context) error {
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	mem := benchkit.StartSelfMemory()
	cpu0 := p.meter.Now()
	start := time.Now()
	runErr := make(chan error, 1)
	go func() { runErr <- p.pub.Run(rctx) }()
	err := p.waitAcked(start, runErr)
	p.res.Took = time.Since(start)
	p.res.CPU = p.meter.Now().Since(cpu0)
	p.res.PeakRSS, p.res.PeakHeap = mem.Stop()
	if err != nil {
		return err
	}
	// Read before the shutdown, which drains what the reader queued after
	// the span.
	p.res.Messages = p.acked.Offset + 1
	p.res.ValueBytes = int64(benchkit.CounterSum(p.reg, "rowcast_kafka_bytes_total", "op", "produce"))
	p.res.Produced = int64(benchkit.CounterSum(p.reg, "rowcast_kafka_messages_total", "op", "produce"))
	requests, busy := benchkit.HistogramSum(p.reg, "rowcast_kafka_request_seconds", "op", "produce")
	stop()
	if err := <-runErr; err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("stop: %w", err)
	}
	p.res.Requests, p.res.ProduceTime = requests, time.Duration(busy*float64(time.Second))
	p.res.Restarts = int64(benchkit.CounterSum(p.reg, "rowcast_source_stream_restarts_total", "op", "produce"))
	return nil
}

// waitAcked polls the publisher's acknowledged position every millisecond
// until it covers end; it notes the first row's time on the way.
func (p *pipelineRun) waitAcked(start time.Time, runErr <-chan error) error {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	started := p.pub.Started()
	for {
		select {
		case err := <-runErr:
			if err == nil {
				err = errors.New("returned early")
			}
			return err
		case <-started:
			p.res.FirstRow = time.Since(start)
			started = nil
			continue
		case <-tick.C:
		}
		done, err := p.covered()
		if done || err != nil {
			return err
		}
	}
}

// covered reports whether the publisher's newest ack covers end.
func (p *pipelineRun) covered() (bool, error) {
	a := p.pub.Acked()
	if a == nil || a == p.acked {
		return false, nil
	}
	set, err := mysql.ParseMariadbGTIDSet(a.GTIDSet)
	if err != nil {
		return false, fmt.Errorf("acked GTID set %q: %w", a.GTIDSet, err)
	}
	p.acked = a
	return set.Contain(p.end), nil
}

func deleteTopic(o *options, topic string) {
	if err := benchkit.DeleteTopics(o.Kafka.Broker, topic); err != nil {
		logf("warning: delete topic %s: %v", topic, err)
	}
}
