package sink

import (
	"context"
	"fmt"
	"time"

	"github.com/rowcast/rowcast/pipeline"
)

// handle routes one message.
func (w *Worker) handle(ctx context.Context, msg Message) error {
	if w.skip[msg.Offset] {
		return w.skipMessage(ctx, msg)
	}
	if msg.Err != nil || msg.Event == nil {
		err := msg.Err
		if err == nil {
			err = fmt.Errorf("%w: no event", pipeline.ErrMalformed)
		}
		// Keep what is complete before stopping: the replica then holds
		// everything up to the bad message.
		if !w.cur.active && w.holding() {
			if cerr := w.commit(ctx); cerr != nil {
				return cerr
			}
		}
		return &ApplyError{Offset: msg.Offset, Err: err}
	}
	switch msg.Event.Kind {
	case pipeline.KindRow, pipeline.KindDDL:
		return w.inTxn(ctx, msg, true)
	case pipeline.KindEpoch:
		return w.epoch(ctx, msg)
	case pipeline.KindHeartbeat:
		w.heartbeat(msg)
	case pipeline.KindSnapshot:
		w.log.Info().Int64("offset", msg.Offset).Str("marker", msg.Event.Snapshot).Msg("snapshot marker (ignored by this sink)")
		w.advance(msg.Offset)
	default:
		return &ApplyError{Offset: msg.Offset, Err: fmt.Errorf("%w: message kind %s", pipeline.ErrMalformed, msg.Event.Kind)}
	}
	return nil
}

// advance moves the next checkpoint past a message that needs no apply, when
// no source transaction is half applied (a checkpoint inside a transaction
// would lose its first half on restart).
func (w *Worker) advance(offset int64) {
	if !w.cur.active && w.done.st.Offset <= offset {
		w.done.st.Offset = offset + 1
	}
}

// inTxn handles a message of a source transaction (a row or a DDL). With
// apply false (an operator skip) it only moves the position.
//
// Positions, not offsets, identify messages. In order:
//
//  1. Pos.Epoch below the current epoch: a message of a fenced old master
//     (or of a reader that does not know it was replaced). Ignored, counted.
//  2. A partial transaction (no Last seen yet) followed by a message of a
//     higher epoch (or by an epoch record, see control.go): that transaction
//     never completed on the old master. The target transaction is rolled
//     back, the transaction is remembered as abandoned, and the input is
//     re-read from the checkpoint, skipping its messages.
//  3. TxnSeq <= the last applied TxnSeq: a duplicate (a retried produce, a
//     transaction republished by a restarted reader). Skipped, counted.
//  4. Inside the open transaction, Row below the next expected row: a
//     duplicate, skipped. A republished copy of a cut transaction is
//     identical by construction, so skipping up to where we were is exact.
//  5. Anything else that is not the next expected message (a row jump, a
//     TxnSeq jump, a new transaction while the previous one is partial at
//     the same epoch) is a gap: the worker stops (fail closed).
func (w *Worker) inTxn(ctx context.Context, msg Message, apply bool) error {
	ev := msg.Event
	p := ev.Pos
	if p.Epoch < w.done.st.Epoch {
		w.pend.old++
		if ok, n := w.oldLog.allow(10 * time.Second); ok {
			// A fenced master or a stray reader is still publishing: worth
			// an operator's look, at most once per 10 s.
			w.log.Warn().Int64("offset", msg.Offset).Stringer("position", p).Uint64("epoch", w.done.st.Epoch).
				Str("gtid", ev.GTID).Int("suppressed", n).
				Msg("ignoring a message of an older epoch (a fenced master or a stray reader is publishing; counted in rowcast_sink_total{counter=\"old_epoch_ignored\"})")
		}
		w.advance(msg.Offset)
		return nil
	}
	if w.cur.active && p.Epoch > w.cur.epoch {
		return w.abandon(ctx, msg, fmt.Sprintf("a message of epoch %d", p.Epoch))
	}
	if w.abandoned[txnKey{p.Epoch, p.TxnSeq}] || (w.done.baseline && p.TxnSeq <= w.done.st.TxnSeq) {
		w.pend.dups++
		w.advance(msg.Offset)
		return nil
	}
	lenient := w.lenient
	w.lenient = false
	if w.cur.active {
		switch {
		case p.TxnSeq == w.cur.seq && p.Row < w.cur.next:
			w.pend.dups++
			return nil
		case p.TxnSeq == w.cur.seq && p.Row == w.cur.next:
		case lenient && p.TxnSeq == w.cur.seq && p.Row == w.cur.next+1:
			// The skipped undecodable message was the row before this one.
		case lenient && p.TxnSeq == w.cur.seq+1 && p.Row == 0:
			// It was the last message of the open transaction.
			w.finishTxn(msg.Offset, nil)
			w.cur = srcTxn{active: true, epoch: p.Epoch, seq: p.TxnSeq}
		default:
			return w.gap(msg, fmt.Sprintf("expected transaction %d row %d", w.cur.seq, w.cur.next))
		}
	} else {
		switch {
		case w.done.baseline && p.TxnSeq != w.done.st.TxnSeq+1:
			return w.gap(msg, fmt.Sprintf("expected transaction %d row 0", w.done.st.TxnSeq+1))
		case p.Row != 0 && !(lenient && p.Row == 1):
			return w.gap(msg, fmt.Sprintf("transaction %d starts at row %d (a start offset inside a transaction?)", p.TxnSeq, p.Row))
		}
		w.cur = srcTxn{active: true, epoch: p.Epoch, seq: p.TxnSeq}
	}
	w.done.st.Epoch = max(w.done.st.Epoch, p.Epoch)
	w.cur.next = p.Row + 1
	if ev.Kind == pipeline.KindDDL && apply {
		return w.ddl(ctx, msg)
	}
	if apply {
		if err := w.addRow(ctx, msg); err != nil {
			return err
		}
	}
	if p.Last {
		w.finishTxn(msg.Offset+1, ev)
	}
	return nil
}

