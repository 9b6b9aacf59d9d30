package source

import (
	"bytes"
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

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
	b.readFromMaster(10) // the second's packet
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
	b.readFromMaster(10)
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

// TestHeldConnReadsAhead: past a big event not yet published, the syncer's
// connection reads readAheadBytes (the rest of its transaction) and then
// waits, instead of reading the next big event whole; it goes on once the
// event is published, or the reader stops.
func TestHeldConnReadsAhead(t *testing.T) {
	done := make(chan struct{})
	b := newBigEvents(10, done)
	dial := b.dialer(func(context.Context, string, string) (net.Conn, error) {
		return endlessConn{}, nil
	})
	conn, err := dial(context.Background(), "tcp", "master")
	if err != nil {
		t.Fatal(err)
	}
	big := &replication.RowsEvent{}
	decode := b.wrap(func(e *replication.RowsEvent, _ []byte) error {
		lastDecoded = e // on the heap, as go-mysql's events: bigEvents keeps its address
		return nil
	})
	if err := decode(big, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	read := 0
	for read < readAheadBytes {
		n, _ := conn.Read(buf)
		read += n
	}
	more := make(chan struct{})
	go func() {
		conn.Read(buf)
		close(more)
	}()
	select {
	case <-more:
		t.Fatalf("read on %d bytes past a big event not yet published", read)
	case <-time.After(200 * time.Millisecond):
	}
	b.handled(&replication.BinlogEvent{Event: big}, true)
	select {
	case <-more:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection still waits after the big event was published")
	}

	if err := decode(big, make([]byte, 10)); err != nil { // the next big event
		t.Fatal(err)
	}
	for read = 0; read < readAheadBytes; {
		n, _ := conn.Read(buf)
		read += n
	}
	close(done)
	if _, err := conn.Read(buf); err != nil {
		t.Fatalf("once the reader stops: %v, want the read to go on", err)
	}
}

// TestHeldConnHoldsAfterPublish: with HoldReads set, the syncer reads a MiB
// past a big event the stream published, then waits while HoldReads reports
// true (a sink of the process applies that row), and goes on once it
// reports false, or after maxHold at most.
func TestHeldConnHoldsAfterPublish(t *testing.T) {
	done := make(chan struct{})
	b := newBigEvents(10, done)
	var holding atomic.Bool
	holding.Store(true)
	b.holdReads(holding.Load, time.Minute)
	conn, _ := b.dialer(func(context.Context, string, string) (net.Conn, error) { return endlessConn{}, nil })(context.Background(), "tcp", "master")
	big := &replication.RowsEvent{}
	decode := b.wrap(func(e *replication.RowsEvent, _ []byte) error { lastDecoded = e; return nil })
	publish := func() {
		if err := decode(big, make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
		b.handled(&replication.BinlogEvent{Event: big}, true)
	}
	readAhead := func() {
		t.Helper()
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 64<<10)
			for read := 0; read < readAheadBytes; {
				n, _ := conn.Read(buf)
				read += n
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("held within the MiB past the big event")
		}
	}
	more := func() chan struct{} {
		c := make(chan struct{})
		go func() {
			conn.Read(make([]byte, 1))
			close(c)
		}()
		return c
	}

	publish()
	readAhead()
	next := more()
	select {
	case <-next:
		t.Fatal("read on past a MiB while HoldReads reported true")
	case <-time.After(300 * time.Millisecond):
	}
	holding.Store(false)
	select {
	case <-next:
	case <-time.After(10 * time.Second):
		t.Fatal("still held after HoldReads reported false")
	}
	holding.Store(true)
	readAhead()
	select {
	case <-more():
	case <-time.After(10 * time.Second):
		t.Fatal("held again for the same big event: one false ends its wait")
	}

	b.holdReads(holding.Load, 300*time.Millisecond)
	start := time.Now() // maxHold counts from the publish
	publish()
	readAhead()
	select {
	case <-more():
		if waited := time.Since(start); waited < 300*time.Millisecond {
			t.Fatalf("went on after %v, before maxHold", waited)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("held past maxHold")
	}

	// A new big event ends the hold of the last one (its own wait takes
	// over), and so does the reader's stop.
	b.holdReads(holding.Load, time.Minute)
	publish()
	readAhead()
	next = more()
	if err := decode(big, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-next:
	case <-time.After(10 * time.Second):
		t.Fatal("still held after the next big event was decoded")
	}
	b.handled(&replication.BinlogEvent{Event: big}, true)
	readAhead()
	next = more()
	close(done)
	select {
	case <-next:
	case <-time.After(10 * time.Second):
		t.Fatal("still held after the reader stopped")
	}
}

var lastDecoded *replication.RowsEvent

// TestBigEventsInOnePayload: two big rows events of one transaction payload
// (MySQL's binlog_transaction_compression) come from one packet, decoded in
// one go before the stream gets the payload: the second does not wait for
// the first, and the payload publishes them.
func TestBigEventsInOnePayload(t *testing.T) {
	done := make(chan struct{})
	defer close(done)
	b := newBigEvents(10, done)
	decode := b.wrap(func(e *replication.RowsEvent, _ []byte) error {
		lastDecoded = e
		return nil
	})
	first, second := &replication.RowsEvent{}, &replication.RowsEvent{}
	b.readFromMaster(10) // the payload's packet
	ok := make(chan error, 1)
	go func() {
		if err := decode(first, make([]byte, 10)); err != nil {
			ok <- err
			return
		}
		ok <- decode(second, make([]byte, 10))
	}()
	select {
	case err := <-ok:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second big event of a payload waits for the first, which the stream gets only with it")
	}
	payload := &replication.TransactionPayloadEvent{Events: []*replication.BinlogEvent{{Event: first}, {Event: second}}}
	b.handled(&replication.BinlogEvent{Event: payload}, true)
	if b.pending != 0 {
		t.Error("the published payload did not publish its big events")
	}
}

// endlessConn reads zeros forever.
type endlessConn struct{ net.Conn }

func (endlessConn) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestBigValuesAliasTheEvent: a value of aliasBytes or more stays in its
// binlog event instead of being copied (the row would be held twice), with
// its capacity capped so that BINARY padding cannot write into the event;
// a smaller value is copied, so that it does not pin its event.
func TestBigValuesAliasTheEvent(t *testing.T) {
	event := bytes.Repeat([]byte("e"), 2*aliasBytes)
	small, big := event[:10], event[:aliasBytes]
	if b := eventBytes(small); &b[0] == &event[0] {
		t.Error("a small value aliases its event")
	}
	b := eventBytes(big)
	if &b[0] != &event[0] || cap(b) != len(big) {
		t.Errorf("a big value: aliased %v, cap %d; want the event's bytes, cap %d", &b[0] == &event[0], cap(b), len(big))
	}
	if b = append(b, 'x'); event[aliasBytes] != 'e' {
		t.Error("appending to a big value wrote into its event")
	}
	if s := eventString(big); unsafe.StringData(s) != &event[0] || len(s) != aliasBytes {
		t.Error("a big text value is not the event's bytes")
	}
	if s := eventString(small); unsafe.StringData(s) == &event[0] || s != "eeeeeeeeee" {
		t.Errorf("a small text value aliases its event or reads %q", s)
	}
}
