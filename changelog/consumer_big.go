package changelog

import "context"

// The consumer's side of the big message gate (biggate.go), used when
// Config.GateBigMessages is set: a sink worker's consumer in a process that
// may run several.

// bigMessageBytes is the value size from which a gated consumer treats a
// message as big: half its prefetch budget, at least 1 MiB.
func (c *Consumer) bigMessageBytes() int { return max(c.cfg.PrefetchBytes/2, 1<<20) }

// valueLen is the size of m's value, read or left unread (fetchOnce).
func valueLen(m *Message) int { return max(len(m.Value), m.bigLen) }

// beforeFetch runs before a gated consumer fetches from offset: it waits
// for its worker to apply the big messages it holds; without the gate, for
// the process's reader to publish a big message of the topic, and it takes
// the gate when the message at offset is known to be big. It marks the
// fetch in flight (afterFetch unmarks it): the reader waits for it before
// it publishes a big message.
func (c *Consumer) beforeFetch(ctx context.Context, offset int64) {
	if !c.cfg.GateBigMessages {
		return
	}
	for ctx.Err() == nil {
		c.waitApplied(ctx)
		published := true
		// The holder does not wait: its worker may wait for the big message
		// the reader publishes.
		if !bigMessages.holds(c) {
			published = bigMessages.waitPublished(ctx, c)
			if bigMessages.isBig(c.cfg.Topic, offset) {
				c.bigPass = !bigMessages.acquire(ctx, c)
			}
		}
		// Unmarked, a fetch that waited out a reader or the holder goes ahead.
		if !published || c.bigPass || bigMessages.startFetch(c) {
			return
		}
	}
}

// afterFetch unmarks the fetch that beforeFetch marked.
func (c *Consumer) afterFetch() {
	if c.cfg.GateBigMessages {
		bigMessages.endFetch(c)
	}
}

// waitApplied waits while the consumer holds a big message its worker has
// not applied and the next one is big too (awaiting): until Applied or
// Idle.
func (c *Consumer) waitApplied(ctx context.Context) {
	for {
		c.gateMu.Lock()
		awaiting := c.awaiting
		c.gateMu.Unlock()
		if !awaiting {
			return
		}
		select {
		case <-c.bigWake:
		case <-ctx.Done():
			return
		}
	}
}

// bigReads is what fetchOnce reads of big values: every one for a consumer
// that is not gated or let past the gate; one for the holder of the gate
// whose worker applied the big messages before (or starves); none
// otherwise, since the consumer would drop them.
func (c *Consumer) bigReads() bigReads {
	if !c.cfg.GateBigMessages || c.bigPass {
		return bigReads{}
	}
	c.gateMu.Lock()
	free := c.bigUntil == 0 || c.starved
	c.gateMu.Unlock()
	if free && bigMessages.holds(c) {
		return bigReads{size: c.bigMessageBytes(), quota: 1}
	}
	return bigReads{size: c.bigMessageBytes()}
}

// admitBig decides about a fetch's messages. It returns the messages to
// deliver and whether to fetch again from the same offset. Small messages
// before a big one go first. A big one left unread at the head is fetched
// again once the consumer may take it: after taking the gate, or, when it
// holds the gate already, once its worker applied the big messages before
// (or waits for more of their transaction, Idle).
func (c *Consumer) admitBig(ctx context.Context, msgs []Message) (keep []Message, refetch bool) {
	if !c.cfg.GateBigMessages {
		return msgs, false
	}
	first, last := c.bigSpan(msgs)
	if first < 0 {
		return msgs, false
	}
	for i := first; i <= last; i++ {
		if valueLen(&msgs[i]) >= c.bigMessageBytes() {
			bigMessages.note(c.cfg.Topic, msgs[i].Offset)
		}
	}
	unread := msgs[first].bigLen > 0
	switch {
	case !unread && bigMessages.holds(c):
		// The one big message read, and what comes before the next.
		end := len(msgs)
		if next, _ := c.bigSpan(msgs[first+1:]); next >= 0 {
			end = first + 1 + next
		}
		c.gateMu.Lock()
		c.bigUntil, c.starved = msgs[first].Offset+1, false
		c.gateMu.Unlock()
		return msgs[:end], false
	case !unread && c.bigPass: // the gate's wait ran out: this fetch goes without it
		c.bigPass = false
		return msgs, false
	case first > 0:
		return msgs[:first], false
	}
	clear(msgs)
	if bigMessages.holds(c) {
		c.gateMu.Lock()
		if c.idleAt.Load() >= c.delivered.Load() {
			c.starved = true // the worker already waits for it
		} else {
			c.awaiting = true
		}
		c.gateMu.Unlock()
		return nil, true
	}
	c.bigPass = !bigMessages.acquire(ctx, c)
	return nil, true
}

// bigSpan returns the indexes of the first and the last big message in
// msgs, -1 when there is none.
func (c *Consumer) bigSpan(msgs []Message) (first, last int) {
	first, last = -1, -1
	for i := range msgs {
		if valueLen(&msgs[i]) >= c.bigMessageBytes() {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	return first, last
}

// Applied tells the consumer that its worker applied (committed) every
// message before offset: a gated consumer lets go of the process's big
// message gate once that covers the big messages it fetched under it.
func (c *Consumer) Applied(offset int64) {
	c.applied.Store(offset)
	c.gateMu.Lock()
	if c.bigUntil == 0 || offset < c.bigUntil {
		c.gateMu.Unlock()
		return
	}
	c.bigUntil, c.awaiting, c.starved = 0, false, false
	bigMessages.release(c)
	c.gateMu.Unlock()
	kafkaNotify(c.bigWake)
	FreeGarbage() // the worker's copies of the big rows
}

// Idle tells the consumer that its worker is about to wait for a message,
// with every message before next in its hands. When that is everything
// delivered, the worker is in the middle of a transaction of several big
// rows: the consumer then fetches the next big message under the gate it
// holds instead of waiting for the last one to be applied.
func (c *Consumer) Idle(next int64) {
	c.idleAt.Store(next)
	c.gateMu.Lock()
	defer c.gateMu.Unlock()
	if c.awaiting && next >= c.delivered.Load() {
		c.awaiting, c.starved = false, true
		kafkaNotify(c.bigWake)
	}
}

// AwaitsApplied reports whether the consumer waits for its worker to apply
// a big message before it fetches the next one: the worker should commit
// at the next transaction boundary rather than wait for more.
func (c *Consumer) AwaitsApplied() bool {
	c.gateMu.Lock()
	defer c.gateMu.Unlock()
	return c.awaiting
}

// releaseBig lets go of the gate, and leaves the gate's consumers, when the
// consumer closes.
func (c *Consumer) releaseBig() {
	c.gateMu.Lock()
	defer c.gateMu.Unlock()
	c.bigUntil, c.awaiting, c.starved = 0, false, false
	bigMessages.release(c)
	bigMessages.leave(c)
}
