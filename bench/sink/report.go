package main

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
)

// goalRatio is the goal: rowcast applies at least as fast as the
// native serial replica, on every workload.
const goalRatio = 1.0

// sinkDoc is this benchmark's part of docs/BENCHMARKS.md.
var sinkDoc = benchkit.Doc{Bench: "sink", Heading: "## Sink: `scripts/bench sink`", Intro: `Apply rate of a sink worker into a MariaDB replica, beside MariaDB's own serial replication
replaying the same binlog range into a fresh replica with the same settings, in the same run;
end-to-end lag under a single writer; memory of a 1,000,000-row transaction. The benchmark
starts its own master, native replica and rowcast target (bench/sink, settings from
scripts/lib/mariadb.cnf.in) beside the stack's Kafka. Both replicas apply from a ready source:
the native SQL thread from a relay log its IO thread filled while the workload was written;
the sink worker from a topic the pipeline filled while the workload was written. Run
` + "`scripts/bench sink -help`" + ` for the flags (e.g. ` + "`--rows`, `--cpuprofile DIR`" + `).`}

// conditions describe the machine and the services during the run.
type conditions struct {
	benchkit.Machine
	MariaDB  string
	Kafka    string
	Settings string // the replicas' durability and binlog settings
	// The sink worker's batch settings in effect (config defaults when the
	// flags leave them), set when the rowcast side's config is parsed.
	MaxBatchRows, MaxTxnMerge int
}

func krate(v float64) string { return fmt.Sprintf("%.1fk", v/1000) }

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

// get is the run of a workload and side with the median rate.
func (b *bench) get(workload, side string) (result, bool) {
	runs := b.runs(workload, side)
	return benchkit.Median(runs, result.rate), len(runs) > 0
}

func (b *bench) runs(workload, side string) []result {
	var out []result
	for _, r := range b.results {
		if r.Workload == workload && r.Side == side {
			out = append(out, r)
		}
	}
	return out
}

// rates are the rates of all runs of a workload and side.
func (b *bench) rates(workload, side string) string {
	var p []string
	for _, x := range b.runs(workload, side) {
		p = append(p, krate(x.rate()))
	}
	return strings.Join(p, " ")
}

// resultTable has a row per workload: both sides' median runs.
func (b *bench) resultTable() benchkit.Table {
	t := benchkit.Table{Header: []string{"workload", "rows x txn size", "native rows/s", "rowcast rows/s", "rowcast/native", "runs native; rowcast",
		"seconds native / rowcast", "replica commits native / rowcast", "CPU s native: mariadbd", "CPU s rowcast: sink / mariadbd / kafka",
		"CPU us per row native / rowcast", "rowcast ceiling: all CPUs busy"}}
	for _, sp := range b.spans {
		n, ok1 := b.get(sp.Name, sideNative)
		r, ok2 := b.get(sp.Name, sideRowcast)
		if ok1 && ok2 {
			t.Rows = append(t.Rows, b.row(sp, n, r))
		}
	}
	return t
}

// row compares the median runs of both sides on a workload.
func (b *bench) row(sp span, n, r result) []string {
	rowcastCPU := r.CPU.Self + r.CPU.Proc(procServer)
	if k := r.CPU.Proc(procKafka); !math.IsNaN(k) {
		rowcastCPU += k
	}
	return []string{
		sp.Name,
		fmt.Sprintf("%d x %d", sp.Rows, sp.Txn),
		krate(n.rate()),
		krate(r.rate()),
		fmt.Sprintf("%.2fx", r.rate()/n.rate()),
		b.rates(sp.Name, sideNative) + "; " + b.rates(sp.Name, sideRowcast),
		fmt.Sprintf("%.2f / %.2f", n.Took.Seconds(), r.Took.Seconds()),
		fmt.Sprintf("%.0f / %.0f", n.Server["Binlog_commits"], r.Server["Binlog_commits"]),
		fmt.Sprintf("%.1f", n.CPU.Proc(procServer)),
		fmt.Sprintf("%.1f / %.1f / %s", r.CPU.Self, r.CPU.Proc(procServer), benchkit.Seconds(r.CPU.Proc(procKafka))),
		fmt.Sprintf("%.1f / %.1f", 1e6*n.CPU.Proc(procServer)/float64(n.Rows), 1e6*rowcastCPU/float64(r.Rows)),
		b.ceiling(r, rowcastCPU, n.rate()),
	}
}

// ceiling is the most rows/s rowcast's side could reach here with the CPU
// it spent per row (sink + replica + broker), if it kept every CPU of the
// machine busy, and that rate against native's: a bound no scheduling or
// overlap of the stages can pass, only less CPU per row.
func (b *bench) ceiling(r result, cpu, native float64) string {
	if cpu <= 0 || b.cond.CPUs <= 0 || native <= 0 {
		return "?"
	}
	rate := float64(b.cond.CPUs) * float64(r.Rows) / cpu
	return fmt.Sprintf("%s (%.2fx)", krate(rate), rate/native)
}

