// Package checkpoint stores how far a sink worker has applied the changelog,
// in the target itself: in the same transaction as the rows, with the source
// position and the commit time of the last applied transaction. Why not
// Kafka's consumer-group offsets: docs/DESIGN.md, "Checkpoints in the target".
package checkpoint

import (
	"fmt"
	"time"
)

// State is one worker's position for one topic partition.
type State struct {
	Topic     string
	Partition int32
	// Offset is the next Kafka offset to read: the offset after the last
	// message whose effect (or deliberate skip) is in the target.
	Offset int64
	// Epoch is the current master generation: messages of a lower epoch are
	// ignored from here on.
	Epoch uint64
	// TxnSeq is the last source transaction applied in full.
	TxnSeq uint64
	// MaxTxnSeq is the highest TxnSeq this target has ever applied. Save never
	// lowers it, so after an operator rewinds the checkpoint to replay a range,
	// the target knows which transactions are replays (and may meet rows that
	// are already deleted or already updated) and which are new.
	MaxTxnSeq uint64
	// GTIDSet is the master's executed GTID set after TxnSeq.
	GTIDSet string
	// CommitTime is the source commit time of the last applied transaction (or
	// the master's clock of the last heartbeat read while idle): the replica's
	// lag is now minus CommitTime.
	CommitTime time.Time
	// DDLPending is the TxnSeq of a DDL statement that was being applied when
	// this state was saved, 0 when none. DDL commits implicitly on MySQL, so it
	// cannot share a transaction with the checkpoint: the sink saves
	// DDLPending first, runs the statement, then saves the state after it. A
	// worker that restarts and finds DDLPending equal to the DDL it is about to
	// run knows the statement may already have run.
	DDLPending uint64
	// UpdatedAt is the wall-clock time the state was saved.
	UpdatedAt time.Time
}

func (s State) String() string {
	return fmt.Sprintf("%s[%d]@%d e%d/t%d", s.Topic, s.Partition, s.Offset, s.Epoch, s.TxnSeq)
}

// Skip records an operator's decision to skip one message instead of applying
// it. Skipping is never silent: it is logged and kept in the target.
type Skip struct {
	Topic     string
	Partition int32
	Offset    int64
	// Position of the skipped message ("e1/t42/r0"), or "" when it could not
	// be decoded.
	Position string
	Reason   string
	Operator string
	At       time.Time
}
