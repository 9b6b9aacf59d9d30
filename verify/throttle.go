package verify

import (
	"context"
	"sync"
	"time"
)

// throttle is a token bucket of rows per second, shared by every worker, so
// that verification reads the master no faster than the operator allows.
// A nil *throttle does not limit.
type throttle struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
	now    func() time.Time
}

// newThrottle returns a bucket of rate rows/s, or nil for rate <= 0. The
// burst is the larger of one chunk and a tenth of a second.
func newThrottle(rate, chunk int) *throttle {
	if rate <= 0 {
		return nil
	}
	b := max(float64(chunk), float64(rate)/10)
	return &throttle{rate: float64(rate), burst: b, tokens: b, now: time.Now}
}

// take waits until n rows may be read. Requests larger than the burst are
// let through once the bucket is full, and leave it in debt.
func (t *throttle) take(ctx context.Context, n int) error {
	if t == nil || n <= 0 {
		return nil
	}
	for {
		t.mu.Lock()
		now := t.now()
		if !t.last.IsZero() {
			t.tokens = min(t.burst, t.tokens+now.Sub(t.last).Seconds()*t.rate)
		}
		t.last = now
		need := min(float64(n), t.burst)
		if t.tokens >= need {
			t.tokens -= float64(n)
			t.mu.Unlock()
			return nil
		}
		wait := time.Duration((need - t.tokens) / t.rate * float64(time.Second))
		t.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}
