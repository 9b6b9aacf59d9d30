package service

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rowcast/rowcast/changelog"
)

// Metrics are the pipeline service's Prometheus metrics. Events, bytes and
// errors are counters, so "per second" is rate() in Prometheus.
type Metrics struct {
	events         *prometheus.CounterVec
	readerRestarts prometheus.Counter
	withheld       prometheus.Counter
	ackedOffset    prometheus.Gauge
	ackedTxnSeq    prometheus.Gauge
	lag            prometheus.Gauge
	lastCommit     prometheus.Gauge

	snapshotRows    *prometheus.CounterVec
	snapshotRunning prometheus.Gauge
	snapshotChunk   prometheus.Histogram

	kafkaMessages *prometheus.CounterVec
	kafkaBytes    *prometheus.CounterVec
	kafkaLatency  *prometheus.HistogramVec
	kafkaErrors   *prometheus.CounterVec

	purge purgeMetrics
}

// NewMetrics creates the metrics and registers them with reg (nil: none).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rowcast_source_events_total",
			Help: "Messages the reader queued for Kafka, by kind (row, ddl, heartbeat...)."}, []string{"kind"}),
		readerRestarts: prometheus.NewCounter(prometheus.CounterOpts{Name: "rowcast_source_stream_restarts_total",
			Help: "Times the binlog stream was lost and reopened."}),
		withheld: prometheus.NewCounter(prometheus.CounterOpts{Name: "rowcast_source_account_statements_withheld_total",
			Help: "Account and privilege statements (CREATE USER, GRANT...) not published (source.replicate_accounts)."}),
		ackedOffset: prometheus.NewGauge(prometheus.GaugeOpts{Name: "rowcast_source_acked_offset",
			Help: "Topic offset of the last transaction Kafka acknowledged in full."}),
		ackedTxnSeq: prometheus.NewGauge(prometheus.GaugeOpts{Name: "rowcast_source_acked_txn_seq",
			Help: "Transaction sequence of the last transaction Kafka acknowledged in full."}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "rowcast_source_lag_seconds",
			Help: "Seconds between the master's commit (or heartbeat) and Kafka's acknowledgement of the last transaction; binlog timestamps have second precision."}),
		lastCommit: prometheus.NewGauge(prometheus.GaugeOpts{Name: "rowcast_source_last_commit_timestamp_seconds",
			Help: "Master commit time of the last acknowledged transaction or heartbeat, Unix seconds."}),
		snapshotRows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rowcast_snapshot_rows_total",
			Help: "Rows published by snapshots and acknowledged by Kafka, by table (db.table)."}, []string{"table"}),
		snapshotRunning: prometheus.NewGauge(prometheus.GaugeOpts{Name: "rowcast_snapshot_running",
			Help: "Snapshots the reader runs now (at most one, plus those a crash cut short)."}),
		snapshotChunk: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "rowcast_snapshot_chunk_seconds",
			Help: "Time to read a snapshot chunk and queue its rows for Kafka.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		kafkaMessages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rowcast_kafka_messages_total",
			Help: "Messages produced (op=produce) or fetched (op=fetch)."}, []string{"op"}),
		kafkaBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rowcast_kafka_bytes_total",
			Help: "Key and value bytes produced or fetched."}, []string{"op"}),
		kafkaLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "rowcast_kafka_request_seconds",
			Help: "Latency of successful produce and fetch requests.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"op"}),
		kafkaErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rowcast_kafka_errors_total",
			Help: "Failed Kafka requests, by operation and kind (network, timeout, not_leader, ...)."}, []string{"op", "kind"}),
		purge: newPurgeMetrics(),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.readerRestarts, m.withheld, m.ackedOffset, m.ackedTxnSeq, m.lag, m.lastCommit,
			m.snapshotRows, m.snapshotRunning, m.snapshotChunk,
			m.kafkaMessages, m.kafkaBytes, m.kafkaLatency, m.kafkaErrors)
		reg.MustRegister(m.purge.collectors()...)
	}
	return m
}

func (m *Metrics) kafka() changelog.Metrics { return kafkaMetrics{m} }

// kafkaMetrics adapts Metrics to the pipeline package's KafkaMetrics.
type kafkaMetrics struct{ m *Metrics }

var _ changelog.Metrics = kafkaMetrics{}

func (k kafkaMetrics) Produced(n, bytes int, d time.Duration) {
	k.m.kafkaMessages.WithLabelValues("produce").Add(float64(n))
	k.m.kafkaBytes.WithLabelValues("produce").Add(float64(bytes))
	k.m.kafkaLatency.WithLabelValues("produce").Observe(d.Seconds())
}

func (k kafkaMetrics) Fetched(n, bytes int, d time.Duration) {
	k.m.kafkaMessages.WithLabelValues("fetch").Add(float64(n))
	k.m.kafkaBytes.WithLabelValues("fetch").Add(float64(bytes))
	k.m.kafkaLatency.WithLabelValues("fetch").Observe(d.Seconds())
}

func (k kafkaMetrics) RequestError(op, kind string) {
	k.m.kafkaErrors.WithLabelValues(op, kind).Inc()
}
