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

	"github.com/rowcast/rowcast/bench/internal/benchkit"
)

// proc is a process the benchmark started (`rowcast pipeline`, `rowcast
// sink`, `rowcast clone`, mariadb-dump, mariadb), stopped by its PID.
type proc struct {
	name    string
	cmd     *exec.Cmd
	exited  chan struct{}
	err     error // Wait's, once exited is closed
	log     string
	metrics string // URL of its /metrics; "" for none
}

// newProc prepares bin with args, its output into logPath (none when "");
// the caller may set its stdin and stdout before start.
func newProc(name, logPath, bin string, args ...string) *proc {
	return &proc{name: name, cmd: exec.Command(bin, args...), exited: make(chan struct{}), log: logPath}
}

// startProc starts bin with args, its output into logPath.
func startProc(name, logPath, bin string, args ...string) (*proc, error) {
	p := newProc(name, logPath, bin, args...)
	if err := p.start(); err != nil {
		return nil, err
	}
	return p, nil
}

// start starts the process in a process group of its own: a ^C on the
// terminal reaches the benchmark, which then stops it.
func (p *proc) start() error {
	var out *os.File
	if p.log != "" {
		var err error
		if out, err = os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600); err != nil {
			return err
		}
		if p.cmd.Stdout == nil {
			p.cmd.Stdout = out
		}
		p.cmd.Stderr = out
	}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		closeFile(out)
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		closeFile(out)
		close(p.exited)
	}()
	return nil
}

func closeFile(f *os.File) {
	if f != nil {
		f.Close()
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// pidFunc is the pid while the process runs, 0 after, for a CPU meter.
func (p *proc) pidFunc() func() int {
	return func() int {
		select {
		case <-p.exited:
			return 0
		default:
			return p.pid()
		}
	}
}

// alive is an error once the process has exited.
func (p *proc) alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited (%v); log: %s", p.name, p.cmd.ProcessState, p.log)
	default:
		return nil
	}
}

// wait waits for the process to exit by itself, and returns its error.
func (p *proc) wait(ctx context.Context) error {
	select {
	case <-p.exited:
	case <-ctx.Done():
		p.stop()
		return ctx.Err()
	}
	if p.err != nil {
		return fmt.Errorf("%s: %w; log: %s", p.name, p.err, p.log)
	}
	return nil
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

// peakRSS is the process's peak resident memory so far: VmHWM while it
// runs, the kernel's ru_maxrss (the same high-water mark) once it exited.
func (p *proc) peakRSS() int64 {
	select {
	case <-p.exited:
		if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			return ru.Maxrss << 10
		}
		return 0
	default:
		return benchkit.Status(p.pid(), "VmHWM")
	}
}

// cpu is the CPU seconds of an exited process (0 while it runs).
func (p *proc) cpu() float64 {
	select {
	case <-p.exited:
		return (p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()).Seconds()
	default:
		return 0
	}
}

// metric is the sum of a metric's series whose labels hold every one of
// match (`name="value"`), read from the process's /metrics; 0 when it
// cannot be read.
func (p *proc) metric(ctx context.Context, name string, match ...string) float64 {
	if p == nil || p.metrics == "" {
		return 0
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.metrics, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var total float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		total += seriesValue(sc.Text(), name, match)
	}
	return total
}

// seriesValue is the value of a line of the text exposition format when
// it is a series of name whose labels hold every one of match, else 0.
func seriesValue(line, name string, match []string) float64 {
	rest, ok := strings.CutPrefix(line, name)
	if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
		return 0
	}
	labels, value := "", rest
	if rest[0] == '{' {
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return 0
		}
		labels, value = rest[:end+1], rest[end+1:]
	}
	for _, m := range match {
		if !strings.Contains(labels, m) {
			return 0
		}
	}
	v, _ := strconv.ParseFloat(strings.TrimSpace(value), 64)
	return v
}
