package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// goalRate is the goal: rows per second per side, default settings.
const goalRate = 500_000

type report struct {
	o          options
	when       time.Time
	version    string
	setup      time.Duration
	reused     bool
	settle     time.Duration
	settled    bool
	avgRow     int64
	bufferPool int64
	dataLen    int64
	loadAfter  string
	results    []result
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
	mark := "NOT met"
	if m >= goalRate {
		mark = "met"
	}
	return fmt.Sprintf("goal (default settings): >= %s rows/s per side: %s (%s)", krate(goalRate), mark, krate(m))
}

func (r *report) rows() [][]string {
	var out [][]string
	seen := map[string]bool{}
	for _, x := range r.results {
		if seen[x.name] {
			continue
		}
		seen[x.name] = true
		d := r.runs(x.name)
		shown := median(d)
		rates := make([]string, len(d))
		for i, y := range d {
			rates[i] = krate(y.rate())
		}
		runs := strings.Join(rates, " ")
		eq := "equal"
		if !shown.equal {
			eq = "DIFFERENT"
		}
		c := shown.cpu
		perCPU := "-"
		if c.Replica > 0 {
			perCPU = krate(float64(shown.rows) / c.Replica)
		}
		out = append(out, []string{shown.name, krate(shown.rate()), runs, fmt.Sprintf("%.1f", shown.secs),
			fmt.Sprint(shown.chunks), fmt.Sprintf("%.1f / %.1f / %.1f / %.1f", c.Self, c.Master, c.Replica, c.Others()), perCPU, eq})
	}
	return out
}

var header = []string{"measurement", "rows/s per side", "runs", "seconds", "chunks", "CPU s bench / db1 / db2 / others", "rows per db2 CPU s", "result"}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\n%s\n", strings.Join(header, " | "))
	for _, l := range r.rows() {
		fmt.Fprintln(w, strings.Join(l, " | "))
	}
	fmt.Fprintln(w, r.verdict())
}

func (r *report) markers() (begin, end string) {
	day := r.when.Format("2006-01-02")
	return "<!-- bench verify " + day + " begin -->", "<!-- bench verify " + day + " end -->"
}

func (r *report) section() string {
	begin, end := r.markers()
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("%s\n### `scripts/bench verify`, %s\n\n", begin, r.when.Format("2006-01-02 15:04 UTC"))
	w("Conditions:\n\n")
	w("- machine: %d CPUs (%s), %.1f GiB memory; load average (1/5/15 min) %s before the run, %s after\n",
		runtime.NumCPU(), cpuModel(), float64(memTotal())/(1<<30), r.o.loadBefore, r.loadAfter)
	w("- services: MariaDB %s, db1 (master) and db2 (replica) on the same machine, loopback\n", r.version)
	w("- rowcast %s, %s\n", r.o.commit, runtime.Version())
	created := fmt.Sprintf("created on both sides at once, outside the binlog, in %.0fs", r.setup.Seconds())
	if r.reused {
		created = "created outside the binlog by an earlier run (--keep, --reuse)"
	}
	w("- table: N = %d rows, ~%d bytes per row on disk (AVG_ROW_LENGTH), %.2f GiB of data per side (InnoDB buffer pool %d MiB); BIGINT primary key, INT, nullable BIGINT, VARCHAR(40), DATETIME(6), DECIMAL(12,2), nullable VARCHAR(24); %s\n",
		r.o.rows, r.avgRow, float64(r.dataLen)/(1<<30), r.bufferPool>>20, created)
	settled := fmt.Sprintf("after %.0fs of waiting for both servers to flush the table's pages (dirty pages <= 1%% of the buffer pool)", r.settle.Seconds())
	if !r.settled {
		settled = fmt.Sprintf("after %.0fs of waiting for both servers to flush the table's pages, still above 1%% of the buffer pool (others' writes)", r.settle.Seconds())
	}
	w("- measured %s\n", settled)
	w("- verify: pipeline/verify as `rowcast verify` runs it, replica compared statically (no checkpoint: both sides are equal, so no chunk waits); the default configuration and parallel 4 %d times each, in turns (median reported), the other variants once\n", r.o.repeat)
	w("- db1's mariadbd CPU includes whatever other tests run on db1 meanwhile; db2's is the cleaner figure\n")
	w("- rows/s per side = N / wall time: each side reads and hashes all N rows\n")
	w("\n| %s |\n|---|--:|---|--:|--:|---|--:|---|\n", strings.Join(header, " | "))
	for _, l := range r.rows() {
		w("| %s |\n", strings.Join(l, " | "))
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
	if i >= 0 && j > i {
		doc = doc[:i] + strings.TrimSuffix(sec, "\n") + doc[j+len(end):]
	} else {
		doc = strings.TrimRight(doc, "\n") + "\n\n" + sec
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}
