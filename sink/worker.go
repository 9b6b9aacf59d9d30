package sink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/internal/redact"
)

// Worker applies one changelog partition to one Target, exactly once: from
// the checkpoint stored in the target, whole source transactions in order,
// each target commit writing the checkpoint with the rows. docs/DESIGN.md,
// "Exactly-once apply", has the rules.
type Worker struct {
	cfg  WorkerConfig
	t    Target
	in   Input
	log  zerolog.Logger
	m    Metrics
	skip map[int64]bool

	status statusBox

	// committed is what the target holds; done is what the next commit
	// writes. They differ while a target transaction is open.
	committed, done cursor
	// cur is the source transaction being applied, while its last message
	// has not been seen.
	cur srcTxn
	// abandoned are partial transactions of an old master that never
	// completed: their messages are skipped when read again.
	abandoned map[txnKey]bool

	pend  pending // what the open target transaction holds, for metrics
	batch batch   // rows not yet given to the target
	// boot are the tables a snapshot or a clone is still loading; nil
	// until there is one.
	boot *bootState

	// The flags sit together: padding after each would move the Worker to
	// a larger allocation size class.
	open bool // a target transaction is open
	// narrow is set after a human error of a multi-row batch: the worker
	// re-applies from the checkpoint one row per batch, so that the error
	// names the exact message. It clears once the checkpoint passes
	// narrowUntil.
	narrow bool
	// lenient relaxes the continuity check of the next in-transaction
	// message by one message, after an operator skipped an undecodable one.
	lenient bool
	// promoted is set once an epoch record named cfg.Node the new master.
	promoted    bool
	narrowUntil int64
	failedBatch int

	lastCommit time.Time
	commits    int // commits of the current session: progress resets the backoff
	oldLog     rateLog

	ddlf   *ddlFilter // which DDL may be applied
	ddlErr error      // why the DDL filter could not be built

	// pendDigests are the digests of the transactions the open target
	// transaction holds; recentDigests those committed lately, by txn_seq;
	// dup the duplicate being read (digest.go).
	pendDigests   []checkpoint.TxnDigest
	recentDigests map[uint64]uint64
	dup           dupCopy
}

// cursor is a checkpoint state plus whether its TxnSeq is a real position
// (false for a new replica before its first transaction or epoch record).
type cursor struct {
	st       checkpoint.State
	baseline bool
}

type srcTxn struct {
	active     bool
	epoch, seq uint64
	next       uint64    // the next expected Row
	d          txnDigest // of its messages so far
	leftOut    bool      // master-master: not applied here (origin.go)
}

type txnKey struct{ epoch, seq uint64 }

type pending struct {
	rows, txns, skips, dups, old, refused int
	bytes                                 int // message bytes
}

// NewWorker returns a worker that applies in to t. m may be nil (NopMetrics).
func NewWorker(cfg WorkerConfig, t Target, in Input, log zerolog.Logger, m Metrics) *Worker {
	cfg.setDefaults()
	if m == nil {
		m = NopMetrics{}
	}
	w := &Worker{cfg: cfg, t: t, in: in, m: m, skip: map[int64]bool{}, abandoned: map[txnKey]bool{},
		log: log.With().Str("topic", cfg.Topic).Int32("partition", cfg.Partition).Logger()}
	for _, o := range cfg.SkipOffsets {
		w.skip[o] = true
	}
	w.ddlf, w.ddlErr = newDDLFilter(&w.cfg)
	w.status.s.State = StateStarting
	return w
}

// Status returns a snapshot of the worker's progress; safe from any goroutine.
func (w *Worker) Status() Status { return w.status.get() }

// Run applies messages until ctx is canceled (it then commits what it holds
// at a transaction boundary and returns nil), the input ends (ErrEndOfInput;
// likewise), or an error needs a human (returned). Transient errors are
// retried with exponential backoff. Run closes the Target when it returns.
func (w *Worker) Run(ctx context.Context) error {
	defer w.t.Close()
	if err := w.cfg.Validate(); err != nil {
		return err
	}
	if w.ddlErr != nil {
		return w.ddlErr
	}
	backoff := w.cfg.RetryInitial
	for {
		// A server's message may quote the statement or a row's key.
		err := redact.Err(w.session(ctx))
		if err == nil || ctx.Err() != nil {
			w.setState(w.endState(), nil)
			return nil
		}
		if w.commits > 0 {
			backoff = w.cfg.RetryInitial
		}
		w.m.Error(errorKind(err))
		if Classify(err) != Transient {
			w.setState(StateError, err)
			return fmt.Errorf("sink %s[%d]: %w", w.cfg.Topic, w.cfg.Partition, err)
		}
		w.m.Add(Retries, 1)
		w.setState(StateRetrying, err)
		w.log.Warn().Err(err).Dur("backoff", backoff).Msg("transient error: retrying from the checkpoint stored in the target")
		select {
		case <-ctx.Done():
			w.setState(StateStopped, nil)
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, w.cfg.RetryMax)
	}
}

