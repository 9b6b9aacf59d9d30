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
	"database/sql"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"golang.org/x/sync/errgroup"
)

type options struct {
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
	kafka, kafkaVersion string
	kafkaPid            int
	kafkaPidFile        string
	commit              string
	rowcastBin          string
	cpuProfile          string
	memProfile          string
	doc                 string
	loadBefore          string
	basePort, httpPort  int
	maxBatchRows        int
	maxTxnMerge         int
	keep                bool
	noLoadData          bool
	noBinlog            bool
	syncDecode          bool
}

const (
	sideNative  = "native"
	sideRowcast = "rowcast"
)

// result is one timed apply.
type result struct {
	Workload, Side string
	Rep            int
	Rows, Txns     int
	Took           time.Duration
	CPU            cpuTimes
	Server         map[string]float64 // SHOW GLOBAL STATUS deltas of the replica
	SinkCommits    float64
}

func (r result) rate() float64 {
	if r.Took <= 0 {
		return 0
	}
	return float64(r.Rows) / r.Took.Seconds()
}

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

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func main() {
	var o options
	var workloads string
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
	flag.StringVar(&o.kafka, "kafka", "127.0.0.1:"+env("ROWCAST_KAFKA_PORT", "9092"), "Kafka bootstrap broker")
	flag.StringVar(&o.kafkaVersion, "kafka-version", "?", "Kafka version, for the report")
	flag.IntVar(&o.kafkaPid, "kafka-pid", 0, "pid of the Kafka broker, to report its CPU time")
	flag.StringVar(&o.kafkaPidFile, "kafka-pid-file", "", "file holding the Kafka broker's pid, read at each measurement (instead of --kafka-pid)")
	flag.StringVar(&o.commit, "commit", "?", "rowcast commit, for the report")
	flag.StringVar(&o.rowcastBin, "rowcast", "", "the rowcast binary, for the live measurements (empty: skip them)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "directory for CPU profiles of each rowcast apply (sink-WORKLOAD.pprof)")
	flag.StringVar(&o.memProfile, "memprofile", "", "directory for heap profiles of each rowcast apply at its peak live heap (sink-WORKLOAD.heap)")
	flag.StringVar(&o.doc, "doc", "", "markdown file to add this run's section to (its Sink section; a run of the same day is replaced)")
	flag.StringVar(&o.loadBefore, "load-before", "", "load average before the run (default: read at start)")
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
	for _, w := range o.workloads {
		if !slices.Contains([]string{"insert", "update", "insert-small", "update-small"}, w) {
			fmt.Fprintf(os.Stderr, "benchsink: unknown workload %q\n", w)
			os.Exit(2)
		}
	}
	for _, dep := range [][2]string{{"update", "insert"}, {"update-small", "insert-small"}} {
		if slices.Contains(o.workloads, dep[0]) && !slices.Contains(o.workloads, dep[1]) {
			fmt.Fprintf(os.Stderr, "benchsink: workload %s updates the rows of %s: run both\n", dep[0], dep[1])
			os.Exit(2)
		}
	}
	if o.repeat < 1 || o.rows < 1 || o.txn < 1 || o.smallRows < 1 || o.smallTxn < 1 || o.lagTxn < 1 || o.conns < 1 {
		fmt.Fprintln(os.Stderr, "benchsink: row and transaction counts must be positive")
		os.Exit(2)
	}
	if d, err := filepath.Abs(o.dir); err == nil {
		o.dir = d
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, &o); err != nil {
		fmt.Fprintln(os.Stderr, "benchsink:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o *options) error {
	b := &bench{o: o, cond: machine(),
		topicPrefix: fmt.Sprintf("rcbench_sink_%s_%04x", time.Now().UTC().Format("20060102_150405"), rand.Uint32()&0xffff)}
	if o.loadBefore != "" {
		b.cond.LoadBefore = o.loadBefore
	}
	b.cond.Kafka = o.kafkaVersion
	b.master = &server{name: "master", port: o.basePort, serverID: 11, dir: filepath.Join(o.dir, "master")}
	b.native = &server{name: "native", port: o.basePort + 1, serverID: 12, dir: filepath.Join(o.dir, "native")}
	b.target = &server{name: "target", port: o.basePort + 2, serverID: 13, dir: filepath.Join(o.dir, "target")}
	servers := []*server{b.master, b.native, b.target}
	defer func() {
		if o.keep {
			logf("--keep: instances left running (pids %d %d %d), topics %v", b.master.pid(), b.native.pid(), b.target.pid(), b.topics)
			return
		}
		for _, s := range servers {
			s.stop()
			// The datadirs (tables and binlogs, GBs) go; logs stay.
			if err := os.RemoveAll(filepath.Join(s.dir, "data")); err != nil {
				logf("warning: %v", err)
			}
		}
		if len(b.topics) > 0 {
			deleteTopics(o, b.topics...)
		}
	}()
	t0 := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range servers {
		g.Go(func() error { return s.start(gctx, o.template) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := b.master.root.QueryRowContext(ctx, "SELECT VERSION()").Scan(&b.cond.MariaDB); err != nil {
		return err
	}
	var settings []string
	for _, v := range []string{"log_bin", "log_slave_updates", "binlog_format", "sync_binlog", "innodb_flush_log_at_trx_commit",
		"innodb_buffer_pool_size", "slave_parallel_threads"} {
		val, err := b.target.variable(ctx, v)
		if err != nil {
			return err
		}
		if v == "innodb_buffer_pool_size" {
			val = fmt.Sprintf("%dM", atoi(val)>>20)
		}
		settings = append(settings, v+"="+val)
	}
	b.cond.Settings = strings.Join(settings, ", ")
	logf("instances up in %.1fs: master %s, native replica %s, rowcast target %s (MariaDB %s; %s)",
		time.Since(t0).Seconds(), b.master.addr(), b.native.addr(), b.target.addr(), b.cond.MariaDB, b.cond.Settings)

	if len(o.workloads) > 0 {
		if err := b.throughput(ctx); err != nil {
			return err
		}
	}
	if o.rowcastBin != "" && (o.lagDuration > 0 || o.bigRows > 0) {
		lag, mem, err := b.live(ctx)
		b.lag, b.mem = lag, mem
		if err != nil {
			return fmt.Errorf("live: %w", err)
		}
	}
	b.cond.LoadAfter = loadavg()
	fmt.Print(b.table())
	if o.doc != "" {
		if err := b.updateDoc(o.doc); err != nil {
			return fmt.Errorf("update %s: %w", o.doc, err)
		}
		logf("recorded in %s", o.doc)
	}
	return nil
}

func (b *bench) throughput(ctx context.Context) error {
	o := b.o
	// Each repetition writes its own tables, so that every measurement
	// applies the same work to a replica in the same state.
	var tables []string
	table := func(base string, rep int) string {
		if o.repeat == 1 {
			return base
		}
		return fmt.Sprintf("%s_%d", base, rep)
	}
	for rep := 1; rep <= o.repeat; rep++ {
		tables = append(tables, table("bench_rows", rep), table("bench_small", rep))
	}
	if err := createTables(ctx, b.master.root, true, tables...); err != nil {
		return err
	}
	// A new binlog file: readers then start at the range without scanning.
	if _, err := b.master.root.ExecContext(ctx, "FLUSH BINARY LOGS"); err != nil {
		return err
	}
	start, err := gtidPos(ctx, b.master)
	if err != nil {
		return err
	}
	for _, s := range []*server{b.native, b.target} {
		if err := createTables(ctx, s.root, false, tables...); err != nil {
			return err
		}
	}
	nat := &native{s: b.native, master: b.master}
	if err := nat.setup(ctx, start); err != nil {
		return fmt.Errorf("native replica: %w", err)
	}
	rc := &rowcastSide{b: b, target: b.target}
	topic := b.topicPrefix + "_apply"
	b.topics = append(b.topics, topic)
	if err := rc.startPublisher(ctx, topic, start); err != nil {
		return err
	}
	defer rc.stopPublisher()

	m := &master{s: b.master, conns: o.conns}
	for rep := 1; rep <= o.repeat; rep++ {
		all := []workload{
			{Name: "insert", Table: table("bench_rows", rep), Kind: "insert", Rows: o.rows, Txn: o.txn},
			{Name: "update", Table: table("bench_rows", rep), Kind: "update", Rows: o.rows, Txn: o.txn},
			{Name: "insert-small", Table: table("bench_small", rep), Kind: "insert", Rows: o.smallRows, Txn: o.smallTxn},
			{Name: "update-small", Table: table("bench_small", rep), Kind: "update", Rows: o.smallRows, Txn: o.smallTxn},
		}
		for _, w := range all {
			if !slices.Contains(o.workloads, w.Name) {
				continue
			}
			sp, err := m.write(ctx, w)
			if err != nil {
				return fmt.Errorf("%s workload: %w", w.Name, err)
			}
			logf("%-12s written: %d rows in %d transactions of %d in %.1fs (%.0f rows/s), GTIDs %s .. %s",
				w.Name, w.Rows, w.txns(), w.Txn, sp.Took.Seconds(), float64(w.Rows)/sp.Took.Seconds(), sp.Start, sp.End)
			if rep == 1 {
				b.spans = append(b.spans, sp)
			}
			if err := nat.waitFetched(ctx, sp, o.timeout); err != nil {
				return err
			}
			t1 := time.Now()
			if _, err := rc.waitPublished(ctx, sp, o.timeout); err != nil {
				return err
			}
			logf("%-12s in the relay log and in Kafka (%.1fs after the write ended)", w.Name, time.Since(t1).Seconds())
			// Alternate which side goes first, so that neither always
			// meets the same state of the machine.
			sides := []string{sideNative, sideRowcast}
			if rep%2 == 0 {
				sides = []string{sideRowcast, sideNative}
			}
			for _, side := range sides {
				var r result
				if side == sideNative {
					r, err = nat.apply(ctx, b, sp)
				} else {
					r, err = rc.apply(ctx, sp)
				}
				if err != nil {
					return fmt.Errorf("%s workload, %s: %w", w.Name, side, err)
				}
				r.Rep = rep
				logf("%-12s %-7s %8d rows in %6.2fs = %7.0f rows/s; CPU s self %.1f mariadbd %.1f kafka %s; commits %.0f, statements %.0f",
					w.Name, side, r.Rows, r.Took.Seconds(), r.rate(), r.CPU.Self, r.CPU.Server, cpuS(r.CPU.Kafka),
					r.Server["Binlog_commits"], r.Server["Questions"])
				b.results = append(b.results, r)
			}
		}
	}
	if err := nat.stop(ctx); err != nil {
		return err
	}
	rc.stopPublisher()
	// Both replicas must hold what the master holds.
	for _, t := range tables {
		sums := make([]string, 3)
		for i, s := range []*server{b.master, b.native, b.target} {
			var name string
			var sum sql.NullString
			if err := s.root.QueryRowContext(ctx, "CHECKSUM TABLE "+benchDB+"."+t).Scan(&name, &sum); err != nil {
				return err
			}
			sums[i] = sum.String
		}
		if sums[0] == "0" {
			continue // a table no workload wrote
		}
		check := fmt.Sprintf("%s: CHECKSUM TABLE master %s, native %s, rowcast %s", t, sums[0], sums[1], sums[2])
		logf("%s", check)
		if sums[0] != sums[1] || sums[0] != sums[2] {
			return fmt.Errorf("replicas differ from the master: %s", check)
		}
		b.checks = append(b.checks, check)
	}
	return nil
}

func atoi(s string) int64 {
	var n int64
	fmt.Sscan(s, &n)
	return n
}
