package sink

import (
	"fmt"
	"os"
	"time"
)

// WorkerConfig configures a Worker. Zero fields take the documented defaults.
type WorkerConfig struct {
	// Topic and Partition are the changelog partition the worker applies;
	// they key the checkpoint in the target. Topic is required.
	Topic     string
	Partition int32
	// StartOffset is where a worker starts when the target has no checkpoint
	// (a new replica, seeded as of that offset). Default 0. Once a checkpoint
	// exists it is the only truth; consumer-group offsets are never used.
	StartOffset int64
	// MaxBatchRows bounds the rows of one ApplyRows call. Default 2000.
	MaxBatchRows int
	// MaxBatchBytes bounds the message bytes of one ApplyRows call. Default
	// 4 MiB.
	MaxBatchBytes int
	// MaxTxnMerge bounds how many source transactions a worker that is
	// behind merges into one target commit. Default 100; 1 disables merging.
	MaxTxnMerge int
	// MaxMergeRows bounds the rows of a target commit that merges several
	// source transactions (a single source transaction is never split).
	// Default 20000.
	MaxMergeRows int
	// MaxMergeBytes bounds the message bytes of such a commit: a worker
	// commits right after a big row's transaction instead of holding it
	// while it merges more. Default 16 MiB.
	MaxMergeBytes int
	// StopOffset, when > 0, makes Run return nil once everything before it is
	// applied and committed: the worker stops at the first transaction
	// boundary at or after StopOffset (a transaction that straddles it is
	// finished, never cut). `rowcast replay --to-offset` uses it. Default 0:
	// run until the context ends.
	StopOffset int64
	// Node is the name of the replica the worker applies to. When set, an
	// epoch record that names this node as the new master stops the worker
	// after it has committed the record (state StatePromoted): the replica
	// is the master now and must not apply its own changelog. Default "":
	// never stop on an epoch record (replays, tests).
	Node string
	// SkipOffsets are messages the operator decided not to apply. Each is
	// recorded in the target and logged at warn when it is passed.
	SkipOffsets []int64
	// Operator is recorded with skips. Default $USER, else "unknown".
	Operator string
	// HeartbeatCommit is the least time between two commits made only to
	// save a heartbeat's clock while idle. Default 1s.
	HeartbeatCommit time.Duration
	// RetryInitial and RetryMax bound the exponential backoff between
	// retries of transient errors. Defaults 100ms and 30s.
	RetryInitial time.Duration
	RetryMax     time.Duration
	// ShutdownTimeout bounds the final commit when the context is canceled.
	// Default 10s.
	ShutdownTimeout time.Duration
	// DDLInclude and DDLExclude are the reader's source.include and
	// source.exclude (regular expressions on "db.table"): a DDL message is
	// applied only when it is a schema statement of an object they admit.
	// Default none: every database.
	DDLInclude, DDLExclude []string
	// AllowDDL lists statement kinds applied although they are not schema
	// statements of replicated objects ("CREATE DATABASE", "GRANT", ...;
	// "*" for every statement). Default none: such a DDL stops the worker.
	AllowDDL []string
	// OriginDomain, set when the target is a master of a master-master
	// topology, is the GTID domain of the master whose topic the worker
	// applies: only transactions of that domain are applied (the others
	// reached the target from their own master's topic), each once, under
	// its origin GTID (the Target must be an OriginApplier). Default nil.
	OriginDomain *uint32
	// MasterDomains are the GTID domains of every master of the set: a
	// transaction of another of them is skipped (it comes from its own
	// master's topic); one of a domain that is no master's stops the worker
	// (ErrUnknownDomain): the topic's master wrote it under a wrong
	// @@gtid_domain_id, and skipping it would lose it everywhere else.
	MasterDomains []uint32
	// Versions is "schema.table" of the masters' row versions, published
	// after each data row when conflicts are resolved by version: applied
	// on other masters (OriginDomain set), left out on read replicas.
	Versions string
	// AdoptDomains are such domains an operator has the worker apply as the
	// topic's master's own, under their GTID (`--adopt-domain`).
	AdoptDomains []uint32
	// Epochs, when set, confirms every epoch record of a newer epoch before
	// the worker takes it, and makes a message of a newer epoch without a
	// record stop the worker. Default nil: records are taken as they come.
	Epochs EpochIndex
}

func (c *WorkerConfig) setDefaults() {
	if c.MaxBatchRows <= 0 {
		c.MaxBatchRows = 2000
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = 4 << 20
	}
	if c.MaxTxnMerge <= 0 {
		c.MaxTxnMerge = 100
	}
	if c.MaxMergeRows <= 0 {
		c.MaxMergeRows = 20000
	}
	if c.MaxMergeBytes <= 0 {
		c.MaxMergeBytes = 16 << 20
	}
	if c.Operator == "" {
		c.Operator = os.Getenv("USER")
		if c.Operator == "" {
			c.Operator = "unknown"
		}
	}
	if c.HeartbeatCommit <= 0 {
		c.HeartbeatCommit = time.Second
	}
	if c.RetryInitial <= 0 {
		c.RetryInitial = 100 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 30 * time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
}

// Validate names the first field that cannot work.
func (c *WorkerConfig) Validate() error {
	if c.Topic == "" {
		return fmt.Errorf("sink worker: Topic is required (the changelog topic the checkpoint is kept for)")
	}
	if c.StartOffset < 0 {
		return fmt.Errorf("sink worker: StartOffset %d must be >= 0", c.StartOffset)
	}
	if c.StopOffset < 0 {
		return fmt.Errorf("sink worker: StopOffset %d must be >= 0 (0: no stop)", c.StopOffset)
	}
	return nil
}
