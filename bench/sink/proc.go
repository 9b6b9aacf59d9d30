package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
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
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600) // its output may quote row data
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
		if at, live, ok := gcLine(sc.Text()); ok && at >= lo && at <= hi {
			peak = max(peak, live)
		}
	}
	return int64(peak * (1 << 20))
}

// gcLine reads a gctrace line: the seconds since the start and the live
// heap after the GC, in MB.
//
//	gc 38 @51.381s 0%: ..., 267->278->162 MB, 280 MB goal, ...
func gcLine(line string) (at, live float64, ok bool) {
	fields := strings.Fields(line)
	if len(fields) < 3 || fields[0] != "gc" || !strings.HasPrefix(fields[2], "@") {
		return 0, 0, false
	}
	at, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(fields[2], "@"), "s"), 64)
	if err != nil {
		return 0, 0, false
	}
	for i, f := range fields[:len(fields)-1] {
		if strings.Count(f, "->") == 2 && strings.HasPrefix(fields[i+1], "MB") {
			if v, err := strconv.ParseFloat(strings.Split(f, "->")[2], 64); err == nil {
				live = max(live, v)
			}
		}
	}
	return at, live, true
}