// finishTxn records the end of the open source transaction: the next commit
// may write its checkpoint. next is the offset to read after it; last is its
// last message (nil when that message was skipped undecoded).
func (w *Worker) finishTxn(next int64, last *pipeline.Event) {
	st := &w.done.st
	st.Offset = next
	st.TxnSeq = w.cur.seq
	st.DDLPending = 0
	if last != nil {
		if last.GTIDSet != "" {
			st.GTIDSet = last.GTIDSet
		}
		if !last.CommitTime.IsZero() {
			st.CommitTime = last.CommitTime
		}
	}
	w.done.baseline = true
	w.cur = srcTxn{}
	w.pend.txns++
}

// abandon drops the open partial transaction of an old master and re-reads
// the input from the checkpoint; see inTxn, rule 2.
func (w *Worker) abandon(ctx context.Context, msg Message, by string) error {
	k := txnKey{w.cur.epoch, w.cur.seq}
	w.abandoned[k] = true
	w.m.Add(TxnsAbandoned, 1)
	w.log.Warn().Int64("offset", msg.Offset).Uint64("epoch", k.epoch).Uint64("txn_seq", k.seq).Uint64("rows_seen", w.cur.next).
		Int64("reapply_from", w.committed.st.Offset).
		Msgf("transaction e%d/t%d never completed on the old master (cut at row %d, followed by %s): dropping it and re-applying from the checkpoint",
			k.epoch, k.seq, w.cur.next, by)
	return w.rewind(ctx)
}

func (w *Worker) gap(msg Message, want string) error {
	p := msg.Event.Pos
	return &ApplyError{Offset: msg.Offset, Pos: &p, Object: objectOf(msg.Event),
		Err: fmt.Errorf("%w: %s, got %s (last applied transaction %d)", ErrGap, want, p, w.done.st.TxnSeq)}
}

func objectOf(ev *pipeline.Event) string {
	switch {
	case ev.Table != nil:
		return ev.Table.Database + "." + ev.Table.Name
	case ev.Kind == pipeline.KindDDL:
		return "DDL in " + ev.Database
	}
	return ""
}
