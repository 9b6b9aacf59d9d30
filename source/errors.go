package source

import (
	"errors"

	"github.com/rowcast/rowcast/pipeline"
)

// Sentinel errors of the source package. Callers test them with errors.Is; the
// wrapped message names the node, the object, the position and the fix.
var (
	// ErrConfig marks an invalid Config field.
	ErrConfig = errors.New("invalid source config")
	// ErrMasterSetup marks a master whose settings rowcast cannot replicate
	// faithfully (binlog format, row image, row metadata, GTIDs).
	ErrMasterSetup = errors.New("master not set up for rowcast")
	// ErrPrivilege marks a missing privilege of the replication user.
	ErrPrivilege = errors.New("missing privilege")
	// ErrPurged marks a resume position whose binlog the master no longer has.
	// Replicas must be re-seeded from a snapshot or the start position moved.
	ErrPurged = errors.New("binlog needed to resume was purged")
	// ErrDiverged marks a resume position that holds transactions the master
	// never executed (wrong master, or a master that lost transactions).
	ErrDiverged = errors.New("resume position is not in the master's history")
	// ErrStream marks a lost or refused binlog stream. Run returns it; the
	// caller restarts Run from Reader.Resume() after a backoff.
	ErrStream = errors.New("binlog stream failed")
	// ErrProtocol marks a binlog event sequence rowcast does not expect (an
	// event outside a transaction, an INCIDENT event, a statement-based DML).
	ErrProtocol = errors.New("unexpected binlog content")
	// ErrRefused marks a snapshot of tables the reader cannot copy: not
	// published, system tables, or no such base table.
	ErrRefused = errors.New("snapshot refused")
	// ErrUnsupported is pipeline.ErrUnsupported: a type, charset or
	// statement that rowcast cannot carry faithfully.
	ErrUnsupported = pipeline.ErrUnsupported
)
