package benchkit

import (
	"fmt"
	"math"
	"syscall"
)

// CPUMeter reads the CPU seconds (user+system) of this process, of the
// processes a benchmark watches (database servers, the Kafka broker) and of
// the whole machine: on a small machine they share the cores, and where the
// time goes says what limits the rate.
type CPUMeter struct{ pids []func() int }

// NewCPUMeter watches the processes whose pids the functions return, read
// at every sample (0: unknown, counted as no CPU time).
func NewCPUMeter(pids ...func() int) *CPUMeter { return &CPUMeter{pids: pids} }

// PID is a fixed pid for NewCPUMeter.
func PID(pid int) func() int { return func() int { return pid } }

// CPUSample is the CPU time used up to one moment, in seconds.
type CPUSample struct {
	self, machine float64
	procs         []float64
	pids          []int
}

// Now samples the CPU time used so far.
func (m *CPUMeter) Now() CPUSample {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	s := CPUSample{self: float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9, machine: MachineBusy()}
	for _, pid := range m.pids {
		p := pid()
		s.pids = append(s.pids, p)
		s.procs = append(s.procs, ProcCPU(p))
	}
	return s
}

// CPU is the CPU time used between two samples, in seconds.
type CPU struct {
	Self    float64   // this process
	Procs   []float64 // each watched process; NaN when it was restarted in between
	Machine float64   // all CPUs
}

// Since is the CPU time used from t0 to s.
func (s CPUSample) Since(t0 CPUSample) CPU {
	c := CPU{Self: s.self - t0.self, Machine: s.machine - t0.machine, Procs: make([]float64, len(s.procs))}
	for i := range s.procs {
		c.Procs[i] = s.procs[i] - t0.procs[i]
		if s.pids[i] != t0.pids[i] {
			c.Procs[i] = math.NaN()
		}
	}
	return c
}

// Proc is the CPU time of watched process i (in NewCPUMeter's order), 0
// when nothing was measured.
func (c CPU) Proc(i int) float64 {
	if i >= len(c.Procs) {
		return 0
	}
	return c.Procs[i]
}

// Others is the CPU time of everything else on the machine: other tests and
// benchmarks running at the same time.
func (c CPU) Others() float64 {
	rest := c.Machine - c.Self
	for _, p := range c.Procs {
		if !math.IsNaN(p) {
			rest -= p
		}
	}
	return max(0, rest)
}

// Seconds formats CPU seconds, "?" when unknown (NaN).
func Seconds(v float64) string {
	if math.IsNaN(v) {
		return "?"
	}
	return fmt.Sprintf("%.1f", v)
}
