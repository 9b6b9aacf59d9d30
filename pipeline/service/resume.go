// Package service wires rowcast's stages into the long-running processes
// operators run: the pipeline service (binlog reader to Kafka) and the sink
// workers, alone or together in one process.
package service

import (
	"context"
	"fmt"

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
}

// topic is what FindResume needs of the changelog topic.
type topic interface {
	FirstOffset(ctx context.Context) (int64, error)
	EndOffset(ctx context.Context) (int64, error)
	ReadAt(ctx context.Context, offset int64, max int) ([]pipeline.Message, error)
}

// kafkaTopic adapts the pipeline package's topic functions.
type kafkaTopic struct{ cfg pipeline.KafkaConfig }

func (k kafkaTopic) FirstOffset(ctx context.Context) (int64, error) {
	return pipeline.FirstOffset(ctx, k.cfg)
}
func (k kafkaTopic) EndOffset(ctx context.Context) (int64, error) {
	return pipeline.EndOffset(ctx, k.cfg)
}
func (k kafkaTopic) ReadAt(ctx context.Context, offset int64, max int) ([]pipeline.Message, error) {
	return pipeline.ReadAt(ctx, k.cfg, offset, max)
}

// resumeWindow is how many messages FindResume reads per request while it
// walks back from the end of the topic.
const resumeWindow = 2000

// FindResume walks back from the end of the topic to the last message that
// closes a transaction (or a heartbeat or epoch record, which carry the GTID
// set at a transaction boundary) and returns the position after it.
//
// A transaction cut by a crash leaves its first rows at the tail without a
// last message. Every copy of a transaction starts at row 0 and a retried
// produce repeats a contiguous run, so a message of row r has at least r
// messages of the same transaction right before it: the walk jumps over them
// instead of reading a million-row partial transaction message by message.
func FindResume(ctx context.Context, kcfg pipeline.KafkaConfig, codec *pipeline.Codec) (Resume, error) {
	return findResume(ctx, kafkaTopic{kcfg}, codec)
}

func findResume(ctx context.Context, t topic, codec *pipeline.Codec) (Resume, error) {
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
	for p >= first {
		lo := max(first, p-resumeWindow+1)
		msgs, err := t.ReadAt(ctx, lo, int(p-lo+1))
		if err != nil {
			return res, fmt.Errorf("read changelog at offset %d while looking for the resume point: %w", lo, err)
		}
		if len(msgs) == 0 {
			return res, fmt.Errorf("changelog read at offset %d returned nothing although the topic ends at %d", lo, end)
		}
		for i := len(msgs) - 1; i >= 0; i-- {
			m := msgs[i]
			if m.Offset > p {
				continue
			}
			ev, err := codec.Decode(m.Key, m.Value)
			if err != nil {
				return res, fmt.Errorf("changelog offset %d cannot be decoded (%w); the reader cannot tell where to resume: inspect it with `rowcast tail --from-offset %d --limit 1`", m.Offset, err, m.Offset)
			}
			stale := ev.Pos.Epoch < res.Epoch // behind a newer epoch: a stray old reader
			res.Epoch = max(res.Epoch, ev.Pos.Epoch)
			switch {
			case stale && ev.Kind != pipeline.KindEpoch:
				p = m.Offset - 1
			case ev.Kind == pipeline.KindEpoch && ev.Epoch != nil:
				res.Epoch = max(res.Epoch, ev.Epoch.Epoch)
				res.Master = ev.Epoch.Master
				return res.at(m.Offset, ev.Epoch.StartGTIDSet, ev.Epoch.TxnSeq), nil
			case ev.InTxn() && ev.Pos.Last && ev.GTIDSet != "":
				return res.at(m.Offset, ev.GTIDSet, ev.Pos.TxnSeq), nil
			case ev.Kind == pipeline.KindHeartbeat && ev.GTIDSet != "":
				return res.at(m.Offset, ev.GTIDSet, ev.Pos.TxnSeq), nil
			case ev.InTxn():
				// Inside a transaction that has no last message after it:
				// its rows 0..Row-1 precede this one; jump over them.
				p = m.Offset - int64(ev.Pos.Row) - 1
			default:
				p = m.Offset - 1
			}
		}
		p = min(p, lo-1)
	}
	return res, nil
}

func (r Resume) at(offset int64, gtidSet string, txnSeq uint64) Resume {
	r.Found = true
	r.Offset = offset
	r.GTIDSet = gtidSet
	r.NextTxnSeq = txnSeq + 1
	return r
}
