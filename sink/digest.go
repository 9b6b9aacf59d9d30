package sink

import (
	"context"
	"fmt"
	"math/bits"

	"github.com/cespare/xxhash/v2"

	"github.com/rowcast/rowcast/checkpoint"
)

// A duplicate skipped by its position must be the transaction applied at
// that position: the worker keeps a digest of each applied transaction
// (its messages' bytes, in order) with the checkpoint, for the last
// digestWindow transactions, and compares a duplicate copy read from its
// first message to its last with it. docs/DESIGN.md, "The topic is a trust
// boundary".

// DigestStore is a Target that keeps the digests of applied transactions.
type DigestStore interface {
	// RecordDigests records ds in the open transaction, which commits with
	// the checkpoint after them, and deletes those below pruneBelow (0:
	// none).
	RecordDigests(ctx context.Context, ds []checkpoint.TxnDigest, pruneBelow uint64) error
	// Digest reads the digest of transaction seq; found is false when it
	// was not recorded or was pruned.
	Digest(ctx context.Context, seq uint64) (digest uint64, found bool, err error)
}

// digestWindow is how many transactions back a duplicate can be compared.
const digestWindow = 1000

// MessageDigest is the digest of a message's key and value; never 0 (0 is
// "unknown" in Message.Sum).
func MessageDigest(key, value []byte) uint64 {
	return mixDigest(xxhash.Sum64(key), xxhash.Sum64(value)) | 1
}

// mixDigest folds a message's digest into its transaction's, in order.
func mixDigest(h, s uint64) uint64 {
	return (bits.RotateLeft64(h, 23) ^ s) * 0x9E3779B97F4A7C15
}

// txnDigest accumulates the digest of a transaction's messages.
type txnDigest struct {
	sum     uint64
	unknown bool // a message had no digest: nothing to record or compare
}

// add folds in a message's digest; after an operator skip (skipped) the
// skipped message is missing from it.
func (d *txnDigest) add(msgSum uint64, skipped bool) {
	if msgSum == 0 || skipped {
		d.unknown = true
	}
	d.sum = mixDigest(d.sum, msgSum)
}

// dupCopy is a duplicate transaction being read again, from its row 0 on.
type dupCopy struct {
	seq, next uint64
	d         txnDigest
	active    bool
}

// finishedDigest records the digest of the transaction just finished, for the
// next commit.
func (w *Worker) finishedDigest(seq uint64) {
	if !w.cur.d.unknown {
		w.pendDigests = append(w.pendDigests, checkpoint.TxnDigest{TxnSeq: seq, Digest: w.cur.d.sum})
	}
}

// saveDigests records the pending digests in the open transaction, when
// the target keeps them.
func (w *Worker) saveDigests(ctx context.Context) error {
	ds, ok := w.t.(DigestStore)
	if !ok || len(w.pendDigests) == 0 {
		return nil
	}
	// Pruned once per digestWindow transactions, not at every commit.
	first, last := w.pendDigests[0].TxnSeq, w.pendDigests[len(w.pendDigests)-1].TxnSeq
	var prune uint64
	if last > digestWindow && (first-1)/digestWindow != last/digestWindow {
		prune = last - digestWindow
	}
	if err := ds.RecordDigests(ctx, w.pendDigests, prune); err != nil {
		return fmt.Errorf("record transaction digests: %w", err)
	}
	return nil
}

// checkDuplicate follows a duplicate of an applied transaction and, once
// its copy is read whole, compares it with the applied one.
func (w *Worker) checkDuplicate(ctx context.Context, msg Message) error {
	p, c := msg.Event.Pos, &w.dup
	if p.TxnSeq > w.done.st.TxnSeq || !w.done.baseline {
		return nil // an abandoned transaction's copy: nothing was applied
	}
	if p.Row == 0 {
		*c = dupCopy{seq: p.TxnSeq, active: true}
	}
	if !c.active || c.seq != p.TxnSeq || c.next != p.Row {
		c.active = false // a partial copy cannot be compared
		return nil
	}
	c.d.add(msg.Sum, false)
	c.next++
	if !p.Last {
		return nil
	}
	c.active = false
	if c.d.unknown {
		return nil
	}
	return w.compareDuplicate(ctx, msg, c.d.sum)
}

// compareDuplicate compares the digest of a duplicate's copy with the one
// recorded for its transaction, when there is one.
func (w *Worker) compareDuplicate(ctx context.Context, msg Message, sum uint64) error {
	seq := msg.Event.Pos.TxnSeq
	applied, found, err := w.appliedDigest(ctx, seq)
	if err != nil || !found || applied == sum {
		return err
	}
	p := msg.Event.Pos
	return &ApplyError{Offset: msg.Offset, Pos: &p, Object: objectOf(msg.Event), Err: fmt.Errorf(
		"%w: transaction %d was applied with other content than this copy of it ends with (digest %016x, applied %016x)",
		ErrDuplicateDiffers, seq, sum, applied)}
}

// appliedDigest is the digest of applied transaction seq: held for the
// next commit, committed lately, or read from the target.
func (w *Worker) appliedDigest(ctx context.Context, seq uint64) (uint64, bool, error) {
	for i := len(w.pendDigests) - 1; i >= 0; i-- {
		if w.pendDigests[i].TxnSeq == seq {
			return w.pendDigests[i].Digest, true, nil
		}
	}
	if d, ok := w.recentDigests[seq]; ok {
		return d, true, nil
	}
	if ds, ok := w.t.(DigestStore); ok {
		return ds.Digest(ctx, seq)
	}
	return 0, false, nil
}

// committedDigests keeps the digests just committed at hand for duplicates
// that follow soon (a retried produce), within digestWindow.
func (w *Worker) committedDigests() {
	if w.recentDigests == nil {
		w.recentDigests = map[uint64]uint64{}
	}
	for _, d := range w.pendDigests {
		w.recentDigests[d.TxnSeq] = d.Digest
	}
	if n := len(w.pendDigests); n > 0 && len(w.recentDigests) > 2*digestWindow {
		last := w.pendDigests[n-1].TxnSeq
		for seq := range w.recentDigests {
			if seq+digestWindow < last {
				delete(w.recentDigests, seq)
			}
		}
	}
	w.pendDigests = w.pendDigests[:0]
}
