package failover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/pipeline/config"
	"github.com/rowcast/rowcast/pipeline/history"
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
	Kafka pipeline.KafkaConfig
	Log   zerolog.Logger
	// OnStep, when set, is called as each step ends.
	OnStep func(Step)
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
// AbortError.
func (p *Promoter) Promote(ctx context.Context, o Options) (*Result, error) {
	o.setDefaults(p.Cfg)
	res := &Result{RecordOffset: -1}
	t0 := time.Now()
	last := t0
	step := func(name, detail string) {
		s := Step{N: len(res.Steps) + 1, Name: name, Took: time.Since(last), Detail: detail}
		last = time.Now()
		res.Steps = append(res.Steps, s)
		if p.OnStep != nil {
			p.OnStep(s)
		}
		p.Log.Info().Str("step", name).Dur("took", s.Took).Str("detail", detail).Msg("promotion step")
	}
	current := "look up the current master"
	var undo []func(context.Context) string
	abort := func(err error) (*Result, error) {
		var done []string
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for i := len(undo) - 1; i >= 0; i-- {
			if s := undo[i](uctx); s != "" {
				done = append(done, s)
			}
		}
		return nil, &AbortError{Step: current, Undo: strings.Join(done, "; "), Err: err}
	}

	loc := NewLocator(p.Cfg, p.Kafka, p.Log)
	view, err := loc.Locate(ctx)
	if err != nil {
		return abort(err)
	}
	cur := view.Current
	res.OldMaster = cur.Master
	if o.Replica == cur.Master {
		return abort(fmt.Errorf("%s is already the master (epoch %d)", o.Replica, cur.Epoch))
	}
	if o.Replica == "" && !o.Force {
		return abort(errors.New("name the replica to promote (--replica)"))
	}
	if o.Replica != "" {
		n, ok := p.Cfg.Node(o.Replica)
		if !ok || n.Kind != config.KindMySQL {
			return abort(fmt.Errorf("%q is not a mysql node of the config", o.Replica))
		}
	}
	step(current, fmt.Sprintf("%s, epoch %d (%s)", cur.Master, cur.Epoch, cur.From))

	current = "take the promotion lease"
	end, err := pipeline.EndOffset(ctx, p.Kafka)
	if err != nil {
		return abort(err)
	}
	lease, err := AcquireLease(ctx, p.Cfg, p.Kafka.Topic, o.Holder, o.LeaseTTL, end, p.Log)
	if err != nil {
		return abort(err)
	}
	undo = append(undo, func(ctx context.Context) string { lease.Release(ctx); return "promotion lease released" })
	// A promotion may have ended between the lookup and the lease.
	if view, err = loc.Locate(ctx); err != nil {
		return abort(err)
	}
	if view.Current.Epoch != cur.Epoch || view.Current.Master != cur.Master {
		return abort(fmt.Errorf("the master changed meanwhile: %s, epoch %d; run the promotion again if it is still wanted", view.Current.Master, view.Current.Epoch))
	}
	step(current, fmt.Sprintf("on %d of %d mysql nodes, held by %s", len(lease.dbs), lease.total, o.Holder))
	log := history.New(history.Kafka(p.Kafka), &pipeline.Codec{Cluster: p.Cfg.Cluster}, view.Marks)

	current = "start a producer"
	prod, err := newRecordWriter(ctx, p.Kafka, p.Log)
	if err != nil {
		return abort(err)
	}
	defer prod.close()

	var newSrv *server
	var fenceStart time.Time
	if o.Force {
		current = "check that the master does not answer"
		n, _ := p.Cfg.Node(cur.Master)
		if db, err := openNode(ctx, n, 2*time.Second); err == nil {
			db.Close()
			return abort(fmt.Errorf("the master %s answers: promote without --force (a planned promotion fences it and loses nothing)", cur.Master))
		}
		step(current, cur.Master+" does not answer")
		if o.Replica == "" {
			current = "pick the replica with the highest applied offset"
			pick, detail, err := p.pick(ctx, cur.Master)
			if err != nil {
				return abort(err)
			}
			o.Replica = pick
			step(current, detail)
		}
		current = "connect to " + o.Replica
		n, _ = p.Cfg.Node(o.Replica)
		if newSrv, err = connect(ctx, n, 3*time.Second); err != nil {
			return abort(err)
		}
		defer newSrv.db.Close()
	} else {
		current = "connect to the master and the replica"
		n, _ := p.Cfg.Node(cur.Master)
		oldSrv, err := connect(ctx, n, 3*time.Second)
		if err != nil {
			return abort(fmt.Errorf("%w (if the master is down, use --force)", err))
		}
		defer oldSrv.db.Close()
		n, _ = p.Cfg.Node(o.Replica)
		if newSrv, err = connect(ctx, n, 3*time.Second); err != nil {
			return abort(err)
		}
		defer newSrv.db.Close()
		if st, found, err := checkpoint.NewMySQL(p.Cfg.Sink.BookkeepingSchema).Load(ctx, newSrv.db, p.Kafka.Topic, 0); err != nil || !found {
			return abort(fmt.Errorf("%s has no checkpoint for topic %s (%v): it is not a replica of this cluster yet", o.Replica, p.Kafka.Topic, err))
		} else if st.Epoch != cur.Epoch {
			return abort(fmt.Errorf("%s applied epoch %d, the master's epoch is %d: let its sink worker catch up first", o.Replica, st.Epoch, cur.Epoch))
		}
		step(current, "")

		current = "fence " + cur.Master
		fenceStart = time.Now()
		fr, err := oldSrv.fence(ctx, o.Fence, o.FenceTimeout)
		undo = append(undo, func(ctx context.Context) string {
			if err := oldSrv.setReadOnly(ctx, fr.before); err != nil {
				return fmt.Sprintf("FAILED to restore read_only on %s (%v): restore it by hand", oldSrv.name, err)
			}
			return fmt.Sprintf("read_only of %s restored to %s", oldSrv.name, onOff(fr.before.ro))
		})
		if err != nil {
			return abort(err)
		}
		detail := fmt.Sprintf("read_only=ON; %d open write transactions killed", fr.killed)
		if o.Fence == FenceWait {
			detail = fmt.Sprintf("read_only=ON; waited %v for open write transactions", fr.waited.Round(time.Millisecond))
		}
		if !fr.visible {
			detail += " (open transactions not visible: the user lacks PROCESS; read_only alone stops users without READ_ONLY ADMIN/SUPER)"
		}
		step(current, detail)

		current = "wait for the reader to publish the master's last transaction"
		set, err := oldSrv.gtidSet(ctx)
		if err != nil {
			return abort(err)
		}
		how, err := p.waitPublished(ctx, o, cur, set, log)
		if err != nil {
			return abort(err)
		}
		step(current, fmt.Sprintf("%s (%s)", set, how))
	}

	current = fmt.Sprintf("wait for %s to apply the whole topic", o.Replica)
	end, err = pipeline.EndOffset(ctx, p.Kafka)
	if err != nil {
		return abort(err)
	}
	lastPt, ok, err := log.LastBefore(ctx, end, -1)
	if err != nil {
		return abort(err)
	}
	var lastSeq uint64
	if ok {
		lastSeq = lastPt.TxnSeq
	}
	st, err := p.waitApplied(ctx, newSrv, lastSeq, cur.Epoch, o.CatchupTimeout)
	if err != nil {
		return abort(err)
	}
	step(current, fmt.Sprintf("applied up to e%d/t%d (checkpoint offset %d)", st.Epoch, st.TxnSeq, st.Offset))

	current = "write the epoch record"
	startSet, err := newSrv.gtidSet(ctx)
	if err != nil {
		return abort(err)
	}
	sid, err := newSrv.serverID(ctx)
	if err != nil {
		return abort(err)
	}
	if err := lease.Check(); err != nil {
		return abort(err)
	}
	newEpoch := cur.Epoch + 1
	for _, m := range view.Marks {
		newEpoch = max(newEpoch, m.Record.Epoch+1)
	}
	rec := pipeline.EpochRecord{Epoch: newEpoch, Master: o.Replica, StartGTIDSet: startSet, Flavor: newSrv.flavor(), TxnSeq: lastSeq}
	// The point of no return: once the record is in the topic, every sink
	// fences the old master's epoch.
	off, err := prod.write(ctx, &pipeline.Event{Kind: pipeline.KindEpoch, GTIDSet: startSet, Flavor: rec.Flavor, ServerID: sid,
		CommitTime: time.Now().UTC(), Pos: pipeline.Position{Epoch: newEpoch, TxnSeq: lastSeq, Last: true}, Epoch: &rec})
	if err != nil {
		return abort(fmt.Errorf("the epoch record was not acknowledged (%w); it may still have been written: run `rowcast status` before retrying", err))
	}
	res.NewMaster, res.Epoch, res.RecordOffset, res.StartGTIDSet, res.TxnSeq = o.Replica, newEpoch, off, startSet, lastSeq
	step(current, fmt.Sprintf("epoch %d, master %s, start %s, after t%d, at offset %d", newEpoch, o.Replica, startSet, lastSeq, off))

	// Another promoter whose lease expired under it may have written first:
	// the first record of an epoch in the topic is the one everyone honours.
	current = "check that no other promotion came first"
	others, err := log.Scan(ctx, min(lease.FromOffset, off), off)
	if err != nil {
		lease.Release(context.WithoutCancel(ctx))
		return res, fmt.Errorf("epoch record written at offset %d, but the check for a competing promotion failed (%w): check `rowcast status` before making %s writable by hand", off, err, o.Replica)
	}
	for _, m := range others {
		if m.Record.Epoch >= newEpoch {
			lease.Release(context.WithoutCancel(ctx))
			return res, fmt.Errorf("%w: the epoch %d record at offset %d (master %s) precedes ours at offset %d, which every sink ignores; %s stays read-only",
				ErrLostRace, m.Record.Epoch, m.Offset, m.Record.Master, off, o.Replica)
		}
	}
	step(current, "")

	current = "make " + o.Replica + " writable"
	if err := newSrv.setReadOnly(ctx, readOnly{}); err != nil {
		lease.Release(context.WithoutCancel(ctx))
		return res, fmt.Errorf("epoch %d is written but %s stays read-only (%w): SET GLOBAL read_only=OFF on it by hand", newEpoch, o.Replica, err)
	}
	if !fenceStart.IsZero() {
		res.WriteDowntime = time.Since(fenceStart)
	}
	detail := "read_only=OFF"
	if res.WriteDowntime > 0 {
		detail += fmt.Sprintf("; writes were refused for %v", res.WriteDowntime.Round(time.Millisecond))
	}
	step(current, detail)

	current = "record the epoch in the nodes' index"
	if err := lease.RecordEpoch(ctx, epochRow{Offset: off, Record: rec, PromotedBy: o.Holder, PromotedAt: time.Now()}); err != nil {
		// The lease stays taken: readers scan the topic from its offset.
		lease.stop()
		<-lease.done
		return res, err
	}
	lease.Release(ctx)
	step(current, "lease released")
	res.Total = time.Since(t0)
	return res, nil
}

