package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// Goals of the issue, for the insert workload's pipeline.
const (
	goalRate  = 200_000 // rows/s
	goalRatio = 0.40    // of the raw decode rate
)

type report struct {
	o       *options
	cond    conditions
	when    time.Time
	spans   []span
	results []result
}

func newReport(o *options, cond conditions, spans []span, results []result) *report {
	return &report{o: o, cond: cond, when: time.Now().UTC(), spans: spans, results: results}
}

// stat is the median run of one stage of one workload.
type stat struct {
	runs   []result
	median result // the run with the median rate
}

func (r *report) stat(workload, stage string) stat {
	var s stat
	for _, x := range r.results {
		if x.Workload == workload && x.Stage == stage {
			s.runs = append(s.runs, x)
		}
	}
	if len(s.runs) == 0 {
		return s
	}
	sorted := slices.Clone(s.runs)
	slices.SortFunc(sorted, func(a, b result) int {
		switch {
		case a.rate() < b.rate():
			return -1
		case a.rate() > b.rate():
			return 1
		}
		return 0
	})
	s.median = sorted[len(sorted)/2] // the upper median for an even count
	return s
}

func krate(v float64) string { return fmt.Sprintf("%.0fk", v/1000) }

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func (s stat) runRates() string {
	var parts []string
	for _, x := range s.runs {
		parts = append(parts, krate(x.rate()))
	}
	return strings.Join(parts, " ")
}

// rowsPerCPU is row changes per CPU second of the bench process.
func (x result) rowsPerCPU() float64 {
	if x.CPU.Self <= 0 {
		return 0
	}
	return float64(x.Rows) / x.CPU.Self
}

type line struct {
	workload, stage, median, runs, secs, first, cpu, perCPU, ofRaw, mem string
}

func (r *report) lines() []line {
	var out []line
	for _, sp := range r.spans {
		raw := r.stat(sp.Name, stageRaw).median.rate()
		for _, st := range stages {
			s := r.stat(sp.Name, st)
			m := s.median
			l := line{workload: sp.Name, stage: st, median: krate(m.rate()), runs: s.runRates(),
				secs: fmt.Sprintf("%.2f", m.Took.Seconds()), first: m.FirstRow.Round(time.Millisecond).String(),
				cpu:    fmt.Sprintf("%.1f / %.1f / %.1f / %.1f", m.CPU.Self, m.CPU.MariaDB, m.CPU.Kafka, m.CPU.Others()),
				perCPU: krate(m.rowsPerCPU()), mem: "-"}
			if raw > 0 {
				l.ofRaw = fmt.Sprintf("%.0f%%", 100*m.rate()/raw)
			}
			if st == stagePipeline {
				l.mem = fmt.Sprintf("%s / %s", mib(m.PeakRSS), mib(m.PeakHeap))
			}
			out = append(out, l)
		}
	}
	return out
}

var header = line{"workload", "stage", "rows/s (median)", "runs", "s", "first row", "CPU s bench/mariadbd/kafka/others", "rows per bench CPU s", "of raw", "peak RSS / heap"}

// table is the plain-text result for the terminal.
func (r *report) table() string {
	rows := append([]line{header}, r.lines()...)
	cells := func(l line) []string {
		return []string{l.workload, l.stage, l.median, l.runs, l.secs, l.first, l.cpu, l.perCPU, l.ofRaw, l.mem}
	}
	width := make([]int, len(cells(header)))
	for _, l := range rows {
		for i, c := range cells(l) {
			width[i] = max(width[i], len(c))
		}
	}
	var b strings.Builder
	for _, l := range rows {
		for i, c := range cells(l) {
			fmt.Fprintf(&b, "%-*s  ", width[i], c)
		}
		b.WriteString("\n")
	}
	b.WriteString(r.verdict() + "\n")
	return b.String()
}

// verdict compares the insert workload's pipeline with the goals.
func (r *report) verdict() string {
	p := r.stat("insert", stagePipeline).median
	raw := r.stat("insert", stageRaw).median.rate()
	if p.Rows == 0 || raw == 0 {
		return "goal: not evaluated (no insert workload)"
	}
	ratio := p.rate() / raw
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	return fmt.Sprintf("goal (insert pipeline): >= %s rows/s: %s (%s); >= %.0f%% of raw: %s (%.0f%%)",
		krate(goalRate), mark(p.rate() >= goalRate), krate(p.rate()), 100*goalRatio, mark(ratio >= goalRatio), 100*ratio)
}

func (r *report) markers() (begin, end string) {
	day := r.when.Format("2006-01-02")
	return "<!-- bench source " + day + " begin -->", "<!-- bench source " + day + " end -->"
}

