package sink

import (
	"context"
	"fmt"
	"time"

	"github.com/rowcast/rowcast/pipeline"
)

// handle routes one message.
func (w *Worker) handle(ctx context.Context, msg Message) error {
	w.pend.bytes += msg.Size
	if msg.Refused != nil {
		return w.refuse(ctx, msg, msg.Refused.Error())
	}
	if w.skip[msg.Offset] {
		return w.skipMessage(ctx, msg)
	}
	if msg.Err != nil || msg.Event == nil {
		return w.undecodable(ctx, msg)
	}
	switch ev := msg.Event; {
	case ev.Kind == pipeline.KindRow, inTxnMessage(ev):
		return w.inTxn(ctx, msg, true)
	case ev.Kind == pipeline.KindEpoch:
		return w.epoch(ctx, msg)
	case ev.Kind == pipeline.KindHeartbeat:
		w.heartbeat(msg)
	case ev.Kind == pipeline.KindSnapshot:
		w.log.Info().Int64("offset", msg.Offset).Str("marker", ev.Snapshot).Str("database", ev.Database).
			Msg("snapshot marker of a database or of everything: nothing to apply (tables have markers of their own)")
		w.advance(msg.Offset)
	default:
		return &ApplyError{Offset: msg.Offset, Err: fmt.Errorf("%w: message kind %s", pipeline.ErrMalformed, msg.Event.Kind)}
	}
	return nil
}

// inTxnMessage reports a message that takes a place in a transaction: a row,
// a DDL or a table's snapshot marker, a transaction of its own. Markers of a
// database or of everything carry no position of their own.
func inTxnMessage(ev *pipeline.Event) bool {
	return ev.InTxn() && (ev.Kind != pipeline.KindSnapshot || ev.Table != nil)
}

// undecodable stops at a message that could not be decoded, after
// committing what is complete before it: the replica then holds everything
// up to the bad message.
func (w *Worker) undecodable(ctx context.Context, msg Message) error {
	err := msg.Err
	if err == nil {
		err = fmt.Errorf("%w: no event", pipeline.ErrMalformed)
	}
	if !w.cur.active && w.holding() {
		if cerr := w.commit(ctx); cerr != nil {
			return cerr
		}
	}
	return &ApplyError{Offset: msg.Offset, Err: err}
}

// advance moves the next checkpoint past a message that needs no apply, when
// no source transaction is half applied (a checkpoint inside a transaction
// would lose its first half on restart).
func (w *Worker) advance(offset int64) {
	if !w.cur.active && w.done.st.Offset <= offset {
		w.done.st.Offset = offset + 1
	}
}

