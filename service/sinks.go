package service

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/failover"
	"github.com/rowcast/rowcast/internal/mysqlerr"
	"github.com/rowcast/rowcast/internal/obs"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/clickhouse"
	"github.com/rowcast/rowcast/sink/mysql"
	"github.com/rowcast/rowcast/source"
	"github.com/rowcast/rowcast/verify"
)

// SinkMetrics are the sink workers' Prometheus metrics, labelled by replica.
type SinkMetrics struct {
	counters *prometheus.CounterVec
	errors   *prometheus.CounterVec
	offset   *prometheus.GaugeVec
	lagSec   *prometheus.GaugeVec
	lagOff   *prometheus.GaugeVec
	stopped  *prometheus.GaugeVec
	readOnly *prometheus.GaugeVec
	kafka    *Metrics

	// lastVerify is each replica's continuous verification so far.
	lastVerify map[string]VerifyReport
	// readOnlyOf reports each replica's read_only as its target last saw it.
	mu         sync.Mutex
	readOnlyOf map[string]func() (on, known bool)
	// insertsOf counts a ClickHouse target's inserts; insertsSeen is the
	// count already added to the metric.
	inserts     *prometheus.CounterVec
	insertsOf   map[string]func() int64
	insertsSeen map[string]int64

	verifyRows, verifyDiffs *prometheus.CounterVec

	retention retentionMetrics
}

// NewSinkMetrics creates the metrics and registers them with reg (nil: none).
// kafka, when not nil, receives the consumers' Kafka metrics.
func NewSinkMetrics(reg prometheus.Registerer, kafka *Metrics) *SinkMetrics {
	m := &SinkMetrics{
		counters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rowcast_sink_total",
			Help: "Sink worker counters: rows_applied, txns_applied, commits, retries, old_epoch_ignored, duplicates_skipped, offsets_skipped, txns_abandoned, messages_refused, other_origin_skipped (master-master)."},
			[]string{"replica", "counter"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rowcast_sink_errors_total",
			Help: "Sink worker errors by kind (transient, malformed, gap, row_missing, conflict, target, ...)."}, []string{"replica", "kind"}),
		offset: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rowcast_sink_applied_offset",
			Help: "Last topic offset applied and committed on the replica."}, []string{"replica"}),
		lagSec: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rowcast_sink_lag_seconds",
			Help: "Now minus the master commit time (or heartbeat) of the last applied transaction."}, []string{"replica"}),
		lagOff: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rowcast_sink_lag_offsets",
			Help: "Topic end offset minus the next offset the replica will apply."}, []string{"replica"}),
		stopped: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rowcast_sink_stopped",
			Help: "1 when the replica's sink worker stopped for an error that needs a human (it stays stopped), 0 while it runs."}, []string{"replica"}),
		readOnly: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rowcast_sink_replica_read_only",
			Help: "The replica's read_only as its sink worker last read it (at each connect, and every 10s after a commit): 1 ON, 0 OFF."}, []string{"replica"}),
		kafka:      kafka,
		readOnlyOf: map[string]func() (bool, bool){},
		lastVerify: map[string]VerifyReport{},
		inserts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rowcast_sink_clickhouse_inserts_total",
			Help: "Native-format inserts a ClickHouse replica's sink made (each of many rows, across transactions)."}, []string{"replica"}),
		insertsOf:   map[string]func() int64{},
		insertsSeen: map[string]int64{},
		verifyRows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rowcast_verify_rows_total",
			Help: "Rows compared with the master by continuous verification (verify.interval)."}, []string{"replica"}),
		verifyDiffs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rowcast_verify_differences_total",
			Help: "Rows found different from the master by continuous verification, confirmed with the replica past the master's position."}, []string{"replica"}),
		retention: newRetentionMetrics(),
	}
	if reg != nil {
		reg.MustRegister(m.counters, m.errors, m.offset, m.lagSec, m.lagOff, m.stopped, m.readOnly, m.verifyRows, m.verifyDiffs, m.inserts)
		reg.MustRegister(m.retention.collectors()...)
	}
	return m
}

