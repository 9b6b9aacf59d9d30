package sink

import (
	"context"
	"fmt"
	"time"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/pipeline"
)

// epoch handles an epoch record: a new master generation starts here.
//
// A partial transaction followed by a newer epoch record never completed on
// the old master: it is abandoned (see inTxn, rule 2). A record of an epoch
// that is not newer is stale and ignored with a warning. Otherwise the record
// becomes the current epoch at once, in its own small commit, and from here
// on every message of a lower epoch is ignored.
//
// The record also says which TxnSeq the old master's generation ended with.
// A replica that applied more than that holds transactions the new master
// does not have; one that applied less is missing some, unless those were
// abandoned partial transactions. Both stop the worker.
func (w *Worker) epoch(ctx context.Context, msg Message) error {
	rec := msg.Event.Epoch
	if rec == nil {
		return &ApplyError{Offset: msg.Offset, Err: fmt.Errorf("%w: epoch message without a record", pipeline.ErrMalformed)}
	}
	if w.cur.active && rec.Epoch > w.cur.epoch {
		return w.abandon(ctx, msg, fmt.Sprintf("the epoch %d record", rec.Epoch))
	}
	if rec.Epoch <= w.done.st.Epoch {
		w.log.Warn().Int64("offset", msg.Offset).Uint64("record_epoch", rec.Epoch).Uint64("epoch", w.done.st.Epoch).
			Msg("ignoring a stale epoch record")
		w.advance(msg.Offset)
		return nil
	}
	if w.done.baseline {
		have := w.done.st.TxnSeq
		switch {
		case rec.TxnSeq < have:
			return &ApplyError{Offset: msg.Offset, Object: "epoch " + fmt.Sprint(rec.Epoch), Err: fmt.Errorf(
				"%w: the record says the old master's generation ended with transaction %d, but this replica applied up to %d: "+
					"it holds transactions the new master %s does not have; re-seed it from the new master",
				pipeline.ErrUnsupported, rec.TxnSeq, have, rec.Master)}
		case rec.TxnSeq > have:
			for s := have + 1; s <= rec.TxnSeq; s++ {
				if !w.abandonedSeq(s) {
					return &ApplyError{Offset: msg.Offset, Object: "epoch " + fmt.Sprint(rec.Epoch), Err: fmt.Errorf(
						"%w: the record says the old master's generation ended with transaction %d, but this replica applied only up to %d",
						ErrGap, rec.TxnSeq, have)}
				}
			}
		}
	}
	st := &w.done.st
	st.Epoch = rec.Epoch
	st.TxnSeq = max(st.TxnSeq, rec.TxnSeq)
	if rec.StartGTIDSet != "" {
		st.GTIDSet = rec.StartGTIDSet
	}
	w.done.baseline = true
	w.advance(msg.Offset)
	w.log.Info().Int64("offset", msg.Offset).Uint64("epoch", rec.Epoch).Str("master", rec.Master).
		Uint64("txn_seq", rec.TxnSeq).Msg("new epoch: messages of older epochs are ignored from here on")
	if err := w.commit(ctx); err != nil {
		return err
	}
	if w.cfg.Node != "" && rec.Master == w.cfg.Node {
		// This replica is the master now: what follows in the topic is its
		// own binlog. The checkpoint stays right after the record, where a
		// sink resumes if the node is ever demoted again.
		w.promoted = true
		w.log.Warn().Int64("offset", msg.Offset).Uint64("epoch", rec.Epoch).
			Msgf("the epoch record names this replica (%s) the new master: the sink worker stops", w.cfg.Node)
	}
	return nil
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

// ddl applies a DDL statement. MySQL commits DDL implicitly, so the open
// target transaction is committed first and the statement runs outside any
// transaction; the Target stores the checkpoint around it (DDLPending).
//
// A DDL is normally a transaction of its own. One that opens a transaction
// (CREATE TABLE ... SELECT: the statement, then its rows) is supported: the
// checkpoint after it stays at the DDL's offset with DDLPending set, so a
// restart runs it again (the target accepts "already exists") and then its
// rows. A DDL after rows of the same transaction cannot be applied as one
// prefix and stops the worker.
func (w *Worker) ddl(ctx context.Context, msg Message) error {
	ev := msg.Event
	p := ev.Pos
	obj := objectOf(ev)
	if p.Row != 0 {
		return &ApplyError{Offset: msg.Offset, Pos: &p, Object: obj,
			Err: fmt.Errorf("%w: DDL after rows in the same transaction", pipeline.ErrUnsupported)}
	}
	if w.holding() {
		if err := w.commit(ctx); err != nil {
			return err
		}
	}
	st := w.done.st
	if p.Last {
		st.Offset, st.TxnSeq, st.DDLPending = msg.Offset+1, p.TxnSeq, 0
		if ev.GTIDSet != "" {
			st.GTIDSet = ev.GTIDSet
		}
		if !ev.CommitTime.IsZero() {
			st.CommitTime = ev.CommitTime
		}
	} else {
		st.Offset, st.TxnSeq, st.DDLPending = msg.Offset, p.TxnSeq-1, p.TxnSeq
	}
	st.UpdatedAt = time.Now()
	st.MaxTxnSeq = max(st.MaxTxnSeq, st.TxnSeq)
	if err := w.t.ApplyDDL(ctx, ev, st); err != nil {
		return &ApplyError{Offset: msg.Offset, Pos: &p, Object: obj, Err: err}
	}
	w.done = cursor{st: st, baseline: true}
	w.committed = w.done
	w.commits++
	w.lastCommit = st.UpdatedAt
	w.m.Add(Commits, 1)
	if p.Last {
		w.cur = srcTxn{}
		w.m.Add(TxnsApplied, 1)
	}
	w.applied()
	return nil
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
	if msg.Event != nil && msg.Event.InTxn() {
		return w.inTxn(ctx, msg, false)
	}
	w.advance(msg.Offset)
	return nil
}
