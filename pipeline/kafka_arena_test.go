package pipeline

import "testing"

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
