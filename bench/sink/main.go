// Command benchsink measures the sink side of rowcast against MariaDB's own
// replication, on instances of its own that have the local stack's replica
// settings (scripts/lib/mariadb.cnf.in):
//
//   - a fresh master (its own mariadbd) takes the workloads: inserts and then
//     updates of every row, in large (--txn) and small (--small-txn)
//     transactions, each a binlog range between two GTID positions;
//   - native: a fresh replica with CHANGE MASTER ... MASTER_USE_GTID=slave_pos
//     from the position before the workloads, serial; its IO thread fetches
//     each workload while it is written, then START SLAVE SQL_THREAD is timed
//     until @@gtid_slave_pos reaches the workload's end;
//   - rowcast: the pipeline service publishes the same range to a fresh topic
//     while it is written; once Kafka has acknowledged all of it, a sink
//     worker (built as `rowcast sink` builds it) is timed applying it into a
//     third fresh instance until its checkpoint reaches the workload's end;
//   - live: `rowcast pipeline` and `rowcast sink` run as processes while one
//     client writes small transactions on the master as fast as it can; the
//     replica is polled for the newest row (lag = visible on the replica minus
//     COMMIT returned on the master); then one transaction of --big-rows rows
//     goes through both, and their peak RSS and Go heap are recorded.
//
// Run it through `scripts/bench sink`, which builds it and rowcast, and
// records the result in docs/BENCHMARKS.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
)

type options struct {
	benchkit.RunFlags
	Kafka               benchkit.KafkaFlags
	rows, txn           int
	repeat              int
	smallRows, smallTxn int
	bigRows             int
	lagTxn              int
	conns               int
	lagDuration         time.Duration
	lagPoll             time.Duration
	timeout             time.Duration
	workloads           []string
	dir, template       string
	rowcastBin          string
	cpuProfile          string
	memProfile          string
	basePort, httpPort  int
	maxBatchRows        int
	maxTxnMerge         int
	keep                bool
	noLoadData          bool
	noBinlog            bool
	syncDecode          bool
}

var logf = benchkit.Logf

// The throughput workloads; the update ones update the rows of the insert
// ones.
const (
	wInsert      = "insert"
	wUpdate      = "update"
	wInsertSmall = "insert-small"
	wUpdateSmall = "update-small"
)

func main() {
	var o options
	var workloads string
	o.RunFlags.Register(flag.CommandLine)
	o.Kafka.Register(flag.CommandLine)
	flag.IntVar(&o.rows, "rows", 1_000_000, "rows of the insert and update workloads (large transactions)")
	flag.IntVar(&o.repeat, "repeat", 2, "measurements of each workload, each on tables of its own, alternating which side goes first; the median is reported")
	flag.IntVar(&o.txn, "txn", 1000, "rows per transaction of the large-transaction workloads")
	flag.IntVar(&o.smallRows, "small-rows", 200_000, "rows of the insert-small and update-small workloads")
	flag.IntVar(&o.smallTxn, "small-txn", 10, "rows per transaction of the small-transaction workloads")
	flag.IntVar(&o.bigRows, "big-rows", 1_000_000, "rows of the one transaction of the memory measurement (0: skip it)")
	flag.IntVar(&o.lagTxn, "lag-txn", 10, "rows per transaction of the lag measurement's writer")
	flag.DurationVar(&o.lagDuration, "lag", 30*time.Second, "duration of the lag measurement (0: skip it)")
	flag.DurationVar(&o.lagPoll, "lag-poll", 5*time.Millisecond, "how often the replica is polled for the newest row")
	flag.IntVar(&o.conns, "conns", 2, "connections writing the throughput workloads on the master")
	flag.StringVar(&workloads, "workloads", "insert,update,insert-small,update-small", "throughput workloads to run (update needs insert; empty: none)")
	flag.StringVar(&o.dir, "dir", ".stack/bench", "directory of the benchmark's own MariaDB instances (recreated at start; datadirs removed at the end unless --keep)")
	flag.StringVar(&o.template, "cnf-template", "scripts/lib/mariadb.cnf.in", "the stack's my.cnf template: every instance gets the replicas' settings")
	flag.IntVar(&o.basePort, "port", 3310, "first of three ports: master, native replica, rowcast target")
	flag.IntVar(&o.httpPort, "http-port", 9481, "metrics port of the live `rowcast pipeline`; `rowcast sink` gets the next")
	flag.StringVar(&o.rowcastBin, "rowcast", "", "the rowcast binary, for the live measurements (empty: skip them)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "directory for CPU profiles of each rowcast apply (sink-WORKLOAD.pprof)")
	flag.StringVar(&o.memProfile, "memprofile", "", "directory for heap profiles of each rowcast apply at its peak live heap (sink-WORKLOAD.heap)")
	flag.IntVar(&o.maxBatchRows, "max-batch-rows", 0, "sink.max_batch_rows (0: the default)")
	flag.IntVar(&o.maxTxnMerge, "max-txn-merge", 0, "sink.max_txn_merge (0: the default)")
	flag.BoolVar(&o.noLoadData, "no-load-data", false, "apply upserts with INSERT ... ON DUPLICATE KEY UPDATE only (comparison)")
	flag.BoolVar(&o.noBinlog, "no-binlog", false, "apply every row as SQL, no row events in BINLOG statements (comparison)")
	flag.BoolVar(&o.syncDecode, "sync-decode", false, "decode Kafka messages on the worker's goroutine, as before decode-ahead (comparison)")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "limit of one measurement")
	flag.BoolVar(&o.keep, "keep", false, "leave the instances running and the topics in place")
	flag.Parse()
	if workloads != "" {
		o.workloads = strings.Split(workloads, ",")
	}
	benchkit.Main("benchsink", func(ctx context.Context) error {
		if err := o.check(); err != nil {
			return err
		}
		return run(ctx, &o)
	})
}

