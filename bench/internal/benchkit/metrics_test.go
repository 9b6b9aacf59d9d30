package benchkit

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestCounterAndHistogramSums(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total"}, []string{"op"})
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "h_seconds"}, []string{"op"})
	plain := prometheus.NewCounter(prometheus.CounterOpts{Name: "p_total"})
	reg.MustRegister(c, h, plain)
	c.WithLabelValues("produce").Add(3)
	c.WithLabelValues("fetch").Add(5)
	h.WithLabelValues("produce").Observe(0.5)
	h.WithLabelValues("produce").Observe(0.25)
	h.WithLabelValues("fetch").Observe(9)
	plain.Add(2)
	if v := CounterSum(reg, "c_total", "op", "produce"); v != 3 {
		t.Errorf("counter of op=produce = %v, want 3", v)
	}
	if v := CounterSum(reg, "p_total", "op", "produce"); v != 2 {
		t.Errorf("counter without the label = %v, want 2", v)
	}
	if n, s := HistogramSum(reg, "h_seconds", "op", "produce"); n != 2 || s != 0.75 {
		t.Errorf("histogram of op=produce = %d, %v; want 2, 0.75", n, s)
	}
}

func TestSamplePeaks(t *testing.T) {
	v := int64(0)
	next := func(context.Context) int64 { v++; return v }
	p := SamplePeaks(time.Millisecond, next, RSS(os.Getpid()))
	time.Sleep(20 * time.Millisecond)
	peaks := p.Stop()
	if peaks[0] < 2 || peaks[1] <= 0 {
		t.Fatalf("peaks %v: want several samples and this process's RSS", peaks)
	}
}
