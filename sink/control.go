package sink

import (
	"context"
	"fmt"
	"time"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/pipeline"
)

// epoch handles an epoch record: a new master generation starts here, in a
// small commit of its own, and from here on messages of older epochs are
// ignored. docs/DESIGN.md, "Epochs in the sink".
func (w *Worker) epoch(ctx context.Context, msg Message) error {
	rec := msg.Event.Epoch
	if rec == nil {
		return &ApplyError{Offset: msg.Offset, Err: fmt.Errorf("%w: epoch message without a record", pipeline.ErrMalformed)}
	}
	if rec.Epoch > w.done.st.Epoch {
		if refused, err := w.confirmEpoch(ctx, msg, rec); refused || err != nil {
			return err
		}
	}
	if w.cur.active && rec.Epoch > w.cur.epoch {
		// The open transaction never completed on the old master.
		return w.abandon(ctx, msg, fmt.Sprintf("the epoch %d record", rec.Epoch))
	}
	if rec.Epoch <= w.done.st.Epoch {
		w.log.Warn().Int64("offset", msg.Offset).Uint64("record_epoch", rec.Epoch).Uint64("epoch", w.done.st.Epoch).
			Msg("ignoring a stale epoch record")
		w.advance(msg.Offset)
		return nil
	}
	if err := w.checkGeneration(msg.Offset, rec); err != nil {
		return err
	}
	w.startEpoch(msg.Offset, rec)
	if err := w.commit(ctx); err != nil {
		return err
	}
	w.checkPromoted(msg.Offset, rec)
	return nil
}

// checkGeneration compares the TxnSeq the old master's generation ended with
// (the record's) with what this replica applied: more means it holds
// transactions the new master does not have; less, that it misses some,
// unless those were abandoned partial transactions.
func (w *Worker) checkGeneration(offset int64, rec *pipeline.EpochRecord) error {
	have := w.done.st.TxnSeq
	switch {
	case !w.done.baseline:
		return nil
	case rec.TxnSeq < have:
		return &ApplyError{Offset: offset, Object: "epoch " + fmt.Sprint(rec.Epoch), Err: fmt.Errorf(
			"%w: the record says the old master's generation ended with transaction %d, but this replica applied up to %d: "+
				"it holds transactions the new master %s does not have; re-seed it from the new master",
			pipeline.ErrUnsupported, rec.TxnSeq, have, rec.Master)}
	case rec.TxnSeq > have && !w.abandonedRange(have+1, rec.TxnSeq):
		return &ApplyError{Offset: offset, Object: "epoch " + fmt.Sprint(rec.Epoch), Err: fmt.Errorf(
			"%w: the record says the old master's generation ended with transaction %d, but this replica applied only up to %d",
			ErrGap, rec.TxnSeq, have)}
	}
	return nil
}

// startEpoch makes the record's epoch the current one.
func (w *Worker) startEpoch(offset int64, rec *pipeline.EpochRecord) {
	st := &w.done.st
	st.Epoch = rec.Epoch
	st.TxnSeq = max(st.TxnSeq, rec.TxnSeq)
	if rec.StartGTIDSet != "" {
		st.GTIDSet = rec.StartGTIDSet
	}
	w.done.baseline = true
	w.advance(offset)
	w.log.Info().Int64("offset", offset).Uint64("epoch", rec.Epoch).Str("master", rec.Master).
		Uint64("txn_seq", rec.TxnSeq).Msg("new epoch: messages of older epochs are ignored from here on")
}

// checkPromoted stops the worker when the record names this replica the
// new master: what follows in the topic is its own binlog. The checkpoint
// stays right after the record, where a sink resumes if the node is ever
// demoted again.
func (w *Worker) checkPromoted(offset int64, rec *pipeline.EpochRecord) {
	if w.cfg.Node == "" || rec.Master != w.cfg.Node {
		return
	}
	w.promoted = true
	w.log.Warn().Int64("offset", offset).Uint64("epoch", rec.Epoch).
		Msgf("the epoch record names this replica (%s) the new master: the sink worker stops", w.cfg.Node)
}

// abandonedRange reports whether every transaction from..to was abandoned.
func (w *Worker) abandonedRange(from, to uint64) bool {
	for s := from; s <= to; s++ {
		if !w.abandonedSeq(s) {
			return false
		}
	}
	return true
}

func (w *Worker) abandonedSeq(seq uint64) bool {
	for k := range w.abandoned {
		if k.seq == seq {
			return true
		}
	}
	return false
}

// heartbeat moves the lag clock: everything before it is applied (when no
// transaction is half applied), so the master's clock in it is the source
// time of the replica's state. It is saved with the next commit, or alone
// while idle at most every HeartbeatCommit (see maybeCommit).
func (w *Worker) heartbeat(msg Message) {
	ev := msg.Event
	if w.cur.active || (ev.Pos.Epoch != 0 && ev.Pos.Epoch < w.done.st.Epoch) {
		return
	}
	w.advance(msg.Offset)
	if !ev.CommitTime.IsZero() {
		w.done.st.CommitTime = ev.CommitTime
	}
	if ev.GTIDSet != "" {
		w.done.st.GTIDSet = ev.GTIDSet
	}
}

