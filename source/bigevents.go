package source

import (
	"sync"
	"time"
	"unsafe"

	"github.com/go-mysql-org/go-mysql/replication"
)

// bigEvents keeps go-mysql from reading ahead past a big rows event: its
// syncer goroutine decodes the next big one only once the stream published
// the rows of the one before (and Kafka has them), or waits for more of
// their transaction (starve). go-mysql reads up to EventBuffer events ahead,
// so a run of big rows would otherwise sit in memory that many times over.
// The syncer has read the packet of the event it waits to decode, so at most
// two big events are held: the one published and the next.
type bigEvents struct {
	limit int
	done  <-chan struct{}

	mu      sync.Mutex
	pending uintptr       // the big event decoded, not yet published: its address only, so that it does not keep the event's buffer
	seen    bool          // the stream handled pending (its last row may wait for the next event)
	free    chan struct{} // signalled when pending is published
}

// bigEventBytes is the rows event size from which bigEvents holds the
// syncer back.
const bigEventBytes = 8 << 20

func newBigEvents(limit int, done <-chan struct{}) *bigEvents {
	return &bigEvents{limit: limit, done: done, free: make(chan struct{}, 1)}
}

// wrap returns decode with the wait before a big event's decoding.
func (b *bigEvents) wrap(decode func(*replication.RowsEvent, []byte) error) func(*replication.RowsEvent, []byte) error {
	return func(e *replication.RowsEvent, data []byte) error {
		if len(data) >= b.limit {
			b.wait()
			b.mu.Lock()
			b.pending, b.seen = uintptr(unsafe.Pointer(e)), false
			b.mu.Unlock()
		}
		return decode(e, data)
	}
}

// wait blocks until the last big event was handled, or the reader stops.
func (b *bigEvents) wait() {
	for {
		b.mu.Lock()
		busy := b.pending != 0
		b.mu.Unlock()
		if !busy {
			return
		}
		select {
		case <-b.free:
		case <-b.done:
			return
		}
	}
}

// starve releases the syncer when the stream waits for the next event while
// it holds the last row of the big event back (its Last flag is decided by
// the next event): in a transaction of two big rows events, that next event
// is the one the syncer waits to decode.
func (b *bigEvents) starve() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending != 0 && b.seen {
		b.pending, b.seen = 0, false
		select {
		case b.free <- struct{}{}:
		default:
		}
	}
}

// bigStarveAfter is how long the stream waits for the next event, holding
// a big event's last row back, before starve: long enough for the events
// go-mysql already read to come first.
const bigStarveAfter = 50 * time.Millisecond

// handled tells that the stream handled ev; published, that it emitted
// every row it handled (none is held back for the next event).
func (b *bigEvents) handled(ev *replication.BinlogEvent, published bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending == 0 {
		return
	}
	if e, ok := ev.Event.(*replication.RowsEvent); ok && uintptr(unsafe.Pointer(e)) == b.pending {
		b.seen = true
	}
	if b.seen && published {
		b.pending, b.seen = 0, false
		select {
		case b.free <- struct{}{}:
		default:
		}
	}
}

// awaitNext arms starve for a wait of the stream, when it holds a row back;
// call the returned func once the wait is over.
func (b *bigEvents) awaitNext(holding bool) (stop func()) {
	if !holding {
		return func() {}
	}
	t := time.AfterFunc(bigStarveAfter, b.starve)
	return func() { t.Stop() }
}
