//go:build unix

package pipeline

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user and system) of the process so far:
// benchmarks report it per operation beside the wall time, which other work
// on a shared machine inflates.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