// ddl applies a DDL statement outside any transaction (MySQL commits DDL
// implicitly): what is open is committed first, and the Target stores the
// checkpoint around it (DDLPending). A DDL that opens its transaction
// (CREATE TABLE ... SELECT) is supported; one after rows of its transaction
// is not. docs/DESIGN.md, "DDL in the changelog".
func (w *Worker) ddl(ctx context.Context, msg Message) error {
	ev := msg.Event
	p := ev.Pos
	obj := objectOf(ev)
	if p.Row != 0 {
		return &ApplyError{Offset: msg.Offset, Pos: &p, Object: obj,
			Err: fmt.Errorf("%w: DDL after rows in the same transaction", pipeline.ErrUnsupported)}
	}
	if why := w.ddlf.check(ev); why != "" {
		return &ApplyError{Offset: msg.Offset, Pos: &p, Object: obj, Err: fmt.Errorf(
			"%w: %s; it is not applied. If replicas must run it, add its kind to sink.allow_ddl; "+
				"otherwise skip it with `rowcast sink --skip-offset %d` after checking who ran it on the master",
			ErrDDLRefused, why, msg.Offset)}
	}
	if w.holding() {
		if err := w.commit(ctx); err != nil {
			return err
		}
	}
	var st checkpoint.State
	if p.Last {
		st = w.stateAfter(msg)
	} else {
		st = w.done.st
		st.Offset, st.TxnSeq, st.DDLPending = msg.Offset, p.TxnSeq-1, p.TxnSeq
		st.UpdatedAt = time.Now()
		st.MaxTxnSeq = max(st.MaxTxnSeq, st.TxnSeq)
	}
	if err := w.t.ApplyDDL(ctx, ev, st); err != nil {
		return &ApplyError{Offset: msg.Offset, Pos: &p, Object: obj, Err: err}
	}
	w.committedAlone(st, p.Last)
	return nil
}

// stateAfter is the checkpoint after msg, the last message of its
// transaction, which the target stores on its own (a DDL, a snapshot start).
func (w *Worker) stateAfter(msg Message) checkpoint.State {
	ev := msg.Event
	st := w.done.st
	st.Offset, st.TxnSeq, st.DDLPending = msg.Offset+1, ev.Pos.TxnSeq, 0
	if ev.GTIDSet != "" {
		st.GTIDSet = ev.GTIDSet
	}
	if !ev.CommitTime.IsZero() {
		st.CommitTime = ev.CommitTime
	}
	st.UpdatedAt = time.Now()
	st.MaxTxnSeq = max(st.MaxTxnSeq, st.TxnSeq)
	return st
}

// committedAlone records st, which the target stored in a commit of its own;
// last is set when it ends the open source transaction.
func (w *Worker) committedAlone(st checkpoint.State, last bool) {
	w.done = cursor{st: st, baseline: true}
	w.committed = w.done
	w.commits++
	w.appliedInput(st.Offset) // a big row skipped before must not keep the gate
	w.lastCommit = st.UpdatedAt
	w.m.Add(Commits, 1)
	if last {
		w.finishedDigest(st.TxnSeq)
		w.cur = srcTxn{}
		w.m.Add(TxnsApplied, 1)
	}
	w.applied()
}

// skipMessage passes over a message the operator listed in SkipOffsets: it
// is recorded in the target in the transaction of the next commit, logged at
// warn, and not applied. A skipped message of a transaction still counts for
// the position checks, so the rest of its transaction applies.
func (w *Worker) skipMessage(ctx context.Context, msg Message) error {
	s := checkpoint.Skip{Topic: w.cfg.Topic, Partition: w.cfg.Partition, Offset: msg.Offset,
		Reason: "operator skip", Operator: w.cfg.Operator, At: time.Now()}
	log := w.log.Warn().Int64("offset", msg.Offset).Str("operator", s.Operator)
	if msg.Err != nil || msg.Event == nil {
		s.Reason += ": undecodable message"
		if msg.Err != nil {
			s.Reason += ": " + msg.Err.Error()
		}
		w.lenient = true
	} else {
		s.Position = msg.Event.Pos.String()
		s.Reason += ": " + msg.Event.Kind.String() + " " + objectOf(msg.Event)
		log = log.Stringer("position", msg.Event.Pos).Str("object", objectOf(msg.Event))
	}
	log.Msg("skipping a message on the operator's request; it is not applied")
	if err := w.begin(ctx); err != nil {
		return err
	}
	if err := w.t.RecordSkip(ctx, s); err != nil {
		return &ApplyError{Offset: msg.Offset, Err: fmt.Errorf("record skip: %w", err)}
	}
	w.pend.skips++
	if msg.Event != nil && inTxnMessage(msg.Event) {
		return w.inTxn(ctx, msg, false)
	}
	w.advance(msg.Offset)
	return nil
}
