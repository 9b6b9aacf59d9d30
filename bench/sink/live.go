package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
	"github.com/rowcast/rowcast/changelog"
)

// lagResult is the live measurement.
type lagResult struct {
	Duration      time.Duration
	Txns, Rows    int
	AloneTxnRate  float64 // the writer's rate with nothing replicating
	Lags          []time.Duration
	P50, P99, Max time.Duration
	PollEvery     time.Duration
}

// memResult is the big-transaction measurement.
type memResult struct {
	Rows                     int
	Write                    time.Duration // master: the transaction's statements and commit
	Visible                  time.Duration // from the master's commit to the rows on the replica
	PipelineRSS, SinkRSS     int64         // peak RSS (VmHWM after a reset)
	PipelineHeap, SinkHeap   int64         // peak Go heap, sampled from /metrics
	PipelineLive, SinkLive   int64         // peak live heap after a GC (gctrace)
	LagPipelineLive          int64         // the same during the lag measurement
	LagSinkLive              int64
	PipelineBase, SinkBase   int64 // RSS before the transaction
	PipelineStart, SinkStart int64
}

// liveProcs are the rowcast processes of the live measurements.
type liveProcs struct{ pipe, snk *proc }

func (l liveProcs) alive() error {
	if err := l.pipe.alive(); err != nil {
		return err
	}
	return l.snk.alive()
}

func (l liveProcs) stop() {
	l.snk.stop()
	l.pipe.stop()
}

// live runs `rowcast pipeline` and `rowcast sink` as processes from the
// master's current position, then measures lag under a single writer and
// the memory of a big transaction.
func (b *bench) live(ctx context.Context) error {
	// The writer alone first, on a table that is never published (it is
	// written before the published range starts).
	if err := createTables(ctx, b.master.root, true, "lag_alone"); err != nil {
		return err
	}
	alone, _, err := b.writer(ctx, "lag_alone", 5*time.Second, nil)
	if err != nil {
		return err
	}
	procs, err := b.startLive(ctx)
	if err != nil {
		return err
	}
	defer procs.stop()
	if err := b.createLiveTables(ctx, procs); err != nil {
		return err
	}
	lagFrom := time.Now()
	if b.o.lagDuration > 0 {
		b.lag = &lagResult{AloneTxnRate: alone, PollEvery: b.o.lagPoll}
		if err := b.measureLag(ctx, b.lag, procs.alive); err != nil {
			return err
		}
	}
	if b.o.bigRows > 0 {
		b.mem = &memResult{Rows: b.o.bigRows}
		return b.measureMemory(ctx, b.mem, procs, lagFrom, time.Now())
	}
	return nil
}

// startLive writes the processes' config, for a fresh topic from the
// master's current position, and starts them.
func (b *bench) startLive(ctx context.Context) (liveProcs, error) {
	o := b.o
	start, err := gtidPos(ctx, b.master)
	if err != nil {
		return liveProcs{}, err
	}
	topic := b.topicPrefix + "_live"
	b.topics = append(b.topics, topic)
	pipeAddr, sinkAddr := fmt.Sprintf("127.0.0.1:%d", o.httpPort), fmt.Sprintf("127.0.0.1:%d", o.httpPort+1)
	cfg, yaml, err := b.benchConfig(topic, start, pipeAddr, sinkAddr)
	if err != nil {
		return liveProcs{}, err
	}
	if _, err := changelog.EnsureTopic(ctx, cfg.ChangelogConfig()); err != nil {
		return liveProcs{}, err
	}
	cfgPath := filepath.Join(o.dir, "rowcast-live.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		return liveProcs{}, err
	}
	pipe, err := startProc("pipeline", o.rowcastBin, filepath.Join(o.dir, "pipeline.log"), pipeAddr,
		"pipeline", "--config", cfgPath, "--log-format", "json", "--log-level", "warn")
	if err != nil {
		return liveProcs{}, err
	}
	snk, err := startProc("sink", o.rowcastBin, filepath.Join(o.dir, "sink.log"), sinkAddr,
		"sink", "--config", cfgPath, "--replica", "target", "--log-format", "json", "--log-level", "warn")
	if err != nil {
		pipe.stop()
		return liveProcs{}, err
	}
	return liveProcs{pipe: pipe, snk: snk}, nil
}

