package service

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/sink"
)

// retentionPollInterval is how often a sink worker asks Kafka for the
// topic's earliest offset: retention deletes whole segments, rarely.
const retentionPollInterval = 30 * time.Second

// retentionMetrics warn before Kafka's retention deletes messages a replica
// has not applied yet.
type retentionMetrics struct {
	offsets *prometheus.GaugeVec
	seconds *prometheus.GaugeVec
}

func newRetentionMetrics() retentionMetrics {
	return retentionMetrics{
		offsets: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rowcast_sink_offset_retention_margin",
			Help: "The replica's next offset minus the topic's earliest offset: messages retention may delete before it reaches what the replica needs; negative when it already did."}, []string{"replica"}),
		seconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rowcast_sink_retention_margin_seconds",
			Help: "The topic's retention (kafka.retention) minus the age of the replica's position (now minus its last applied commit): at most how long before retention deletes what the replica applies next."}, []string{"replica"}),
	}
}

func (m retentionMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.offsets, m.seconds}
}

// retentionWatch polls the topic's earliest offset for one replica's worker.
type retentionWatch struct {
	kc      changelog.Config
	replica string
	m       retentionMetrics
	next    time.Time
}

// observe sets the replica's margins, asking Kafka at most every
// retentionPollInterval.
func (r *retentionWatch) observe(ctx context.Context, st sink.Status) {
	if st.Offset < 0 || time.Now().Before(r.next) {
		return
	}
	first, err := changelog.FirstOffset(ctx, r.kc)
	if err != nil {
		return
	}
	r.next = time.Now().Add(retentionPollInterval)
	r.m.offsets.WithLabelValues(r.replica).Set(float64(st.Offset - first))
	if r.kc.Retention > 0 && !st.SourceTime.IsZero() {
		r.m.seconds.WithLabelValues(r.replica).Set((r.kc.Retention - time.Since(st.SourceTime)).Seconds())
	}
}
