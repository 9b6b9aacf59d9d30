package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
)

// soakDoc is where --doc records a run that passed.
var soakDoc = benchkit.Doc{Bench: "soak", Heading: "### Soak: `scripts/soak`"}

// faultRun is one injected fault.
type faultRun struct {
	name, detail string
	at           time.Time
	took         time.Duration // to inject it and start again what it stopped
}

// result is what a run did and found.
type result struct {
	start                time.Time
	seed                 uint64
	dir, database, topic string
	faultPhase           time.Duration
	converged            time.Duration // load stopped to every replica equal
	faults               []faultRun

	confirmed, unknown, unknownCommitted, ledger int
	topicMessages, topicTxns                     int
	reads, misses                                map[string]int64
	clientErrors                                 string

	err error
}

// collect takes the load's and the checker's figures.
func (r *result) collect(s *soak) {
	if s.check == nil {
		return
	}
	r.reads, r.misses = map[string]int64{}, map[string]int64{}
	for _, n := range nodes {
		r.reads[n], r.misses[n] = s.check.reads[n].Load(), s.check.misses[n].Load()
	}
	r.clientErrors = s.load.errorSummary()
	if r.ledger == 0 {
		r.confirmed = int(s.load.committed.Load())
	}
}

// kindCount is how many faults of a kind a run injected.
type kindCount struct {
	name   string
	n      int
	detail string // of the switchovers: what they did
	took   []time.Duration
}

// counts are the faults by kind, in the order of the kinds.
func (r *result) counts() []kindCount {
	var out []kindCount
	for _, f := range append(append([]fault(nil), faults...), switchover, switchBack) {
		k := kindCount{name: f.name}
		for _, run := range r.faults {
			if run.name != f.name {
				continue
			}
			k.n++
			k.took = append(k.took, run.took)
			if f.name == switchover.name || f.name == switchBack.name {
				k.detail = run.detail
			}
		}
		out = append(out, k)
	}
	return out
}

func (r *result) print(w io.Writer) {
	fmt.Fprintf(w, "\n== soak: faults for %v (run %v), seed %d\n", r.faultPhase.Round(time.Second), time.Since(r.start).Round(time.Second), r.seed)
	if r.err == nil {
		fmt.Fprintf(w, "faults survived: %d\n", len(r.faults))
	} else {
		fmt.Fprintf(w, "faults injected before the failure: %d\n", len(r.faults))
	}
	for _, k := range r.counts() {
		fmt.Fprintf(w, "  %-36s %4d  %s\n", k.name, k.n, k.detail)
	}
	for _, line := range r.figures() {
		fmt.Fprintln(w, line)
	}
	if r.err != nil {
		fmt.Fprintf(w, "result: FAIL: %v\n", r.err)
		fmt.Fprintf(w, "kept for a look: database %s, topic %s, logs in %s\n", r.database, r.topic, r.dir)
		return
	}
	fmt.Fprintln(w, "result: PASS")
}

// figures are the run's transfers, reads and checks, a line each.
func (r *result) figures() []string {
	lines := []string{
		fmt.Sprintf("transfers: %d committed (%d acknowledged; %d COMMITs without an answer, %d of them committed)",
			r.confirmed+r.unknownCommitted, r.confirmed, r.unknown, r.unknownCommitted),
	}
	if r.clientErrors != "" {
		lines = append(lines, "errors the clients saw (they retry): "+r.clientErrors)
	}
	if r.reads != nil {
		lines = append(lines, fmt.Sprintf("consistent reads of the total, by node: %s (no answer while down: %s)",
			perNode(r.reads), perNode(r.misses)))
	}
	if r.err == nil {
		lines = append(lines,
			fmt.Sprintf("every replica equal to the master %v after the load stopped; rowcast verify: equal", r.converged.Round(100*time.Millisecond)),
			fmt.Sprintf("ledger: %d transfers on the master and on every replica, none lost or doubled; every balance follows the ledger", r.ledger),
			fmt.Sprintf("topic: %d messages, %d transactions once copies are skipped; each transfer in exactly one", r.topicMessages, r.topicTxns))
	}
	return lines
}

func perNode(m map[string]int64) string {
	parts := make([]string, len(nodes))
	for i, n := range nodes {
		parts[i] = fmt.Sprintf("%s %d", n, m[n])
	}
	return strings.Join(parts, ", ")
}

// section is the run's dated section of docs/BENCHMARKS.md.
func (r *result) section(o options, m benchkit.Machine) string {
	sec := benchkit.Section{
		Title: fmt.Sprintf("`scripts/soak %g`, %s", o.minutes, r.start.UTC().Format("2006-01-02 15:04 MST")),
		Conditions: []string{
			m.String(),
			fmt.Sprintf("rowcast %s, %s; the reader and the sinks of two replicas as `rowcast` processes of their own", o.Commit, m.Go),
			fmt.Sprintf("load: %d clients, at most %d transfers/s, %d accounts, as an application user without READ_ONLY ADMIN", o.clients, o.rate, o.accounts),
			fmt.Sprintf("faults every %v to %v after the previous one recovered; seed %d", o.gapMin, o.gapMax, r.seed),
		},
		Table: benchkit.Table{Header: []string{"fault", "survived", "inject and restart, median / max", "what it did"}, Align: "lrrl"},
		After: fmt.Sprintf("Faults survived: %d in %v. Result: PASS.\n\n- %s", len(r.faults), r.faultPhase.Round(time.Second), strings.Join(r.figures(), "\n- ")),
	}
	for _, k := range r.counts() {
		sec.Table.Rows = append(sec.Table.Rows, []string{k.name, fmt.Sprint(k.n), tookRange(k.took), orDash(k.detail)})
	}
	return sec.Markdown()
}

// tookRange is the median and the maximum of ds.
func tookRange(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	med := benchkit.Median(ds, func(d time.Duration) float64 { return float64(d) })
	longest := ds[0]
	for _, d := range ds {
		longest = max(longest, d)
	}
	return fmt.Sprintf("%v / %v", med.Round(100*time.Millisecond), longest.Round(100*time.Millisecond))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
