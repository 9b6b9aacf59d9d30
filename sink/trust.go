package sink

import (
	"context"
	"fmt"
	"time"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/pipeline"
)

// RefusedBy is the operator name of the skip records the worker writes
// itself, for messages it refused.
const RefusedBy = "rowcast (refused)"

// refuse passes over a message that rowcast did not write (it failed the
// signature check) or that the worker may not trust: it is never applied and
// never followed, its position is not looked at, and it is recorded in the
// target's skip table in the transaction of the next commit, counted and
// logged at error. The worker goes on: a forged message in the middle of a
// real transaction leaves that transaction whole. docs/DESIGN.md, "The
// topic is a trust boundary".
func (w *Worker) refuse(ctx context.Context, msg Message, reason string) error {
	s := checkpoint.Skip{Topic: w.cfg.Topic, Partition: w.cfg.Partition, Offset: msg.Offset,
		Reason: "refused: " + reason, Operator: RefusedBy, At: time.Now()}
	w.log.Error().Int64("offset", msg.Offset).Str("reason", reason).
		Msg("refusing a changelog message that rowcast did not write or cannot trust: not applied, recorded in the skip table " +
			"(counted in rowcast_sink_total{counter=\"messages_refused\"}); find who writes the topic (docs/SECURITY.md)")
	if err := w.begin(ctx); err != nil {
		return err
	}
	if err := w.t.RecordSkip(ctx, s); err != nil {
		return &ApplyError{Offset: msg.Offset, Err: fmt.Errorf("record refused message: %w", err)}
	}
	w.pend.refused++
	w.advance(msg.Offset)
	return nil
}

// EpochIndex confirms epoch records against the nodes' own index of them,
// which a promotion writes under its lease (failover's <schema>.epochs).
type EpochIndex interface {
	// Confirm says whether the index holds rec as the record of its epoch
	// at offset.
	Confirm(ctx context.Context, offset int64, rec pipeline.EpochRecord) (EpochVerdict, error)
}

// EpochVerdict is what the index says of an epoch record.
type EpochVerdict uint8

const (
	// EpochConfirmed: the index holds this record at this offset.
	EpochConfirmed EpochVerdict = iota + 1
	// EpochNotIndexed: no node's index holds the epoch (yet: a promotion
	// writes the index right after the record).
	EpochNotIndexed
	// EpochContradicted: the index holds another record for the epoch.
	EpochContradicted
)

// confirmEpoch checks a record of a newer epoch against the index, when the
// worker has one (epoch 1 has no record: only promotions write them). refused is set when the record was refused and passed
// over; a record not in the index yet is a transient error, retried from
// the checkpoint until it is.
func (w *Worker) confirmEpoch(ctx context.Context, msg Message, rec *pipeline.EpochRecord) (refused bool, err error) {
	if w.cfg.Epochs == nil || rec.Epoch <= 1 {
		return false, nil
	}
	v, err := w.cfg.Epochs.Confirm(ctx, msg.Offset, *rec)
	switch {
	case err != nil:
		return false, MarkTransient(fmt.Errorf("confirm the epoch %d record at offset %d with the nodes' epoch index: %w", rec.Epoch, msg.Offset, err))
	case v == EpochContradicted:
		return true, w.refuse(ctx, msg, fmt.Sprintf("epoch %d record naming %s is not the one the nodes' epoch index holds for that epoch", rec.Epoch, rec.Master))
	case v != EpochConfirmed:
		return false, MarkTransient(fmt.Errorf("%w: the epoch %d record at offset %d (master %s) is in no node's epoch index yet: "+
			"waiting for the promotion to record it; if that promotion failed after writing the record, `rowcast status` shows its lease unreleased (docs/SECURITY.md)",
			ErrEpochUnconfirmed, rec.Epoch, msg.Offset, rec.Master))
	}
	return false, nil
}

// epochWithoutRecord stops at a message of a newer epoch than the replica's
// when no epoch record introduced it: an epoch is taken only from a record
// the index confirms, never from a row alone.
// What is complete before it is committed first, refusals included.
func (w *Worker) epochWithoutRecord(ctx context.Context, msg Message) error {
	p := msg.Event.Pos
	if w.cfg.Epochs == nil || !w.done.baseline || p.Epoch <= max(w.done.st.Epoch, 1) {
		return nil
	}
	if !w.cur.active && w.holding() {
		if err := w.commit(ctx); err != nil {
			return err
		}
	}
	return &ApplyError{Offset: msg.Offset, Pos: &p, Object: objectOf(msg.Event), Err: fmt.Errorf(
		"%w: a message of epoch %d, but the replica is at epoch %d and no epoch record of epoch %d came before it",
		ErrGap, p.Epoch, w.done.st.Epoch, p.Epoch)}
}
