// Package service wires rowcast's stages into the long-running processes
// operators run: the pipeline service (binlog reader to Kafka) and the sink
// workers, alone or together in one process.
package service

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/pipeline"
)

// Resume is where a reader continues, read back from the changelog topic. The
// topic is the only source of truth for it (DESIGN.md, invariant 3): there is
// no second store that could disagree.
type Resume struct {
	// Found is false for a topic that holds no resumable message yet.
	Found bool
	// GTIDSet is the master's executed GTID set after the last transaction
	// published in full: the reader starts the binlog right after it.
	GTIDSet string
	// NextTxnSeq is the sequence number the next published transaction gets.
	NextTxnSeq uint64
	// Epoch is the newest master generation seen in the topic.
	Epoch uint64
	// Offset is the offset of the message the resume point was taken from
	// (-1 when not Found); End is the topic's end offset.
	Offset, End int64
	// Master names the new master when the resume point is an epoch record.
	Master string
	// CutRead is the last message of the topic when it is a snapshot row
	// whose chunk a crash cut short (nil otherwise). A chunk cannot be read
	// again as it was, so the publisher ends it (closeCutRead) instead of
	// publishing it again.
	CutRead *pipeline.Event
	// Undecodable counts the messages the walk passed over because they
	// could not be decoded (each is logged with its offset).
	Undecodable int
	// Refused counts the messages the walk passed over because they failed
	// the signature check: nothing in them is followed (each is logged at
	// error with its offset).
	Refused int
}

// topic is what FindResume needs of the changelog topic.
type topic = changelog.Topic

// resumeWindow is how many messages FindResume reads per request while it
// walks back from the end of the topic.
const resumeWindow = 2000

// resumeBytes bounds the bytes of messages FindResume holds per read, so
// that big rows at the tail are held about one at a time (changelog.ReadBack).
const resumeBytes = changelog.DefaultBackBudget

// maxUndecodable bounds the undecodable messages FindResume passes over
// before it gives up: a few stray or corrupt messages at the tail must not
// keep the reader from starting, a topic of them means something else wrote
// it.
const maxUndecodable = 1000

// FindResume walks back from the end of the topic to the last message that
// closes a transaction (or a heartbeat or epoch record, which carry the GTID
// set at a transaction boundary) and returns the position after it.
//
// A transaction cut by a crash leaves its first rows at the tail without a
// last message. Every copy of a transaction starts at row 0 and a retried
// produce repeats a contiguous run, so a message of row r has at least r
// messages of the same transaction right before it: the walk jumps over them
// instead of reading a million-row partial transaction message by message.
//
// A message that cannot be decoded is logged and passed over: the resume
// point is the last decodable one. More than maxUndecodable of them is an
// error.
func FindResume(ctx context.Context, kcfg changelog.Config, codec *pipeline.Codec, log zerolog.Logger) (Resume, error) {
	return findResume(ctx, changelog.TopicOf(kcfg), codec, log)
}

func findResume(ctx context.Context, t topic, codec *pipeline.Codec, log zerolog.Logger) (Resume, error) {
	res := Resume{Offset: -1, NextTxnSeq: 1, Epoch: 1}
	first, err := t.FirstOffset(ctx)
	if err != nil {
		return res, err
	}
	end, err := t.EndOffset(ctx)
	if err != nil {
		return res, err
	}
	res.End = end
	p := end - 1 // next offset to look at, walking backwards
	if p >= first {
		if res.CutRead, err = cutRead(ctx, t, p, codec); err != nil {
			return res, err
		}
	}
	w := changelog.BackWindow{Max: resumeWindow, Budget: resumeBytes}
	for p >= first {
		lo := max(first, p-int64(w.Next())+1)
		msgs, err := changelog.ReadBack(ctx, t, lo, p, resumeBytes)
		if err != nil {
			return res, fmt.Errorf("read changelog at offset %d while looking for the resume point: %w", lo, err)
		}
		if len(msgs) == 0 {
			return res, fmt.Errorf("changelog read at offset %d returned nothing although the topic ends at %d", lo, end)
		}
		w.Saw(msgs)
		var done bool
		if p, done, err = res.walkBack(msgs, p, codec, log); err != nil || done {
			return res, err
		}
		p = min(p, msgs[0].Offset-1)
	}
	return res, res.noneDecodable()
}

