// Command benchsource measures the source side of rowcast on the local stack:
// rows per second from the binlog to Kafka's acknowledgement, on an
// insert-heavy and an update-heavy workload, beside go-mysql's raw decode
// rate and the reader's rate of the same binlog range, in the same run.
//
// It writes the workloads into a fresh database on db1 (dropped at the end),
// then measures, --repeat times each and interleaved so that a change of the
// machine's load touches every stage alike:
//
//   - raw: a go-mysql BinlogSyncer, configured as source.Reader configures
//     it, counting the rows of the bench table's ROWS events;
//   - reader: source.Reader.Run with an emit that only counts;
//   - pipeline: service.Publisher into a fresh topic (default KafkaConfig,
//     lz4), until Kafka acknowledged the workload's last transaction.
//
// Run it through `scripts/bench source`, which starts the stack and records
// the result in docs/BENCHMARKS.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
)

type options struct {
	benchkit.RunFlags
	Kafka             benchkit.KafkaFlags
	rows, txn, repeat int
	insertConns       int
	eventBuffer       int
	workloads         []string
	dbAddr, dbUser    string
	dbPassword        string
	compression       string
	maxBatchBytes     int
	mariadbPid        int
	cpuProfile        string
	keep              bool
	timeout           time.Duration
}

var logf = benchkit.Logf

func main() {
	var o options
	var workloads string
	o.RunFlags.Register(flag.CommandLine)
	o.Kafka.Register(flag.CommandLine)
	flag.IntVar(&o.rows, "rows", 1_000_000, "rows per workload (N)")
	flag.IntVar(&o.txn, "txn", 1000, "rows per transaction")
	flag.IntVar(&o.repeat, "repeat", 3, "measurements per stage; the median is reported")
	flag.IntVar(&o.insertConns, "conns", 2, "connections writing the workloads")
	flag.IntVar(&o.eventBuffer, "event-buffer", 0, "source.Config.EventBuffer for the reader and the raw syncer (0: the reader's default, 64)")
	flag.StringVar(&workloads, "workloads", "insert,update", "workloads to run: insert, update (update needs the inserted rows)")
	flag.StringVar(&o.dbAddr, "db", benchkit.Host()+":"+benchkit.Env("ROWCAST_DB1_PORT", "3307"), "db1 (the MariaDB master) host:port")
	flag.StringVar(&o.dbUser, "db-user", "root", "db1 user: needs CREATE, DROP, RELOAD (FLUSH BINARY LOGS) and replication privileges")
	flag.StringVar(&o.dbPassword, "db-password", benchkit.Env("ROWCAST_BENCH_DB_PASSWORD", ""), "db1 password (default $ROWCAST_BENCH_DB_PASSWORD)")
	flag.StringVar(&o.compression, "compression", "", "KafkaConfig.Compression of the pipeline (default: the config's default, lz4); for experiments")
	flag.IntVar(&o.maxBatchBytes, "max-batch-bytes", 0, "KafkaConfig.MaxBatchBytes of the pipeline (default: the config's default, 1 MiB); for experiments")
	flag.IntVar(&o.mariadbPid, "mariadb-pid", 0, "pid of db1's mariadbd, to report its CPU time")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "directory for CPU profiles of each stage's first measurement (STAGE-WORKLOAD.pprof)")
	flag.BoolVar(&o.keep, "keep", false, "keep the bench database")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "limit of one measurement")
	flag.Parse()
	o.workloads = strings.Split(workloads, ",")
	benchkit.Main("benchsource", func(ctx context.Context) error {
		if err := o.check(); err != nil {
			return err
		}
		return run(ctx, &o)
	})
}

// check validates the flags and fills in defaults.
func (o *options) check() error {
	if o.rows < 1 || o.txn < 1 || o.repeat < 1 || o.insertConns < 1 {
		return benchkit.Usagef("--rows, --txn, --repeat and --conns must be positive")
	}
	if o.eventBuffer == 0 {
		o.eventBuffer = 64 // source.Config's default
	}
	for _, w := range o.workloads {
		if w != benchkit.Insert && w != benchkit.Update {
			return benchkit.Usagef("unknown workload %q (insert, update)", w)
		}
	}
	return nil
}

