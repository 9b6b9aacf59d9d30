package benchkit

import "github.com/prometheus/client_golang/prometheus"

// CounterSum is the sum of counter name's series in g whose label, where
// they have it, has value.
func CounterSum(g prometheus.Gatherer, name, label, value string) float64 {
	var sum float64
	for _, s := range series(g, name, label, value) {
		sum += s.counter
	}
	return sum
}

// HistogramSum is the count and the sum of histogram name's series in g
// whose label, where they have it, has value.
func HistogramSum(g prometheus.Gatherer, name, label, value string) (count uint64, sum float64) {
	for _, s := range series(g, name, label, value) {
		count += s.count
		sum += s.sum
	}
	return count, sum
}

// sample is one series' value: a counter's, or a histogram's count and sum.
type sample struct {
	counter float64
	count   uint64
	sum     float64
}

// series are metric name's series in g whose label, where they have it,
// has value.
func series(g prometheus.Gatherer, name, label, value string) []sample {
	mfs, err := g.Gather()
	if err != nil {
		return nil
	}
	var out []sample
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelIs(m.GetLabel(), label, value) {
				h := m.GetHistogram()
				out = append(out, sample{m.GetCounter().GetValue(), h.GetSampleCount(), h.GetSampleSum()})
			}
		}
	}
	return out
}

// labelPair is a series' label (the client model's LabelPair).
type labelPair interface {
	GetName() string
	GetValue() string
}

// labelIs reports whether label, if labels has it, has value.
func labelIs[L labelPair](labels []L, label, value string) bool {
	for _, l := range labels {
		if l.GetName() == label {
			return l.GetValue() == value
		}
	}
	return true
}
