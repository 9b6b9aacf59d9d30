package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/service"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/mysql"
	"github.com/rowcast/rowcast/source"
)

// rowcastSide is rowcast's path to the sink's target: the pipeline service
// (in this process) publishes the workloads to a fresh topic while they are
// written; then a sink worker, built exactly as `rowcast sink` builds it
// (service.NewSinkWorker from a config), is timed applying each workload from
// the ready topic.
type rowcastSide struct {
	b      *bench
	target *server
	cfg    *config.Config

	pub     *service.Publisher
	stopPub context.CancelFunc
	pubErr  chan error
}

// benchConfig is the rowcast config of the bench nodes: master m, replica
// target. http is the pipeline's metrics address ("off" for none).
func (b *bench) benchConfig(topic, start, http, targetHTTP string) (*config.Config, string, error) {
	y := fmt.Sprintf(`cluster: bench
master: m
nodes:
  - name: m
    dsn: root@tcp(%s)/
  - name: target
    dsn: root@tcp(%s)/
    http: %q
replicas: [target]
kafka:
  brokers: [%q]
  topic: %s
source:
  server_id: %d
  start: %q
  heartbeat_interval: 1s
sink:
  protect_replicas: false
`, b.master.addr(), b.target.addr(), targetHTTP, b.o.Kafka.Broker, topic, 4000+time.Now().UnixNano()%1000, start)
	if b.o.maxBatchRows > 0 {
		y += fmt.Sprintf("  max_batch_rows: %d\n", b.o.maxBatchRows)
	}
	if b.o.maxTxnMerge > 0 {
		y += fmt.Sprintf("  max_txn_merge: %d\n", b.o.maxTxnMerge)
	}
	y += fmt.Sprintf("http: %q\n", http)
	cfg, err := config.Parse([]byte(y), func(string) (string, bool) { return "", false })
	return cfg, y, err
}

func (r *rowcastSide) startPublisher(ctx context.Context, topic, start string) error {
	cfg, _, err := r.b.benchConfig(topic, start, "off", "")
	if err != nil {
		return err
	}
	r.cfg = cfg
	r.b.cond.MaxBatchRows, r.b.cond.MaxTxnMerge = cfg.Sink.MaxBatchRows, cfg.Sink.MaxTxnMerge
	kc := cfg.ChangelogConfig()
	if _, err := changelog.EnsureTopic(ctx, kc); err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	r.pub = service.NewPublisher(service.PublisherConfig{Cluster: cfg.Cluster, Kafka: kc,
		Source: sourceConfigOf(cfg), Start: start, HeartbeatInterval: time.Second}, warnLogger("pipeline"), nil, nil)
	pctx, cancel := context.WithCancel(ctx)
	r.stopPub = cancel
	r.pubErr = make(chan error, 1)
	go func() { r.pubErr <- r.pub.Run(pctx) }()
	return nil
}

func (r *rowcastSide) stopPublisher() {
	if r.stopPub == nil {
		return
	}
	r.stopPub()
	if err := <-r.pubErr; err != nil && !errors.Is(err, context.Canceled) {
		logf("warning: pipeline stopped with %v", err)
	}
	r.stopPub = nil
}

