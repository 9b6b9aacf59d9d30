package main

import (
	"syscall"

	"github.com/rowcast/rowcast/scripts/internal/procstat"
)

// The machine as /proc shows it (scripts/internal/procstat).
var (
	machineBusy = procstat.MachineBusy
	procCPU     = procstat.ProcCPU
	cpuModel    = procstat.CPUModel
	memTotal    = procstat.MemTotal
	loadAvg     = procstat.Loadavg
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
