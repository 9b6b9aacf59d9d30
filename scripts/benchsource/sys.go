package main

import (
	"bufio"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rowcast/rowcast/scripts/internal/procstat"
)

// The machine as /proc shows it (scripts/internal/procstat).
var (
	machineBusy = procstat.MachineBusy
	procCPU     = procstat.ProcCPU
	loadavg     = procstat.Loadavg
)

// cpuTimes are CPU seconds (user+system) of this process, of db1's mariadbd,
// of the Kafka broker and of the whole machine: on a small machine they share
// the cores, and where the time goes says what limits the rate.
type cpuTimes struct{ Self, MariaDB, Kafka, Machine float64 }

func (c cpuTimes) sub(d cpuTimes) cpuTimes {
	return cpuTimes{c.Self - d.Self, c.MariaDB - d.MariaDB, c.Kafka - d.Kafka, c.Machine - d.Machine}
}

// Others is the CPU time of everything else on the machine: other tests and
// benchmarks running at the same time.
func (c cpuTimes) Others() float64 { return max(0, c.Machine-c.Self-c.MariaDB-c.Kafka) }

func (o *options) cpuNow() cpuTimes {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	self := float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	return cpuTimes{Self: self, MariaDB: procCPU(o.mariadbPid), Kafka: procCPU(o.kafkaPid), Machine: machineBusy()}
}

// clockTicks is USER_HZ, 100 on every Linux platform Go supports.

// memSampler records the peak RSS (VmHWM, reset at the start where the
// kernel allows it) and the peak live heap while a measurement runs.
type memSampler struct {
	done     chan struct{}
	out      chan [2]int64
	resetHWM bool
}

func startMemSampler() *memSampler {
	debug.FreeOSMemory() // what earlier stages left behind should not count
	s := &memSampler{done: make(chan struct{}), out: make(chan [2]int64, 1)}
	// Writing 5 to clear_refs resets VmHWM to the current RSS (Linux 4.0+).
	s.resetHWM = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	go s.loop()
	return s
}

func (s *memSampler) loop() {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peakRSS, peakHeap int64
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		metrics.Read(sample)
		if h := int64(sample[0].Value.Uint64()); h > peakHeap {
			peakHeap = h
		}
		if rss := procStatus("VmRSS"); rss > peakRSS {
			peakRSS = rss
		}
		select {
		case <-s.done:
			if hwm := procStatus("VmHWM"); s.resetHWM && hwm > peakRSS {
				peakRSS = hwm
			}
			s.out <- [2]int64{peakRSS, peakHeap}
			return
		case <-t.C:
		}
	}
}

// stop returns the peak RSS and the peak heap, in bytes.
func (s *memSampler) stop() (rss, heap int64) {
	close(s.done)
	r := <-s.out
	return r[0], r[1]
}

// procStatus reads a "kB" line of /proc/self/status, in bytes.
func procStatus(key string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n << 10
		}
	}
	return 0
}

// conditions describe the machine and the services during the run.
type conditions struct {
	CPUs       int
	CPUModel   string
	MemTotal   int64
	LoadBefore string
	LoadAfter  string
	MariaDB    string
	Kafka      string
	Go         string
}

func machine() conditions {
	c := conditions{CPUs: runtime.NumCPU(), Go: runtime.Version(), LoadBefore: loadavg()}
	c.CPUModel, c.MemTotal = procstat.CPUModel(), procstat.MemTotal()
	return c
}

// counterValue sums a counter's series whose op label, if it has one, is
// "produce".
func counterValue(g prometheus.Gatherer, name string) int64 {
	mfs, err := g.Gather()
	if err != nil {
		return 0
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			ok := true
			for _, l := range m.GetLabel() {
				if l.GetName() == "op" && l.GetValue() != "produce" {
					ok = false
				}
			}
			if ok {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return int64(sum)
}

// histogram returns the count and the sum of a histogram's series whose op
// label is "produce".
func histogram(g prometheus.Gatherer, name string) (count uint64, sum float64) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, 0
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "op" && l.GetValue() == "produce" {
					count += m.GetHistogram().GetSampleCount()
					sum += m.GetHistogram().GetSampleSum()
				}
			}
		}
	}
	return count, sum
}