// noneDecodable is the error for a topic whose messages, some undecodable,
// hold no resume point: starting it afresh could put a second history
// after one the reader cannot read.
func (r *Resume) noneDecodable() error {
	if r.Found || r.Undecodable+r.Refused == 0 {
		return nil
	}
	if r.Undecodable == 0 {
		return fmt.Errorf("changelog topic holds %d messages that fail the signature check and no signed resume point: "+
			"the reader cannot tell where to resume; check kafka.signing (the key, or trust_unsigned_before for a topic written before signing was on) "+
			"and who writes the topic (docs/SECURITY.md)", r.Refused)
	}
	return fmt.Errorf("changelog topic holds %d messages that cannot be decoded and no resume point before them: "+
		"the reader cannot tell where to resume; inspect the topic with `rowcast tail`: something other than rowcast may write it", r.Undecodable)
}

// walkBack looks at msgs from the last one at or below p down to the first.
// It returns the next offset to look at, or done when r holds the resume
// point.
func (r *Resume) walkBack(msgs []changelog.Message, p int64, codec *pipeline.Codec, log zerolog.Logger) (next int64, done bool, err error) {
	for i := len(msgs) - 1; i >= 0; i-- {
		m := msgs[i]
		if m.Offset > p {
			continue
		}
		if m.SigErr != nil {
			r.refuse(m, log)
			p = m.Offset - 1
			continue
		}
		ev, err := codec.Decode(m.Key, m.Value)
		if err != nil {
			if err := r.passOver(m.Offset, err, log); err != nil {
				return p, false, err
			}
			p = m.Offset - 1
			continue
		}
		if p, done = r.step(m.Offset, ev); done {
			return p, true, nil
		}
	}
	return p, false, nil
}

// refuse passes over a message that failed the signature check: its
// position could make the reader skip or repeat transactions.
func (r *Resume) refuse(m changelog.Message, log zerolog.Logger) {
	r.Refused++
	log.Error().Int64("offset", m.Offset).Err(m.SigErr).
		Msg("changelog message failed the signature check: not followed while looking for the resume point (something other than rowcast writes the topic: docs/SECURITY.md)")
}

// passOver logs an undecodable message and counts it; past maxUndecodable
// it is the error that stops the walk.
func (r *Resume) passOver(offset int64, err error, log zerolog.Logger) error {
	r.Undecodable++
	if r.Undecodable > maxUndecodable {
		return fmt.Errorf("changelog offset %d cannot be decoded (%w), nor can the %d messages after it: the reader cannot tell where to resume; "+
			"inspect them with `rowcast tail --from-offset %d --limit 1`: something other than rowcast may write this topic", offset, err, maxUndecodable, offset)
	}
	log.Warn().Int64("offset", offset).Err(err).
		Msg("changelog message cannot be decoded: passed over while looking for the resume point (inspect it with `rowcast tail --from-offset N --limit 1`)")
	return nil
}

// step takes the message at offset into account, walking backwards: done
// when it is the resume point, else the next offset to look at.
func (r *Resume) step(offset int64, ev *pipeline.Event) (next int64, done bool) {
	stale := ev.Pos.Epoch < r.Epoch // behind a newer epoch: a stray old reader
	r.Epoch = max(r.Epoch, ev.Pos.Epoch)
	switch {
	case stale && ev.Kind != pipeline.KindEpoch:
		return offset - 1, false
	case ev.Kind == pipeline.KindEpoch && ev.Epoch != nil:
		r.Epoch = max(r.Epoch, ev.Epoch.Epoch)
		r.Master = ev.Epoch.Master
		*r = r.at(offset, ev.Epoch.StartGTIDSet, ev.Epoch.TxnSeq)
		return offset, true
	case ev.InTxn() && ev.Pos.Last && ev.GTIDSet != "",
		ev.Kind == pipeline.KindHeartbeat && ev.GTIDSet != "":
		*r = r.at(offset, ev.GTIDSet, ev.Pos.TxnSeq)
		return offset, true
	case ev.InTxn():
		// Inside a transaction that has no last message after it: its
		// rows 0..Row-1 precede this one; jump over them.
		return offset - int64(ev.Pos.Row) - 1, false
	}
	return offset - 1, false
}

// cutRead is the message at offset last when it is a snapshot row that is
// not the last of its chunk.
func cutRead(ctx context.Context, t topic, last int64, codec *pipeline.Codec) (*pipeline.Event, error) {
	msgs, err := t.ReadAt(ctx, last, 1)
	if err != nil || len(msgs) == 0 || msgs[0].SigErr != nil {
		return nil, err
	}
	ev, err := codec.Decode(msgs[0].Key, msgs[0].Value)
	if err != nil || ev.Kind != pipeline.KindRow || ev.Op != pipeline.OpRead || ev.Pos.Last {
		return nil, nil // an undecodable tail is reported by the walk
	}
	return ev, nil
}

func (r Resume) at(offset int64, gtidSet string, txnSeq uint64) Resume {
	r.Found = true
	r.Offset = offset
	r.GTIDSet = gtidSet
	r.NextTxnSeq = txnSeq + 1
	return r
}
