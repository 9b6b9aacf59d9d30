package service

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/pipeline"
)

// follower finds the epoch records other processes write to the topic
// (`rowcast promote`, the automatic failover), so that the pipeline service
// moves to the new master.
//
// It does not consume the whole topic: the producer acknowledges every
// message of this publisher with its offset, so the messages it did not
// write are the gaps between its own acknowledged runs, and only those are
// read. While idle the whole tail is foreign and read; a stray reader
// publishing beside this one costs a read of its messages.
type follower struct {
	kc changelog.Config

	mu    sync.Mutex
	spans []span // offsets acknowledged to this publisher, ascending, merged
	// checked: every foreign message below it was looked at.
	checked int64
}

type span struct{ lo, hi int64 } // inclusive

// epochKey is the message key of every epoch record.
var epochKey = func() []byte {
	k, err := (&pipeline.Codec{}).AppendKey(nil, &pipeline.Event{Kind: pipeline.KindEpoch, Epoch: &pipeline.EpochRecord{}})
	if err != nil {
		panic(err) // a codec bug, found by the package's tests
	}
	return k
}()

// followPoll is how often the tail is looked at.
const followPoll = 100 * time.Millisecond

// acked records an offset this publisher wrote; called in offset order.
func (f *follower) acked(offset int64) {
	f.mu.Lock()
	if n := len(f.spans); n > 0 && f.spans[n-1].hi+1 == offset {
		f.spans[n-1].hi = offset
	} else {
		f.spans = append(f.spans, span{offset, offset})
	}
	f.mu.Unlock()
}

// gaps returns the ranges of [from, to) this publisher did not write and
// forgets its spans below to (but the last, which bounds a busy tail).
func (f *follower) gaps(from, to int64) []span {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []span
	cur := from
	for _, s := range f.spans {
		if s.hi < cur {
			continue
		}
		if s.lo >= to {
			break
		}
		if s.lo > cur {
			out = append(out, span{cur, s.lo - 1})
		}
		cur = s.hi + 1
	}
	if cur < to {
		out = append(out, span{cur, to - 1})
	}
	n := 0
	for i, s := range f.spans {
		if s.hi >= to || i == len(f.spans)-1 {
			f.spans[n] = s
			n++
		}
	}
	f.spans = f.spans[:n]
	return out
}

// next polls until it finds an epoch record newer than epoch, written by
// someone else at or after the offset the follower starts from. busy
// reports whether this publisher has messages in flight (their offsets are
// not known yet, so the tail after its last acknowledged message waits).
func (f *follower) next(ctx context.Context, epoch uint64, busy func() bool, codec *pipeline.Codec) (*pipeline.EpochRecord, int64, error) {
	t := time.NewTicker(followPoll)
	defer t.Stop()
	for {
		end, err := changelog.EndOffset(ctx, f.kc)
		if err == nil {
			limit := f.limit(end, busy())
			if limit > f.checked {
				rec, off, err := f.scan(ctx, f.gaps(f.checked, limit), epoch, codec)
				if err != nil || rec != nil {
					return rec, off, err
				}
				f.checked = limit
			}
		}
		select {
		case <-ctx.Done():
			return nil, 0, nil
		case <-t.C:
		}
	}
}

// limit is how far the tail can be checked now: to end, or while this
// publisher is busy, to its last acknowledged message.
func (f *follower) limit(end int64, busy bool) int64 {
	if !busy {
		return end
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.spans); n > 0 {
		return min(end, f.spans[n-1].hi+1)
	}
	return min(end, f.checked)
}

func (f *follower) scan(ctx context.Context, gaps []span, epoch uint64, codec *pipeline.Codec) (*pipeline.EpochRecord, int64, error) {
	for _, g := range gaps {
		for off := g.lo; off <= g.hi; {
			msgs, err := changelog.ReadAt(ctx, f.kc, off, int(min(g.hi-off+1, 1000)))
			if err != nil {
				return nil, 0, fmt.Errorf("read the changelog at offset %d for epoch records: %w", off, err)
			}
			if len(msgs) == 0 {
				break
			}
			for _, m := range msgs {
				off = m.Offset + 1
				if m.Offset > g.hi || !bytes.Equal(m.Key, epochKey) || m.SigErr != nil {
					continue
				}
				ev, err := codec.Decode(m.Key, m.Value)
				if err != nil {
					return nil, 0, fmt.Errorf("epoch record at offset %d cannot be decoded: %w", m.Offset, err)
				}
				if ev.Epoch != nil && ev.Epoch.Epoch > epoch {
					return ev.Epoch, m.Offset, nil
				}
			}
		}
	}
	return nil, 0, nil
}
