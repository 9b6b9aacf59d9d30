package pipeline

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

// An empty key or value is not a null one: the arena must keep the
// difference, also as the first thing a fresh arena copies.
func TestKafkaArenaKeepsEmptyApartFromNil(t *testing.T) {
	var a kafkaArena
	if got := a.copy([]byte{}); got == nil || len(got) != 0 {
		t.Fatalf("copy of an empty slice into a fresh arena = %#v, want empty and non-nil", got)
	}
	if got := a.copy(nil); got != nil {
		t.Fatalf("copy of nil = %#v, want nil", got)
	}
	b := a.copy([]byte("abc"))
	if got := a.copy([]byte{}); got == nil || len(got) != 0 {
		t.Fatalf("copy of an empty slice after data = %#v, want empty and non-nil", got)
	}
	if string(b) != "abc" {
		t.Fatalf("earlier copy changed to %q", b)
	}
}

// verifyNoLeaks is goleak.VerifyNone with more patience: kafka-go closes
// the connections of a closed transport asynchronously, which on a loaded
// 2-core machine can take longer than goleak's ~2 s of retries. A goroutine
// still there after 15 s is a leak.
func verifyNoLeaks(t *testing.T, opts ...goleak.Option) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := goleak.Find(opts...)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines left behind: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
