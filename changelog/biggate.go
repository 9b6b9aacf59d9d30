package changelog

import (
	"context"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

// bigGate lets one consumer of the process at a time hold big messages
// (Config.GateBigMessages), from their fetch until its worker reports them
// applied (Consumer.Applied) or the consumer closes: in `rowcast run` the
// sinks of every replica would otherwise each hold their own copies of the
// same big row at once. A producer of the process about to publish a big
// message reserves it (Producer.ReserveBig): no consumer takes the gate
// until Kafka has the message. Why and what it bounds: docs/DESIGN.md,
// "Large rows".
type bigGate struct {
	mu         sync.Mutex
	holder     *Consumer
	since      time.Time
	publishing map[*Producer]int  // reserved big messages of each producer, not yet acknowledged
	fetching   map[*Consumer]bool // gated consumers with a fetch in flight
	consumers  map[*Consumer]bool // gated consumers not closed (Producer.SinksApplyBig)
	free       chan struct{}      // closed and replaced when the holder or a producer lets go
	// seen holds the offsets of the last big messages of each topic, as
	// the process's producers and consumers saw them: a consumer about to
	// fetch one takes the gate first, without fetching it to find out.
	seen   map[string][]int64
	seenAt map[string]time.Time // when the last offset of seen was noted
}

// bigMessages is the process's gate: the bound is on the process's memory.
var bigMessages = &bigGate{free: make(chan struct{}), publishing: map[*Producer]int{}, fetching: map[*Consumer]bool{},
	consumers: map[*Consumer]bool{}, seen: map[string][]int64{}, seenAt: map[string]time.Time{}}

// BigMessageBytes is the size from which a producer's message counts as
// big (Producer.ReserveBig): a sink's default half prefetch.
const BigMessageBytes = 8 << 20

// bigSeenKept is how many big offsets per topic the gate remembers.
const bigSeenKept = 64

// bigGateWait is how long a consumer waits for the gate before it goes
// ahead without it: a holder whose replica is down must not stop the other
// replicas for longer.
var bigGateWait = 30 * time.Second

// FreeGarbage collects twice (sync.Pool keeps kafka-go's pages for one
// collection more) and returns the freed memory to the OS: called once a
// big message's copies became garbage, so that the next big row reuses
// memory instead of adding to the process's footprint. It costs a few
// milliseconds, once per big message and step.
func FreeGarbage() {
	runtime.GC()
	debug.FreeOSMemory()
}

// acquire makes c the holder, waiting up to bigGateWait for the holder
// before it and for the process's producers of c's topic to publish their
// reserved big messages. It reports whether c holds the gate (false: it
// gave up waiting, or ctx ended).
func (g *bigGate) acquire(ctx context.Context, c *Consumer) bool {
	deadline := time.NewTimer(bigGateWait)
	defer deadline.Stop()
	for {
		g.mu.Lock()
		if (g.holder == nil || g.holder == c) && !g.publishes(c.cfg.Topic) {
			g.holder, g.since = c, time.Now()
			g.mu.Unlock()
			FreeGarbage() // the last holder's copies, and those c dropped
			return true
		}
		holder, free := g.holder, g.free
		g.mu.Unlock()
		select {
		case <-free:
		case <-deadline.C:
			g.waitedOut(c, holder)
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// release lets go of the gate if c holds it.
func (g *bigGate) release(c *Consumer) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.holder != c {
		return
	}
	g.holder = nil
	g.wake()
}

// holds reports whether c holds the gate.
func (g *bigGate) holds(c *Consumer) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.holder == c
}

// wake tells the waiters to look again. g.mu is held.
func (g *bigGate) wake() {
	close(g.free)
	g.free = make(chan struct{})
}

// publishes reports whether a producer of the process has a reserved big
// message of topic in flight. g.mu is held.
func (g *bigGate) publishes(topic string) bool {
	for p := range g.publishing {
		if p.cfg.Topic == topic {
			return true
		}
	}
	return false
}

// waitPublished waits, up to bigGateWait, until no producer of the process
// has a reserved big message of c's topic in flight: fetching it meanwhile
// would hold a copy beside the reader's. It reports false when the wait ran
// out (c then fetches anyway) or ctx ended.
func (g *bigGate) waitPublished(ctx context.Context, c *Consumer) bool {
	ok := g.await(ctx, func() bool { return g.publishes(c.cfg.Topic) })
	if !ok && ctx.Err() == nil {
		g.waitedOut(c, nil)
	}
	return ok
}

// await waits, up to bigGateWait, while busy (called with g.mu held)
// reports true. It reports false when the wait ran out or ctx ended.
func (g *bigGate) await(ctx context.Context, busy func() bool) bool {
	deadline := time.NewTimer(bigGateWait)
	defer deadline.Stop()
	for {
		g.mu.Lock()
		waiting, free := busy(), g.free
		g.mu.Unlock()
		if !waiting {
			return true
		}
		select {
		case <-free:
		case <-deadline.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// waitedOut logs that c fetches a big message without the gate.
func (g *bigGate) waitedOut(c *Consumer, holder *Consumer) {
	if holder == nil {
		c.log.Warn().Msg("the reader of this process still publishes a big message after 30s: fetching anyway, so memory may hold both")
		return
	}
	g.mu.Lock()
	held := time.Since(g.since)
	g.mu.Unlock()
	c.log.Warn().Str("holder_topic", holder.cfg.Topic).Dur("held_for", held).
		Msg("another sink worker of this process still holds a big message after 30s (its replica may be down): fetching this one anyway, so memory holds both")
}

// note remembers that offset of topic holds a big message.
func (g *bigGate) note(topic string, offset int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.seen[topic]
	if len(s) > 0 && s[len(s)-1] >= offset {
		return // seen already (the offsets of a topic only grow)
	}
	if len(s) == bigSeenKept {
		s = append(s[:0], s[1:]...)
	}
	g.seen[topic] = append(s, offset)
	g.seenAt[topic] = time.Now()
}

// isBig reports whether offset of topic is known to hold a big message.
func (g *bigGate) isBig(topic string, offset int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, o := range g.seen[topic] {
		if o == offset {
			return true
		}
	}
	return false
}

// startFetch marks c fetching, unless a producer of its topic publishes a
// big message and c does not hold the gate: then it returns false, and c
// waits for the publish first (beforeFetch).
func (g *bigGate) startFetch(c *Consumer) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.holder != c && g.publishes(c.cfg.Topic) {
		return false
	}
	g.fetching[c] = true
	return true
}

// endFetch unmarks c's fetch.
func (g *bigGate) endFetch(c *Consumer) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fetching[c] {
		delete(g.fetching, c)
		g.wake()
	}
}

// fetchesBeside reports whether a consumer of topic other than the holder
// has a fetch in flight. g.mu is held.
func (g *bigGate) fetchesBeside(topic string) bool {
	for c := range g.fetching {
		if c != g.holder && c.cfg.Topic == topic {
			return true
		}
	}
	return false
}

// ownTurn waits until p has no reserved big message in flight (a reader
// holds one big row at a time) and, unless cont, no sink holds big
// messages; then it marks one, and waits until the fetches in flight of p's
// topic ended (but the holder's): a fetch waiting at the broker for new
// messages would be answered with the big one, which each such consumer
// would read whole, even to drop it. It returns false when ctx ended first
// (nothing marked).
//
// cont says the message continues a transaction, of which the holder may
// hold a row and wait for the rest. A holder that keeps the gate for
// bigGateWait (its replica may be down) does not keep p waiting either.
func (g *bigGate) ownTurn(ctx context.Context, p *Producer, cont bool) bool {
	deadline := time.NewTimer(bigGateWait)
	defer deadline.Stop()
	waitedOut := false
	for {
		g.mu.Lock()
		if g.publishing[p] == 0 && (cont || waitedOut || g.holder == nil) {
			g.publishing[p] = 1
			g.mu.Unlock()
			g.awaitFetches(ctx, p.cfg.Topic)
			return true
		}
		free := g.free
		g.mu.Unlock()
		select {
		case <-free:
		case <-deadline.C:
			waitedOut = true
		case <-ctx.Done():
			return false
		}
	}
}

// awaitFetches waits until no consumer of topic but the holder has a fetch
// in flight, up to bigGateWait: a fetch lasts at most the fetch's max wait
// when no message comes, and none starts while a big message is reserved.
func (g *bigGate) awaitFetches(ctx context.Context, topic string) {
	g.await(ctx, func() bool { return g.fetchesBeside(topic) })
}

// published unmarks n reserved big messages of p (all of them for n < 0).
func (g *bigGate) published(p *Producer, n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.publishing[p] == 0 {
		return
	}
	if n < 0 || g.publishing[p] <= n {
		delete(g.publishing, p)
	} else {
		g.publishing[p] -= n
	}
	g.wake()
}

// ReserveBig prepares the publishing of a big message (BigMessageBytes or
// more): it waits until Kafka acknowledged p's big message before and until
// no sink worker of the process holds big messages, and keeps the sink
// workers from taking big messages until this one is acknowledged. cont
// says the message continues a transaction (it is not its first row): then
// it does not wait for the holder, whose worker may wait for this very
// message. Send the message with Reserved set, or call UnreserveBig when it
// is not sent. It returns false when ctx ended first: then send it without
// Reserved.
func (p *Producer) ReserveBig(ctx context.Context, cont bool) bool {
	return bigMessages.ownTurn(ctx, p, cont)
}

// AwaitBig waits until Kafka acknowledged p's reserved big messages, or
// ctx ends: a reader that sent one waits here before it reads on, so that
// it never holds the next big row beside the copies of this one.
func (p *Producer) AwaitBig(ctx context.Context) {
	for {
		bigMessages.mu.Lock()
		n, free := bigMessages.publishing[p], bigMessages.free
		bigMessages.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-free:
		case <-ctx.Done():
			return
		}
	}
}

// SinksApplyBig reports whether a sink worker of the process is about to
// apply, or applies, the last big message of p's topic: its consumer
// fetched everything before it and its worker has not committed it. The
// reader then reads no further into the binlog for a while, so that the
// next big row does not join that sink's copies (docs/DESIGN.md, "Large
// rows"). A sink behind the message counts for bigCatchUp after it was
// noted: the batch held messages before it, which a sink at the end of the
// topic fetches after the acknowledgement.
func (p *Producer) SinksApplyBig() bool { return bigMessages.applying(p.cfg.Topic) }

// bigCatchUp is how long after a big message was noted a sink behind it
// counts as about to apply it (SinksApplyBig).
const bigCatchUp = 500 * time.Millisecond

// join and leave add and remove a gated consumer (SinksApplyBig).
func (g *bigGate) join(c *Consumer) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.consumers[c] = true
}

func (g *bigGate) leave(c *Consumer) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.consumers, c)
}

// applying reports whether a consumer of topic fetched up to the last big
// message of topic and its worker has not applied it yet.
func (g *bigGate) applying(topic string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	seen := g.seen[topic]
	if len(seen) == 0 {
		return false
	}
	last, fresh := seen[len(seen)-1], time.Since(g.seenAt[topic]) < bigCatchUp
	for c := range g.consumers {
		if c.cfg.Topic == topic && c.applied.Load() <= last && (fresh || c.delivered.Load() >= last) {
			return true
		}
	}
	return false
}

// UnreserveBig takes back a ReserveBig whose message was not sent.
func (p *Producer) UnreserveBig() { bigMessages.published(p, 1) }