// endState is the state of a worker that stopped without an error.
func (w *Worker) endState() RunState {
	if w.promoted {
		return StatePromoted
	}
	return StateStopped
}

// session runs from the stored checkpoint until an error or the end.
func (w *Worker) session(ctx context.Context) (err error) {
	w.commits = 0
	defer func() { w.endSession(ctx, err) }()
	if err := w.resume(ctx); err != nil {
		return err
	}
	for {
		end, err := w.step(ctx)
		switch {
		case end:
			return err
		case err == nil:
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		case !w.narrowing(err):
			return err
		}
		w.log.Warn().Err(err).Msg("a multi-row batch failed: re-applying row by row to find the message")
		w.narrow = true
		if err := w.rewind(ctx); err != nil {
			return err
		}
	}
}

// step commits if it is time, then reads and handles the next message. end
// is set when the session ends here, with err its result.
func (w *Worker) step(ctx context.Context) (end bool, err error) {
	if err := w.maybeCommit(ctx); err != nil {
		return false, err
	}
	if w.stopHere() {
		return true, w.drain(ctx)
	}
	msg, err := w.in.Next(ctx)
	if err != nil {
		if errors.Is(err, ErrEndOfInput) || ctx.Err() != nil {
			return true, w.drain(ctx)
		}
		return false, fmt.Errorf("read the input after offset %d: %w", w.done.st.Offset, err)
	}
	return false, w.handle(ctx, msg)
}

// narrowing reports a human error of a multi-row batch: the worker re-applies
// from the checkpoint one row per batch, so that the error names the message.
func (w *Worker) narrowing(err error) bool {
	return Classify(err) == Human && w.failedBatch > 1 && !w.narrow
}

// endSession rolls back what a failed session left open.
func (w *Worker) endSession(ctx context.Context, err error) {
	if err != nil && w.open {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.ShutdownTimeout)
		if rerr := w.t.Rollback(rctx); rerr != nil {
			w.log.Debug().Err(rerr).Msg("rollback after error")
		}
		cancel()
	}
	w.open = false
}

// stopHere reports whether the worker reached cfg.StopOffset at a
// transaction boundary, or was promoted.
func (w *Worker) stopHere() bool {
	if w.promoted {
		return true
	}
	return w.cfg.StopOffset > 0 && !w.cur.active && w.done.st.Offset >= w.cfg.StopOffset
}

// resume reloads the checkpoint from the target and seeks the input to it.
func (w *Worker) resume(ctx context.Context) error {
	st, found, err := w.t.Open(ctx)
	if err != nil {
		return fmt.Errorf("open target: %w", err)
	}
	if !found {
		st = checkpoint.State{Topic: w.cfg.Topic, Partition: w.cfg.Partition, Offset: w.cfg.StartOffset}
	} else if st.Topic != w.cfg.Topic || st.Partition != w.cfg.Partition {
		return fmt.Errorf("target returned the checkpoint of %s[%d], not of %s[%d]", st.Topic, st.Partition, w.cfg.Topic, w.cfg.Partition)
	}
	w.committed = cursor{st: st, baseline: found && st.TxnSeq > 0}
	w.log.Info().Int64("offset", st.Offset).Uint64("epoch", st.Epoch).Uint64("txn_seq", st.TxnSeq).
		Bool("found", found).Msg("resuming from the checkpoint stored in the target")
	w.setState(StateRunning, nil)
	return w.rewind(ctx)
}

// rewind rolls back the open target transaction, forgets everything applied
// since the last commit and seeks the input back to the committed offset.
func (w *Worker) rewind(ctx context.Context) error {
	if w.open {
		w.open = false
		if err := w.t.Rollback(ctx); err != nil {
			return fmt.Errorf("rollback: %w", err)
		}
	}
	w.done = w.committed
	w.cur = srcTxn{}
	w.pend = pending{}
	w.pendDigests, w.dup = w.pendDigests[:0], dupCopy{}
	w.batch.reset()
	w.failedBatch = 0
	w.lenient = false
	if err := w.loadBoot(ctx); err != nil {
		return err
	}
	if err := w.in.SeekTo(w.committed.st.Offset); err != nil {
		return fmt.Errorf("seek input to offset %d: %w", w.committed.st.Offset, err)
	}
	return nil
}

// maybeCommit commits at a source transaction boundary when the input has
// nothing ready (never wait for Kafka holding a finished transaction) or the
// merge limits are reached; and saves a heartbeat's clock while idle.
func (w *Worker) maybeCommit(ctx context.Context) error {
	if w.cur.active {
		return nil
	}
	switch {
	case w.holding():
		if w.in.Buffered() == 0 || w.pend.txns >= w.cfg.MaxTxnMerge || w.pend.rows >= w.cfg.MaxMergeRows || w.pend.bytes >= w.cfg.MaxMergeBytes {
			return w.commit(ctx)
		}
	case w.done.st != w.committed.st && time.Since(w.lastCommit) >= w.cfg.HeartbeatCommit && w.in.Buffered() == 0:
		return w.commit(ctx)
	}
	return nil
}

