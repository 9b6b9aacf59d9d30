package source

import (
	"context"
	"net"
	"sync"
	"time"
	"unsafe"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/replication"
)

// bigEvents keeps go-mysql from reading ahead past a big rows event: its
// syncer goroutine decodes the next big one only once the stream published
// the rows of the one before (and Kafka has them), or waits for more of
// their transaction (starve). go-mysql reads up to EventBuffer events ahead,
// so a run of big rows would otherwise sit in memory that many times over.
// go-mysql reads an event's packet before any hook of rowcast's runs, so the
// connection to the master is held back too (heldConn): it reads
// readAheadBytes past a big event not yet published, then waits, so that the
// next big event is not read whole meanwhile.
type bigEvents struct {
	limit   int
	done    <-chan struct{}
	hold    func() bool   // Config.HoldReads, nil for none
	maxHold time.Duration // how long hold may keep the syncer after a big event

	mu        sync.Mutex
	pending   uintptr       // the big event decoded, not yet published: its address only, so that it does not keep the event's buffer
	seen      bool          // the stream handled pending (its last row may wait for the next event)
	read      int           // bytes read from the master since pending was decoded, or published (heldConn)
	free      chan struct{} // signalled when pending is published
	published time.Time     // when the last big event was published, while hold may keep the syncer
}

// bigEventBytes is the rows event size from which bigEvents holds the
// syncer back.
const bigEventBytes = 8 << 20

func newBigEvents(limit int, done <-chan struct{}) *bigEvents {
	return &bigEvents{limit: limit, done: done, free: make(chan struct{}, 1)}
}

// holdReads makes the syncer wait after a big event is published while
// hold reports true, up to maxHold (waitHold).
func (b *bigEvents) holdReads(hold func() bool, maxHold time.Duration) {
	b.hold, b.maxHold = hold, maxHold
}

// wrap returns decode with the wait before a big event's decoding.
func (b *bigEvents) wrap(decode func(*replication.RowsEvent, []byte) error) func(*replication.RowsEvent, []byte) error {
	return func(e *replication.RowsEvent, data []byte) error {
		if len(data) >= b.limit {
			if !b.nested() {
				b.wait()
			}
			b.mu.Lock()
			b.pending, b.seen, b.read = uintptr(unsafe.Pointer(e)), false, 0
			b.published = time.Time{}
			b.mu.Unlock()
		}
		return decode(e, data)
	}
}

// nested reports whether nothing was read from the master since the big
// event pending was decoded: this one comes from the same packet, a
// transaction payload (MySQL's binlog_transaction_compression), which the
// stream gets whole once both are decoded, so waiting would never end.
func (b *bigEvents) nested() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pending != 0 && b.read == 0
}

// wait blocks until the last big event was handled, or the reader stops.
func (b *bigEvents) wait() { b.waitWhile(func() bool { return b.pending != 0 }) }

// waitWhile blocks while held (called with b.mu held) reports true, until
// the reader stops.
func (b *bigEvents) waitWhile(held func() bool) {
	for {
		b.mu.Lock()
		h := held()
		b.mu.Unlock()
		if !h {
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
	b.seen = b.seen || b.holdsPending(ev)
	if b.seen && published {
		b.pending, b.seen = 0, false
		if b.hold != nil {
			b.published, b.read = time.Now(), 0
		}
		select {
		case b.free <- struct{}{}:
		default:
		}
	}
}

// holdsPending reports whether ev is the pending big event, or a
// transaction payload that holds it. b.mu is held.
func (b *bigEvents) holdsPending(ev *replication.BinlogEvent) bool {
	switch e := ev.Event.(type) {
	case *replication.RowsEvent:
		return uintptr(unsafe.Pointer(e)) == b.pending
	case *replication.TransactionPayloadEvent:
		for _, in := range e.Events {
			if b.holdsPending(in) {
				return true
			}
		}
	}
	return false
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

// readAheadBytes is how much of the stream the syncer reads past a big event
// not yet published: enough for the events that end its transaction, which
// the stream needs to publish it (a longer tail waits for starve), and
// little of the next big event, which go-mysql would otherwise read whole
// before any decode hook runs.
const readAheadBytes = 1 << 20

// dialer wraps d so that the syncer's connection to the master reads at
// most readAheadBytes past a big event not yet published (heldConn).
func (b *bigEvents) dialer(d client.Dialer) client.Dialer {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &heldConn{Conn: c, b: b}, nil
	}
}

// heldConn is the syncer's connection to the master, held back by bigEvents.
// Only the syncer goroutine reads it, and it also runs the decode hook, so
// a Read and bigEvents.wait never wait at once.
type heldConn struct {
	net.Conn
	b *bigEvents
}

func (c *heldConn) Read(p []byte) (int, error) {
	c.b.waitRead()
	n, err := c.Conn.Read(p)
	c.b.readFromMaster(n)
	return n, err
}

// readFromMaster counts n bytes read from the master's connection.
func (b *bigEvents) readFromMaster(n int) {
	b.mu.Lock()
	b.read += n
	b.mu.Unlock()
}

// waitRead blocks while a big event is not published and the syncer has
// read readAheadBytes past it, until it is (or starve, or the reader stops).
func (b *bigEvents) waitRead() {
	b.waitWhile(func() bool { return b.pending != 0 && b.read >= readAheadBytes })
	b.waitHold()
}

// waitHold blocks, once the syncer has read readAheadBytes past the last
// big event published, while hold reports true, for at most maxHold after
// the publish (or until the reader stops): in `rowcast run` a sink worker
// of the process then applies that big row, and the next one, which go-mysql
// reads whole before any hook runs, would join its copies. The first false
// of hold ends the wait for that event.
func (b *bigEvents) waitHold() {
	for {
		b.mu.Lock()
		since, read := b.published, b.read
		b.mu.Unlock()
		if since.IsZero() || read < readAheadBytes {
			return
		}
		if time.Since(since) >= b.maxHold || !b.hold() {
			b.mu.Lock()
			if b.published.Equal(since) {
				b.published = time.Time{}
			}
			b.mu.Unlock()
			return
		}
		select {
		case <-time.After(holdPoll):
		case <-b.done:
			return
		}
	}
}

// holdPoll is how often waitHold asks hold again.
const holdPoll = 20 * time.Millisecond

// maxHoldReads bounds how long HoldReads keeps the reader after a big event:
// a sink whose replica is down must not stop it for longer, and the master
// ends a dump connection it cannot write to for net_write_timeout (60 s).
const maxHoldReads = 10 * time.Second
