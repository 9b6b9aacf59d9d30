package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
)

// goalRate is the goal: rows per second per side, default settings.
const goalRate = 500_000

// verifyDoc is this benchmark's part of docs/BENCHMARKS.md.
var verifyDoc = benchkit.Doc{Bench: "verify", Heading: "## `scripts/bench verify`"}

type report struct {
	o          options
	when       time.Time
	machine    benchkit.Machine
	version    string
	setup      time.Duration
	reused     bool
	settle     time.Duration
	settled    bool
	avgRow     int64
	bufferPool int64
	dataLen    int64
	results    []result
}

// add records a measurement and shows it.
func (r *report) add(res result) {
	r.results = append(r.results, res)
	fmt.Fprintln(os.Stderr, res.line())
}

// runs returns the measurements of one variant (by name).
func (r *report) runs(name string) []result {
	var out []result
	for _, x := range r.results {
		if x.name == name {
			out = append(out, x)
		}
	}
	return out
}

func (r *report) defaults() []result {
	for _, x := range r.results {
		if x.variant.name == "default" {
			return r.runs(x.name)
		}
	}
	return nil
}

func median(rs []result) result { return benchkit.Median(rs, result.rate) }

func krate(v float64) string {
	if v >= 1e6 {
		return fmt.Sprintf("%.2fM", v/1e6)
	}
	return fmt.Sprintf("%.0fk", v/1e3)
}

func (r *report) verdict() string {
	d := r.defaults()
	if len(d) == 0 {
		return "goal: not measured"
	}
	m := median(d).rate()
	return fmt.Sprintf("goal (default settings): >= %s rows/s per side: %s (%s)", krate(goalRate), benchkit.Met(m >= goalRate), krate(m))
}

// table has a row per measurement, its median run.
func (r *report) table() benchkit.Table {
	t := benchkit.Table{Header: []string{"measurement", "rows/s per side", "runs", "seconds", "chunks",
		"CPU s bench / db1 / db2 / others", "rows per db2 CPU s", "result"}, Align: "lrlrrlrl"}
	seen := map[string]bool{}
	for _, x := range r.results {
		if !seen[x.name] {
			seen[x.name] = true
			t.Rows = append(t.Rows, r.row(r.runs(x.name)))
		}
	}
	return t
}

// row is one measurement's row: its median run, and the rates of all.
func (r *report) row(runs []result) []string {
	shown := median(runs)
	rates := make([]string, len(runs))
	for i, y := range runs {
		rates[i] = krate(y.rate())
	}
	eq := "equal"
	if !shown.equal {
		eq = "DIFFERENT"
	}
	c := shown.cpu
	perCPU := "-"
	if c.Proc(procReplica) > 0 {
		perCPU = krate(float64(shown.rows) / c.Proc(procReplica))
	}
	return []string{shown.name, krate(shown.rate()), strings.Join(rates, " "), fmt.Sprintf("%.1f", shown.secs), fmt.Sprint(shown.chunks),
		fmt.Sprintf("%.1f / %.1f / %.1f / %.1f", c.Self, c.Proc(procMaster), c.Proc(procReplica), c.Others()), perCPU, eq}
}

// text is the result for the terminal.
func (r *report) text() string { return "\n" + r.table().Text() + r.verdict() + "\n" }

// section is this run's part of docs/BENCHMARKS.md.
func (r *report) section() string {
	return benchkit.Section{
		Title:      "`scripts/bench verify`, " + r.when.Format("2006-01-02 15:04 UTC"),
		Conditions: r.conditions(),
		Table:      r.table(),
		After:      strings.Replace(r.verdict(), "goal", "Goal", 1),
	}.Markdown()
}

func (r *report) conditions() []string {
	created := fmt.Sprintf("created on both sides at once, outside the binlog, in %.0fs", r.setup.Seconds())
	if r.reused {
		created = "created outside the binlog by an earlier run (--keep, --reuse)"
	}
	settled := fmt.Sprintf("after %.0fs of waiting for both servers to flush the table's pages (dirty pages <= 1%% of the buffer pool)", r.settle.Seconds())
	if !r.settled {
		settled = fmt.Sprintf("after %.0fs of waiting for both servers to flush the table's pages, still above 1%% of the buffer pool (others' writes)", r.settle.Seconds())
	}
	return []string{
		r.machine.String(),
		fmt.Sprintf("services: MariaDB %s, db1 (master) and db2 (replica) on the same machine, loopback", r.version),
		fmt.Sprintf("rowcast %s, %s", r.o.Commit, r.machine.Go),
		fmt.Sprintf("table: N = %d rows, ~%d bytes per row on disk (AVG_ROW_LENGTH), %.2f GiB of data per side (InnoDB buffer pool %d MiB); BIGINT primary key, INT, nullable BIGINT, VARCHAR(40), DATETIME(6), DECIMAL(12,2), nullable VARCHAR(24); %s",
			r.o.rows, r.avgRow, float64(r.dataLen)/(1<<30), r.bufferPool>>20, created),
		"measured " + settled,
		fmt.Sprintf("verify: verify/ as `rowcast verify` runs it, replica compared statically (no checkpoint: both sides are equal, so no chunk waits); the default configuration and parallel 4 %d times each, in turns (median reported), the other variants once", r.o.repeat),
		"db1's mariadbd CPU includes whatever other tests run on db1 meanwhile; db2's is the cleaner figure",
		"rows/s per side = N / wall time: each side reads and hashes all N rows",
	}
}
