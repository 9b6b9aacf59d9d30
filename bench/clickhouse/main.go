// Command benchclickhouse measures rowcast's ClickHouse sink against
// ClickHouse's own ingest of the same rows, on the local stack (db1 as the
// master, Kafka, ClickHouse):
//
//   - each workload (--rows rows in --txn-row transactions, --small-rows in
//     --small-txn-row ones) is written on the master into a table of its own
//     while `rowcast pipeline` publishes it to a fresh topic;
//   - once Kafka holds all of it, `rowcast sink --replica olap` is started
//     and timed until its checkpoint in ClickHouse covers the topic's end;
//   - ClickHouse's own ingest: the sink's table is exported as one Native
//     file, and the same rows POSTed back into an empty copy of the table
//     over HTTP (`INSERT ... FORMAT Native`), timed;
//   - lag: `rowcast pipeline` and `rowcast sink` run while one client
//     commits --lag-txn-row transactions at --lag-rate per second; ClickHouse
//     is polled for the newest row, lag = visible minus COMMIT returned;
//   - row counts: the master's, the replica's current rows (FINAL, not
//     deleted) and the copy's must match.
//
// Run it through `scripts/bench clickhouse`, which builds it and rowcast,
// and records the result in docs/BENCHMARKS.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
)

type options struct {
	benchkit.RunFlags
	Kafka              benchkit.KafkaFlags
	master, masterPID  string
	clickhouse         string
	chPID              string
	rows, txn          int
	smallRows, smallTx int
	conns              int
	lagDuration        time.Duration
	lagRate, lagTxn    int
	lagPoll            time.Duration
	timeout            time.Duration
	dir, rowcastBin    string
	keep               bool
}

var logf = benchkit.Logf

func main() {
	var o options
	o.RunFlags.Register(flag.CommandLine)
	o.Kafka.Register(flag.CommandLine)
	flag.StringVar(&o.master, "master", benchkit.Host()+":"+benchkit.Env("ROWCAST_DB1_PORT", "3307"), "the master (MariaDB, root over TCP)")
	flag.StringVar(&o.masterPID, "master-pid", "0", "pid of the master's mariadbd, for its CPU time")
	flag.StringVar(&o.clickhouse, "clickhouse", "http://"+benchkit.Host()+":8123/", "ClickHouse's HTTP interface")
	flag.StringVar(&o.chPID, "clickhouse-pid", "0", "pid of clickhouse-server, for its CPU time")
	flag.IntVar(&o.rows, "rows", 1_000_000, "rows of the large-transaction workload")
	flag.IntVar(&o.txn, "txn", 1000, "rows per transaction of the large-transaction workload")
	flag.IntVar(&o.smallRows, "small-rows", 200_000, "rows of the small-transaction workload")
	flag.IntVar(&o.smallTx, "small-txn", 10, "rows per transaction of the small-transaction workload")
	flag.IntVar(&o.conns, "conns", 2, "connections writing the workloads on the master")
	flag.DurationVar(&o.lagDuration, "lag", 30*time.Second, "duration of the lag measurement (0: skip it)")
	flag.IntVar(&o.lagRate, "lag-rate", 100, "transactions per second of the lag measurement's writer")
	flag.IntVar(&o.lagTxn, "lag-txn", 10, "rows per transaction of the lag measurement's writer")
	flag.DurationVar(&o.lagPoll, "lag-poll", 20*time.Millisecond, "how often ClickHouse is polled for the newest row")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "limit of one measurement")
	flag.StringVar(&o.dir, "dir", ".stack/bench/clickhouse", "directory for the configs, logs and the Native file")
	flag.StringVar(&o.rowcastBin, "rowcast", "", "the rowcast binary (required)")
	flag.BoolVar(&o.keep, "keep", false, "leave the databases, the topics and the Native file in place")
	flag.Parse()
	benchkit.Main("benchclickhouse", func(ctx context.Context) error {
		if err := o.check(); err != nil {
			return err
		}
		return run(ctx, &o)
	})
}

func (o *options) check() error {
	if o.rowcastBin == "" {
		return benchkit.Usagef("--rowcast is required: the rowcast binary")
	}
	if min(o.rows, o.txn, o.smallRows, o.smallTx, o.conns, o.lagRate, o.lagTxn) < 1 {
		return benchkit.Usagef("row, transaction and rate counts must be positive")
	}
	if d, err := filepath.Abs(o.dir); err == nil {
		o.dir = d
	}
	return nil
}

// bench is one run: its names, results and what to clean up.
type bench struct {
	o        *options
	machine  benchkit.Machine
	name     string // prefix of its database and topics
	database string
	ch       *chHTTP
	topics   []string
	results  []result
	lag      *lagResult
	checks   []string
	versions versions
}

func run(ctx context.Context, o *options) error {
	name := fmt.Sprintf("rcbench_ch_%s_%04x", time.Now().UTC().Format("20060102_150405"), rand.Uint32()&0xffff)
	b := &bench{o: o, machine: benchkit.ReadMachine(o.LoadBefore), name: name, database: name, ch: newCHHTTP(o.clickhouse)}
	defer b.cleanup()
	if err := b.setup(ctx); err != nil {
		return err
	}
	for _, w := range b.workloads() {
		r, err := b.throughput(ctx, w)
		if err != nil {
			return fmt.Errorf("%s: %w", w.name, err)
		}
		b.results = append(b.results, r)
	}
	if o.lagDuration > 0 {
		lag, err := b.measureLag(ctx)
		if err != nil {
			return fmt.Errorf("lag: %w", err)
		}
		b.lag = lag
	}
	b.machine.Done()
	fmt.Print(b.table().Text())
	if o.Doc == "" {
		return nil
	}
	end := time.Now().UTC()
	return chDoc.Record(o.Doc, end, b.section(end).Markdown())
}

// workload is one throughput measurement's rows.
type workload struct {
	name      string
	table     string
	rows, txn int
}

func (b *bench) workloads() []workload {
	return []workload{
		{name: "insert", table: "big", rows: b.o.rows, txn: b.o.txn},
		{name: "insert-small", table: "small", rows: b.o.smallRows, txn: b.o.smallTx},
	}
}
