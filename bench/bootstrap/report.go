package main

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
	"github.com/rowcast/rowcast/clone"
)

// The goals: snapshot through Kafka and clone at most 1.0x the
// dump's time; the snapshot into the topic at least 200k rows/s.
const (
	goalTimeRatio = 1.0
	goalTopicRate = 200_000
)

// bootstrapDoc is this benchmark's part of docs/BENCHMARKS.md: its runs go
// under its heading among the recorded runs.
var bootstrapDoc = benchkit.Doc{Bench: "bootstrap", Heading: "### Bootstrap: `scripts/bench bootstrap`"}

func krate(v float64) string { return fmt.Sprintf("%.1fk", v/1000) }

// table has a row per measurement of each round.
func (b *bench) table() benchkit.Table {
	t := benchkit.Table{Header: []string{"round", "method", "seconds", "rows/s", "time vs dump", "what the time is", "CPU s", "peak RSS"},
		Align: "rlrrrlll"}
	for _, r := range b.rounds {
		for _, m := range r.measurements() {
			t.Rows = append(t.Rows, b.row(r, m))
		}
	}
	return t
}

// measurements are the round's, in the report's order.
func (r *round) measurements() []measurement {
	return append([]measurement{r.dump, r.topicM, r.snap}, r.clones...)
}

func (b *bench) row(r *round, m measurement) []string {
	vs := "-"
	if m.method != topicMethod {
		vs = fmt.Sprintf("%.2fx", m.seconds/r.dump.seconds)
	}
	steps := m.steps
	if steps == "" {
		steps = "-"
	}
	return []string{fmt.Sprint(r.n), m.method, fmt.Sprintf("%.1f", m.seconds), krate(m.rate()), vs, steps, cpuSeconds(m.cpu), rssList(m.rss)}
}

// cpuSeconds lists CPU seconds by process.
func cpuSeconds(cpu []named) string {
	parts := make([]string, len(cpu))
	for i, c := range cpu {
		parts[i] = c.name + " " + benchkit.Seconds(c.v)
	}
	return strings.Join(parts, ", ")
}

// cpuLine lists CPU use by process in percent of one CPU over d, for the
// progress lines.
func cpuLine(cpu []named, d time.Duration) string {
	parts := make([]string, len(cpu))
	for i, c := range cpu {
		parts[i] = fmt.Sprintf("%s %.0f%%", c.name, 100*c.v/d.Seconds())
		if math.IsNaN(c.v) {
			parts[i] = c.name + " ?"
		}
	}
	return strings.Join(parts, ", ")
}

// rssList lists peak RSS by process.
func rssList(rss []named) string {
	parts := make([]string, len(rss))
	for i, m := range rss {
		parts[i] = m.name + " " + benchkit.MiB(int64(m.v))
	}
	return strings.Join(parts, ", ")
}

// median is the measurement of the rounds with the median time.
func (b *bench) median(pick func(*round) measurement) measurement {
	ms := make([]measurement, len(b.rounds))
	for i, r := range b.rounds {
		ms[i] = pick(r)
	}
	return benchkit.Median(ms, func(m measurement) float64 { return m.seconds })
}

// verdicts are the goals' outcomes, on the medians of the rounds.
func (b *bench) verdicts() []string {
	dump := b.median(func(r *round) measurement { return r.dump })
	topic := b.median(func(r *round) measurement { return r.topicM })
	snap := b.median(func(r *round) measurement { return r.snap })
	cl := b.median(func(r *round) measurement { return r.clones[0] })
	ratio := func(m measurement) string {
		x := m.seconds / dump.seconds
		return fmt.Sprintf("%s (%.2fx: %.1f s against %.1f s)", benchkit.Met(x <= goalTimeRatio), x, m.seconds, dump.seconds)
	}
	return []string{
		"Goal (snapshot through Kafka: at most 1.0x the dump's time): " + ratio(snap),
		"Goal (`rowcast clone`, then caught up: at most 1.0x the dump's time): " + ratio(cl),
		fmt.Sprintf("Goal (snapshot into the topic: at least %s rows/s): %s (%s rows/s; peak RSS of `rowcast pipeline` %s)",
			krate(goalTopicRate), benchkit.Met(topic.rate() >= goalTopicRate), krate(topic.rate()), benchkit.MiB(int64(topic.rss[0].v))),
		"Memory (not asserted): peak RSS " + rssList(append(snap.rss, cl.rss...)) + fmt.Sprintf(" for %d rows", b.o.rows),
	}
}