func (b *bench) verdict() string {
	var parts []string
	met := true
	for _, sp := range b.spans {
		n, _ := b.get(sp.Name, sideNative)
		r, _ := b.get(sp.Name, sideRowcast)
		if n.rate() == 0 {
			continue
		}
		ratio := r.rate() / n.rate()
		met = met && ratio >= goalRatio
		parts = append(parts, fmt.Sprintf("%s %.2fx", sp.Name, ratio))
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("goal (rowcast >= %.1fx the native serial replica on every workload): %s (%s)", goalRatio, benchkit.Met(met), strings.Join(parts, ", "))
}

// liveLines say what the live measurements found.
func (b *bench) liveLines() []string {
	var out []string
	if l := b.lag; l != nil {
		out = append(out, fmt.Sprintf("lag (rowcast pipeline + rowcast sink processes, one client writing %d-row transactions for %.0fs): "+
			"the writer did %.0f txn/s (%.0f rows/s; alone, nothing replicating: %.0f txn/s); commit on the master -> row visible on the replica, "+
			"over %d transactions, polled every %v: p50 %s, p99 %s, max %s",
			b.o.lagTxn, l.Duration.Seconds(), float64(l.Txns)/l.Duration.Seconds(), float64(l.Rows)/l.Duration.Seconds(), l.AloneTxnRate,
			len(l.Lags), l.PollEvery, ms(l.P50), ms(l.P99), ms(l.Max)))
	}
	if m := b.mem; m != nil {
		out = append(out, m.line())
	}
	return out
}

// line says what the big transaction cost the processes.
func (m *memResult) line() string {
	lagLive := ""
	if m.LagSinkLive > 0 {
		lagLive = fmt.Sprintf(" (during the lag measurement's small transactions: pipeline %s, sink %s)", benchkit.MiB(m.LagPipelineLive), benchkit.MiB(m.LagSinkLive))
	}
	return fmt.Sprintf("memory (one transaction of %d rows, %.1fs to write on the master, on the replica %.1fs after its commit): "+
		"rowcast pipeline peak RSS %s (%s before), peak Go heap %s, peak live heap after GC %s; "+
		"rowcast sink peak RSS %s (%s before), peak Go heap %s, peak live heap after GC %s%s",
		m.Rows, m.Write.Seconds(), m.Visible.Seconds(), benchkit.MiB(m.PipelineRSS), benchkit.MiB(m.PipelineBase), benchkit.MiB(m.PipelineHeap), benchkit.MiB(m.PipelineLive),
		benchkit.MiB(m.SinkRSS), benchkit.MiB(m.SinkBase), benchkit.MiB(m.SinkHeap), benchkit.MiB(m.SinkLive), lagLive)
}

// table is the plain-text result for the terminal.
func (b *bench) table() string {
	var s strings.Builder
	s.WriteString(b.resultTable().Text())
	if v := b.verdict(); v != "" {
		s.WriteString(v + "\n")
	}
	for _, l := range b.liveLines() {
		s.WriteString(l + "\n")
	}
	return s.String()
}

// section is this run's part of the doc, dated end.
func (b *bench) section(end time.Time) string {
	return benchkit.Section{
		Title:      end.Format("2006-01-02 15:04 UTC"),
		Conditions: b.conditions(),
		Table:      b.resultTable(),
		After:      b.after(),
	}.Markdown()
}

func (b *bench) conditions() []string {
	c, o := b.cond, b.o
	out := []string{
		c.Machine.String() + " (other work on the machine shares the cores)",
		fmt.Sprintf("MariaDB %s, three fresh instances of the benchmark's own (master, native replica, rowcast target), each %s; Kafka %s (the stack's broker); all on loopback",
			c.MariaDB, c.Settings, c.Kafka),
		fmt.Sprintf("rowcast %s, %s; sink settings: max_batch_rows %s, max_txn_merge %s", o.Commit, c.Go,
			setting(o.maxBatchRows, c.MaxBatchRows), setting(o.maxTxnMerge, c.MaxTxnMerge)),
		fmt.Sprintf("rows of about 190 bytes (BIGINT key, 2 INT, DECIMAL, 2 DATETIME, 3 VARCHAR); each workload written by %d connections, one statement per transaction; updates change 4 columns of every row", o.conns),
		"native: `CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos` from the position before the workloads; the IO thread fetched each workload while it was written; timed: `START SLAVE SQL_THREAD` until `@@gtid_slave_pos` holds the workload's last GTID (polled every 2 ms)",
		"rowcast: the pipeline service published each workload to a fresh topic while it was written; timed: a new sink worker (built as `rowcast sink` builds it) from Run until its committed checkpoint holds the workload's last GTID",
		fmt.Sprintf("%d measurement(s) per workload and side, each on tables of its own, alternating which side goes first; the median is reported (all runs in the runs column)", o.repeat),
		"CPU us per row: CPU time of native's mariadbd, and of rowcast's sink (this process) + mariadbd + Kafka broker, per row: less dependent on other load than the rates",
		fmt.Sprintf("rowcast ceiling: the rate at which rowcast's side would keep all %d CPUs busy with its measured CPU per row, and its ratio to native; the stages share the machine's CPUs with each other (native's replica uses about one), so no overlap of the stages gets past it, only less CPU per row", c.CPUs),
		"both replicas checked against the master with CHECKSUM TABLE at the end",
	}
	if o.cpuProfile != "" {
		out = append(out, "CPU profiling of the sink was on")
	}
	return out
}

// after is what follows the table: the verdict, the live measurements and
// the checksums.
func (b *bench) after() string {
	var s strings.Builder
	if v := b.verdict(); v != "" {
		fmt.Fprintf(&s, "%s.\n\n", strings.Replace(v, "goal", "Goal", 1))
	}
	for _, l := range b.liveLines() {
		fmt.Fprintf(&s, "- %s\n", strings.ToUpper(l[:1])+l[1:])
	}
	for _, ck := range b.checks {
		fmt.Fprintf(&s, "- %s\n", ck)
	}
	return s.String()
}

// setting is a sink setting as run: flag (0: not set) and the value in
// effect (0: unknown, no rowcast side ran).
func setting(flag, effective int) string {
	switch {
	case flag > 0:
		return fmt.Sprint(flag)
	case effective > 0:
		return fmt.Sprintf("%d (default)", effective)
	}
	return "default"
}
