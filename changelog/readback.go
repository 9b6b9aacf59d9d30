package changelog

import (
	"context"
	"fmt"
)

// BoundedTopic is a Topic that can also stop a read at a number of bytes.
// Walks back through the topic use it, when the Topic has it, so that a tail
// of big messages is held one window of about maxBytes at a time.
type BoundedTopic interface {
	Topic
	// ReadAtMost is ReadAt that stops once the messages it holds reach
	// maxBytes (counted as Message.Size counts them); it returns at least
	// one message when there is one.
	ReadAtMost(ctx context.Context, offset int64, max, maxBytes int) ([]Message, error)
}

// ReadAtMost is ReadAt stopping once the records read reach maxBytes.
func ReadAtMost(ctx context.Context, cfg Config, offset int64, max, maxBytes int) ([]Message, error) {
	return readAt(ctx, cfg, offset, max, maxBytes)
}

func (t configTopic) ReadAtMost(ctx context.Context, offset int64, max, maxBytes int) ([]Message, error) {
	return ReadAtMost(ctx, t.cfg, offset, max, maxBytes)
}

// Size is what a message costs in the byte bounds of reads: its key,
// value and an entry's overhead.
func (m Message) Size() int { return len(m.Key) + len(m.Value) + producerEntryOverhead }

// BackWindow sizes the reads of a walk back through a topic so that one
// read holds about Budget bytes: many small messages, or one big one.
type BackWindow struct {
	Max    int // messages per read at most
	Budget int // bytes per read, about
	n      int
}

// DefaultBackBudget is the bytes a walk back holds per read when the caller
// names no other bound.
const DefaultBackBudget = 16 << 20

// Next is how many messages the next read asks for: one at first (the tail
// may hold big messages), then what the sizes seen so far allow.
func (w *BackWindow) Next() int { return max(1, min(w.n, w.Max)) }

// Saw adjusts the window to the messages a read returned, by the largest of
// them: a window of the next, unseen messages must fit the budget too.
func (w *BackWindow) Saw(msgs []Message) {
	largest := 1
	for _, m := range msgs {
		largest = max(largest, m.Size())
	}
	w.n = max(1, w.Budget/largest)
}

// ReadBack returns messages of [lo, hi], the newest ones, holding at most
// about budget bytes (at least the one at hi) when t is a BoundedTopic. A
// read that stops short of hi is dropped and the walk reads on from where it
// stopped: the newest messages are what a walk back needs first. The first
// returned message may thus be after lo.
func ReadBack(ctx context.Context, t Topic, lo, hi int64, budget int) ([]Message, error) {
	bt, ok := t.(BoundedTopic)
	if !ok {
		return t.ReadAt(ctx, lo, int(hi-lo+1))
	}
	for {
		msgs, err := bt.ReadAtMost(ctx, lo, int(hi-lo+1), budget)
		if err != nil || len(msgs) == 0 {
			return msgs, err
		}
		last := msgs[len(msgs)-1].Offset
		if last >= hi {
			return msgs, nil
		}
		if last < lo {
			return nil, fmt.Errorf("changelog read at offset %d returned offset %d", lo, last)
		}
		lo = last + 1
	}
}
