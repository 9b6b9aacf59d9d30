package service

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/pipeline/config"
	"github.com/rowcast/rowcast/pipeline/obs"
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
	}
	if reg != nil {
		reg.MustRegister(m.counters, m.errors, m.offset, m.lagSec, m.lagOff)
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

// SinkOptions are the operator's flags of `rowcast sink`.
type SinkOptions struct {
	// SkipOffsets are messages to skip on purpose (recorded on the replica).
	SkipOffsets []int64
	// StartOffset is where a replica without a checkpoint starts.
	StartOffset int64
}

// NewSinkWorker builds the worker of one replica from the config file.
func NewSinkWorker(cfg *config.Config, replica string, opts SinkOptions, log zerolog.Logger, metrics *SinkMetrics) (*sink.Worker, func(), error) {
	n, ok := cfg.Node(replica)
	if !ok {
		return nil, nil, fmt.Errorf("replica %q is not a node of the config; use one of %v", replica, cfg.Replicas)
	}
	isReplica := false
	for _, r := range cfg.Replicas {
		isReplica = isReplica || r == replica
	}
	if !isReplica {
		return nil, nil, fmt.Errorf("node %q is not a replica in the config (master is %s; replicas %v)", replica, cfg.Master, cfg.Replicas)
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
		case sink.StateRunning, sink.StateStarting:
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

// RunSink runs one replica's worker until ctx ends or it fails.
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
	if err := w.Run(ctx); err != nil {
		health.Set("sink/"+replica, err)
		return fmt.Errorf("replica %s: %w", replica, err)
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
