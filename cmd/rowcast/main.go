// Command rowcast replicates a MySQL or MariaDB master to read replicas through
// Kafka. Run `rowcast help` for its subcommands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := startCPUProfile(os.Getenv("ROWCAST_CPUPROFILE"))
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stopProfile()
	stop()
	os.Exit(code)
}

// startCPUProfile writes a CPU profile of the whole process to path, for
// the benchmarks (docs/BENCHMARKS.md); "" profiles nothing, and %p in path
// is the process id, so that several processes keep a profile each.
func startCPUProfile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	path = strings.ReplaceAll(path, "%p", strconv.Itoa(os.Getpid()))
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "rowcast: ROWCAST_CPUPROFILE=%s: %v\n", path, err)
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
