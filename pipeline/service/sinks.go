package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/pipeline/config"
	"github.com/rowcast/rowcast/pipeline/failover"
	"github.com/rowcast/rowcast/pipeline/obs"
	"github.com/rowcast/rowcast/pipeline/verify"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/mysql"
)

// SinkMetrics are the sink workers' Prometheus metrics, labelled by replica.
type SinkMetrics struct {
	counters *prometheus.CounterVec
	errors   *prometheus.CounterVec
	offset   *prometheus.GaugeVec
	lagSec   *prometheus.GaugeVec
	lagOff   *prometheus.GaugeVec
	kafka    *Metrics

	verifyRows, verifyDiffs *prometheus.CounterVec
}

// NewSinkMetrics creates the metrics and registers them with reg (nil: none).
// kafka, when not nil, receives the consumers' Kafka metrics.
func NewSinkMetrics(reg prometheus.Registerer, kafka *Metrics) *SinkMetrics {
	m := &SinkMetrics{
		counters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rowcast_sink_total",
			Help: "Sink worker counters: rows_applied, txns_applied, commits, retries, old_epoch_ignored, duplicates_skipped, offsets_skipped, txns_abandoned."},
			[]string{"replica", "counter"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rowcast_sink_errors_total",
			Help: "Sink worker errors by kind (transient, malformed, gap, row_missing, target)."}, []string{"replica", "kind"}),
		offset: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rowcast_sink_applied_offset",
			Help: "Last topic offset applied and committed on the replica."}, []string{"replica"}),
		lagSec: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rowcast_sink_lag_seconds",
			Help: "Now minus the master commit time (or heartbeat) of the last applied transaction."}, []string{"replica"}),
		lagOff: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rowcast_sink_lag_offsets",
			Help: "Topic end offset minus the next offset the replica will apply."}, []string{"replica"}),
		kafka: kafka,
		verifyRows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rowcast_verify_rows_total",
			Help: "Rows compared with the master by continuous verification (verify.interval)."}, []string{"replica"}),
		verifyDiffs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rowcast_verify_differences_total",
			Help: "Rows found different from the master by continuous verification, confirmed with the replica past the master's position."}, []string{"replica"}),
	}
	if reg != nil {
		reg.MustRegister(m.counters, m.errors, m.offset, m.lagSec, m.lagOff, m.verifyRows, m.verifyDiffs)
	}
	return m
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
}

// NewSinkWorker builds the worker of one replica from the config file.
func NewSinkWorker(cfg *config.Config, replica string, opts SinkOptions, log zerolog.Logger, metrics *SinkMetrics) (*sink.Worker, func(), error) {
	n, ok := cfg.Node(replica)
	if !ok {
		return nil, nil, fmt.Errorf("replica %q is not a node of the config; use one of %v", replica, cfg.Replicas)
	}
	replicas := opts.Replicas
	if replicas == nil {
		replicas = cfg.Replicas
	}
	isReplica := false
	for _, r := range replicas {
		isReplica = isReplica || r == replica
	}
	if !isReplica {
		return nil, nil, fmt.Errorf("node %q is not a replica (replicas %v)", replica, replicas)
	}
	if n.Kind != config.KindMySQL {
		return nil, nil, fmt.Errorf("replica %s is a %s node: that sink kind is not available yet; only mysql replicas can be run", replica, n.Kind)
	}
	log = log.With().Str("replica", replica).Logger()
	kc := KafkaConfig(cfg)
	target, err := mysql.New(mysql.Config{DSN: n.DSN, Schema: cfg.Sink.BookkeepingSchema, Topic: kc.Topic,
		Protect: *cfg.Sink.ProtectReplicas}, log)
	if err != nil {
		return nil, nil, fmt.Errorf("replica %s: %w", replica, err)
	}
	if metrics == nil {
		metrics = NewSinkMetrics(nil, nil)
	}
	var km pipeline.KafkaMetrics
	if metrics.kafka != nil {
		km = metrics.kafka.kafka()
	}
	in := sink.NewKafkaInput(kc, &pipeline.Codec{Cluster: cfg.Cluster}, log, km)
	wc := sink.FromConfig(cfg.Sink, kc.Topic)
	wc.SkipOffsets = opts.SkipOffsets
	wc.StartOffset = opts.StartOffset
	wc.StopOffset = opts.StopOffset
	if opts.StopWhenPromoted {
		wc.Node = replica
	}
	w := sink.NewWorker(wc, target, in, log, metrics.For(replica))
	return w, func() { in.Close() }, nil
}

