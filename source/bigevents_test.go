package source

import (
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/replication"
)

// TestBigEventsHoldTheSyncer: the syncer decodes a big rows event only once
// the stream published the big one before, not when it merely handled it
// (its last row waits for the next event), unless the stream starves for
// it; small events pass.
func TestBigEventsHoldTheSyncer(t *testing.T) {
	done := make(chan struct{})
	defer close(done)
	b := newBigEvents(10, done)
	decoded := make(chan *replication.RowsEvent, 4)
	decode := b.wrap(func(e *replication.RowsEvent, _ []byte) error {
		decoded <- e
		return nil
	})
	first, second, small := &replication.RowsEvent{}, &replication.RowsEvent{}, &replication.RowsEvent{}
	if err := decode(first, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	<-decoded
	go func() { _ = decode(second, make([]byte, 10)) }()
	wantNone := func(what string) {
		t.Helper()
		select {
		case <-decoded:
			t.Fatalf("the second big event was decoded %s", what)
		case <-time.After(200 * time.Millisecond):
		}
	}
	wantNone("before the first was handled")
	b.handled(&replication.BinlogEvent{Event: first}, false)
	wantNone("while the first's last row was held back")
	if err := decode(small, make([]byte, 9)); err != nil {
		t.Fatal(err)
	}
	if e := <-decoded; e != small {
		t.Fatal("a small event waited")
	}
	b.handled(&replication.BinlogEvent{Event: &replication.XIDEvent{}}, true)
	wantDecoded(t, decoded, second, "once the first was published")

	// A third big event in the second's transaction: the stream holds the
	// second's last row back until it gets the third, and starves.
	go func() { _ = decode(first, make([]byte, 10)) }()
	b.handled(&replication.BinlogEvent{Event: second}, false)
	stop := b.awaitNext(true)
	defer stop()
	wantDecoded(t, decoded, first, "while the stream waited for it")
}

func wantDecoded(t *testing.T, decoded <-chan *replication.RowsEvent, want *replication.RowsEvent, when string) {
	t.Helper()
	select {
	case e := <-decoded:
		if e != want {
			t.Fatalf("another event than the one expected was decoded %s", when)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the big event was not decoded %s", when)
	}
}
