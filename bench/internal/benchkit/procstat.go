package benchkit

// What the benchmarks report about the machine, read from /proc: CPU seconds
// of the machine and of single processes, the CPU model, memory and load.
// Every reader returns a neutral value (0 or "?") when /proc does not say.

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of /proc's CPU times (100 on Linux).
const clockTicks = 100

// MachineBusy is the CPU time, in seconds, all CPUs spent not idle since
// boot (the "cpu" line of /proc/stat, without idle and iowait; guest time is
// already counted in user).
func MachineBusy() float64 {
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
		if !idleColumn[i] {
			n, _ := strconv.ParseFloat(v, 64)
			busy += n
		}
	}
	return busy / clockTicks
}

// idleColumn marks the columns of /proc/stat's cpu line that MachineBusy
// leaves out: idle and iowait, and guest time, already counted in user.
var idleColumn = map[int]bool{3: true, 4: true, 8: true, 9: true}

// ProcCPU is utime+stime of a process, in seconds; 0 when unknown.
func ProcCPU(pid int) float64 {
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

// CPUModel is the first "model name" of /proc/cpuinfo.
func CPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// MemTotal is MemTotal of /proc/meminfo, in bytes.
func MemTotal() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			return kB(v)
		}
	}
	return 0
}

// kB is a "123 kB" value of /proc, in bytes.
func kB(v string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
	return n << 10
}

// Status reads a "kB" line of /proc/PID/status (VmRSS, VmHWM), in bytes.
func Status(pid int, key string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			return kB(v)
		}
	}
	return 0
}

// ResetPeakRSS resets VmHWM of a process to its current RSS (Linux 4.0+);
// it reports whether the kernel allowed it.
func ResetPeakRSS(pid int) bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
}

// Loadavg is the 1, 5 and 15 minute load averages, "?" when unknown.
func Loadavg() string {
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
