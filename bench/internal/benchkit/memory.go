package benchkit

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Peaks samples probes at an interval, from SamplePeaks until Stop, and
// keeps the largest value each returned.
type Peaks struct {
	cancel context.CancelFunc
	done   chan []int64
}

// SamplePeaks starts sampling probes (a process's RSS, a heap size) every
// interval; each probe gets a context that ends at Stop.
func SamplePeaks(every time.Duration, probes ...func(context.Context) int64) *Peaks {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Peaks{cancel: cancel, done: make(chan []int64, 1)}
	go p.loop(ctx, every, probes)
	return p
}

func (p *Peaks) loop(ctx context.Context, every time.Duration, probes []func(context.Context) int64) {
	peaks := make([]int64, len(probes))
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for i, probe := range probes {
			peaks[i] = max(peaks[i], probe(ctx))
		}
		select {
		case <-ctx.Done():
			p.done <- peaks
			return
		case <-t.C:
		}
	}
}

// Stop ends the sampling and returns the peaks, in the probes' order.
func (p *Peaks) Stop() []int64 {
	p.cancel()
	return <-p.done
}

// RSS is a probe of a process's resident memory, in bytes.
func RSS(pid int) func(context.Context) int64 {
	return func(context.Context) int64 { return Status(pid, "VmRSS") }
}

// SelfMemory records this process's peak RSS and peak live heap while a
// measurement runs.
type SelfMemory struct {
	peaks    *Peaks
	resetHWM bool
}

// StartSelfMemory starts recording, after returning what earlier
// measurements left behind to the OS, and resets the kernel's peak RSS
// (VmHWM) where it allows it.
func StartSelfMemory() *SelfMemory {
	debug.FreeOSMemory()
	pid := os.Getpid()
	return &SelfMemory{resetHWM: ResetPeakRSS(pid), peaks: SamplePeaks(20*time.Millisecond, RSS(pid), heapObjects)}
}

// Stop returns the peak RSS and the peak heap, in bytes. The kernel's peak
// counts too when it was reset at the start: it sees peaks between samples.
func (m *SelfMemory) Stop() (rss, heap int64) {
	p := m.peaks.Stop()
	rss, heap = p[0], p[1]
	if m.resetHWM {
		rss = max(rss, Status(os.Getpid(), "VmHWM"))
	}
	return rss, heap
}

// heapObjects is the bytes of this process's live and unswept heap objects.
func heapObjects(context.Context) int64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	return int64(sample[0].Value.Uint64())
}
