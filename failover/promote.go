package failover

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/changelog/history"
	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/pipeline"
)

// Options of a promotion.
type Options struct {
	// Replica is the node to promote. With Force it may be empty: the
	// replica with the highest applied offset is chosen.
	Replica string
	// Force is the emergency promotion: the master does not answer, so it is
	// not fenced and the reader is not waited for. Refused while the master
	// answers.
	Force bool
	// Fence is what happens to the old master's open write transactions
	// (planned promotion): FenceKill (default) or FenceWait.
	Fence string
	// FenceTimeout bounds the wait for open write transactions. Default 10s.
	FenceTimeout time.Duration
	// CatchupTimeout bounds the wait for the reader to publish the master's
	// last transaction and for the replica to apply the topic. Default 60s.
	CatchupTimeout time.Duration
	// LeaseTTL is the promotion lease's time to live. Default 30s.
	LeaseTTL time.Duration
	// Holder names the actor in the lease. Default "promote@host:pid".
	Holder string
	// PipelineHTTP is the pipeline service's metrics address, whose
	// /healthz details say how far it has read (default: the config's
	// http). "off": watch the topic instead (needs a heartbeat, so slower).
	PipelineHTTP string
	// RecordTimeout bounds the wait for Kafka to acknowledge the epoch
	// record. Default 30s.
	RecordTimeout time.Duration
	// RecordSettle is how long after a first read that did not find an
	// unacknowledged epoch record the topic is read again, before the
	// promotion is aborted. Default 30s.
	RecordSettle time.Duration
}

func (o *Options) setDefaults(cfg *config.Config) {
	if o.Fence == "" {
		o.Fence = FenceKill
	}
	if o.FenceTimeout <= 0 {
		o.FenceTimeout = 10 * time.Second
	}
	if o.CatchupTimeout <= 0 {
		o.CatchupTimeout = 60 * time.Second
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 30 * time.Second
	}
	if o.Holder == "" {
		o.Holder = Holder("promote")
	}
	if o.PipelineHTTP == "" {
		o.PipelineHTTP = cfg.HTTP
	}
	if o.RecordTimeout <= 0 {
		o.RecordTimeout = defaultRecordTimeout
	}
	if o.RecordSettle <= 0 {
		o.RecordSettle = defaultRecordSettle
	}
}

// Step is one step of a promotion, reported as it ends.
type Step struct {
	N      int           `json:"n"`
	Name   string        `json:"name"`
	Took   time.Duration `json:"took_ns"`
	Detail string        `json:"detail,omitempty"`
}

// Result is a promotion that reached its point of no return.
type Result struct {
	OldMaster    string `json:"old_master"`
	NewMaster    string `json:"new_master"`
	Epoch        uint64 `json:"epoch"`
	RecordOffset int64  `json:"record_offset"`
	StartGTIDSet string `json:"start_gtid_set"`
	TxnSeq       uint64 `json:"txn_seq"`
	Steps        []Step `json:"steps"`
	// WriteDowntime is, for a planned promotion, the time from the old
	// master refusing writes (read_only=ON) to the new one accepting them.
	WriteDowntime time.Duration `json:"write_downtime_ns"`
	Total         time.Duration `json:"total_ns"`
}

// Promoter promotes a replica of one cluster.
type Promoter struct {
	Cfg   *config.Config
	Kafka changelog.Config
	Log   zerolog.Logger
	// OnStep, when set, is called as each step ends.
	OnStep func(Step)

	rec    recorder // tests: record the statements
	faults faults   // tests: failures to inject
}

// AbortError is a promotion that stopped before its point of no return and
// undid what it had done.
type AbortError struct {
	Step string // the step that failed
	Undo string // what was undone
	Err  error
}

func (e *AbortError) Error() string {
	s := fmt.Sprintf("promotion aborted at %q: %v", e.Step, e.Err)
	if e.Undo != "" {
		s += "; undone: " + e.Undo
	}
	return s
}

func (e *AbortError) Unwrap() error { return e.Err }

// Promote runs a planned promotion (fence the master, let the reader
// publish its last transaction, let the replica apply the whole topic, write
// the epoch record, make the replica writable) or, with Force, an emergency
// one (the master does not answer: no fence, no reader to wait for). The
// pipeline service follows the epoch record by itself, and every other
// replica's sink honours it.
//
// Everything before the epoch record is written is undone on failure
// (read_only of the old master restored, lease released) and reported as an
// AbortError; except when the record was sent, not acknowledged, and the
// topic cannot be read to tell whether it landed: then nothing is undone
// (UnknownOutcomeError).
func (p *Promoter) Promote(ctx context.Context, o Options) (*Result, error) {
	o.setDefaults(p.Cfg)
	pr := p.start(o)
	defer pr.close()
	pr.do(ctx, "look up the current master", pr.lookUpMaster)
	pr.do(ctx, "take the promotion lease", pr.takeLease)
	pr.quiet(ctx, "start a producer", pr.startProducer)
	if o.Force {
		pr.emergency(ctx)
	} else {
		pr.planned(ctx)
	}
	pr.do(ctx, fmt.Sprintf("wait for %s to apply the whole topic", pr.o.Replica), pr.waitReplica)
	pr.do(ctx, "write the epoch record", pr.writeEpochRecord)
	if pr.err != nil {
		return nil, pr.fail(ctx)
	}
	return pr.afterRecord(ctx)
}