// trackReadOnly makes observeReadOnly report state for replica.
func (m *SinkMetrics) trackReadOnly(replica string, state func() (on, known bool)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.readOnlyOf[replica] = state
}

// observeReadOnly sets rowcast_sink_replica_read_only from the replica's
// target, once it has read it.
func (m *SinkMetrics) observeReadOnly(replica string) {
	m.mu.Lock()
	state := m.readOnlyOf[replica]
	m.mu.Unlock()
	if state == nil {
		return
	}
	if on, known := state(); known {
		m.readOnly.WithLabelValues(replica).Set(map[bool]float64{true: 1, false: 0}[on])
	}
}

// trackInserts makes observeInserts count a ClickHouse replica's inserts.
func (m *SinkMetrics) trackInserts(replica string, count func() int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.insertsOf[replica], m.insertsSeen[replica] = count, 0
}

// observeInserts adds the inserts made since the last observation.
func (m *SinkMetrics) observeInserts(replica string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	count := m.insertsOf[replica]
	if count == nil {
		return
	}
	n := count()
	if n > m.insertsSeen[replica] {
		m.inserts.WithLabelValues(replica).Add(float64(n - m.insertsSeen[replica]))
	}
	m.insertsSeen[replica] = n
}

// For returns the sink.Metrics of one replica.
func (m *SinkMetrics) For(replica string) sink.Metrics { return replicaMetrics{m, replica} }

type replicaMetrics struct {
	m       *SinkMetrics
	replica string
}

var _ sink.Metrics = replicaMetrics{}

func (r replicaMetrics) Add(c sink.Counter, n int) {
	r.m.counters.WithLabelValues(r.replica, c.String()).Add(float64(n))
}
func (r replicaMetrics) Error(kind string) { r.m.errors.WithLabelValues(r.replica, kind).Inc() }
func (r replicaMetrics) Applied(offset int64, lag time.Duration) {
	r.m.offset.WithLabelValues(r.replica).Set(float64(offset))
	r.m.lagSec.WithLabelValues(r.replica).Set(lag.Seconds())
}

// SinkOptions are the operator's flags of `rowcast sink` and `rowcast replay`.
type SinkOptions struct {
	// SkipOffsets are messages to skip on purpose (recorded on the replica).
	SkipOffsets []int64
	// StartOffset is where a replica without a checkpoint starts.
	StartOffset int64
	// StopOffset, when > 0, stops the worker at the first transaction
	// boundary at or after it (a replay's end).
	StopOffset int64
	// Replicas are the nodes a worker may apply to; default cfg.Replicas.
	// After a promotion, failover.Replicas of the current master.
	Replicas []string
	// StopWhenPromoted makes an epoch record that names this replica the new
	// master stop its worker (sink.WorkerConfig.Node).
	StopWhenPromoted bool
	// AdoptDomains: sink.WorkerConfig.AdoptDomains (master-master).
	AdoptDomains []uint32
}

// NewSinkWorker builds the worker of one replica from the config file.
func NewSinkWorker(cfg *config.Config, replica string, opts SinkOptions, log zerolog.Logger, metrics *SinkMetrics) (*sink.Worker, func(), error) {
	if err := checkSinkReplica(cfg, replica, opts.Replicas); err != nil {
		return nil, nil, err
	}
	if err := checkAdopt(cfg, opts.AdoptDomains); err != nil {
		return nil, nil, err
	}
	log = log.With().Str("replica", replica).Logger()
	if metrics == nil {
		metrics = NewSinkMetrics(nil, nil)
	}
	target, err := newTarget(cfg, replica, log, metrics)
	if err != nil {
		return nil, nil, fmt.Errorf("replica %s: %w", replica, err)
	}
	in := sink.NewKafkaInput(cfg.SinkChangelogConfig(), &pipeline.Codec{Cluster: cfg.Cluster}, log, metrics.kafkaMetrics())
	w := sink.NewWorker(opts.workerConfig(cfg, replica), target, in, log, metrics.For(replica))
	return w, func() { in.Close() }, nil
}