// check validates the flags and makes --dir absolute.
func (o *options) check() error {
	for _, w := range o.workloads {
		if !slices.Contains([]string{wInsert, wUpdate, wInsertSmall, wUpdateSmall}, w) {
			return benchkit.Usagef("unknown workload %q", w)
		}
	}
	for _, dep := range [][2]string{{wUpdate, wInsert}, {wUpdateSmall, wInsertSmall}} {
		if slices.Contains(o.workloads, dep[0]) && !slices.Contains(o.workloads, dep[1]) {
			return benchkit.Usagef("workload %s updates the rows of %s: run both", dep[0], dep[1])
		}
	}
	if min(o.repeat, o.rows, o.txn, o.smallRows, o.smallTxn, o.lagTxn, o.conns) < 1 {
		return benchkit.Usagef("row and transaction counts must be positive")
	}
	if d, err := filepath.Abs(o.dir); err == nil {
		o.dir = d
	}
	return nil
}

// bench is one run: its instances, topics and results.
type bench struct {
	o                      *options
	cond                   conditions
	master, native, target *server
	topicPrefix            string
	topics                 []string
	spans                  []span
	results                []result
	checks                 []string
	lag                    *lagResult
	mem                    *memResult
}

func newBench(o *options) *bench {
	return &bench{o: o,
		cond:        conditions{Machine: benchkit.ReadMachine(o.LoadBefore), Kafka: o.Kafka.Version},
		topicPrefix: fmt.Sprintf("rcbench_sink_%s_%04x", time.Now().UTC().Format("20060102_150405"), rand.Uint32()&0xffff),
		master:      &server{name: "master", port: o.basePort, serverID: 11, dir: filepath.Join(o.dir, "master")},
		native:      &server{name: "native", port: o.basePort + 1, serverID: 12, dir: filepath.Join(o.dir, "native")},
		target:      &server{name: "target", port: o.basePort + 2, serverID: 13, dir: filepath.Join(o.dir, "target")},
	}
}

func (b *bench) servers() []*server { return []*server{b.master, b.native, b.target} }

func run(ctx context.Context, o *options) error {
	b := newBench(o)
	defer b.cleanup()
	if err := b.start(ctx); err != nil {
		return err
	}
	if len(o.workloads) > 0 {
		if err := b.throughput(ctx); err != nil {
			return err
		}
	}
	if o.rowcastBin != "" && (o.lagDuration > 0 || o.bigRows > 0) {
		if err := b.live(ctx); err != nil {
			return fmt.Errorf("live: %w", err)
		}
	}
	b.cond.Machine.Done()
	fmt.Print(b.table())
	if o.Doc == "" {
		return nil
	}
	end := time.Now().UTC()
	return sinkDoc.Record(o.Doc, end, b.section(end))
}

// start starts the three instances at once and notes their version and
// settings.
func (b *bench) start(ctx context.Context) error {
	t0 := time.Now()
	if err := startAll(ctx, b.o.template, b.servers()); err != nil {
		return err
	}
	if err := b.master.root.QueryRowContext(ctx, "SELECT VERSION()").Scan(&b.cond.MariaDB); err != nil {
		return err
	}
	settings, err := b.target.settings(ctx)
	if err != nil {
		return err
	}
	b.cond.Settings = settings
	logf("instances up in %.1fs: master %s, native replica %s, rowcast target %s (MariaDB %s; %s)",
		time.Since(t0).Seconds(), b.master.addr(), b.native.addr(), b.target.addr(), b.cond.MariaDB, b.cond.Settings)
	return nil
}

// cleanup stops the instances and removes their data and the topics,
// unless --keep.
func (b *bench) cleanup() {
	if b.o.keep {
		logf("--keep: instances left running (pids %d %d %d), topics %v", b.master.pid(), b.native.pid(), b.target.pid(), b.topics)
		return
	}
	for _, s := range b.servers() {
		s.stop()
		s.removeData()
	}
	if len(b.topics) == 0 {
		return
	}
	if err := benchkit.DeleteTopics(b.o.Kafka.Broker, b.topics...); err != nil {
		logf("warning: delete topics %v: %v", b.topics, err)
	}
}
