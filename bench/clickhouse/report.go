package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
)

// chDoc is this benchmark's part of docs/BENCHMARKS.md.
var chDoc = benchkit.Doc{Bench: "clickhouse", Heading: "### ClickHouse: `scripts/bench clickhouse`"}

// Goals of issue #17's benchmark.
const (
	goalRatio = 0.5
	goalLag   = 2 * time.Second
)

func rate(v float64) string { return fmt.Sprintf("%.1fk", v/1000) }

func (b *bench) table() benchkit.Table {
	t := benchkit.Table{
		Header: []string{"workload", "rows x txn size", "rowcast rows/s", "ClickHouse's own ingest rows/s", "rowcast/own", "seconds rowcast / own", "rowcast's first rows after",
			"CPU s rowcast: sink / clickhouse / kafka", "CPU s own ingest: clickhouse", "sink peak RSS", "Native file"},
		Align: "llrrrrrllrr",
	}
	for _, r := range b.results {
		t.Rows = append(t.Rows, []string{r.w.name, fmt.Sprintf("%d x %d", r.w.rows, r.w.txn), rate(r.rowcastRate()), rate(r.nativeRate()),
			fmt.Sprintf("%.2fx", r.ratio()), fmt.Sprintf("%.2f / %.2f", r.rowcastSec, r.nativeSec), fmt.Sprintf("%.2f s", r.firstSec),
			fmt.Sprintf("%s / %s / %s", benchkit.Seconds(r.sinkCPU), benchkit.Seconds(r.chCPU), benchkit.Seconds(r.kafkaCPU)),
			benchkit.Seconds(r.nativeCPU), benchkit.MiB(r.sinkRSS), benchkit.MiB(r.nativeBytes)})
	}
	return t
}

func (b *bench) section(end time.Time) benchkit.Section {
	o := b.o
	return benchkit.Section{
		Title: fmt.Sprintf("`scripts/bench clickhouse`, %s", end.Format("2006-01-02 15:04 UTC")),
		Conditions: []string{
			b.machine.String(),
			fmt.Sprintf("the local stack's servers, shared with other work: MariaDB %s (db1, the master), ClickHouse %s (HTTP), Kafka %s; all on loopback", b.versions.mariadb, b.versions.clickhouse, o.Kafka.Version),
			fmt.Sprintf("rowcast %s, %s; the product's defaults (the ClickHouse sink's flush at 100,000 rows, 16 MiB or 1 s)", o.Commit, b.machine.Go),
			fmt.Sprintf("rows: the bench table of bench/source and bench/sink (~190 bytes: BIGINT key, two INT, DECIMAL(12,2), DATETIME, DATETIME(3), three VARCHARs), written by %d connections, each transaction one multi-row INSERT", o.conns),
			"rowcast: `rowcast pipeline` publishes the workload to a fresh topic while it is written; then `rowcast sink --replica olap` is started on the full topic and timed from its start (process start-up included) until `SELECT count()` of the ClickHouse table reaches the workload's rows (polled every 50 ms); \"first rows after\" is when the count was first above 0 (start-up, then the first 100,000-row block or a 1 s flush)",
			"ClickHouse's own ingest: the sink's table exported as one Native file (`SELECT * ... FORMAT Native`, the same rows with their `_version` and `_deleted`), POSTed over HTTP as `INSERT INTO copy FORMAT Native` into an empty table of the same definition, timed until the answer",
			"CPU s: CPU seconds of each process named, from /proc",
		},
		Table: b.table(),
		After: b.after(),
	}
}

func (b *bench) after() string {
	var lines []string
	for _, r := range b.results {
		lines = append(lines, fmt.Sprintf("- Goal (rowcast >= %.0f%% of ClickHouse's own ingest), %s: %s (%.0f%%)", goalRatio*100, r.w.name, benchkit.Met(r.ratio() >= goalRatio), r.ratio()*100))
	}
	if l := b.lag; l != nil {
		lines = append(lines,
			fmt.Sprintf("- Lag (`rowcast pipeline` + `rowcast sink` processes, one client committing %d-row transactions at %d/s for %v; it reached %.0f/s): commit on the master -> row visible in ClickHouse (`max(id)` polled every %v), over %d transactions: p50 %s, p99 %s, max %s",
				b.o.lagTxn, b.o.lagRate, b.o.lagDuration, l.rate, b.o.lagPoll, l.txns, ms(l.p50), ms(l.p99), ms(l.max)),
			fmt.Sprintf("- Goal (lag p99 < %v): %s (%s)", goalLag, benchkit.Met(l.p99 < goalLag), ms(l.p99)),
			fmt.Sprintf("- Memory (peak RSS, not asserted): sink %s while applying the %s workload; during the lag measurement sink %s, pipeline %s",
				benchkit.MiB(b.maxRSS()), b.results[0].w.name, benchkit.MiB(l.sinkRSS), benchkit.MiB(l.pipelineRSS)))
	}
	for _, c := range b.checks {
		lines = append(lines, "- "+c)
	}
	return strings.Join(lines, "\n")
}

func (b *bench) maxRSS() int64 {
	var m int64
	for _, r := range b.results {
		m = max(m, r.sinkRSS)
	}
	return m
}

func ms(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }
