// Package benchkit is what the benchmark programs of bench/ share: their
// common flags and start, the machine's facts and CPU and memory use read
// from /proc, the rows the workloads write, the result table and the dated
// section each run records in docs/BENCHMARKS.md.
package benchkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Env is the environment variable name, or def when it is unset or empty.
func Env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Host is the local stack's address ($ROWCAST_HOST, default 127.0.0.1).
func Host() string { return Env("ROWCAST_HOST", "127.0.0.1") }

// Logf writes a progress line, with the time, to stderr.
func Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// Main runs a benchmark until it ends or a signal (SIGINT, SIGTERM) cancels
// it, and exits with its outcome: 1 for an error, 2 for a Usagef one.
func Main(prog string, run func(ctx context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err == nil {
		return
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
	if errors.As(err, new(usageError)) {
		os.Exit(2)
	}
	os.Exit(1)
}

// usageError is a wrong flag value.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// Usagef is an error in the flags: Main exits with status 2 for it.
func Usagef(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}