// cpuMeter watches db1's mariadbd and the Kafka broker: procMariaDB and
// procKafka in its CPU.
func (o *options) cpuMeter() *benchkit.CPUMeter {
	return benchkit.NewCPUMeter(benchkit.PID(o.mariadbPid), o.Kafka.BrokerPID)
}

const (
	procMariaDB = iota
	procKafka
)

func run(ctx context.Context, o *options) error {
	cond := conditions{Machine: benchkit.ReadMachine(o.LoadBefore), Kafka: o.Kafka.Version}
	m, err := openMaster(ctx, o)
	if err != nil {
		return err
	}
	defer m.db.Close()
	if err := m.db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&cond.MariaDB); err != nil {
		return err
	}
	logf("bench database %s on %s (MariaDB %s), Kafka %s at %s", m.name, o.dbAddr, cond.MariaDB, cond.Kafka, o.Kafka.Broker)
	if err := m.setup(ctx); err != nil {
		return err
	}
	if !o.keep {
		defer m.drop(context.WithoutCancel(ctx))
	}
	spans, err := writeWorkloads(ctx, o, m)
	if err != nil {
		return err
	}
	results, err := measureAll(ctx, o, m, spans)
	if err != nil {
		return err
	}
	cond.Machine.Done()
	rep := newReport(o, cond, spans, results)
	fmt.Print(rep.table())
	if o.Doc == "" {
		return nil
	}
	return rep.updateDoc(o.Doc)
}

// writeWorkloads writes the workloads --workloads names, and returns their
// spans; update needs the insert workload's rows, written (and not
// measured) also when only update is wanted.
func writeWorkloads(ctx context.Context, o *options, m *master) ([]span, error) {
	write := o.workloads
	if slices.Contains(write, benchkit.Update) {
		write = []string{benchkit.Insert, benchkit.Update}
	}
	var spans []span
	for _, kind := range []string{benchkit.Insert, benchkit.Update} {
		if !slices.Contains(write, kind) {
			continue
		}
		sp, err := m.write(ctx, o.load(kind))
		if err != nil {
			return nil, fmt.Errorf("%s workload: %w", kind, err)
		}
		logf("%s workload: %d rows in %d transactions in %.1fs, GTIDs %s .. %s", sp.Name, sp.Rows, sp.Txns, sp.Took.Seconds(), sp.Start, sp.LastText)
		if slices.Contains(o.workloads, kind) {
			spans = append(spans, sp)
		}
	}
	return spans, nil
}

// measureAll measures every stage on every span, --repeat times, the
// stages interleaved.
func measureAll(ctx context.Context, o *options, m *master, spans []span) ([]result, error) {
	settle(ctx, 30*time.Second)
	var results []result
	for _, sp := range spans {
		for rep := range o.repeat {
			if rep > 0 {
				settle(ctx, 5*time.Second)
			}
			for _, st := range stages {
				r, err := measureChecked(ctx, o, m, sp, st, rep)
				if err != nil {
					return nil, fmt.Errorf("%s workload, %s, run %d: %w", sp.Name, st, rep+1, err)
				}
				results = append(results, r)
			}
		}
	}
	return results, nil
}

// settle waits, up to limit, until the machine uses less than half a core
// over a second while this process idles: InnoDB flushes and purges for a
// while after a million row changes, and other tests may be running; either
// would land on the measurements. What other processes use during each
// measurement is reported anyway ("others").
func settle(ctx context.Context, limit time.Duration) {
	start := time.Now()
	for time.Since(start) < limit {
		before := benchkit.MachineBusy()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		if benchkit.MachineBusy()-before < 0.5 {
			return
		}
	}
	logf("machine still busy after %.0fs (other tests?): measuring anyway", time.Since(start).Seconds())
}
