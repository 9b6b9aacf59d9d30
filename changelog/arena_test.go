package changelog

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
// the connections of a closed transport asynchronously, and the transports
// of the test's own helpers (testenv's clients, never closed) may open a
// connection at any time, which then lives until kafka-go's default 30 s
// idle timeout. A goroutine still there after 90 s is a leak (40 s was too
// little once, under CI beside other load on 2 CPUs).
func verifyNoLeaks(t *testing.T, opts ...goleak.Option) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
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

// A big value the caller gave away is queued as it is; a small one, or one
// not given, is copied.
func TestKafkaArenaKeepsOwnedBigValues(t *testing.T) {
	var a kafkaArena
	big := make([]byte, kafkaSlabSize)
	if got := a.keep(big, true); &got[0] != &big[0] {
		t.Fatal("an owned big value was copied")
	}
	if got := a.keep(big, false); &got[0] == &big[0] {
		t.Fatal("a big value not given away was kept")
	}
	small := []byte("abc")
	if got := a.keep(small, true); &got[0] == &small[0] {
		t.Fatal("an owned small value was kept instead of going to a slab")
	}
}
