package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/pipeline/service"
)

// proc is a rowcast process (`rowcast pipeline`, `rowcast sink`) started by
// the benchmark and stopped by its PID.
type proc struct {
	name    string
	cmd     *exec.Cmd
	started time.Time
	exited  chan struct{}
	metrics string // URL of its /metrics
	log     string
}

func startProc(name, bin, logPath, metricsAddr string, args ...string) (*proc, error) {
	out, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, cmd: exec.Command(bin, args...), exited: make(chan struct{}),
		metrics: "http://" + metricsAddr + "/metrics", log: logPath}
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// gctrace: the live heap after every GC, in the log (see liveHeap).
	p.cmd.Env = append(os.Environ(), "GODEBUG=gctrace=1")
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.cmd.Wait(); out.Close(); close(p.exited) }()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("rowcast %s exited (%v); log: %s", p.name, p.cmd.ProcessState, p.log)
	default:
		return nil
	}
}

// stop sends SIGTERM (rowcast drains and checkpoints), then SIGKILL.
func (p *proc) stop() {
	for i, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		_ = p.cmd.Process.Signal(sig)
		select {
		case <-p.exited:
			return
		case <-time.After([]time.Duration{30 * time.Second, 10 * time.Second}[i]):
		}
	}
}

// heap reads go_memstats_heap_alloc_bytes from the process's metrics.
func (p *proc) heap(ctx context.Context) int64 {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.metrics, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_alloc_bytes "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f)
		}
	}
	return 0
}

// liveHeap is the largest live heap after a GC (the last number of
// gctrace's "A->B->C MB") of the GCs between from and to, in bytes: unlike
// a sampled heap size it does not depend on when the GC ran.
func (p *proc) liveHeap(from, to time.Time) int64 {
	f, err := os.Open(p.log)
	if err != nil {
		return 0
	}
	defer f.Close()
	lo, hi := from.Sub(p.started).Seconds(), to.Sub(p.started).Seconds()
	var peak float64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// gc 38 @51.381s 0%: ..., 267->278->162 MB, 280 MB goal, ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[0] != "gc" || !strings.HasPrefix(fields[2], "@") {
			continue
		}
		at, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(fields[2], "@"), "s"), 64)
		if err != nil || at < lo || at > hi {
			continue
		}
		for i, f := range fields {
			if strings.Count(f, "->") == 2 && i+1 < len(fields) && strings.HasPrefix(fields[i+1], "MB") {
				parts := strings.Split(f, "->")
				if v, err := strconv.ParseFloat(parts[2], 64); err == nil && v > peak {
					peak = v
				}
			}
		}
	}
	return int64(peak * (1 << 20))
}

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

