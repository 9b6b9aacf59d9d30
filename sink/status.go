package sink

import (
	"sync"
	"time"
)

// Counter names a worker counter.
type Counter uint8

// Worker counters. Rows, transactions and skips are counted when their target
// transaction commits, so a rolled-back and re-applied transaction counts once.
const (
	RowsApplied        Counter = iota + 1 // row events applied
	TxnsApplied                           // source transactions applied (DDL included)
	Commits                               // target commits
	Retries                               // transient failures retried
	OldEpochIgnored                       // in-transaction messages of an older epoch
	DuplicatesSkipped                     // messages already applied, or of an abandoned transaction
	OffsetsSkipped                        // operator skips
	TxnsAbandoned                         // partial transactions of an old master dropped
	MessagesRefused                       // messages that failed the signature or trust checks
	OtherOriginSkipped                    // master-master: transactions another master wrote, applied from its own topic
	ConflictsResolved                     // master-master: conflicts a policy resolved (the target's ConflictCounter)
)

var counterNames = [...]string{"", "rows_applied", "txns_applied", "commits", "retries",
	"old_epoch_ignored", "duplicates_skipped", "offsets_skipped", "txns_abandoned", "messages_refused", "other_origin_skipped", "conflicts_resolved"}

func (c Counter) String() string {
	if int(c) < len(counterNames) {
		return counterNames[c]
	}
	return "counter?"
}

// Metrics receives a worker's measurements. The Prometheus implementation
// lives with the HTTP endpoint; NopMetrics discards everything. Methods are
// called from the worker's goroutine only.
type Metrics interface {
	// Add increases a counter.
	Add(c Counter, n int)
	// Error counts an error by kind: transient, malformed, gap, row_missing,
	// target.
	Error(kind string)
	// Applied reports progress after each commit: the last applied offset and
	// the replication lag (now minus the source commit time; 0 if unknown).
	Applied(offset int64, lag time.Duration)
}

// NopMetrics discards measurements.
type NopMetrics struct{}

// Add does nothing.
func (NopMetrics) Add(Counter, int) {}

// Error does nothing.
func (NopMetrics) Error(string) {}

// Applied does nothing.
func (NopMetrics) Applied(int64, time.Duration) {}

// RunState is what a Worker is doing.
type RunState string

// Worker states.
const (
	StateStarting RunState = "starting"
	StateRunning  RunState = "running"
	StateRetrying RunState = "retrying" // a transient error; backing off
	StateStopped  RunState = "stopped"  // Run returned nil
	StatePromoted RunState = "promoted" // Run returned nil: an epoch record made this replica the master
	StateError    RunState = "error"    // Run returned an error that needs a human
)

// Status is a snapshot of a Worker, safe to read from any goroutine.
type Status struct {
	State RunState
	// Offset is the next offset to read according to the last commit;
	// Offset-1 is the last applied message.
	Offset int64
	Epoch  uint64
	TxnSeq uint64
	// GTIDSet is the master's GTID set after TxnSeq.
	GTIDSet string
	// SourceTime is the commit time on the master of the last applied
	// transaction (or of the last heartbeat when idle).
	SourceTime time.Time
	// Lag is now minus SourceTime, 0 when unknown.
	Lag time.Duration
	// Err is the error that stopped the worker or that it is retrying.
	Err error
	// Bootstrapping is the number of tables the replica is still loading, as
	// of the last commit: by a snapshot in the changelog (until its end
	// marker) or by rowcast clone (until the checkpoint passes the table's
	// floor). BootstrapTables names them, "db.table", sorted, at most 100.
	// The slice is never modified once published.
	Bootstrapping   int
	BootstrapTables []string
}

type statusBox struct {
	mu sync.Mutex
	s  Status
}

func (b *statusBox) update(f func(*Status)) {
	b.mu.Lock()
	f(&b.s)
	b.mu.Unlock()
}

func (b *statusBox) get() Status {
	b.mu.Lock()
	s := b.s
	b.mu.Unlock()
	if !s.SourceTime.IsZero() {
		s.Lag = max(time.Since(s.SourceTime), 0)
	}
	return s
}