// inTxn handles a message of a transaction (a row, a DDL or a table's
// snapshot marker). With apply false (an operator skip) it only moves the
// position. Positions, not offsets, identify messages; docs/DESIGN.md,
// "Exactly-once apply", has the rules.
func (w *Worker) inTxn(ctx context.Context, msg Message, apply bool) error {
	p := msg.Event.Pos
	if done, err := w.epochGate(ctx, msg); done || err != nil {
		return err
	}
	if w.appliedTxn(p) {
		w.pend.dups++
		w.advance(msg.Offset)
		return w.checkDuplicate(ctx, msg)
	}
	lenient := w.lenient
	w.lenient = false
	switch {
	case w.cur.active && p.TxnSeq == w.cur.seq && p.Row == w.cur.next:
		// The next row of the open transaction: the common case, checked
		// first (the per-message path is hot).
	case w.cur.active:
		if dup, err := w.continueTxn(msg, lenient); dup || err != nil {
			return err
		}
	default:
		if err := w.startTxn(msg, lenient); err != nil {
			return err
		}
	}
	if p.Row == 0 && w.cfg.OriginDomain != nil {
		if err := w.admit(ctx, msg); err != nil {
			return err
		}
	}
	apply = apply && !w.cur.leftOut
	w.done.st.Epoch = max(w.done.st.Epoch, p.Epoch)
	w.cur.next = p.Row + 1
	w.cur.d.add(msg.Sum, lenient)
	ev := msg.Event
	if ev.Kind != pipeline.KindRow && apply {
		return w.statement(ctx, msg)
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

// epochGate deals with a message whose epoch is not the current one: one
// of an older epoch is ignored, one of a newer epoch without its record
// stops the worker, one of a newer epoch than the open transaction's
// abandons it. done is set when the message needs nothing more.
func (w *Worker) epochGate(ctx context.Context, msg Message) (done bool, err error) {
	p := msg.Event.Pos
	if p.Epoch < w.done.st.Epoch {
		w.oldEpoch(msg)
		return true, nil
	}
	if err := w.epochWithoutRecord(ctx, msg); err != nil {
		return true, err
	}
	if w.cur.active && p.Epoch > w.cur.epoch {
		// The open transaction never completed on the old master.
		return true, w.abandon(ctx, msg, fmt.Sprintf("a message of epoch %d", p.Epoch))
	}
	return false, nil
}

// statement applies a message that is not a row: a DDL, which may open its
// transaction, or a table's snapshot marker, a transaction of its own.
func (w *Worker) statement(ctx context.Context, msg Message) error {
	if msg.Event.Kind == pipeline.KindDDL {
		return w.ddl(ctx, msg)
	}
	return w.snapshotMarker(ctx, msg)
}

// oldEpoch ignores a message of a fenced old master (or of a reader that
// does not know it was replaced), and counts it.
func (w *Worker) oldEpoch(msg Message) {
	w.pend.old++
	if ok, n := w.oldLog.allow(10 * time.Second); ok {
		// A fenced master or a stray reader is still publishing: worth
		// an operator's look, at most once per 10 s.
		w.log.Warn().Int64("offset", msg.Offset).Stringer("position", msg.Event.Pos).Uint64("epoch", w.done.st.Epoch).
			Str("gtid", msg.Event.GTID).Int("suppressed", n).
			Msg("ignoring a message of an older epoch (a fenced master or a stray reader is publishing; counted in rowcast_sink_total{counter=\"old_epoch_ignored\"})")
	}
	w.advance(msg.Offset)
}

// appliedTxn reports a message of a transaction applied already (a retried
// produce, a transaction republished by a restarted reader) or abandoned.
func (w *Worker) appliedTxn(p pipeline.Position) bool {
	return w.abandoned[txnKey{p.Epoch, p.TxnSeq}] || (w.done.baseline && p.TxnSeq <= w.done.st.TxnSeq)
}

// continueTxn checks a message of the open transaction: a row below the next
// expected one is a duplicate (a republished copy of a cut transaction is
// identical, so skipping up to where it was is exact); anything but the next
// is a gap. After an operator skipped an undecodable message, one message
// may be missing.
func (w *Worker) continueTxn(msg Message, lenient bool) (dup bool, err error) {
	p := msg.Event.Pos
	same := p.TxnSeq == w.cur.seq
	switch {
	case same && p.Row < w.cur.next:
		w.pend.dups++
		return true, nil
	case same && p.Row == w.cur.next:
	case lenient && same && p.Row == w.cur.next+1:
		// The skipped undecodable message was the row before this one.
	case lenient && p.TxnSeq == w.cur.seq+1 && p.Row == 0:
		// It was the last message of the open transaction.
		w.finishTxn(msg.Offset, nil)
		w.cur = srcTxn{active: true, epoch: p.Epoch, seq: p.TxnSeq}
	default:
		return false, w.gap(msg, fmt.Sprintf("expected transaction %d row %d", w.cur.seq, w.cur.next))
	}
	return false, nil
}

// startTxn opens the source transaction of msg, which must be the one after
// the last applied, from its first row.
func (w *Worker) startTxn(msg Message, lenient bool) error {
	p := msg.Event.Pos
	switch {
	case w.done.baseline && p.TxnSeq != w.done.st.TxnSeq+1:
		return w.gap(msg, fmt.Sprintf("expected transaction %d row 0", w.done.st.TxnSeq+1))
	case p.Row != 0 && !(lenient && p.Row == 1):
		return w.gap(msg, fmt.Sprintf("transaction %d starts at row %d (a start offset inside a transaction?)", p.TxnSeq, p.Row))
	}
	w.cur = srcTxn{active: true, epoch: p.Epoch, seq: p.TxnSeq}
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
	if last == nil {
		w.cur.d.unknown = true // its last message was skipped undecoded
	}
	w.finishedDigest(w.cur.seq)
	w.cur = srcTxn{}
	w.pend.txns++
}

// abandon drops the open partial transaction of an old master (followed by
// a message or a record of a newer epoch: it never completed) and re-reads
// the input from the checkpoint, skipping its messages.
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
