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
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql"
)

type options struct {
	rows, txn, repeat int
	insertConns       int
	eventBuffer       int
	workloads         []string
	dbAddr, dbUser    string
	dbPassword        string
	kafka             string
	compression       string
	maxBatchBytes     int
	kafkaVersion      string
	commit            string
	mariadbPid        int
	kafkaPid          int
	loadBefore        string
	cpuProfile        string
	doc               string
	keep              bool
	timeout           time.Duration
}

func (o *options) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
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
	host := env("ROWCAST_HOST", "127.0.0.1")
	flag.IntVar(&o.rows, "rows", 1_000_000, "rows per workload (N)")
	flag.IntVar(&o.txn, "txn", 1000, "rows per transaction")
	flag.IntVar(&o.repeat, "repeat", 3, "measurements per stage; the median is reported")
	flag.IntVar(&o.insertConns, "conns", 2, "connections writing the workloads")
	flag.IntVar(&o.eventBuffer, "event-buffer", 0, "source.Config.EventBuffer for the reader and the raw syncer (0: the reader's default, 64)")
	flag.StringVar(&workloads, "workloads", "insert,update", "workloads to run: insert, update (update needs the inserted rows)")
	flag.StringVar(&o.dbAddr, "db", host+":"+env("ROWCAST_DB1_PORT", "3307"), "db1 (the MariaDB master) host:port")
	flag.StringVar(&o.dbUser, "db-user", "root", "db1 user: needs CREATE, DROP, RELOAD (FLUSH BINARY LOGS) and replication privileges")
	flag.StringVar(&o.dbPassword, "db-password", os.Getenv("ROWCAST_BENCH_DB_PASSWORD"), "db1 password (default $ROWCAST_BENCH_DB_PASSWORD)")
	flag.StringVar(&o.kafka, "kafka", host+":"+env("ROWCAST_KAFKA_PORT", "9092"), "Kafka bootstrap broker")
	flag.StringVar(&o.compression, "compression", "", "KafkaConfig.Compression of the pipeline (default: the config's default, lz4); for experiments")
	flag.IntVar(&o.maxBatchBytes, "max-batch-bytes", 0, "KafkaConfig.MaxBatchBytes of the pipeline (default: the config's default, 1 MiB); for experiments")
	flag.StringVar(&o.kafkaVersion, "kafka-version", "?", "Kafka version, for the report")
	flag.StringVar(&o.commit, "commit", "?", "rowcast commit, for the report")
	flag.IntVar(&o.mariadbPid, "mariadb-pid", 0, "pid of db1's mariadbd, to report its CPU time")
	flag.IntVar(&o.kafkaPid, "kafka-pid", 0, "pid of the Kafka broker, to report its CPU time")
	flag.StringVar(&o.loadBefore, "load-before", "", "load average before the run (default: read at start)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "directory for CPU profiles of each stage's first measurement (STAGE-WORKLOAD.pprof)")
	flag.StringVar(&o.doc, "doc", "", "markdown file to add this run's section to (replacing one of the same day)")
	flag.BoolVar(&o.keep, "keep", false, "keep the bench database")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "limit of one measurement")
	flag.Parse()
	o.workloads = strings.Split(workloads, ",")
	if o.rows < 1 || o.txn < 1 || o.repeat < 1 || o.insertConns < 1 {
		fmt.Fprintln(os.Stderr, "benchsource: --rows, --txn, --repeat and --conns must be positive")
		os.Exit(2)
	}
	if o.eventBuffer == 0 {
		o.eventBuffer = 64 // source.Config's default
	}
	for _, w := range o.workloads {
		if w != "insert" && w != "update" {
			fmt.Fprintf(os.Stderr, "benchsource: unknown workload %q (insert, update)\n", w)
			os.Exit(2)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, &o); err != nil {
		fmt.Fprintln(os.Stderr, "benchsource:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o *options) error {
	cond := machine()
	if o.loadBefore != "" {
		cond.LoadBefore = o.loadBefore
	}
	cond.Kafka = o.kafkaVersion
	m, err := openMaster(ctx, o)
	if err != nil {
		return err
	}
	defer m.db.Close()
	if err := m.db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&cond.MariaDB); err != nil {
		return err
	}
	o.logf("bench database %s on %s (MariaDB %s), Kafka %s at %s", m.name, o.dbAddr, cond.MariaDB, cond.Kafka, o.kafka)
	if err := m.setup(ctx); err != nil {
		return err
	}
	if !o.keep {
		defer func() {
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := m.drop(dctx); err != nil {
				o.logf("warning: drop database %s: %v", m.name, err)
			}
		}()
	}

	var spans []span
	if slices.Contains(o.workloads, "insert") || slices.Contains(o.workloads, "update") {
		sp, err := m.insertWorkload(ctx, o.rows, o.txn, o.insertConns)
		if err != nil {
			return fmt.Errorf("insert workload: %w", err)
		}
		o.logf("insert workload: %d rows in %d transactions in %.1fs, GTIDs %s .. %s", sp.Rows, sp.Txns, sp.Took.Seconds(), sp.Start, sp.LastText)
		if slices.Contains(o.workloads, "insert") {
			spans = append(spans, sp)
		}
	}
	if slices.Contains(o.workloads, "update") {
		sp, err := m.updateWorkload(ctx, o.rows, o.txn, o.insertConns)
		if err != nil {
			return fmt.Errorf("update workload: %w", err)
		}
		o.logf("update workload: %d rows in %d transactions in %.1fs, GTIDs %s .. %s", sp.Rows, sp.Txns, sp.Took.Seconds(), sp.Start, sp.LastText)
		spans = append(spans, sp)
	}

	settle(ctx, o, 30*time.Second)
	var results []result
	for _, sp := range spans {
		for rep := range o.repeat {
			if rep > 0 {
				settle(ctx, o, 5*time.Second)
			}
			for _, st := range stages {
				r, err := measure(ctx, o, m, sp, st, rep)
				if err != nil {
					return fmt.Errorf("%s workload, %s, run %d: %w", sp.Name, st, rep+1, err)
				}
				o.logf("%-6s %-8s run %d: %8d rows in %6.2fs = %7.0f rows/s (first row after %v; CPU s self %.1f mariadbd %.1f kafka %.1f others %.1f)",
					sp.Name, st, rep+1, r.Rows, r.Took.Seconds(), r.rate(), r.FirstRow.Round(time.Millisecond), r.CPU.Self, r.CPU.MariaDB, r.CPU.Kafka, r.CPU.Others())
				if r.Rows != sp.Rows {
					return fmt.Errorf("%s workload, %s: counted %d rows, the workload wrote %d", sp.Name, st, r.Rows, sp.Rows)
				}
				if st == stagePipeline {
					o.logf("%-6s %-8s run %d: %d produce requests (%.0f messages each), in requests %.0f%% of the time",
						sp.Name, st, rep+1, r.Requests, float64(r.Messages)/float64(max(1, r.Requests)), 100*r.ProduceTime.Seconds()/r.Took.Seconds())
				}
				if st == stagePipeline && r.Overshoot == 0 && r.Messages != int64(sp.Rows) {
					return fmt.Errorf("%s workload, pipeline: %d messages in the topic for %d rows", sp.Name, r.Messages, sp.Rows)
				}
				if st == stagePipeline && r.Restarts > 0 {
					o.logf("warning: %s pipeline: the binlog stream was reopened %d times", sp.Name, r.Restarts)
				}
				results = append(results, r)
			}
		}
	}
	cond.LoadAfter = loadavg()
	rep := newReport(o, cond, spans, results)
	fmt.Print(rep.table())
	if o.doc != "" {
		if err := rep.updateDoc(o.doc); err != nil {
			return fmt.Errorf("update %s: %w", o.doc, err)
		}
		o.logf("recorded in %s", o.doc)
	}
	return nil
}

// settle waits, up to limit, until the machine uses less than half a core
// over a second while this process idles: InnoDB flushes and purges for a
// while after a million row changes, and other tests may be running; either
// would land on the measurements. What other processes use during each
// measurement is reported anyway ("others").
func settle(ctx context.Context, o *options, limit time.Duration) {
	start := time.Now()
	for time.Since(start) < limit {
		before := machineBusy()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		if machineBusy()-before < 0.5 {
			return
		}
	}
	o.logf("machine still busy after %.0fs (other tests?): measuring anyway", time.Since(start).Seconds())
}

func measure(ctx context.Context, o *options, m *master, sp span, stage string, rep int) (result, error) {
	if o.cpuProfile != "" && rep == 0 {
		if err := os.MkdirAll(o.cpuProfile, 0o755); err != nil {
			return result{}, err
		}
		f, err := os.Create(filepath.Join(o.cpuProfile, stage+"-"+sp.Name+".pprof"))
		if err != nil {
			return result{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return result{}, err
		}
		defer pprof.StopCPUProfile()
	}
	switch stage {
	case stageRaw:
		return measureRaw(ctx, o, m, sp)
	case stageReader:
		return measureReader(ctx, o, m, sp)
	default:
		return measurePipeline(ctx, o, m, sp, rep)
	}
}