// emergency are the steps of a forced promotion up to the replica's
// catch-up: the master must not answer; the replica may be chosen; the
// fence command, when there is one, must succeed.
func (pr *promotion) emergency(ctx context.Context) {
	pr.do(ctx, "check that the master does not answer", pr.checkMasterDown)
	if pr.o.Replica == "" {
		pr.do(ctx, "pick the replica with the highest applied offset", pr.pick)
	}
	pr.quiet(ctx, "connect to "+pr.o.Replica, pr.connectReplica)
	if pr.p.Cfg.Failover.FenceCommand != "" {
		pr.do(ctx, "fence "+pr.cur.Master+" with failover.fence_command", pr.runFenceCommand)
	}
}

// planned are the steps of a planned promotion up to the replica's
// catch-up: fence the master and let the reader publish what it holds.
func (pr *promotion) planned(ctx context.Context) {
	pr.do(ctx, "connect to the master and the replica", pr.connectBoth)
	pr.do(ctx, "fence "+pr.cur.Master, pr.fence)
	pr.do(ctx, "wait for the reader to publish the master's last transaction", pr.waitPublished)
}

// afterRecord are the steps past the point of no return (the epoch record
// is in the topic): a failure there undoes nothing and returns the result.
func (pr *promotion) afterRecord(ctx context.Context) (*Result, error) {
	if err := pr.checkNoOtherFirst(ctx); err != nil {
		pr.lease.Release(context.WithoutCancel(ctx))
		return pr.res, err
	}
	pr.report("check that no other promotion came first", "")
	detail, err := pr.makeWritable(ctx)
	if err != nil {
		pr.lease.Release(context.WithoutCancel(ctx))
		return pr.res, err
	}
	pr.report("make "+pr.o.Replica+" writable", detail)
	if err := pr.recordEpochIndex(ctx); err != nil {
		return pr.res, err
	}
	pr.lease.Release(ctx)
	pr.report("record the epoch in the nodes' index", "lease released")
	pr.res.Total = time.Since(pr.t0)
	return pr.res, nil
}

// promotion is one run of Promote: what its steps share, the steps
// reported so far, and what to undo when a step before the epoch record
// fails. A step runs only while every step before it succeeded (do,
// quiet): Promote lists them all, and checks the first failure once, before
// the point of no return.
type promotion struct {
	p *Promoter
	o Options

	res  *Result
	loc  *Locator
	cur  Current
	view View
	// log reads the topic; lease, prod, oldSrv and newSrv are open until
	// close.
	log            *history.Log
	lease          *Lease
	prod           *recordWriter
	oldSrv, newSrv *server
	fenceStart     time.Time
	lastSeq        uint64
	record         pipeline.EpochRecord

	t0, last time.Time
	err      error  // of the step that failed
	failed   string // its name
	undo     []func(context.Context) string
	closers  []func()
}

func (p *Promoter) start(o Options) *promotion {
	loc := NewLocator(p.Cfg, p.Kafka, p.Log)
	loc.rec = p.rec
	t0 := time.Now()
	return &promotion{p: p, o: o, res: &Result{RecordOffset: -1}, loc: loc, t0: t0, last: t0}
}

// do runs a step unless an earlier one failed, and reports it.
func (pr *promotion) do(ctx context.Context, name string, step func(context.Context) (string, error)) {
	if detail, ok := pr.run(ctx, name, step); ok {
		pr.report(name, detail)
	}
}

// quiet runs a step that is not reported: its time counts to the next one.
func (pr *promotion) quiet(ctx context.Context, name string, step func(context.Context) (string, error)) {
	pr.run(ctx, name, step)
}

func (pr *promotion) run(ctx context.Context, name string, step func(context.Context) (string, error)) (string, bool) {
	if pr.err != nil {
		return "", false
	}
	detail, err := step(ctx)
	if err != nil {
		pr.err, pr.failed = err, name
		return "", false
	}
	return detail, true
}

// report records a step that ended, and tells OnStep and the log.
func (pr *promotion) report(name, detail string) {
	s := Step{N: len(pr.res.Steps) + 1, Name: name, Took: time.Since(pr.last), Detail: detail}
	pr.last = time.Now()
	pr.res.Steps = append(pr.res.Steps, s)
	if pr.p.OnStep != nil {
		pr.p.OnStep(s)
	}
	pr.p.Log.Info().Str("step", name).Dur("took", s.Took).Str("detail", detail).Msg("promotion step")
}

// abort undoes, newest first, what the steps did, and says so.
func (pr *promotion) abort(ctx context.Context) error {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var done []string
	for i := len(pr.undo) - 1; i >= 0; i-- {
		if s := pr.undo[i](uctx); s != "" {
			done = append(done, s)
		}
	}
	return &AbortError{Step: pr.failed, Undo: strings.Join(done, "; "), Err: pr.err}
}

// close closes what the steps opened, newest first.
func (pr *promotion) close() {
	for i := len(pr.closers) - 1; i >= 0; i-- {
		pr.closers[i]()
	}
}