// pick returns the reachable replica (not master) with the highest applied
// offset; ties go to the config's order.
func (p *Promoter) pick(ctx context.Context, master string) (string, string, error) {
	best, bestOff := "", int64(-1)
	var seen []string
	for _, name := range Replicas(p.Cfg, master) {
		n, _ := p.Cfg.Node(name)
		if n.Kind != config.KindMySQL {
			continue
		}
		db, err := openNode(ctx, n, 2*time.Second)
		if err != nil {
			seen = append(seen, name+": unreachable")
			continue
		}
		st, found, err := checkpoint.NewMySQL(p.Cfg.Sink.BookkeepingSchema).Load(ctx, db, p.Kafka.Topic, 0)
		db.Close()
		if err != nil || !found {
			seen = append(seen, name+": no checkpoint")
			continue
		}
		seen = append(seen, fmt.Sprintf("%s: offset %d", name, st.Offset))
		if st.Offset > bestOff {
			best, bestOff = name, st.Offset
		}
	}
	if best == "" {
		return "", "", fmt.Errorf("no replica can be promoted (%s)", strings.Join(seen, ", "))
	}
	return best, fmt.Sprintf("%s (%s)", best, strings.Join(seen, ", ")), nil
}

// waitPublished waits until the pipeline service has read the master up to
// set and Kafka acknowledged everything it queued: from its /healthz
// details when it serves them, else from the topic (a message of the
// epoch whose GTID set holds set: a transaction's last message or a
// heartbeat).
func (p *Promoter) waitPublished(ctx context.Context, o Options, cur Current, set string, log *history.Log) (string, error) {
	deadline := time.Now().Add(o.CatchupTimeout)
	useHTTP := o.PipelineHTTP != "" && o.PipelineHTTP != "off"
	for {
		if useHTTP {
			pos, err := pipelinePosition(ctx, o.PipelineHTTP)
			switch {
			case err != nil:
				p.Log.Info().Err(err).Msg("the pipeline service's /healthz gives no position: watching the topic")
				useHTTP = false
			case pos.Topic != p.Kafka.Topic || pos.Master != cur.Master || pos.Epoch != cur.Epoch:
				p.Log.Info().Str("topic", pos.Topic).Str("master", pos.Master).Uint64("epoch", pos.Epoch).
					Msg("the process at the pipeline address reads another topic, master or epoch: watching the topic")
				useHTTP = false
			default:
				in, err := history.Contains("", pos.ReadGTIDSet, set)
				if err != nil {
					return "", err
				}
				if in && pos.Queued == 0 {
					return "pipeline /healthz", nil
				}
			}
		}
		if !useHTTP {
			end, err := pipeline.EndOffset(ctx, p.Kafka)
			if err != nil {
				return "", err
			}
			if pt, ok, err := log.LastBefore(ctx, end, 1000); err != nil {
				return "", err
			} else if ok && pt.Epoch == cur.Epoch && pt.Kind != pipeline.KindEpoch {
				if in, err := history.Contains("", pt.GTIDSet, set); err != nil {
					return "", err
				} else if in {
					return fmt.Sprintf("topic offset %d", pt.Offset), nil
				}
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the pipeline service has not published the master's transactions up to %s within %v: is it running and reading %s? (`rowcast status`)",
				set, o.CatchupTimeout, cur.Master)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// pipelinePos is the part of the pipeline service's Position promote reads.
type pipelinePos struct {
	Topic       string `json:"topic"`
	Master      string `json:"master"`
	Epoch       uint64 `json:"epoch"`
	ReadGTIDSet string `json:"read_gtid_set"`
	Queued      int    `json:"queued"`
}

func pipelinePosition(ctx context.Context, addr string) (pipelinePos, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return pipelinePos{}, err
	}
	defer resp.Body.Close()
	var body struct {
		Details struct {
			Pipeline *pipelinePos `json:"pipeline"`
		} `json:"details"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return pipelinePos{}, err
	}
	if body.Details.Pipeline == nil || body.Details.Pipeline.Master == "" {
		return pipelinePos{}, fmt.Errorf("http://%s/healthz has no pipeline position", addr)
	}
	return *body.Details.Pipeline, nil
}

// waitApplied waits until the replica's checkpoint holds transaction seq
// of the epoch (its sink worker must be running).
func (p *Promoter) waitApplied(ctx context.Context, s *server, seq, epoch uint64, timeout time.Duration) (checkpoint.State, error) {
	store := checkpoint.NewMySQL(p.Cfg.Sink.BookkeepingSchema)
	deadline := time.Now().Add(timeout)
	for {
		st, found, err := store.Load(ctx, s.db, p.Kafka.Topic, 0)
		if err != nil {
			return st, err
		}
		if found && st.TxnSeq >= seq && st.Epoch >= epoch {
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("%s applied up to e%d/t%d, the topic holds up to e%d/t%d: is its sink worker running? (`rowcast status`)",
				s.name, st.Epoch, st.TxnSeq, epoch, seq)
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// recordWriter produces control records (the epoch record) to the topic.
type recordWriter struct {
	p      *pipeline.Producer
	stop   context.CancelFunc
	done   chan error
	acked  chan int64
	closed bool
}

func newRecordWriter(ctx context.Context, kc pipeline.KafkaConfig, log zerolog.Logger) (*recordWriter, error) {
	w := &recordWriter{acked: make(chan int64, 1), done: make(chan error, 1)}
	p, err := pipeline.NewProducer(kc, log, pipeline.ProducerOptions{OnAck: func(_ any, off int64) {
		select {
		case w.acked <- off:
		default:
		}
	}})
	if err != nil {
		return nil, err
	}
	w.p = p
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.stop = cancel
	go func() { w.done <- p.Run(pctx) }()
	return w, nil
}

// write publishes one event and returns its offset once acknowledged.
func (w *recordWriter) write(ctx context.Context, ev *pipeline.Event) (int64, error) {
	c := &pipeline.Codec{}
	k, err := c.AppendKey(nil, ev)
	if err != nil {
		return 0, err
	}
	v, err := c.AppendValue(nil, ev)
	if err != nil {
		return 0, err
	}
	if err := w.p.Send(ctx, k, v, "epoch record"); err != nil {
		return 0, err
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := w.p.Flush(fctx); err != nil {
		return 0, err
	}
	return <-w.acked, nil
}

func (w *recordWriter) close() {
	if !w.closed {
		w.closed = true
		w.stop()
		<-w.done
	}
}
