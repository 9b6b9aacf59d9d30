package benchkit

import (
	"fmt"
	"runtime"
)

// Machine is what a report says about the machine of a run.
type Machine struct {
	CPUs       int
	CPUModel   string
	MemTotal   int64  // bytes
	LoadBefore string // 1, 5 and 15 minute load averages
	LoadAfter  string
	Go         string // the Go version the benchmark was built with
}

// ReadMachine reads the machine's facts. loadBefore is the load average
// scripts/bench read before anything of the benchmark ran; empty: now.
func ReadMachine(loadBefore string) Machine {
	if loadBefore == "" {
		loadBefore = Loadavg()
	}
	return Machine{CPUs: runtime.NumCPU(), CPUModel: CPUModel(), MemTotal: MemTotal(),
		LoadBefore: loadBefore, Go: runtime.Version()}
}

// Done records the load average at the end of the run.
func (m *Machine) Done() { m.LoadAfter = Loadavg() }

// String is the machine's item of a report's conditions.
func (m Machine) String() string {
	return fmt.Sprintf("machine: %d CPUs (%s), %.1f GiB memory; load average (1/5/15 min) %s before the run, %s after",
		m.CPUs, m.CPUModel, float64(m.MemTotal)/(1<<30), m.LoadBefore, m.LoadAfter)
}
