package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// process is a long-running rowcast process of the soak (the reader, a
// sink worker). An exit the soak did not cause is a failure.
type process struct {
	role     string // pipeline, sink db2, ...
	cmd      *exec.Cmd
	done     chan struct{}
	err      error // the exit, once done is closed
	expected atomic.Bool
}

// supervisor starts the rowcast processes, each with a log file of its role
// in dir, and reports the ones that exit by themselves.
type supervisor struct {
	bin, dir string
	onExit   func(role string, err error)

	mu    sync.Mutex
	procs map[string]*process
}

func newSupervisor(bin, dir string, onExit func(string, error)) *supervisor {
	return &supervisor{bin: bin, dir: dir, onExit: onExit, procs: map[string]*process{}}
}

// logPath is the file a role's output goes to, across its restarts.
func (s *supervisor) logPath(role string) string {
	return filepath.Join(s.dir, strings.ReplaceAll(role, " ", "-")+".log")
}

// start runs `rowcast args...` as role.
func (s *supervisor) start(role string, args ...string) error {
	f, err := os.OpenFile(s.logPath(role), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "=== soak %s: rowcast %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// A group of its own (a ^C reaches the soak alone, which cleans up), and
	// killed with the soak should the soak die.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", role, err)
	}
	p := &process{role: role, cmd: cmd, done: make(chan struct{})}
	s.mu.Lock()
	s.procs[role] = p
	s.mu.Unlock()
	go s.wait(p, f)
	return nil
}

func (s *supervisor) wait(p *process, log io.Closer) {
	p.err = p.cmd.Wait()
	log.Close()
	close(p.done)
	s.mu.Lock()
	if s.procs[p.role] == p {
		delete(s.procs, p.role)
	}
	s.mu.Unlock()
	if !p.expected.Load() {
		s.onExit(p.role, p.err)
	}
}

// get is the running process of a role, nil when there is none.
func (s *supervisor) get(role string) *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.procs[role]
}

// kill SIGKILLs a role's process and waits for it to end.
func (s *supervisor) kill(role string) error {
	p := s.get(role)
	if p == nil {
		return fmt.Errorf("no %s process to kill", role)
	}
	p.expected.Store(true)
	p.cmd.Process.Signal(syscall.SIGCONT)
	p.cmd.Process.Kill()
	<-p.done
	return nil
}

// signal sends sig to a role's process.
func (s *supervisor) signal(role string, sig syscall.Signal) error {
	p := s.get(role)
	if p == nil {
		return fmt.Errorf("no %s process to signal", role)
	}
	return p.cmd.Process.Signal(sig)
}

// expectExit marks a role's process as one that will stop by itself (a
// sink worker at its replica's promotion) and returns it.
func (s *supervisor) expectExit(role string) (*process, error) {
	p := s.get(role)
	if p == nil {
		return nil, fmt.Errorf("no %s process", role)
	}
	p.expected.Store(true)
	return p, nil
}

// waitExit waits for p to exit cleanly by itself within timeout.
func (p *process) waitExit(timeout time.Duration) error {
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("%s exited with %v", p.role, p.err)
		}
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s did not exit within %v", p.role, timeout)
	}
}

// stopAll stops every process with SIGTERM, which must end each cleanly
// (exit 0) within timeout.
func (s *supervisor) stopAll(timeout time.Duration) error {
	var errs []error
	for _, p := range s.running() {
		p.expected.Store(true)
		p.cmd.Process.Signal(syscall.SIGCONT)
		p.cmd.Process.Signal(syscall.SIGTERM)
		if err := p.waitExit(timeout); err != nil {
			p.cmd.Process.Kill()
			errs = append(errs, fmt.Errorf("after SIGTERM: %w", err))
		}
	}
	return errors.Join(errs...)
}

// killAll SIGKILLs whatever still runs: the cleanup of a run that failed.
func (s *supervisor) killAll() {
	for _, p := range s.running() {
		s.kill(p.role)
	}
}

func (s *supervisor) running() []*process {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*process, 0, len(s.procs))
	for _, p := range s.procs {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].role < out[j].role })
	return out
}

// command runs a one-shot rowcast command (promote, rejoin, verify) to its
// end, appends its output to commands.log, and returns the output and the
// exit code (-1 when it did not run to an exit).
func (s *supervisor) command(ctx context.Context, timeout time.Duration, args ...string) (string, int) {
	return runLogged(ctx, timeout, filepath.Join(s.dir, "commands.log"), s.bin, args...)
}

// runLogged runs a program to its end, appends its output to the log file,
// and returns the output and the exit code (-1 when it did not run to an
// exit: not started, timed out).
func runLogged(ctx context.Context, timeout time.Duration, logPath, bin string, args ...string) (string, int) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if err != nil && ctx.Err() != nil {
		code = -1
		fmt.Fprintf(&out, "(timed out after %v)\n", timeout)
	}
	if f, ferr := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); ferr == nil {
		fmt.Fprintf(f, "=== soak %s: %s %s (exit %d)\n%s", time.Now().Format(time.RFC3339Nano), filepath.Base(bin), strings.Join(args, " "), code, out.String())
		f.Close()
	}
	return out.String(), code
}

// tail is the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
