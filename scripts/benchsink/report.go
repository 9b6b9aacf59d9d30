package main

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// goalRatio is the goal: rowcast applies at least as fast as the
// native serial replica, on every workload.
const goalRatio = 1.0

func krate(v float64) string { return fmt.Sprintf("%.1fk", v/1000) }

// cpuS is CPU seconds, "?" when unknown (the broker restarted meanwhile).
func cpuS(v float64) string {
	if math.IsNaN(v) {
		return "?"
	}
	return fmt.Sprintf("%.1f", v)
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

// get is the run of a workload and side with the median rate.
func (b *bench) get(workload, side string) (result, bool) {
	runs := b.runs(workload, side)
	if len(runs) == 0 {
		return result{}, false
	}
	slices.SortFunc(runs, func(x, y result) int { return cmp.Compare(x.rate(), y.rate()) })
	return runs[len(runs)/2], true // the upper median for an even count
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

type line struct {
	workload, shape, native, rowcast, ratio, runs, secs, commits, cpuNative, cpuRowcast, perRow, ceiling string
}

var header = line{"workload", "rows x txn size", "native rows/s", "rowcast rows/s", "rowcast/native", "runs native; rowcast",
	"seconds native / rowcast", "replica commits native / rowcast", "CPU s native: mariadbd", "CPU s rowcast: sink / mariadbd / kafka",
	"CPU us per row native / rowcast", "rowcast ceiling: all CPUs busy"}

func (b *bench) lines() []line {
	var out []line
	for _, sp := range b.spans {
		n, ok1 := b.get(sp.Name, sideNative)
		r, ok2 := b.get(sp.Name, sideRowcast)
		if !ok1 || !ok2 {
			continue
		}
		rates := func(side string) string {
			var p []string
			for _, x := range b.runs(sp.Name, side) {
				p = append(p, krate(x.rate()))
			}
			return strings.Join(p, " ")
		}
		rowcastCPU := r.CPU.Self + r.CPU.Server
		if !math.IsNaN(r.CPU.Kafka) {
			rowcastCPU += r.CPU.Kafka
		}
		out = append(out, line{
			workload:   sp.Name,
			shape:      fmt.Sprintf("%d x %d", sp.Rows, sp.Txn),
			native:     krate(n.rate()),
			rowcast:    krate(r.rate()),
			ratio:      fmt.Sprintf("%.2fx", r.rate()/n.rate()),
			runs:       rates(sideNative) + "; " + rates(sideRowcast),
			secs:       fmt.Sprintf("%.2f / %.2f", n.Took.Seconds(), r.Took.Seconds()),
			commits:    fmt.Sprintf("%.0f / %.0f", n.Server["Binlog_commits"], r.Server["Binlog_commits"]),
			cpuNative:  fmt.Sprintf("%.1f", n.CPU.Server),
			cpuRowcast: fmt.Sprintf("%.1f / %.1f / %s", r.CPU.Self, r.CPU.Server, cpuS(r.CPU.Kafka)),
			perRow:     fmt.Sprintf("%.1f / %.1f", 1e6*n.CPU.Server/float64(n.Rows), 1e6*rowcastCPU/float64(r.Rows)),
			ceiling:    b.ceiling(r, rowcastCPU, n.rate()),
		})
	}
	return out
}

func cells(l line) []string {
	return []string{l.workload, l.shape, l.native, l.rowcast, l.ratio, l.runs, l.secs, l.commits, l.cpuNative, l.cpuRowcast, l.perRow, l.ceiling}
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
	mark := "met"
	if !met {
		mark = "NOT met"
	}
	return fmt.Sprintf("goal (rowcast >= %.1fx the native serial replica on every workload): %s (%s)", goalRatio, mark, strings.Join(parts, ", "))
}

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
		lagLive := ""
		if m.LagSinkLive > 0 {
			lagLive = fmt.Sprintf(" (during the lag measurement's small transactions: pipeline %s, sink %s)", mib(m.LagPipelineLive), mib(m.LagSinkLive))
		}
		out = append(out, fmt.Sprintf("memory (one transaction of %d rows, %.1fs to write on the master, on the replica %.1fs after its commit): "+
			"rowcast pipeline peak RSS %s (%s before), peak Go heap %s, peak live heap after GC %s; "+
			"rowcast sink peak RSS %s (%s before), peak Go heap %s, peak live heap after GC %s%s",
			m.Rows, m.Write.Seconds(), m.Visible.Seconds(), mib(m.PipelineRSS), mib(m.PipelineBase), mib(m.PipelineHeap), mib(m.PipelineLive),
			mib(m.SinkRSS), mib(m.SinkBase), mib(m.SinkHeap), mib(m.SinkLive), lagLive))
	}
	return out
}

// table is the plain-text result for the terminal.
func (b *bench) table() string {
	rows := append([]line{header}, b.lines()...)
	width := make([]int, len(cells(header)))
	for _, l := range rows {
		for i, c := range cells(l) {
			width[i] = max(width[i], len(c))
		}
	}
	var s strings.Builder
	for _, l := range rows {
		for i, c := range cells(l) {
			fmt.Fprintf(&s, "%-*s  ", width[i], c)
		}
		s.WriteString("\n")
	}
	if v := b.verdict(); v != "" {
		s.WriteString(v + "\n")
	}
	for _, l := range b.liveLines() {
		s.WriteString(l + "\n")
	}
	return s.String()
}

func (b *bench) markers() (begin, end string) {
	day := time.Now().UTC().Format("2006-01-02")
	return "<!-- bench sink " + day + " begin -->", "<!-- bench sink " + day + " end -->"
}

