package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rowcast/rowcast/scripts/internal/procstat"
)

// The machine as /proc shows it (scripts/internal/procstat).
var (
	procCPU = procstat.ProcCPU
	loadavg = procstat.Loadavg
)

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// cpuTimes are CPU seconds (user+system) of this process (the sink worker
// during a rowcast measurement), of the measured side's mariadbd and of the
// Kafka broker: on a small machine they share the cores.
type cpuTimes struct {
	Self, Server, Kafka float64
	kafkaPid            int
}

// sub is c - d; Kafka is NaN when the broker was restarted in between (a
// test of someone else's may restart the stack's broker).
func (c cpuTimes) sub(d cpuTimes) cpuTimes {
	k := c.Kafka - d.Kafka
	if c.kafkaPid != d.kafkaPid {
		k = math.NaN()
	}
	return cpuTimes{c.Self - d.Self, c.Server - d.Server, k, c.kafkaPid}
}

func (b *bench) cpuNow(s *server) cpuTimes {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	pid := b.o.kafkaPid
	if b.o.kafkaPidFile != "" {
		if v, err := os.ReadFile(b.o.kafkaPidFile); err == nil {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(v)))
		}
	}
	return cpuTimes{
		Self:     float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9,
		Server:   procCPU(s.pid()),
		Kafka:    procCPU(pid),
		kafkaPid: pid,
	}
}

// procStatus reads a "kB" line of /proc/PID/status, in bytes.
func procStatus(pid int, key string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n << 10
		}
	}
	return 0
}

// resetPeakRSS resets VmHWM of a process to its current RSS (Linux 4.0+).
func resetPeakRSS(pid int) bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
}

// statusKeys are the server counters reported per measurement.
var statusKeys = []string{"Com_commit", "Com_begin", "Com_insert", "Com_update", "Questions", "Handler_commit",
	"Innodb_rows_inserted", "Innodb_rows_updated", "Innodb_data_fsyncs", "Innodb_os_log_written",
	"Binlog_commits", "Binlog_group_commits", "Bytes_received"}

func statusDelta(a, b map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for _, k := range statusKeys {
		out[k] = b[k] - a[k]
	}
	return out
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
	Settings   string // the replicas' durability and binlog settings
	// The sink worker's batch settings in effect (config defaults when the
	// flags leave them), set when the rowcast side's config is parsed.
	MaxBatchRows, MaxTxnMerge int
}

func machine() conditions {
	c := conditions{CPUs: runtime.NumCPU(), Go: runtime.Version(), LoadBefore: loadavg()}
	c.CPUModel, c.MemTotal = procstat.CPUModel(), procstat.MemTotal()
	return c
}
