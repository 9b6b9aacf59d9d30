// Command benchverify measures `rowcast verify` (verify/) on the local
// stack: one table of N rows (~100 bytes each) created identically on the
// master db1 and on the replica db2, outside the binlog (sql_log_bin=0, so no
// reader or other test has to read it), then verified several ways. It
// reports rows per second per side (each side reads every row), CPU seconds
// of the benchmark and of both mariadbd, and records a dated section in
// docs/BENCHMARKS.md. Run it through `scripts/bench verify`.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
)

// benchDB is the database the benchmark creates on both sides.
const benchDB = "rowcast_bench_verify"

type options struct {
	benchkit.RunFlags
	rows       int
	repeat     int
	master     string
	replica    string
	user, pass string
	masterPid  int
	replicaPid int
	keep       bool
	reuse      bool
	only       string
	timeout    time.Duration
}

func main() {
	var o options
	host := benchkit.Host()
	o.RunFlags.Register(flag.CommandLine)
	flag.IntVar(&o.rows, "rows", 10_000_000, "rows of the table (N)")
	flag.IntVar(&o.repeat, "repeat", 3, "measurements of the default configuration and of parallel 4, in turns; the median is reported (the other variants run once)")
	flag.StringVar(&o.master, "master", host+":"+benchkit.Env("ROWCAST_DB1_PORT", "3307"), "the master (db1) host:port")
	flag.StringVar(&o.replica, "replica", host+":"+benchkit.Env("ROWCAST_DB2_PORT", "3308"), "the replica (db2) host:port")
	flag.StringVar(&o.user, "db-user", "root", "user on both servers: needs CREATE, DROP, INSERT, SELECT and SUPER (sql_log_bin)")
	flag.StringVar(&o.pass, "db-password", benchkit.Env("ROWCAST_BENCH_DB_PASSWORD", ""), "password (default $ROWCAST_BENCH_DB_PASSWORD)")
	flag.IntVar(&o.masterPid, "master-pid", 0, "pid of db1's mariadbd, to report its CPU time")
	flag.IntVar(&o.replicaPid, "replica-pid", 0, "pid of db2's mariadbd, to report its CPU time")
	flag.BoolVar(&o.keep, "keep", false, "keep the bench database on both servers (for another run with --reuse)")
	flag.BoolVar(&o.reuse, "reuse", false, "reuse a bench database of N rows kept by --keep instead of creating it")
	flag.StringVar(&o.only, "only", "", "run only these measurements, comma-separated, each --repeat times: ceiling, default, parallel-1, parallel-4, chunk-5000, chunk-50000, keyset, crc64, md5, before (default: all, the variants but default and parallel-4 once); or chunk=N,parallel=P[,hash=H][,keyset] for one custom one")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "limit of one measurement")
	flag.Parse()
	benchkit.Main("benchverify", func(ctx context.Context) error { return run(ctx, o) })
}

func (o options) dsn(addr string) string {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr = o.user, o.pass, "tcp", addr
	return c.FormatDSN()
}

// cpuMeter watches both mariadbd: procMaster and procReplica in its CPU.
func (o options) cpuMeter() *benchkit.CPUMeter {
	return benchkit.NewCPUMeter(benchkit.PID(o.masterPid), benchkit.PID(o.replicaPid))
}

const (
	procMaster = iota
	procReplica
)

func run(ctx context.Context, o options) error {
	m, err := sql.Open("mysql", o.dsn(o.master))
	if err != nil {
		return err
	}
	defer m.Close()
	r, err := sql.Open("mysql", o.dsn(o.replica))
	if err != nil {
		return err
	}
	defer r.Close()
	rep := &report{o: o, when: time.Now().UTC(), machine: benchkit.ReadMachine(o.LoadBefore)}
	if err := prepare(ctx, o, m, r, rep); err != nil {
		return err
	}
	if !o.keep {
		defer drop(context.WithoutCancel(ctx), m, r)
	}
	if err := measureAll(ctx, o, rep); err != nil {
		return err
	}
	rep.machine.Done()
	fmt.Print(rep.text())
	if o.Doc == "" {
		return nil
	}
	return verifyDoc.Record(o.Doc, rep.when, rep.section())
}

// measureAll runs the ceilings and the variants that --only selects.
func measureAll(ctx context.Context, o options, rep *report) error {
	p := newPlan(o)
	if p.wants("ceiling") {
		if err := measureCeilings(ctx, o, rep); err != nil {
			return err
		}
	}
	return measureRounds(ctx, o, p, rep)
}

// measureRounds measures the variants in rounds: those measured several
// times take turns, so that a change of the machine's load touches them
// alike.
func measureRounds(ctx context.Context, o options, p plan, rep *report) error {
	for round := 0; ; round++ {
		more := false
		for _, v := range p.variants {
			if round >= v.repeat || !p.wants(v.key) {
				continue
			}
			more = true
			res, err := measure(ctx, o, v)
			if err != nil {
				return err
			}
			rep.add(res)
		}
		if !more {
			return nil
		}
	}
}