const sinkHeading = "## Sink: `scripts/bench sink`"

const sinkIntro = sinkHeading + `

Apply rate of a sink worker into a MariaDB replica, beside MariaDB's own serial replication
replaying the same binlog range into a fresh replica with the same settings, in the same run;
end-to-end lag under a single writer; memory of a 1,000,000-row transaction. The benchmark
starts its own master, native replica and rowcast target (scripts/benchsink, settings from
scripts/lib/mariadb.cnf.in) beside the stack's Kafka. Both replicas apply from a ready source:
the native SQL thread from a relay log its IO thread filled while the workload was written;
the sink worker from a topic the pipeline filled while the workload was written. Run
` + "`scripts/bench sink -help`" + ` for the flags (e.g. ` + "`--rows`, `--cpuprofile DIR`" + `).
`

// section is this run's part of the doc.
func (b *bench) section() string {
	begin, end := b.markers()
	c := b.cond
	o := b.o
	var s strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&s, format, args...) }
	w("%s\n### %s\n\n", begin, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	w("Conditions:\n\n")
	w("- machine: %d CPUs (%s), %.1f GiB memory; load average (1/5/15 min) %s before the run, %s after (other work on the machine shares the cores)\n",
		c.CPUs, c.CPUModel, float64(c.MemTotal)/(1<<30), c.LoadBefore, c.LoadAfter)
	w("- MariaDB %s, three fresh instances of the benchmark's own (master, native replica, rowcast target), each %s; Kafka %s (the stack's broker); all on loopback\n",
		c.MariaDB, c.Settings, c.Kafka)
	w("- rowcast %s, %s; sink settings: max_batch_rows %s, max_txn_merge %s\n", o.commit, c.Go,
		setting(o.maxBatchRows, c.MaxBatchRows), setting(o.maxTxnMerge, c.MaxTxnMerge))
	w("- rows of about 190 bytes (BIGINT key, 2 INT, DECIMAL, 2 DATETIME, 3 VARCHAR); each workload written by %d connections, one statement per transaction; updates change 4 columns of every row\n", o.conns)
	w("- native: `CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos` from the position before the workloads; the IO thread fetched each workload while it was written; timed: `START SLAVE SQL_THREAD` until `@@gtid_slave_pos` holds the workload's last GTID (polled every 2 ms)\n")
	w("- rowcast: the pipeline service published each workload to a fresh topic while it was written; timed: a new sink worker (built as `rowcast sink` builds it) from Run until its committed checkpoint holds the workload's last GTID\n")
	w("- %d measurement(s) per workload and side, each on tables of its own, alternating which side goes first; the median is reported (all runs in the runs column)\n", o.repeat)
	w("- CPU us per row: CPU time of native's mariadbd, and of rowcast's sink (this process) + mariadbd + Kafka broker, per row: less dependent on other load than the rates\n")
	w("- rowcast ceiling: the rate at which rowcast's side would keep all %d CPUs busy with its measured CPU per row, and its ratio to native; the stages share the machine's CPUs with each other (native's replica uses about one), so no overlap of the stages gets past it, only less CPU per row\n", c.CPUs)
	w("- both replicas checked against the master with CHECKSUM TABLE at the end\n")
	if o.cpuProfile != "" {
		w("- CPU profiling of the sink was on\n")
	}
	w("\n| %s |\n|%s\n", strings.Join(cells(header), " | "), strings.Repeat("---|", len(cells(header))))
	for _, l := range b.lines() {
		w("| %s |\n", strings.Join(cells(l), " | "))
	}
	w("\n")
	if v := b.verdict(); v != "" {
		w("%s.\n\n", strings.Replace(v, "goal", "Goal", 1))
	}
	for _, l := range b.liveLines() {
		w("- %s\n", strings.ToUpper(l[:1])+l[1:])
	}
	for _, ck := range b.checks {
		w("- %s\n", ck)
	}
	w("%s\n", end)
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

// updateDoc puts this run's section into the Sink section of the doc:
// replacing a section of the same day, else at the end of the Sink section
// (created at the end of the doc when missing). Other sections are left as
// they are.
func (b *bench) updateDoc(path string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	doc := string(old)
	if doc == "" {
		doc = "# Benchmarks\n"
	}
	begin, end := b.markers()
	sec := strings.TrimSuffix(b.section(), "\n")
	if i, j := strings.Index(doc, begin), strings.Index(doc, end); i >= 0 && j > i {
		doc = doc[:i] + sec + doc[j+len(end):]
		return os.WriteFile(path, []byte(doc), 0o644)
	}
	h := strings.Index(doc, sinkHeading)
	if h < 0 {
		doc = strings.TrimRight(doc, "\n") + "\n\n" + sinkIntro + "\n" + sec + "\n"
		return os.WriteFile(path, []byte(doc), 0o644)
	}
	// The end of the Sink section: the next heading of level 2 (or 1).
	rest := doc[h+len(sinkHeading):]
	cut := len(doc)
	for _, m := range []string{"\n## ", "\n# "} {
		if k := strings.Index(rest, m); k >= 0 {
			cut = min(cut, h+len(sinkHeading)+k+1)
		}
	}
	doc = strings.TrimRight(doc[:cut], "\n") + "\n\n" + sec + "\n" + strings.TrimLeft("\n"+doc[cut:], "")
	return os.WriteFile(path, []byte(strings.TrimRight(doc, "\n")+"\n"), 0o644)
}
