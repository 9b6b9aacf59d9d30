package main

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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

// machineBusy reads the machine's non-idle CPU seconds from /proc/stat.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0
	}
	var busy float64
	for i, v := range f[1:] {
		n, _ := strconv.ParseFloat(v, 64)
		switch i {
		case 3, 4: // idle, iowait
		case 8, 9: // guest time is already counted in user
		default:
			busy += n
		}
	}
	return busy / clockTicks
}

// procCPU reads utime+stime of a process from /proc, in seconds; 0 when
// unknown.
func procCPU(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14, stime 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks
}

// clockTicks is USER_HZ, 100 on every Linux platform Go supports.
const clockTicks = 100

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
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				c.CPUModel = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				c.MemTotal = n << 10
			}
		}
	}
	return c
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
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
