package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
)

// Goals of the issue, for the insert workload's pipeline.
const (
	goalRate  = 200_000 // rows/s
	goalRatio = 0.40    // of the raw decode rate
)

// sourceDoc is this benchmark's part of docs/BENCHMARKS.md.
var sourceDoc = benchkit.Doc{Bench: "source", Heading: "## `scripts/bench source`"}

// conditions describe the machine and the services during the run.
type conditions struct {
	benchkit.Machine
	MariaDB string
	Kafka   string
}

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
	s.median = benchkit.Median(s.runs, result.rate)
	return s
}

func krate(v float64) string { return fmt.Sprintf("%.0fk", v/1000) }

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

// resultTable is the result table: a row per workload and stage.
func (r *report) resultTable() benchkit.Table {
	t := benchkit.Table{Header: []string{"workload", "stage", "rows/s (median)", "runs", "seconds", "first row after",
		"CPU s bench / mariadbd / kafka / others", "rows per bench CPU s", "of raw", "peak RSS / live heap"}, Align: "llrlrrlrrl"}
	for _, sp := range r.spans {
		raw := r.stat(sp.Name, stageRaw).median.rate()
		for _, st := range stages {
			t.Rows = append(t.Rows, r.row(sp, st, raw))
		}
	}
	return t
}

// row is the median run of one stage; raw is the raw stage's rate.
func (r *report) row(sp span, stage string, raw float64) []string {
	s := r.stat(sp.Name, stage)
	m := s.median
	ofRaw, mem := "", "-"
	if raw > 0 {
		ofRaw = fmt.Sprintf("%.0f%%", 100*m.rate()/raw)
	}
	if stage == stagePipeline {
		mem = fmt.Sprintf("%s / %s", benchkit.MiB(m.PeakRSS), benchkit.MiB(m.PeakHeap))
	}
	return []string{sp.Name, stage, krate(m.rate()), s.runRates(), fmt.Sprintf("%.2f", m.Took.Seconds()),
		m.FirstRow.Round(time.Millisecond).String(),
		fmt.Sprintf("%.1f / %.1f / %.1f / %.1f", m.CPU.Self, m.CPU.Proc(procMariaDB), m.CPU.Proc(procKafka), m.CPU.Others()),
		krate(m.rowsPerCPU()), ofRaw, mem}
}

// table is the plain-text result for the terminal.
func (r *report) table() string { return r.resultTable().Text() + r.verdict() + "\n" }

// verdict compares the insert workload's pipeline with the goals.
func (r *report) verdict() string {
	p := r.stat(benchkit.Insert, stagePipeline).median
	raw := r.stat(benchkit.Insert, stageRaw).median.rate()
	if p.Rows == 0 || raw == 0 {
		return "goal: not evaluated (no insert workload)"
	}
	ratio := p.rate() / raw
	return fmt.Sprintf("goal (insert pipeline): >= %s rows/s: %s (%s); >= %.0f%% of raw: %s (%.0f%%)",
		krate(goalRate), benchkit.Met(p.rate() >= goalRate), krate(p.rate()), 100*goalRatio, benchkit.Met(ratio >= goalRatio), 100*ratio)
}

// updateDoc records this run's section in the doc at path.
func (r *report) updateDoc(path string) error { return sourceDoc.Record(path, r.when, r.section()) }

// section is this run's part of docs/BENCHMARKS.md.
func (r *report) section() string {
	return benchkit.Section{
		Title:      "`scripts/bench source`, " + r.when.Format("2006-01-02 15:04 UTC"),
		Conditions: r.conditions(),
		Table:      r.resultTable(),
		After:      r.producerNotes() + "\n" + strings.Replace(r.verdict(), "goal", "Goal", 1),
	}.Markdown()
}

func (r *report) conditions() []string {
	c, o := r.cond, r.o
	out := []string{
		c.Machine.String(),
		fmt.Sprintf("services: MariaDB %s (db1, binlog ROW/FULL image/FULL metadata, CRC32 checksums), Kafka %s (one broker, KRaft), all on loopback on the same machine", c.MariaDB, c.Kafka),
		fmt.Sprintf("rowcast %s, %s", o.Commit, c.Go),
		fmt.Sprintf("N = %d rows per workload, %d rows per transaction (%d connections writing); %d measurements per stage, interleaved, median reported",
			o.rows, o.txn, o.insertConns, o.repeat),
	}
	for _, sp := range r.spans {
		raw := r.stat(sp.Name, stageRaw).median
		p := r.stat(sp.Name, stagePipeline).median
		out = append(out, fmt.Sprintf("%s workload: written in %.1fs; %d bytes of binlog row images per row change; %d bytes of Kafka key+value per message (before lz4)",
			sp.Name, sp.Took.Seconds(), raw.ImageBytes/int64(max(1, sp.Rows)), p.ValueBytes/max(1, p.Produced)))
	}
	out = append(out, fmt.Sprintf("raw: go-mysql BinlogSyncer with the reader's settings (source.Reader.SyncerConfig: ParseTime false, UseDecimal false, VerifyChecksum, EventCacheCount %d) and go-mysql's own rows-event decoding (the reader replaces it with source/decode.go, which leaves DATE/TIME/DATETIME/TIMESTAMP and short DECIMAL values packed for the reader to format)", o.eventBuffer))
	kafkaCfg := "default KafkaConfig (lz4, acks=all, 1 MiB batches, 2 ms linger)"
	if o.compression != "" || o.maxBatchBytes != 0 {
		kafkaCfg = fmt.Sprintf("KafkaConfig NOT the default: compression %q, MaxBatchBytes %d (empty/0 = default)", o.compression, o.maxBatchBytes)
	}
	out = append(out, fmt.Sprintf("pipeline: service.Publisher, %s, fresh topic created before the clock starts; time from Run to the acknowledgement of the last transaction", kafkaCfg))
	if o.cpuProfile != "" {
		out = append(out, "CPU profiling was on for the first measurement of each stage")
	}
	return out
}

// producerNotes say, per workload, how the pipeline's producer spent the
// median run.
func (r *report) producerNotes() string {
	var b strings.Builder
	for _, sp := range r.spans {
		p := r.stat(sp.Name, stagePipeline).median
		if p.Requests == 0 {
			continue
		}
		fmt.Fprintf(&b, "Pipeline, %s (median run): %d produce requests of %.0f messages on average; the producer was inside a produce request (send and wait for acks=all; the next batch is encoded and compressed meanwhile) %.0f%% of the time; other processes (not this benchmark, db1's mariadbd or Kafka) used %.1f CPU s, %.0f%% of the machine, and db1's mariadbd %.1f CPU s.\n",
			sp.Name, p.Requests, float64(p.Messages)/float64(p.Requests), 100*p.ProduceTime.Seconds()/p.Took.Seconds(),
			p.CPU.Others(), 100*p.CPU.Others()/(p.Took.Seconds()*float64(r.cond.CPUs)), p.CPU.Proc(procMariaDB))
	}
	return b.String()
}
