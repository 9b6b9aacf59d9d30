package testenv

import (
	"runtime"
	"sync/atomic"
	"time"
)

// HeapPeak samples the heap every period, from a fresh garbage collection,
// until the returned stop is called; stop returns the highest value of
// read(&MemStats) seen (HeapAlloc, HeapInuse, ...).
func HeapPeak(period time.Duration, read func(*runtime.MemStats) uint64) (stop func() uint64) {
	runtime.GC()
	var peak atomic.Uint64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if v := read(&ms); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-time.After(period):
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-sampled
		return peak.Load()
	}
}