// newTarget is the sink.Target of replica's kind.
func newTarget(cfg *config.Config, replica string, log zerolog.Logger, metrics *SinkMetrics) (sink.Target, error) {
	if n, _ := cfg.Node(replica); n.Kind == config.KindClickHouse {
		cc, err := cfg.ClickHouseTargetConfig(replica)
		if err != nil {
			return nil, err
		}
		target, err := clickhouse.New(cc, log)
		if err != nil {
			return nil, err
		}
		metrics.trackInserts(replica, target.Inserts)
		return target, nil
	}
	tc, err := cfg.TargetConfig(replica)
	if err != nil {
		return nil, err
	}
	tc.KeepDigests = true
	target, err := mysql.New(tc, log)
	if err != nil {
		return nil, err
	}
	metrics.trackReadOnly(replica, target.ReadOnlyState)
	return target, nil
}

// checkAdopt refuses to adopt a domain of a master-master set's masters:
// their transactions come from their own topics.
func checkAdopt(cfg *config.Config, domains []uint32) error {
	if len(domains) > 0 && !cfg.MasterMaster() {
		return fmt.Errorf("--adopt-domain is for the units of a master-master topology")
	}
	for _, d := range domains {
		if slices.Contains(cfg.MasterDomains(), d) {
			return fmt.Errorf("--adopt-domain %d: that is a master's gtid_domain_id (masters' domains %v); adopt only the domain a master wrote under by mistake", d, cfg.MasterDomains())
		}
	}
	return nil
}

// checkSinkReplica refuses a node that is not a replica (of cfg.Replicas, or
// of replicas when set) or whose kind has no sink.
func checkSinkReplica(cfg *config.Config, replica string, replicas []string) error {
	n, ok := cfg.Node(replica)
	if !ok {
		return fmt.Errorf("replica %q is not a node of the config; use one of %v", replica, cfg.Replicas)
	}
	if replicas == nil {
		replicas = cfg.Replicas
	}
	if !slices.Contains(replicas, replica) {
		return fmt.Errorf("node %q is not a replica (replicas %v)", replica, replicas)
	}
	if n.Kind != config.KindMySQL && n.Kind != config.KindClickHouse {
		return fmt.Errorf("replica %s is a %s node: no sink applies to that kind; use mysql or clickhouse", replica, n.Kind)
	}
	return nil
}

// workerConfig is the sink section's worker config with the operator's
// options.
func (o SinkOptions) workerConfig(cfg *config.Config, replica string) sink.WorkerConfig {
	wc := cfg.WorkerConfig()
	wc.Epochs = epochIndex{cfg: cfg, timeout: 5 * time.Second}
	wc.SkipOffsets = o.SkipOffsets
	wc.StartOffset = o.StartOffset
	wc.StopOffset = o.StopOffset
	if o.StopWhenPromoted {
		wc.Node = replica
	}
	if cfg.Versioned() {
		wc.Versions = cfg.Sink.BookkeepingSchema + "." + source.VersionsTable
	}
	if d, ok := cfg.OriginDomain(replica); ok {
		wc.OriginDomain = &d
		wc.MasterDomains = cfg.MasterDomains()
		wc.AdoptDomains = o.AdoptDomains
	}
	return wc
}

// kafkaMetrics is where the consumers' Kafka metrics go (nil: nowhere).
func (m *SinkMetrics) kafkaMetrics() changelog.Metrics {
	if m.kafka == nil {
		return nil
	}
	return m.kafka.kafka()
}

