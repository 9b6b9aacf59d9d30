package main

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
)

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
	CPU            benchkit.CPU       // of this process, the side's mariadbd and Kafka (procServer, procKafka)
	Server         map[string]float64 // SHOW GLOBAL STATUS deltas of the replica
	SinkCommits    float64
}

func (r result) rate() float64 {
	if r.Took <= 0 {
		return 0
	}
	return float64(r.Rows) / r.Took.Seconds()
}

// cpuMeter watches a side's mariadbd and the Kafka broker: procServer and
// procKafka in its CPU.
func (b *bench) cpuMeter(s *server) *benchkit.CPUMeter {
	return benchkit.NewCPUMeter(s.pid, b.o.Kafka.BrokerPID)
}

const (
	procServer = iota
	procKafka
)

// sides are the two replicas, both fed from the master while it writes.
type sides struct {
	nat *native
	rc  *rowcastSide
}

// throughput writes each workload on the master, --repeat times, and times
// both replicas applying it; at the end both must hold what the master
// holds.
func (b *bench) throughput(ctx context.Context) error {
	tables := b.tables()
	start, err := b.createTables(ctx, tables)
	if err != nil {
		return err
	}
	sd := sides{nat: &native{s: b.native, master: b.master}, rc: &rowcastSide{b: b, target: b.target}}
	if err := sd.nat.setup(ctx, start); err != nil {
		return fmt.Errorf("native replica: %w", err)
	}
	topic := b.topicPrefix + "_apply"
	b.topics = append(b.topics, topic)
	if err := sd.rc.startPublisher(ctx, topic, start); err != nil {
		return err
	}
	defer sd.rc.stopPublisher()
	for rep := 1; rep <= b.o.repeat; rep++ {
		for _, l := range b.loads(rep) {
			if err := b.measureLoad(ctx, sd, l, rep); err != nil {
				return err
			}
		}
	}
	if err := sd.nat.stop(ctx); err != nil {
		return err
	}
	sd.rc.stopPublisher()
	return b.checkReplicas(ctx, tables)
}

// repTable is a bench table of a repetition: each repetition writes its own,
// so that every measurement applies the same work to a replica in the same
// state.
func (b *bench) repTable(base string, rep int) string {
	if b.o.repeat == 1 {
		return base
	}
	return fmt.Sprintf("%s_%d", base, rep)
}

func (b *bench) tables() []string {
	var tables []string
	for rep := 1; rep <= b.o.repeat; rep++ {
		tables = append(tables, b.repTable("bench_rows", rep), b.repTable("bench_small", rep))
	}
	return tables
}

// createTables creates the tables on the master, then on the replicas
// outside their binlog, and returns the master's GTID position in between.
func (b *bench) createTables(ctx context.Context, tables []string) (start string, err error) {
	if err := createTables(ctx, b.master.root, true, tables...); err != nil {
		return "", err
	}
	// A new binlog file: readers then start at the range without scanning.
	if _, err := b.master.root.ExecContext(ctx, "FLUSH BINARY LOGS"); err != nil {
		return "", err
	}
	if start, err = gtidPos(ctx, b.master); err != nil {
		return "", err
	}
	for _, s := range []*server{b.native, b.target} {
		if err := createTables(ctx, s.root, false, tables...); err != nil {
			return "", err
		}
	}
	return start, nil
}

// loads are the workloads --workloads names, of repetition rep.
func (b *bench) loads(rep int) []benchkit.Load {
	o := b.o
	rows, small := benchDB+"."+b.repTable("bench_rows", rep), benchDB+"."+b.repTable("bench_small", rep)
	var out []benchkit.Load
	for _, l := range []benchkit.Load{
		{Name: wInsert, Table: rows, Kind: benchkit.Insert, Rows: o.rows, Txn: o.txn},
		{Name: wUpdate, Table: rows, Kind: benchkit.Update, Rows: o.rows, Txn: o.txn},
		{Name: wInsertSmall, Table: small, Kind: benchkit.Insert, Rows: o.smallRows, Txn: o.smallTxn},
		{Name: wUpdateSmall, Table: small, Kind: benchkit.Update, Rows: o.smallRows, Txn: o.smallTxn},
	} {
		if slices.Contains(o.workloads, l.Name) {
			out = append(out, l)
		}
	}
	return out
}

// measureLoad writes one workload, waits until both replicas have it at
// hand, and times each applying it.
func (b *bench) measureLoad(ctx context.Context, sd sides, l benchkit.Load, rep int) error {
	sp, err := b.write(ctx, l)
	if err != nil {
		return fmt.Errorf("%s workload: %w", l.Name, err)
	}
	logf("%-12s written: %d rows in %d transactions of %d in %.1fs (%.0f rows/s), GTIDs %s .. %s",
		l.Name, l.Rows, l.Txns(), l.Txn, sp.Took.Seconds(), float64(l.Rows)/sp.Took.Seconds(), sp.Start, sp.End)
	if rep == 1 {
		b.spans = append(b.spans, sp)
	}
	if err := sd.nat.waitFetched(ctx, sp, b.o.timeout); err != nil {
		return err
	}
	t1 := time.Now()
	if _, err := sd.rc.waitPublished(ctx, sp, b.o.timeout); err != nil {
		return err
	}
	logf("%-12s in the relay log and in Kafka (%.1fs after the write ended)", l.Name, time.Since(t1).Seconds())
	// Alternate which side goes first, so that neither always meets the
	// same state of the machine.
	order := []string{sideNative, sideRowcast}
	if rep%2 == 0 {
		order = []string{sideRowcast, sideNative}
	}
	for _, side := range order {
		if err := b.measureSide(ctx, sd, side, sp, rep); err != nil {
			return fmt.Errorf("%s workload, %s: %w", l.Name, side, err)
		}
	}
	return nil
}

// measureSide times one side applying the span.
func (b *bench) measureSide(ctx context.Context, sd sides, side string, sp span, rep int) error {
	var r result
	var err error
	if side == sideNative {
		r, err = sd.nat.apply(ctx, b, sp)
	} else {
		r, err = sd.rc.apply(ctx, sp)
	}
	if err != nil {
		return err
	}
	r.Rep = rep
	logf("%-12s %-7s %8d rows in %6.2fs = %7.0f rows/s; CPU s self %.1f mariadbd %.1f kafka %s; commits %.0f, statements %.0f",
		sp.Name, side, r.Rows, r.Took.Seconds(), r.rate(), r.CPU.Self, r.CPU.Proc(procServer), benchkit.Seconds(r.CPU.Proc(procKafka)),
		r.Server["Binlog_commits"], r.Server["Questions"])
	b.results = append(b.results, r)
	return nil
}

// checkReplicas compares both replicas' tables with the master's.
func (b *bench) checkReplicas(ctx context.Context, tables []string) error {
	for _, t := range tables {
		sums, err := b.checksums(ctx, t)
		if err != nil {
			return err
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

// checksums are CHECKSUM TABLE of table on the master, the native replica
// and rowcast's target.
func (b *bench) checksums(ctx context.Context, table string) ([]string, error) {
	sums := make([]string, 3)
	for i, s := range b.servers() {
		var name string
		var sum sql.NullString
		if err := s.root.QueryRowContext(ctx, "CHECKSUM TABLE "+benchDB+"."+table).Scan(&name, &sum); err != nil {
			return nil, err
		}
		sums[i] = sum.String
	}
	return sums, nil
}