// waitPublished waits until Kafka acknowledged the span's last transaction.
func (r *rowcastSide) waitPublished(ctx context.Context, sp span, limit time.Duration) (*service.Acked, error) {
	deadline := time.Now().Add(limit)
	for {
		select {
		case err := <-r.pubErr:
			return nil, fmt.Errorf("pipeline stopped: %v", err)
		default:
		}
		if a := r.pub.Acked(); a != nil && containsGTIDs(a.GTIDSet, sp.end) {
			return a, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("pipeline has not published %s after %v", sp.End, limit)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// apply times a fresh sink worker from Run until its committed checkpoint
// holds the span's end.
func (r *rowcastSide) apply(ctx context.Context, sp span) (result, error) {
	res := result{Workload: sp.Name, Side: sideRowcast, Rows: sp.Rows, Txns: sp.Txns()}
	reg := prometheus.NewRegistry()
	w, closeIn, err := r.newWorker(service.NewSinkMetrics(reg, nil))
	if err != nil {
		return res, err
	}
	defer closeIn()
	stopProfiles, err := r.b.startProfiles(sp.Name)
	if err != nil {
		return res, err
	}
	defer stopProfiles()
	st0, err := r.target.status(ctx)
	if err != nil {
		return res, err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	meter := r.b.cpuMeter(r.target)
	cpu0 := meter.Now()
	t0 := time.Now()
	go func() { runErr <- w.Run(wctx) }()
	if err := r.waitApplied(ctx, w, sp, runErr); err != nil {
		return res, err
	}
	res.Took = time.Since(t0)
	res.CPU = meter.Now().Since(cpu0)
	cancel()
	if err := <-runErr; err != nil {
		return res, err
	}
	st1, err := r.target.status(ctx)
	if err != nil {
		return res, err
	}
	res.Server = statusDelta(st0, st1)
	res.SinkCommits = benchkit.CounterSum(reg, "rowcast_sink_total", "counter", "commits")
	return res, nil
}

// startProfiles starts the CPU and heap profiles of a rowcast apply that
// --cpuprofile and --memprofile ask for.
func (b *bench) startProfiles(workload string) (stop func(), err error) {
	stopCPU, err := benchkit.StartCPUProfile(b.o.cpuProfile, "sink-"+workload+".pprof")
	if err != nil {
		return nil, err
	}
	if b.o.memProfile == "" {
		return stopCPU, nil
	}
	stopHeap := benchkit.StartHeapProfiler(filepath.Join(b.o.memProfile, "sink-"+workload+".heap"))
	return func() { stopHeap(); stopCPU() }, nil
}

// waitApplied polls the worker's status every millisecond until its
// checkpoint holds the span's end.
func (r *rowcastSide) waitApplied(ctx context.Context, w *sink.Worker, sp span, runErr <-chan error) error {
	t0 := time.Now()
	var seq uint64
	for {
		select {
		case err := <-runErr:
			return fmt.Errorf("sink worker stopped: %v", err)
		default:
		}
		st := w.Status()
		if st.TxnSeq != seq {
			seq = st.TxnSeq
			if containsGTIDs(st.GTIDSet, sp.end) {
				return nil
			}
		}
		if time.Since(t0) > r.b.o.timeout {
			return fmt.Errorf("sink worker at %s after %v, want %s", st.GTIDSet, r.b.o.timeout, sp.End)
		}
		if err := sleep(ctx, time.Millisecond); err != nil {
			return err
		}
	}
}

// sourceConfigOf is the reader config `rowcast pipeline` builds
// (cmd/rowcast/wiring.go).
func sourceConfigOf(cfg *config.Config) source.Config {
	n, _ := cfg.Node(cfg.Master)
	mc, _ := n.MySQLConfig()
	return source.Config{Addr: mc.Addr, User: mc.User, Password: mc.Passwd, ServerID: cfg.Source.ServerID,
		Include: cfg.Source.Include, Exclude: cfg.Source.Exclude, BookkeepingSchema: cfg.Sink.BookkeepingSchema}
}

// warnLogger logs warnings and errors of an in-process component to stderr.
func warnLogger(component string) zerolog.Logger {
	return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05"}).Level(zerolog.WarnLevel).
		With().Timestamp().Str("component", component).Logger()
}

// newWorker builds the sink worker as `rowcast sink` does
// (service.NewSinkWorker), or, with --no-load-data / --no-binlog, the same
// worker with a target that never uses LOAD DATA / row events (comparisons).
func (r *rowcastSide) newWorker(m *service.SinkMetrics) (*sink.Worker, func(), error) {
	o := r.b.o
	if !o.noLoadData && !o.noBinlog && !o.syncDecode {
		return service.NewSinkWorker(r.cfg, "target", service.SinkOptions{}, warnLogger("sink"), m)
	}
	n, _ := r.cfg.Node("target")
	kc := r.cfg.ChangelogConfig()
	tgt, err := mysql.New(mysql.Config{DSN: n.DSN, Schema: r.cfg.Sink.BookkeepingSchema, Topic: kc.Topic, NoLoadData: o.noLoadData, NoBinlog: o.noBinlog}, warnLogger("sink"))
	if err != nil {
		return nil, nil, err
	}
	codec := &pipeline.Codec{Cluster: r.cfg.Cluster}
	var in interface {
		sink.Input
		Close() error
	} = sink.NewKafkaInput(kc, codec, warnLogger("sink"), nil)
	if o.syncDecode {
		in = &syncInput{cfg: kc, codec: codec}
	}
	return sink.NewWorker(r.cfg.WorkerConfig(), tgt, in, warnLogger("sink"), m.For("target")), func() { in.Close() }, nil
}

// syncInput is sink.KafkaInput as it was before it decoded ahead: the
// worker's goroutine decodes each message in Next (--sync-decode, for
// comparisons).
type syncInput struct {
	cfg   changelog.Config
	codec *pipeline.Codec
	c     *changelog.Consumer
}

func (k *syncInput) SeekTo(offset int64) error {
	k.Close()
	c, err := changelog.NewConsumer(k.cfg, offset, zerolog.Nop(), nil)
	k.c = c
	return err
}

func (k *syncInput) Next(ctx context.Context) (sink.Message, error) {
	m, err := k.c.Next(ctx)
	if err != nil {
		return sink.Message{}, err
	}
	msg := sink.Message{Offset: m.Offset, Size: len(m.Key) + len(m.Value)}
	msg.Event, msg.Err = k.codec.Decode(m.Key, m.Value)
	return msg, nil
}

func (k *syncInput) Buffered() int {
	if k.c == nil {
		return 0
	}
	return int(max(k.c.HighWatermark()-k.c.Offset(), 0))
}

func (k *syncInput) Close() error {
	if k.c != nil {
		k.c.Close()
		k.c = nil
	}
	return nil
}