// section is this run's part of docs/BENCHMARKS.md.
func (r *report) section() string {
	begin, end := r.markers()
	c := r.cond
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("%s\n### `scripts/bench source`, %s\n\n", begin, r.when.Format("2006-01-02 15:04 UTC"))
	w("Conditions:\n\n")
	w("- machine: %d CPUs (%s), %.1f GiB memory; load average (1/5/15 min) %s before the run, %s after\n",
		c.CPUs, c.CPUModel, float64(c.MemTotal)/(1<<30), c.LoadBefore, c.LoadAfter)
	w("- services: MariaDB %s (db1, binlog ROW/FULL image/FULL metadata, CRC32 checksums), Kafka %s (one broker, KRaft), all on loopback on the same machine\n", c.MariaDB, c.Kafka)
	w("- rowcast %s, %s\n", r.o.commit, c.Go)
	w("- N = %d rows per workload, %d rows per transaction (%d connections writing); %d measurements per stage, interleaved, median reported\n",
		r.o.rows, r.o.txn, r.o.insertConns, r.o.repeat)
	for _, sp := range r.spans {
		raw := r.stat(sp.Name, stageRaw).median
		p := r.stat(sp.Name, stagePipeline).median
		w("- %s workload: written in %.1fs; %d bytes of binlog row images per row change; %d bytes of Kafka key+value per message (before lz4)\n",
			sp.Name, sp.Took.Seconds(), raw.ImageBytes/int64(max(1, sp.Rows)), p.ValueBytes/max(1, p.Produced))
	}
	w("- raw: go-mysql BinlogSyncer with the reader's settings (source.Reader.SyncerConfig: ParseTime false, UseDecimal false, VerifyChecksum, EventCacheCount %d) and go-mysql's own rows-event decoding (the reader replaces it with source/decode.go, which leaves DATE/TIME/DATETIME/TIMESTAMP and short DECIMAL values packed for the reader to format)\n", r.o.eventBuffer)
	kafkaCfg := "default KafkaConfig (lz4, acks=all, 1 MiB batches, 2 ms linger)"
	if r.o.compression != "" || r.o.maxBatchBytes != 0 {
		kafkaCfg = fmt.Sprintf("KafkaConfig NOT the default: compression %q, MaxBatchBytes %d (empty/0 = default)", r.o.compression, r.o.maxBatchBytes)
	}
	w("- pipeline: service.Publisher, %s, fresh topic created before the clock starts; time from Run to the acknowledgement of the last transaction\n", kafkaCfg)
	if r.o.cpuProfile != "" {
		w("- CPU profiling was on for the first measurement of each stage\n")
	}
	w("\n| workload | stage | rows/s (median) | runs | seconds | first row after | CPU s bench / mariadbd / kafka / others | rows per bench CPU s | of raw | peak RSS / live heap |\n")
	w("|---|---|--:|---|--:|--:|---|--:|--:|---|\n")
	for _, l := range r.lines() {
		w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", l.workload, l.stage, l.median, l.runs, l.secs, l.first, l.cpu, l.perCPU, l.ofRaw, l.mem)
	}
	w("\n")
	for _, sp := range r.spans {
		p := r.stat(sp.Name, stagePipeline).median
		if p.Requests == 0 {
			continue
		}
		w("Pipeline, %s (median run): %d produce requests of %.0f messages on average; the producer was inside a produce request (send and wait for acks=all; the next batch is encoded and compressed meanwhile) %.0f%% of the time; other processes (not this benchmark, db1's mariadbd or Kafka) used %.1f CPU s, %.0f%% of the machine, and db1's mariadbd %.1f CPU s.\n",
			sp.Name, p.Requests, float64(p.Messages)/float64(p.Requests), 100*p.ProduceTime.Seconds()/p.Took.Seconds(),
			p.CPU.Others(), 100*p.CPU.Others()/(p.Took.Seconds()*float64(r.cond.CPUs)), p.CPU.MariaDB)
	}
	w("\n%s\n%s\n", strings.Replace(r.verdict(), "goal", "Goal", 1), end)
	return b.String()
}

// updateDoc replaces this day's section of path, or appends one.
func (r *report) updateDoc(path string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	doc := string(old)
	if doc == "" {
		doc = "# Benchmarks\n"
	}
	begin, end := r.markers()
	sec := r.section()
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	switch last := lastSourceSection(doc); {
	case i >= 0 && j > i:
		doc = doc[:i] + strings.TrimSuffix(sec, "\n") + doc[j+len(end):]
	case last >= 0:
		// After the newest section of this benchmark, so that it stays under
		// its heading when other benchmarks' sections follow.
		doc = doc[:last] + "\n\n" + strings.TrimSuffix(sec, "\n") + doc[last:]
	default:
		doc = strings.TrimRight(doc, "\n") + "\n\n" + sec
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}

// lastSourceSection returns the offset just after the last end marker of a
// source section, -1 when there is none.
func lastSourceSection(doc string) int {
	const prefix = "<!-- bench source "
	last := -1
	for off := 0; ; {
		k := strings.Index(doc[off:], prefix)
		if k < 0 {
			return last
		}
		k += off
		e := strings.Index(doc[k:], "-->")
		if e < 0 {
			return last
		}
		e += k + len("-->")
		if strings.HasSuffix(doc[k:e], " end -->") {
			last = e
		}
		off = e
	}
}