// live runs `rowcast pipeline` and `rowcast sink` as processes from the
// master's current position, then measures lag under a single writer and
// the memory of a big transaction.
func (b *bench) live(ctx context.Context) (*lagResult, *memResult, error) {
	o := b.o
	// The writer alone first, on a table that is never published (it is
	// written before the published range starts).
	if err := createTables(ctx, b.master.root, true, "lag_alone"); err != nil {
		return nil, nil, err
	}
	alone, _, err := b.writer(ctx, "lag_alone", 5*time.Second, nil)
	if err != nil {
		return nil, nil, err
	}
	start, err := gtidPos(ctx, b.master)
	if err != nil {
		return nil, nil, err
	}
	topic := b.topicPrefix + "_live"
	b.topics = append(b.topics, topic)
	pipeAddr, sinkAddr := fmt.Sprintf("127.0.0.1:%d", o.httpPort), fmt.Sprintf("127.0.0.1:%d", o.httpPort+1)
	cfg, yaml, err := b.benchConfig(topic, start, pipeAddr, sinkAddr)
	if err != nil {
		return nil, nil, err
	}
	if _, err := pipeline.EnsureTopic(ctx, service.KafkaConfig(cfg)); err != nil {
		return nil, nil, err
	}
	cfgPath := filepath.Join(o.dir, "rowcast-live.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		return nil, nil, err
	}
	pipe, err := startProc("pipeline", o.rowcastBin, filepath.Join(o.dir, "pipeline.log"), pipeAddr,
		"pipeline", "--config", cfgPath, "--log-format", "json", "--log-level", "warn")
	if err != nil {
		return nil, nil, err
	}
	defer pipe.stop()
	snk, err := startProc("sink", o.rowcastBin, filepath.Join(o.dir, "sink.log"), sinkAddr,
		"sink", "--config", cfgPath, "--replica", "target", "--log-format", "json", "--log-level", "warn")
	if err != nil {
		return nil, nil, err
	}
	defer snk.stop()
	alive := func() error {
		if err := pipe.alive(); err != nil {
			return err
		}
		return snk.alive()
	}

	// The tables reach the replica as DDL through the pipeline.
	tables := []string{"lag_rows"}
	if o.bigRows > 0 {
		tables = append(tables, "big_rows")
	}
	if err := createTables(ctx, b.master.root, true, tables...); err != nil {
		return nil, nil, err
	}
	if err := waitFor(ctx, 60*time.Second, alive, func() (bool, error) {
		var n int
		err := b.target.root.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=? AND TABLE_NAME IN ('lag_rows','big_rows')", benchDB).Scan(&n)
		return n == len(tables), err
	}); err != nil {
		return nil, nil, fmt.Errorf("tables created on the master did not reach the replica: %w", err)
	}

	var lag *lagResult
	lagFrom := time.Now()
	if o.lagDuration > 0 {
		logf("lag: a single client writes %d-row transactions for %v; the replica is polled every %v", o.lagTxn, o.lagDuration, o.lagPoll)
		lag = &lagResult{AloneTxnRate: alone, PollEvery: o.lagPoll}
		if err := b.measureLag(ctx, lag, alive); err != nil {
			return nil, nil, err
		}
	}
	lagTo := time.Now()
	var mem *memResult
	if o.bigRows > 0 {
		mem = &memResult{Rows: o.bigRows}
		from := time.Now()
		if err := b.measureMemory(ctx, mem, pipe, snk, alive); err != nil {
			return lag, nil, err
		}
		to := time.Now()
		// gctrace lines are written as the GCs happen: give the log a moment.
		time.Sleep(100 * time.Millisecond)
		mem.PipelineLive, mem.SinkLive = pipe.liveHeap(from, to), snk.liveHeap(from, to)
		if o.lagDuration > 0 {
			mem.LagPipelineLive, mem.LagSinkLive = pipe.liveHeap(lagFrom, lagTo), snk.liveHeap(lagFrom, lagTo)
		}
	}
	return lag, mem, nil
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
		q, args := insertStmt(table, id, n)
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

func (b *bench) measureLag(ctx context.Context, res *lagResult, alive func() error) error {
	type commit struct {
		last int
		at   time.Time
	}
	var (
		mu         sync.Mutex
		commits    []commit
		writerDone bool
		lags       []time.Duration
	)
	pctx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	pollErr := make(chan error, 1)
	go func() {
		pollErr <- func() error {
			conn, err := b.target.root.Conn(pctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			next := 0 // first commit not yet seen on the replica
			var stopAt time.Time
			for {
				var maxID int
				if err := conn.QueryRowContext(pctx, "SELECT COALESCE(MAX(id),0) FROM "+benchDB+".lag_rows").Scan(&maxID); err != nil {
					return err
				}
				now := time.Now()
				mu.Lock()
				for next < len(commits) && commits[next].last <= maxID {
					lags = append(lags, now.Sub(commits[next].at))
					next++
				}
				done, finished := writerDone, writerDone && next == len(commits)
				mu.Unlock()
				switch {
				case finished:
					return nil
				case done && stopAt.IsZero():
					stopAt = now.Add(60 * time.Second)
				case done && now.After(stopAt):
					return fmt.Errorf("the replica did not catch up within 60 s after the writer stopped")
				}
				if err := alive(); err != nil {
					return err
				}
				if err := sleep(pctx, res.PollEvery); err != nil {
					return err
				}
			}
		}()
	}()
	t0 := time.Now()
	_, txns, err := b.writer(ctx, "lag_rows", b.o.lagDuration, func(last int, at time.Time) {
		mu.Lock()
		commits = append(commits, commit{last, at})
		mu.Unlock()
	})
	res.Duration = time.Since(t0)
	if err != nil {
		stopPoll()
		<-pollErr
		return err
	}
	mu.Lock()
	writerDone = true
	mu.Unlock()
	if err := <-pollErr; err != nil {
		return fmt.Errorf("lag poller: %w", err)
	}
	res.Txns, res.Rows = txns, txns*b.o.lagTxn
	if len(lags) == 0 {
		return fmt.Errorf("lag: no transaction was written")
	}
	slices.Sort(lags)
	res.Lags = lags
	pct := func(p float64) time.Duration { return lags[min(len(lags)-1, int(p*float64(len(lags))))] }
	res.P50, res.P99, res.Max = pct(0.50), pct(0.99), lags[len(lags)-1]
	return nil
}

func (b *bench) measureMemory(ctx context.Context, res *memResult, pipe, snk *proc, alive func() error) error {
	o := b.o
	res.PipelineBase, res.SinkBase = procStatus(pipe.pid(), "VmRSS"), procStatus(snk.pid(), "VmRSS")
	reset := resetPeakRSS(pipe.pid()) && resetPeakRSS(snk.pid())
	if !reset {
		logf("warning: cannot reset the processes' peak RSS: the peak is since their start")
	}
	sctx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for sctx.Err() == nil {
			res.PipelineHeap = max(res.PipelineHeap, pipe.heap(sctx))
			res.SinkHeap = max(res.SinkHeap, snk.heap(sctx))
			res.PipelineRSS = max(res.PipelineRSS, procStatus(pipe.pid(), "VmRSS"))
			res.SinkRSS = max(res.SinkRSS, procStatus(snk.pid(), "VmRSS"))
			select {
			case <-sctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	logf("memory: one transaction of %d rows on the master", o.bigRows)
	t0 := time.Now()
	conn, err := b.master.root.Conn(ctx)
	if err != nil {
		stopSampling()
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		stopSampling()
		return err
	}
	const chunk = 1000
	for id := 1; id <= o.bigRows; id += chunk {
		q, args := insertStmt("big_rows", id, min(chunk, o.bigRows-id+1))
		if _, err := conn.ExecContext(ctx, q, args...); err != nil {
			stopSampling()
			return fmt.Errorf("big transaction: %w", err)
		}
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		stopSampling()
		return err
	}
	committed := time.Now()
	res.Write = committed.Sub(t0)
	logf("memory: committed on the master in %.1fs; waiting for the replica", res.Write.Seconds())
	err = waitFor(ctx, o.timeout, alive, func() (bool, error) {
		var maxID int
		err := b.target.root.QueryRowContext(ctx, "SELECT COALESCE(MAX(id),0) FROM "+benchDB+".big_rows").Scan(&maxID)
		return maxID == o.bigRows, err
	})
	res.Visible = time.Since(committed)
	stopSampling()
	<-sampled
	if reset {
		res.PipelineRSS = max(res.PipelineRSS, procStatus(pipe.pid(), "VmHWM"))
		res.SinkRSS = max(res.SinkRSS, procStatus(snk.pid(), "VmHWM"))
	}
	if err != nil {
		return fmt.Errorf("big transaction not on the replica: %w", err)
	}
	var n int
	if err := b.target.root.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+benchDB+".big_rows").Scan(&n); err != nil {
		return err
	}
	if n != o.bigRows {
		return fmt.Errorf("big transaction: %d rows on the replica, want %d", n, o.bigRows)
	}
	return nil
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