// watchSink reports a worker's state to health and its lag in offsets to the
// metrics, every second, until ctx ends.
func watchSink(ctx context.Context, cfg *config.Config, replica string, w *sink.Worker, health *obs.Health, m *SinkMetrics) {
	kc := KafkaConfig(cfg)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		st := w.Status()
		switch st.State {
		case sink.StateRunning, sink.StateStarting, sink.StatePromoted:
			health.Set("sink/"+replica, nil)
		default:
			health.Set("sink/"+replica, fmt.Errorf("%s: %v", st.State, st.Err))
		}
		if end, err := pipeline.EndOffset(ctx, kc); err == nil && st.Offset >= 0 {
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
	kc := KafkaConfig(cfg)
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
	db, err := openNode(ctx, n)
	if err != nil {
		return false, err
	}
	defer db.Close()
	_, found, err := checkpoint.NewMySQL(cfg.Sink.BookkeepingSchema).Load(ctx, db, topic, 0)
	var me *gomysql.MySQLError
	if errors.As(err, &me) && (me.Number == 1146 || me.Number == 1049) {
		return false, nil
	}
	return found, err
}

// RunSink runs one replica's worker until ctx ends or it fails. A worker
// stopped by its own promotion returns nil.
func RunSink(ctx context.Context, cfg *config.Config, replica string, opts SinkOptions, log zerolog.Logger, health *obs.Health, metrics *SinkMetrics) error {
	w, closeIn, err := NewSinkWorker(cfg, replica, opts, log, metrics)
	if err != nil {
		return err
	}
	defer closeIn()
	if health == nil {
		health = obs.NewHealth()
	}
	if metrics == nil {
		metrics = NewSinkMetrics(nil, nil)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go watchSink(wctx, cfg, replica, w, health, metrics)
	if cfg.Verify.Interval > 0 {
		go verifyContinuously(wctx, cfg, replica, log, metrics)
	}
	if err := w.Run(ctx); err != nil {
		health.Set("sink/"+replica, err)
		return fmt.Errorf("replica %s: %w", replica, err)
	}
	if w.Status().State == sink.StatePromoted {
		log.Warn().Str("replica", replica).Msg("this replica was promoted to master: its sink worker stopped")
	}
	return nil
}

// KafkaConfig maps the config file's kafka section.
func KafkaConfig(cfg *config.Config) pipeline.KafkaConfig {
	return pipeline.KafkaConfig{
		Brokers:           cfg.Kafka.Brokers,
		Topic:             cfg.Kafka.Topic,
		Partitions:        cfg.Kafka.Partitions,
		ReplicationFactor: cfg.Kafka.ReplicationFactor,
		Retention:         cfg.Kafka.Retention.D(),
		Compression:       cfg.Kafka.Compression,
	}
}

// verifyContinuously compares a slice of the replica with the master every
// verify.interval, beside the worker, until ctx ends (pipeline/verify). It
// never stops the worker: a failure to start is logged and retried at the
// next interval.
func verifyContinuously(ctx context.Context, cfg *config.Config, replica string, log zerolog.Logger, m *SinkMetrics) {
	log = log.With().Str("replica", replica).Str("component", "verify").Logger()
	n, _ := cfg.Node(replica)
	vc := verify.Config{
		ReplicaName: replica, ReplicaDSN: n.DSN,
		// The current master, from the epoch records: after a promotion
		// the slices compare with the new master.
		Locate:        VerifyMasterLocator(cfg, log),
		Filter:        verify.Filter{Include: cfg.Source.Include, Exclude: cfg.Source.Exclude, Bookkeeping: cfg.Sink.BookkeepingSchema},
		Topic:         cfg.Kafka.Topic,
		RowsPerSecond: cfg.Verify.RowsPerSecond,
		WaitTimeout:   10 * time.Second,
		Log:           log,
	}
	interval := cfg.Verify.Interval.D()
	for {
		c, err := verify.NewContinuous(ctx, vc, cfg.Verify.SliceRows, verifyMetrics{m, replica})
		if err == nil {
			log.Info().Dur("interval", interval).Int("slice_rows", cfg.Verify.SliceRows).Msg("continuous verification started")
			c.Run(ctx, interval)
			c.Close()
			return
		}
		log.Warn().Err(err).Msg("continuous verification cannot start; trying again at the next interval")
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// VerifyMasterLocator finds the current master for verify as every rowcast
// command does (failover.Locator: the epoch index on the mysql nodes,
// checked against the topic's epoch records). It fails when that cannot be
// determined: verify then stops rather than compare with, or repair from, an
// old master.
func VerifyMasterLocator(cfg *config.Config, log zerolog.Logger) func(context.Context) (verify.Master, error) {
	loc := failover.NewLocator(cfg, KafkaConfig(cfg), log)
	return func(ctx context.Context) (verify.Master, error) {
		cur, err := loc.Current(ctx)
		if err != nil {
			return verify.Master{}, fmt.Errorf("look up the current master: %w", err)
		}
		n, ok := cfg.Node(cur.Master)
		if !ok || n.Kind != config.KindMySQL {
			return verify.Master{}, fmt.Errorf("the current master %s (epoch %d, from the %s) is not a MySQL node of the config", cur.Master, cur.Epoch, cur.From)
		}
		return verify.Master{Name: cur.Master, DSN: n.DSN, Epoch: cur.Epoch, From: cur.From}, nil
	}
}

// verifyMetrics counts one replica's continuous verification.
type verifyMetrics struct {
	m       *SinkMetrics
	replica string
}

func (v verifyMetrics) Verified(rows int64) {
	v.m.verifyRows.WithLabelValues(v.replica).Add(float64(rows))
}

func (v verifyMetrics) Differences(n int) {
	v.m.verifyDiffs.WithLabelValues(v.replica).Add(float64(n))
}