// text is the result for the terminal.
func (b *bench) text() string {
	var s strings.Builder
	s.WriteString("\n" + b.table().Text() + "\n")
	for _, v := range b.verdicts() {
		s.WriteString(v + "\n")
	}
	for _, r := range b.rounds {
		fmt.Fprintf(&s, "round %d checks: %s\n", r.n, strings.Join(r.checks, "; "))
	}
	return s.String()
}

// section is this run's part of docs/BENCHMARKS.md.
func (b *bench) section() string {
	var after strings.Builder
	for _, v := range b.verdicts() {
		fmt.Fprintf(&after, "- %s\n", v)
	}
	for _, r := range b.rounds {
		fmt.Fprintf(&after, "- Checks of round %d: %s.\n", r.n, strings.Join(r.checks, "; "))
	}
	return benchkit.Section{
		Title:      "`scripts/bench bootstrap`, " + b.when.Format("2006-01-02 15:04 UTC"),
		Conditions: b.conditions(),
		Table:      b.table(),
		After:      after.String(),
	}.Markdown()
}

func (b *bench) conditions() []string {
	return []string{
		b.machine.String(),
		fmt.Sprintf("MariaDB %s: four servers of the benchmark's own (the master, and the dump's, the snapshot's and the clone's replicas), "+
			"each with the local stack's settings (scripts/lib/mariadb.cnf.in: %s); Kafka %s (the stack's broker, a fresh topic per round); all on loopback",
			b.mariadb, b.settings, b.o.Kafka.Version),
		fmt.Sprintf("rowcast %s, %s; the product's defaults: `source.start: snapshot`, 10,000-row snapshot chunks, the sink's batch settings, `rowcast clone --parallel %d`",
			b.o.Commit, b.machine.Go, clone.DefaultParallel),
		b.dataCondition(),
		"dump: `mariadb-dump --no-defaults --single-transaction --databases " + benchDB + " | mariadb --no-defaults` (root over TCP, an OS pipe between them) into an empty replica, until mariadb exits",
		"snapshot through Kafka: `rowcast pipeline` on the empty topic and `rowcast sink` for an empty replica (its database created) started at the same moment; " +
			"in the topic when the master's snapshots table says the snapshot is done (its last end marker acknowledged by Kafka); " +
			"caught up when the replica's checkpoint reaches the offset after the topic's last message that is not a heartbeat, no table is bootstrapping, and the sink's /healthz is ok (polled every 100 ms)",
		"clone: `rowcast clone --from snap --to clone` of the caught-up snapshot replica into an empty one, the snapshot's pipeline and sink still running, " +
			"then `rowcast sink` for the new replica until caught up as above (clone floors behind its checkpoint count as done)",
		"before each method every server has flushed its dirty pages (at most 1% of the buffer pool, waited up to 3 min); odd rounds run the dump first, even ones last",
		"CPU s: CPU seconds of each process named, from /proc; \"others\" is the rest of the machine (other work shares the 2 CPUs). " +
			"Peak RSS: VmHWM of the rowcast processes (ru_maxrss once exited); printed, not asserted",
	}
}

// dataCondition describes the master's data.
func (b *bench) dataCondition() string {
	made := fmt.Sprintf("created outside the binlog (sql_log_bin=0, INSERT ... SELECT from the sequence engine) in %.0f s", b.data.created.Seconds())
	if b.data.reused {
		made = "created outside the binlog by an earlier run (--keep, --reuse)"
	}
	parts := make([]string, len(tables))
	for i, t := range tables {
		parts[i] = fmt.Sprintf("%s %d rows (%s)", t.name, b.data.rows[i], t.shape)
	}
	return fmt.Sprintf("data: %d rows in %s: %s; %.0f bytes of text per row on average (as mariadb-dump writes them), %.2f GiB of InnoDB data and indexes on the master; %s",
		b.o.rows, benchDB, strings.Join(parts, "; "), b.data.textRow, float64(b.data.dataLen)/(1<<30), made)
}
