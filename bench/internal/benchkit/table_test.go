package benchkit

import (
	"math"
	"testing"
)

func TestTableText(t *testing.T) {
	tb := Table{Header: []string{"a", "bb"}, Rows: [][]string{{"ccc", "d"}}}
	want := "a    bb  \nccc  d   \n"
	if got := tb.Text(); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestMedian(t *testing.T) {
	id := func(v float64) float64 { return v }
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 3}} {
		if got := Median(c.in, id); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestCPUSince(t *testing.T) {
	t0 := CPUSample{self: 1, machine: 10, procs: []float64{2, 3}, pids: []int{5, 6}}
	t1 := CPUSample{self: 2, machine: 20, procs: []float64{4, 1}, pids: []int{5, 7}}
	c := t1.Since(t0)
	if c.Self != 1 || c.Machine != 10 || c.Proc(0) != 2 || !math.IsNaN(c.Proc(1)) {
		t.Fatalf("Since = %+v: want self 1, machine 10, proc 0 2, proc 1 NaN (restarted)", c)
	}
	if c.Others() != 7 || Seconds(c.Proc(1)) != "?" || Seconds(c.Proc(0)) != "2.0" {
		t.Fatalf("Others %v (want 7), Seconds %q %q", c.Others(), Seconds(c.Proc(1)), Seconds(c.Proc(0)))
	}
	if (CPU{}).Proc(1) != 0 {
		t.Fatal("Proc of an empty CPU is not 0")
	}
}

func TestCPUMeterSelf(t *testing.T) {
	m := NewCPUMeter(PID(0))
	s0 := m.Now()
	x := 0
	for i := range 20_000_000 {
		x += i % 7
	}
	c := m.Now().Since(s0)
	if c.Self <= 0 || c.Proc(0) != 0 || x == 0 {
		t.Fatalf("CPU of a busy loop: %+v", c)
	}
}