// createLiveTables creates the live measurements' tables on the master;
// they reach the replica as DDL through the pipeline.
func (b *bench) createLiveTables(ctx context.Context, procs liveProcs) error {
	tables := []string{"lag_rows"}
	if b.o.bigRows > 0 {
		tables = append(tables, "big_rows")
	}
	if err := createTables(ctx, b.master.root, true, tables...); err != nil {
		return err
	}
	err := waitFor(ctx, 60*time.Second, procs.alive, func() (bool, error) {
		var n int
		err := b.target.root.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=? AND TABLE_NAME IN ('lag_rows','big_rows')", benchDB).Scan(&n)
		return n == len(tables), err
	})
	if err != nil {
		return fmt.Errorf("tables created on the master did not reach the replica: %w", err)
	}
	return nil
}

// writer inserts lagTxn-row transactions into table for d on one
// connection, as fast as it can; each commit's last id and the time its
// COMMIT returned go to commits (when not nil). It returns transactions/s.
func (b *bench) writer(ctx context.Context, table string, d time.Duration, commits func(lastID int, at time.Time)) (float64, int, error) {
	conn, err := b.master.root.Conn(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	n := b.o.lagTxn
	t0 := time.Now()
	txns := 0
	for id := 1; time.Since(t0) < d; id += n {
		q, args := benchkit.InsertRows(benchDB+"."+table, id, n)
		if _, err := conn.ExecContext(ctx, q, args...); err != nil {
			return 0, 0, fmt.Errorf("writer on %s: %w", table, err)
		}
		if commits != nil {
			commits(id+n-1, time.Now())
		}
		txns++
	}
	return float64(txns) / time.Since(t0).Seconds(), txns, nil
}

// lagPoller matches the writer's commits with the newest row on the
// replica: a commit's lag is from its COMMIT on the master to the first
// poll that sees its last row.
type lagPoller struct {
	mu         sync.Mutex
	commits    []commit
	writerDone bool
	lags       []time.Duration
	next       int       // first commit not yet seen on the replica
	stopAt     time.Time // when to give up once the writer is done
}

type commit struct {
	last int
	at   time.Time
}

func (p *lagPoller) committed(last int, at time.Time) {
	p.mu.Lock()
	p.commits = append(p.commits, commit{last, at})
	p.mu.Unlock()
}

func (p *lagPoller) writerStopped() {
	p.mu.Lock()
	p.writerDone = true
	p.mu.Unlock()
}

// seen takes maxID, the newest row on the replica at now: it reports
// whether every commit has been seen after the writer stopped.
func (p *lagPoller) seen(maxID int, now time.Time) (finished bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.next < len(p.commits) && p.commits[p.next].last <= maxID {
		p.lags = append(p.lags, now.Sub(p.commits[p.next].at))
		p.next++
	}
	switch {
	case !p.writerDone:
		return false, nil
	case p.next == len(p.commits):
		return true, nil
	case p.stopAt.IsZero():
		p.stopAt = now.Add(60 * time.Second)
	case now.After(p.stopAt):
		return false, fmt.Errorf("the replica did not catch up within 60 s after the writer stopped")
	}
	return false, nil
}

// poll reads the newest row of the replica every pollEvery until seen
// says it is done.
func (b *bench) poll(ctx context.Context, p *lagPoller, every time.Duration, alive func() error) error {
	conn, err := b.target.root.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for {
		var maxID int
		if err := conn.QueryRowContext(ctx, "SELECT COALESCE(MAX(id),0) FROM "+benchDB+".lag_rows").Scan(&maxID); err != nil {
			return err
		}
		if finished, err := p.seen(maxID, time.Now()); finished || err != nil {
			return err
		}
		if err := alive(); err != nil {
			return err
		}
		if err := sleep(ctx, every); err != nil {
			return err
		}
	}
}

func (b *bench) measureLag(ctx context.Context, res *lagResult, alive func() error) error {
	logf("lag: a single client writes %d-row transactions for %v; the replica is polled every %v", b.o.lagTxn, b.o.lagDuration, b.o.lagPoll)
	p := &lagPoller{}
	pctx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	pollErr := make(chan error, 1)
	go func() { pollErr <- b.poll(pctx, p, res.PollEvery, alive) }()
	t0 := time.Now()
	_, txns, err := b.writer(ctx, "lag_rows", b.o.lagDuration, p.committed)
	res.Duration = time.Since(t0)
	if err != nil {
		stopPoll()
		<-pollErr
		return err
	}
	p.writerStopped()
	if err := <-pollErr; err != nil {
		return fmt.Errorf("lag poller: %w", err)
	}
	res.Txns, res.Rows = txns, txns*b.o.lagTxn
	if len(p.lags) == 0 {
		return fmt.Errorf("lag: no transaction was written")
	}
	slices.Sort(p.lags)
	lags := p.lags
	res.Lags = lags
	pct := func(q float64) time.Duration { return lags[min(len(lags)-1, int(q*float64(len(lags))))] }
	res.P50, res.P99, res.Max = pct(0.50), pct(0.99), lags[len(lags)-1]
	return nil
}

// measureMemory sends one big transaction through the processes, and
// records their peak memory while it goes; lagFrom..lagTo was the lag
// measurement, whose live heaps it reads too.
func (b *bench) measureMemory(ctx context.Context, res *memResult, procs liveProcs, lagFrom, lagTo time.Time) error {
	from := time.Now()
	if err := b.bigTransaction(ctx, res, procs); err != nil {
		return err
	}
	to := time.Now()
	// gctrace lines are written as the GCs happen: give the log a moment.
	time.Sleep(100 * time.Millisecond)
	res.PipelineLive, res.SinkLive = procs.pipe.liveHeap(from, to), procs.snk.liveHeap(from, to)
	if b.o.lagDuration > 0 {
		res.LagPipelineLive, res.LagSinkLive = procs.pipe.liveHeap(lagFrom, lagTo), procs.snk.liveHeap(lagFrom, lagTo)
	}
	return nil
}

// bigTransaction writes --big-rows rows in one transaction on the master
// and waits for them on the replica, sampling the processes' memory.
func (b *bench) bigTransaction(ctx context.Context, res *memResult, procs liveProcs) error {
	pipe, snk := procs.pipe.pid(), procs.snk.pid()
	res.PipelineBase, res.SinkBase = benchkit.Status(pipe, "VmRSS"), benchkit.Status(snk, "VmRSS")
	reset := benchkit.ResetPeakRSS(pipe) && benchkit.ResetPeakRSS(snk)
	if !reset {
		logf("warning: cannot reset the processes' peak RSS: the peak is since their start")
	}
	peaks := benchkit.SamplePeaks(100*time.Millisecond, procs.pipe.heap, procs.snk.heap, benchkit.RSS(pipe), benchkit.RSS(snk))
	err := b.writeBig(ctx, res, procs.alive)
	p := peaks.Stop()
	res.PipelineHeap, res.SinkHeap, res.PipelineRSS, res.SinkRSS = p[0], p[1], p[2], p[3]
	if reset {
		res.PipelineRSS = max(res.PipelineRSS, benchkit.Status(pipe, "VmHWM"))
		res.SinkRSS = max(res.SinkRSS, benchkit.Status(snk, "VmHWM"))
	}
	return err
}

// writeBig commits the big transaction on the master and waits until all
// its rows are on the replica.
func (b *bench) writeBig(ctx context.Context, res *memResult, alive func() error) error {
	logf("memory: one transaction of %d rows on the master", b.o.bigRows)
	t0 := time.Now()
	if err := b.commitBig(ctx); err != nil {
		return err
	}
	committed := time.Now()
	res.Write = committed.Sub(t0)
	logf("memory: committed on the master in %.1fs; waiting for the replica", res.Write.Seconds())
	err := waitFor(ctx, b.o.timeout, alive, func() (bool, error) {
		var maxID int
		err := b.target.root.QueryRowContext(ctx, "SELECT COALESCE(MAX(id),0) FROM "+benchDB+".big_rows").Scan(&maxID)
		return maxID == b.o.bigRows, err
	})
	res.Visible = time.Since(committed)
	if err != nil {
		return fmt.Errorf("big transaction not on the replica: %w", err)
	}
	var n int
	if err := b.target.root.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+benchDB+".big_rows").Scan(&n); err != nil {
		return err
	}
	if n != b.o.bigRows {
		return fmt.Errorf("big transaction: %d rows on the replica, want %d", n, b.o.bigRows)
	}
	return nil
}

// commitBig inserts --big-rows rows into big_rows, 1000 a statement, in one
// transaction.
func (b *bench) commitBig(ctx context.Context) error {
	conn, err := b.master.root.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		return err
	}
	const chunk = 1000
	for id := 1; id <= b.o.bigRows; id += chunk {
		q, args := benchkit.InsertRows(benchDB+".big_rows", id, min(chunk, b.o.bigRows-id+1))
		if _, err := conn.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("big transaction: %w", err)
		}
	}
	_, err = conn.ExecContext(ctx, "COMMIT")
	return err
}

// waitFor polls cond every 20 ms until it holds, alive fails, or limit.
func waitFor(ctx context.Context, limit time.Duration, alive func() error, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if err := alive(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %v", limit)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}
