// Command benchbootstrap measures how long an empty replica takes to be
// caught up, three ways, on the same data in the same run:
//
//   - the baseline: `mariadb-dump --single-transaction | mariadb` from the
//     master into an empty replica;
//   - the initial snapshot through Kafka: `rowcast pipeline` (source.start:
//     snapshot, the default) and `rowcast sink` for an empty replica, started
//     at the same moment, until the replica has applied the whole snapshot;
//     the rate of the snapshot into the topic is reported beside it;
//   - `rowcast clone` of that replica into an empty one, then its `rowcast
//     sink` until it is caught up.
//
// The master (N rows in three tables of different shapes, created outside
// the binlog) and the replicas are MariaDB servers of its own with the local
// stack's settings; Kafka is the stack's broker, with a fresh topic per
// round. It reports wall times, CPU seconds per process, peak RSS of the
// rowcast processes, checks that every replica equals the master, and
// records a dated section in docs/BENCHMARKS.md. Run it through `scripts/bench
// bootstrap`.
package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
	"github.com/rowcast/rowcast/clone"
)

type options struct {
	benchkit.RunFlags
	Kafka         benchkit.KafkaFlags
	rows          int
	repeat        int
	parallel      []int // rowcast clone --parallel, one clone each
	dir, template string
	rowcastBin    string
	basePort      int
	httpPort      int
	keep, reuse   bool
	verify        bool
	timeout       time.Duration
}

var logf = benchkit.Logf

func main() {
	var o options
	parallel := strconv.Itoa(clone.DefaultParallel)
	o.RunFlags.Register(flag.CommandLine)
	o.Kafka.Register(flag.CommandLine)
	flag.IntVar(&o.rows, "rows", 10_000_000, "rows of the master, in all (3 tables: 50%, 30%, 20%)")
	flag.IntVar(&o.repeat, "repeat", 1, "rounds, each on fresh replicas and a fresh topic; odd rounds run the dump first, even ones last")
	flag.StringVar(&parallel, "clone-parallel", parallel, "rowcast clone --parallel values, comma-separated: one clone each, into a fresh replica (the first is the one reported beside the others)")
	flag.StringVar(&o.dir, "dir", ".stack/bench/bootstrap", "directory of the benchmark's MariaDB servers and logs")
	flag.StringVar(&o.template, "cnf-template", "scripts/lib/mariadb.cnf.in", "the stack's my.cnf template: every server gets its settings")
	flag.StringVar(&o.rowcastBin, "rowcast", "rowcast", "the rowcast binary")
	flag.IntVar(&o.basePort, "port", 3314, "first of four ports: master, dump's replica, snapshot's replica, clone's replica")
	flag.IntVar(&o.httpPort, "http-port", 9491, "metrics port of `rowcast pipeline`; the sinks of the snapshot's and the clone's replicas get the next two")
	flag.BoolVar(&o.keep, "keep", false, "leave the servers' data (servers stopped) and the topics; the master's rows can then be reused with --reuse")
	flag.BoolVar(&o.reuse, "reuse", false, "start the master on the data a --keep run left, when it holds --rows rows of this version")
	flag.BoolVar(&o.verify, "verify", true, "also run `rowcast verify` on every replica at the end (row counts are always compared)")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Minute, "limit of each measurement")
	flag.Parse()
	benchkit.Main("benchbootstrap", func(ctx context.Context) error {
		if err := o.check(parallel); err != nil {
			return err
		}
		return run(ctx, &o)
	})
}

// check validates the flags, parses --clone-parallel and makes --dir
// absolute.
func (o *options) check(parallel string) error {
	var err error
	if o.parallel, err = parseParallel(parallel); err != nil {
		return err
	}
	if o.rows < 100 || o.repeat < 1 {
		return benchkit.Usagef("--rows must be at least 100 and --repeat at least 1")
	}
	if d, err := filepath.Abs(o.dir); err == nil {
		o.dir = d
	}
	return nil
}

// parseParallel reads --clone-parallel: positive numbers, comma-separated.
func parseParallel(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, benchkit.Usagef("--clone-parallel %q: want positive numbers, comma-separated", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// bench is one run: its servers, data and rounds.
type bench struct {
	o                         *options
	when                      time.Time
	machine                   benchkit.Machine
	mariadb, settings         string
	master, dump, snap, clone *server
	data                      dataFacts
	rounds                    []*round
	topics                    []string
}

func newBench(o *options) *bench {
	srv := func(name string, i int) *server {
		return &server{name: name, port: o.basePort + i, serverID: 31 + i, dir: filepath.Join(o.dir, name)}
	}
	return &bench{o: o, when: time.Now().UTC(), machine: benchkit.ReadMachine(o.LoadBefore),
		master: srv(nodeMaster, 0), dump: srv(nodeDump, 1), snap: srv(nodeSnap, 2), clone: srv(nodeClone, 3)}
}

func (b *bench) servers() []*server  { return []*server{b.master, b.dump, b.snap, b.clone} }
func (b *bench) replicas() []*server { return []*server{b.dump, b.snap, b.clone} }

func run(ctx context.Context, o *options) error {
	b := newBench(o)
	defer b.cleanup()
	if err := b.start(ctx); err != nil {
		return err
	}
	if err := b.prepareData(ctx); err != nil {
		return err
	}
	for n := 1; n <= o.repeat; n++ {
		r, err := b.round(ctx, n)
		if err != nil {
			return fmt.Errorf("round %d: %w", n, err)
		}
		b.rounds = append(b.rounds, r)
	}
	b.machine.Done()
	fmt.Print(b.text())
	if o.Doc == "" {
		return nil
	}
	return bootstrapDoc.Record(o.Doc, b.when, b.section())
}

// start starts the servers (the master on its kept data with --reuse) and
// notes their version and settings.
func (b *bench) start(ctx context.Context) error {
	t0 := time.Now()
	reuse := func(s *server) bool { return b.o.reuse && s == b.master }
	if err := startAll(ctx, b.o.template, b.servers(), reuse); err != nil {
		return err
	}
	if err := b.master.root.QueryRowContext(ctx, "SELECT VERSION()").Scan(&b.mariadb); err != nil {
		return err
	}
	var err error
	if b.settings, err = b.snap.settings(ctx); err != nil {
		return err
	}
	logf("servers up in %.1fs: master %s, replicas %s (dump), %s (snapshot), %s (clone); MariaDB %s; %s",
		time.Since(t0).Seconds(), b.master.addr(), b.dump.addr(), b.snap.addr(), b.clone.addr(), b.mariadb, b.settings)
	return nil
}

// cleanup stops the servers and removes their data and the topics, unless
// --keep.
func (b *bench) cleanup() {
	for _, s := range b.servers() {
		s.stop()
	}
	if b.o.keep {
		logf("--keep: the servers' data stays under %s, the topics %v; --reuse starts the master on its data", b.o.dir, b.topics)
		return
	}
	for _, s := range b.servers() {
		s.removeData()
	}
	if len(b.topics) == 0 {
		return
	}
	if err := benchkit.DeleteTopics(b.o.Kafka.Broker, b.topics...); err != nil {
		logf("warning: delete topics %v: %v", b.topics, err)
	}
}
