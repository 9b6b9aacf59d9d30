package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// cpuTimes are CPU seconds (user+system) of this process, of both mariadbd
// and of the whole machine: on a small machine they share the cores, and
// where the time goes says what limits the rate.
type cpuTimes struct{ Self, Master, Replica, Machine float64 }

func (c cpuTimes) sub(d cpuTimes) cpuTimes {
	return cpuTimes{c.Self - d.Self, c.Master - d.Master, c.Replica - d.Replica, c.Machine - d.Machine}
}

// Others is the CPU time of everything else on the machine: other tests and
// benchmarks running at the same time.
func (c cpuTimes) Others() float64 { return max(0, c.Machine-c.Self-c.Master-c.Replica) }

func cpuNow(o options) cpuTimes {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	self := float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	return cpuTimes{Self: self, Master: procCPU(o.masterPid), Replica: procCPU(o.replicaPid), Machine: machineBusy()}
}

// clockTicks is USER_HZ, 100 on every Linux platform Go supports.
const clockTicks = 100

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
	// spaces: utime is field 14, stime 15.
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

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// memTotal is MemTotal of /proc/meminfo, in bytes.
func memTotal() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "MemTotal:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n * 1024
			}
		}
	}
	return 0
}
