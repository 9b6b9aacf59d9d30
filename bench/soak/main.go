// Command soak is scripts/soak: rowcast's reader and two sink workers run as
// processes of their own under a bank-transfer load on the master while
// faults are injected at random: SIGKILL and SIGSTOP/SIGCONT of the reader,
// SIGKILL of a sink, a Kafka broker restart, a crash or a restart of a
// replica's mariadbd, and one planned switchover to a replica and back. The
// bank's total is read on every node at random moments and must never
// change. At the end every replica must equal the master (`rowcast verify`)
// and hold exactly the master's ledger of transfers, and the master's ledger
// exactly the transfers the clients committed: none lost, none doubled. It
// prints the faults survived by kind; docs/BENCHMARKS.md says how it runs.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
)

type options struct {
	benchkit.RunFlags
	minutes  float64
	rowcast  string // the rowcast binary
	stack    string // scripts/stack
	stateDir string // the stack's state directory (mariadbd pid files)
	dir      string // logs, the config, loss files
	accounts int
	clients  int
	rate     int // transfers per second, at most, over all clients
	gapMin   time.Duration
	gapMax   time.Duration
	seed     uint64
	keep     bool
}

func main() {
	var o options
	o.RunFlags.Register(flag.CommandLine)
	flag.Float64Var(&o.minutes, "minutes", 30, "how long faults are injected")
	flag.StringVar(&o.rowcast, "rowcast", "", "the rowcast binary (go build -o X ./cmd/rowcast)")
	flag.StringVar(&o.stack, "stack", "scripts/stack", "scripts/stack of the tree, to stop and start services")
	flag.StringVar(&o.stateDir, "state-dir", benchkit.Env("ROWCAST_STATE_DIR", ".stack"), "the stack's state directory")
	flag.StringVar(&o.dir, "dir", "", "directory for the processes' logs and the config (default STATE_DIR/soak/run-TIME)")
	flag.IntVar(&o.accounts, "accounts", 100, "bank accounts")
	flag.IntVar(&o.clients, "clients", 4, "clients transferring money")
	flag.IntVar(&o.rate, "rate", 300, "transfers per second, at most, over all clients")
	flag.DurationVar(&o.gapMin, "gap-min", 3*time.Second, "shortest pause between two faults")
	flag.DurationVar(&o.gapMax, "gap-max", 10*time.Second, "longest pause between two faults")
	flag.Uint64Var(&o.seed, "seed", 0, "seed of the fault schedule (0: from the clock)")
	flag.BoolVar(&o.keep, "keep", false, "keep the logs, the database and the topic after a run that passed")
	flag.Parse()
	closeInheritedFiles()
	// The driver logs each pooled connection a restarted server closed: the
	// faults' expected noise.
	mysql.SetLogger(log.New(io.Discard, "", 0))
	benchkit.Main("soak", func(ctx context.Context) error { return run(ctx, o) })
}

// closeInheritedFiles keeps whatever the soak inherited beyond stdin, stdout
// and stderr (the lock file of a `flock` it runs under) from the services it
// restarts, which outlive it and would hold that lock.
func closeInheritedFiles() {
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

// check validates the flags and fills in the defaults that depend on others.
func (o *options) check() error {
	switch {
	case o.rowcast == "":
		return benchkit.Usagef("--rowcast is required: go build -o X ./cmd/rowcast")
	case o.minutes <= 0 || o.accounts < 2 || o.clients < 1 || o.rate < 1:
		return benchkit.Usagef("--minutes, --accounts (>= 2), --clients and --rate must be positive")
	case o.gapMin <= 0 || o.gapMax < o.gapMin:
		return benchkit.Usagef("--gap-min must be positive and at most --gap-max")
	}
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	if o.dir == "" {
		o.dir = filepath.Join(o.stateDir, "soak", "run-"+time.Now().UTC().Format("20060102-150405"))
	}
	return nil
}

// duration is how long faults are injected.
func (o options) duration() time.Duration {
	return time.Duration(o.minutes * float64(time.Minute))
}

// timeout bounds the whole run: setup, the faults, convergence and checks.
func (o options) timeout() time.Duration { return o.duration() + 15*time.Minute }

func run(ctx context.Context, o options) error {
	if err := o.check(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout())
	defer cancel()
	machine := benchkit.ReadMachine(o.LoadBefore)
	s, err := newSoak(o)
	if err != nil {
		return err
	}
	res := s.run(ctx)
	s.cleanup(res.err == nil)
	machine.Done()
	res.print(os.Stdout)
	if res.err != nil {
		s.printLogTails(os.Stdout)
		return fmt.Errorf("FAILED: %w", res.err)
	}
	if o.Doc == "" {
		return nil
	}
	return soakDoc.Record(o.Doc, res.start, res.section(o, machine))
}