// watchSink reports a worker's state to health and its lag in offsets to the
// metrics, every second, until ctx ends.
func watchSink(ctx context.Context, cfg *config.Config, replica string, w *sink.Worker, health *obs.Health, m *SinkMetrics) {
	kc := cfg.ChangelogConfig()
	ret := retentionWatch{kc: kc, replica: replica, m: m.retention}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		st := w.Status()
		health.Set("sink/"+replica, workerReport(st).healthErr())
		m.observeReadOnly(replica)
		m.observeInserts(replica)
		ret.observe(ctx, st)
		if end, err := changelog.EndOffset(ctx, kc); err == nil && st.Offset >= 0 {
			m.lagOff.WithLabelValues(replica).Set(float64(max(0, end-st.Offset)))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SinkRoles looks up the current master and returns the options a sink
// worker of replica runs with: the replicas of that master, and a stop when
// an epoch record promotes replica. It refuses the current master, and an
// old master that has not rejoined (no checkpoint for the topic).
func SinkRoles(ctx context.Context, cfg *config.Config, replica string, opts SinkOptions, log zerolog.Logger) (SinkOptions, error) {
	kc := cfg.ChangelogConfig()
	cur, err := failover.NewLocator(cfg, kc, log).Current(ctx)
	if err != nil {
		return opts, fmt.Errorf("look up the current master: %w", err)
	}
	if replica == cur.Master {
		return opts, fmt.Errorf("%s is the current master (epoch %d, %s): it takes writes and has no sink worker; "+
			"to make it a replica again, promote another node and run `rowcast rejoin --node %s`", replica, cur.Epoch, cur.From, replica)
	}
	opts.Replicas = failover.Replicas(cfg, cur.Master)
	opts.StopWhenPromoted = true
	if replica == cfg.Master {
		// An old master gets a sink only once rejoin prepared it: its data
		// may hold transactions the topic never got.
		n, _ := cfg.Node(replica)
		found, err := hasCheckpoint(ctx, cfg, n, kc.Topic)
		if err != nil {
			return opts, fmt.Errorf("node %s: %w", replica, err)
		}
		if !found {
			return opts, fmt.Errorf("%s was the master and has no checkpoint for topic %s: run `rowcast rejoin --node %s` first (it reports what the node holds that never reached the topic and sets its checkpoint)",
				replica, kc.Topic, replica)
		}
	}
	return opts, nil
}

func hasCheckpoint(ctx context.Context, cfg *config.Config, n config.Node, topic string) (bool, error) {
	db, err := n.Open(ctx, 5*time.Second)
	if err != nil {
		return false, err
	}
	defer db.Close()
	_, found, err := cfg.CheckpointStore().Load(ctx, db, topic, 0)
	if mysqlerr.Missing(err) {
		return false, nil
	}
	return found, err
}

// RunSink runs one replica's worker until ctx ends or it fails. A worker
// stopped by its own promotion returns nil. A worker that fails is recorded
// as stopped in health (with its error, offset and fix) and in the metrics
// before its error is returned.
func RunSink(ctx context.Context, cfg *config.Config, replica string, opts SinkOptions, log zerolog.Logger, health *obs.Health, metrics *SinkMetrics) error {
	if health == nil {
		health = obs.NewHealth()
	}
	if metrics == nil {
		metrics = NewSinkMetrics(nil, nil)
	}
	w, closeIn, err := NewSinkWorker(cfg, replica, opts, log, metrics)
	if err != nil {
		sinkStopped(replica, WorkerReport{State: workerStopped, Offset: -1, Error: err.Error()}, health, metrics)
		return err
	}
	defer closeIn()
	if err := runWorker(ctx, cfg, replica, w, log, health, metrics); err != nil {
		sinkStopped(replica, stopReport(w.Status(), err), health, metrics)
		return fmt.Errorf("replica %s: %w", replica, err)
	}
	if w.Status().State == sink.StatePromoted {
		log.Warn().Str("replica", replica).Msg("this replica was promoted to master: its sink worker stopped")
	}
	return nil
}

// runWorker runs w with its watcher and, when configured, continuous
// verification beside it; the watcher has ended when it returns, so that
// it cannot overwrite the health its caller records.
func runWorker(ctx context.Context, cfg *config.Config, replica string, w *sink.Worker, log zerolog.Logger, health *obs.Health, m *SinkMetrics) error {
	health.SetDetail("sink/"+replica, func() any {
		rep := workerReport(w.Status())
		rep.LastVerify = m.verifyReport(replica)
		return rep
	})
	m.stopped.WithLabelValues(replica).Set(0)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		watchSink(wctx, cfg, replica, w, health, m)
	}()
	// Another master of a master-master set also takes writes from the
	// other masters' topics, which this topic's checkpoint does not track:
	// continuous verification would see their changes in flight as
	// differences. `rowcast verify --master` compares two masters at rest.
	_, peer := cfg.OriginDomain(replica)
	if n, _ := cfg.Node(replica); cfg.Verify.Interval.On() && n.Kind == config.KindMySQL && !peer {
		go verifyContinuously(wctx, cfg, replica, log, m)
	}
	err := w.Run(ctx)
	cancel()
	<-watched
	return err
}

// verifyContinuously compares a slice of the replica with the master every
// verify.interval, beside the worker, until ctx ends (pipeline/verify). It
// never stops the worker: a failure to start is logged and retried at the
// next interval.
func verifyContinuously(ctx context.Context, cfg *config.Config, replica string, log zerolog.Logger, m *SinkMetrics) {
	log = log.With().Str("replica", replica).Str("component", "verify").Logger()
	vc, err := cfg.ContinuousVerifyConfig(replica)
	if err != nil {
		log.Warn().Err(err).Msg("continuous verification cannot run")
		return
	}
	// The current master, from the epoch records: after a promotion the
	// slices compare with the new master.
	vc.Locate = VerifyMasterLocator(cfg, log)
	vc.WaitTimeout = 10 * time.Second
	vc.Log = log
	interval := cfg.Verify.Interval.D()
	for {
		c, err := verify.NewContinuous(ctx, vc, cfg.Verify.SliceRows, verifyMetrics{m, replica})
		if err == nil {
			log.Info().Dur("interval", interval).Int("slice_rows", cfg.Verify.SliceRows).Msg("continuous verification started")
			c.Run(ctx, interval)
			c.Close()
			return
		}
		log.Warn().Err(err).Dur("interval", interval).Msg("continuous verification cannot start; trying again at the next interval")
		if !sleep(ctx, interval) {
			return
		}
	}
}

// VerifyMasterLocator finds the current master for verify as every rowcast
// command does (failover.Locator: the epoch index on the mysql nodes,
// checked against the topic's epoch records). It fails when that cannot be
// determined: verify then stops rather than compare with, or repair from, an
// old master.
func VerifyMasterLocator(cfg *config.Config, log zerolog.Logger) func(context.Context) (verify.Master, error) {
	loc := failover.NewLocator(cfg, cfg.ChangelogConfig(), log)
	return func(ctx context.Context) (verify.Master, error) {
		cur, err := loc.Current(ctx)
		if err != nil {
			return verify.Master{}, fmt.Errorf("look up the current master: %w", err)
		}
		n, ok := cfg.Node(cur.Master)
		if !ok || n.Kind != config.KindMySQL {
			return verify.Master{}, fmt.Errorf("the current master %s (epoch %d, from the %s) is not a MySQL node of the config", cur.Master, cur.Epoch, cur.From)
		}
		dsn, err := n.ConnDSN()
		if err != nil {
			return verify.Master{}, err
		}
		return verify.Master{Name: cur.Master, DSN: dsn, Epoch: cur.Epoch, From: cur.From}, nil
	}
}

// verifyMetrics counts one replica's continuous verification.
type verifyMetrics struct {
	m       *SinkMetrics
	replica string
}

func (v verifyMetrics) Verified(rows int64) {
	v.m.verifyRows.WithLabelValues(v.replica).Add(float64(rows))
	v.m.noteVerify(v.replica, rows, 0)
}

func (v verifyMetrics) Differences(n int) {
	v.m.verifyDiffs.WithLabelValues(v.replica).Add(float64(n))
	v.m.noteVerify(v.replica, 0, int64(n))
}

// noteVerify adds a verified slice to the replica's VerifyReport.
func (m *SinkMetrics) noteVerify(replica string, rows, diffs int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.lastVerify[replica]
	r.At, r.Rows, r.Differences = time.Now().UTC(), r.Rows+rows, r.Differences+diffs
	m.lastVerify[replica] = r
}

// verifyReport is the replica's VerifyReport, nil before its first slice.
func (m *SinkMetrics) verifyReport(replica string) *VerifyReport {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.lastVerify[replica]
	if !ok {
		return nil
	}
	return &r
}