// appliedInput tells an input that takes it (KafkaInput) what the target holds
// now, so that it lets go of big rows it waits on.
func (w *Worker) appliedInput(offset int64) {
	if a, ok := w.in.(interface{ Applied(int64) }); ok {
		a.Applied(offset)
	}
}

// holding reports whether the worker holds work the target has not
// committed: an open target transaction, or rows not yet given to it.
func (w *Worker) holding() bool { return w.open || len(w.batch.rows) > 0 }

func (w *Worker) begin(ctx context.Context) error {
	if w.open {
		return nil
	}
	if err := w.t.Begin(ctx); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	w.open = true
	return nil
}

// commit flushes the batch and commits the target transaction with the
// checkpoint of the last finished source transaction.
func (w *Worker) commit(ctx context.Context) error {
	if err := w.flush(ctx); err != nil {
		return err
	}
	if err := w.begin(ctx); err != nil {
		return err
	}
	st := w.done.st
	st.UpdatedAt = time.Now()
	st.MaxTxnSeq = max(st.MaxTxnSeq, st.TxnSeq)
	if err := w.pruneClones(ctx, st.Offset); err != nil {
		return err
	}
	if err := w.saveDigests(ctx); err != nil {
		return err
	}
	if err := w.t.Commit(ctx, st); err != nil {
		w.open = false // the target ended the transaction either way
		return fmt.Errorf("commit %s: %w", st, err)
	}
	w.open = false
	w.done.st = st
	w.committed = w.done
	w.commits++
	w.appliedInput(st.Offset)
	w.lastCommit = st.UpdatedAt
	p := w.pend
	w.pend = pending{}
	w.count(p)
	w.committedDigests()
	w.m.Add(Commits, 1)
	if cc, ok := w.t.(ConflictCounter); ok {
		if n := cc.TakeConflicts(); n > 0 {
			w.m.Add(ConflictsResolved, n)
		}
	}
	w.applied()
	for k := range w.abandoned {
		if k.seq <= st.TxnSeq {
			delete(w.abandoned, k)
		}
	}
	if w.narrow && st.Offset > w.narrowUntil {
		w.narrow = false
	}
	return nil
}

// drain ends a session cleanly: commit at a boundary, roll back a partial
// source transaction (the next run re-reads it from the checkpoint).
func (w *Worker) drain(ctx context.Context) error {
	if w.cur.active {
		if w.open {
			w.open = false
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.ShutdownTimeout)
			defer cancel()
			return w.t.Rollback(rctx)
		}
		return nil
	}
	if w.holding() || w.done.st != w.committed.st {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.ShutdownTimeout)
		defer cancel()
		return w.commit(cctx)
	}
	w.count(w.pend)
	w.pend = pending{}
	return nil
}

func (w *Worker) count(p pending) {
	for _, c := range []struct {
		c Counter
		n int
	}{{RowsApplied, p.rows}, {TxnsApplied, p.txns}, {OffsetsSkipped, p.skips}, {DuplicatesSkipped, p.dups}, {OldEpochIgnored, p.old}, {MessagesRefused, p.refused}} {
		if c.n > 0 {
			w.m.Add(c.c, c.n)
		}
	}
}

// applied publishes the committed position to the status and the metrics.
func (w *Worker) applied() {
	st := w.committed.st
	var lag time.Duration
	if !st.CommitTime.IsZero() {
		lag = max(time.Since(st.CommitTime), 0)
	}
	w.m.Applied(st.Offset-1, lag)
	w.status.update(func(s *Status) {
		s.Offset, s.Epoch, s.TxnSeq, s.GTIDSet, s.SourceTime = st.Offset, st.Epoch, st.TxnSeq, st.GTIDSet, st.CommitTime
		if s.State == StateRetrying {
			s.State, s.Err = StateRunning, nil
		}
	})
	w.showBoot()
}

func (w *Worker) setState(state RunState, err error) {
	st := w.committed.st
	w.status.update(func(s *Status) {
		s.State, s.Err = state, err
		s.Offset, s.Epoch, s.TxnSeq, s.GTIDSet, s.SourceTime = st.Offset, st.Epoch, st.TxnSeq, st.GTIDSet, st.CommitTime
	})
}

// rateLog lets a repetitive log line through at most once per period.
type rateLog struct {
	last       time.Time
	suppressed int
}

func (r *rateLog) allow(period time.Duration) (bool, int) {
	if time.Since(r.last) < period {
		r.suppressed++
		return false, 0
	}
	n := r.suppressed
	r.last, r.suppressed = time.Now(), 0
	return true, n
}
