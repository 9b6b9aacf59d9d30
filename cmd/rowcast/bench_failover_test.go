package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/internal/testenv"
)

var totalRe = regexp.MustCompile(`; total ([^;\s]+)`)

// benchRound is one measured promotion.
type benchRound struct {
	kind     string // planned, automatic
	from, to string
	refused  string        // write downtime rowcast promote reports (planned)
	clients  time.Duration // clients: last commit on the old master to the first on the new (planned), SIGKILL to the first on the new (automatic)
	total    string        // rowcast promote's total (planned)
	lost     int           // transactions the rejoin reported lost (automatic)
}

// TestBenchFailover is `scripts/bench failover`, not a test: with
// ROWCAST_BENCH_FAILOVER=R it runs R planned switchovers and R automatic
// failovers (SIGKILL of the master's mariadbd) under a transfer load of 4
// clients, and reports the write downtime of each. ROWCAST_BENCH_OUT names
// a file for the Markdown result; ROWCAST_BENCH_DOC a BENCHMARKS.md to add
// it to (a same-day section is replaced).
func TestBenchFailover(t *testing.T) {
	rounds, _ := strconv.Atoi(os.Getenv("ROWCAST_BENCH_FAILOVER"))
	if rounds <= 0 {
		t.Skip("a benchmark: `scripts/bench failover` runs it (ROWCAST_BENCH_FAILOVER=rounds)")
	}
	needDisruptive(t)
	unreachable := os.Getenv("ROWCAST_BENCH_UNREACHABLE_AFTER")
	if unreachable == "" {
		unreachable = "5s"
	}
	e := newFailoverEnv(t, fmt.Sprintf("failover: {mode: auto, unreachable_after: %s, check_interval: 500ms, lease_ttl: 15s}\n", unreachable))
	t.Cleanup(func() {
		for _, n := range []string{"db1", "db2", "db3"} {
			if !answers(n) {
				stack(t, "start", n)
			}
		}
	})
	pipe, sink2, sink3 := e.start()
	b := &failoverBench{t: t, e: e, sinks: map[string]*proc{"db2": sink2, "db3": sink3}, master: "db1"}
	if os.Getenv("ROWCAST_BENCH_HAPROXY") == "1" {
		b.throughHAProxy()
	} else {
		b.load = newTransferLoad(e, 100, "db1", "db2", "db3")
	}
	b.load.log = &b.commits
	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	wg := b.load.run(ctx, 4)
	for i := 0; i < rounds; i++ {
		b.planned()
	}
	for i := 0; i < rounds; i++ {
		b.automatic()
	}
	stopLoad()
	wg.Wait()
	waitEqual(t, b.master, nextNode(b.master), e.database, 2*time.Minute)
	b.load.checkLedgerAllowingLoss(t, b.master)

	report := benchReport(b.results, rounds, unreachable, b.load.commits, b.haproxy)
	t.Log("\n" + report)
	writeBenchReport(t, report, benchTitle(b.haproxy))
	for _, s := range b.sinks {
		s.cmd.Process.Signal(os.Interrupt)
	}
	pipe.stop(t)
}

// failoverBench is the state of TestBenchFailover between rounds.
type failoverBench struct {
	t       *testing.T
	e       *failoverEnv
	load    *transferLoad
	commits []commitAt
	sinks   map[string]*proc // by node
	master  string
	results []benchRound
	haproxy bool // the clients write through HAProxy's write port
}

// throughHAProxy starts the shipped HAProxy config, checking against the
// pipeline service, and sends the clients to its write port only: the
// downtime is what an application behind it sees.
func (b *failoverBench) throughHAProxy() {
	_, b.load = loadThroughHAProxy(b.t, b.e, 100)
	b.haproxy = true
}

// nextNode is the node promoted after n.
func nextNode(n string) string { return map[string]string{"db1": "db2", "db2": "db3", "db3": "db1"}[n] }

// planned promotes the next node with rowcast promote and rejoins the old
// master.
func (b *failoverBench) planned() {
	t, from, to := b.t, b.master, nextNode(b.master)
	time.Sleep(3 * time.Second)
	start := time.Now()
	out := mustRowcast(t, "promote", "--config", b.e.cfg, "--replica", to)
	r := benchRound{kind: "planned", from: from, to: to}
	if m := downtimeRe.FindStringSubmatch(out); m != nil {
		r.refused = m[1]
	}
	if m := totalRe.FindStringSubmatch(out); m != nil {
		r.total = m[1]
	}
	r.clients = b.plannedGap(start, from, to)
	t.Logf("planned %s -> %s: writes refused %s (promote), %v (clients)\n%s", from, to, r.refused, r.clients, out)
	b.results = append(b.results, r)
	b.stopped(to)
	b.rejoin(from, false)
	b.master = to
}

// plannedGap is the clients' time without a commit at a switchover that
// started at start: from the last commit on from to the first on to, or
// through HAProxy, where commits do not say their node, the longest gap in
// the 10 s after start. -1 if none came within 30 s.
func (b *failoverBench) plannedGap(start time.Time, from, to string) time.Duration {
	if b.haproxy {
		time.Sleep(time.Until(start.Add(10 * time.Second)))
		b.load.mu.Lock()
		defer b.load.mu.Unlock()
		gap, _ := longestGapWithin(b.commits, start, start.Add(10*time.Second))
		return gap
	}
	gap := time.Duration(-1)
	for deadline := time.Now().Add(30 * time.Second); gap < 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		gap = clientGap(b.load, &b.commits, start, from, to)
	}
	return gap
}

// longestGapWithin is the longest time without a commit of log between
// from and to, counting from the last commit before from.
func longestGapWithin(log []commitAt, from, to time.Time) (time.Duration, time.Time) {
	var in []commitAt
	for _, c := range log {
		switch {
		case c.at.Before(from):
			in = []commitAt{c}
		case c.at.Before(to):
			in = append(in, c)
		}
	}
	return longestGap(in)
}

// automatic SIGKILLs the master's mariadbd, waits for the automatic
// failover's first commit on another node, and rejoins the old master.
func (b *failoverBench) automatic() {
	t, from := b.t, b.master
	time.Sleep(3 * time.Second)
	killed := killMariadb(t, from)
	to, first := b.firstCommitAway(killed)
	r := benchRound{kind: "automatic", from: from, to: to, clients: first.Sub(killed)}
	b.stopped(to)
	stack(t, "start", from)
	r.lost = b.rejoin(from, true)
	t.Logf("automatic %s -> %s: %v from SIGKILL to the first commit on %s; %d transactions lost", from, to, r.clients, to, r.lost)
	b.results = append(b.results, r)
	b.master = to
}

// firstCommitAway waits for the first commit after killed on a node other
// than the master. Through HAProxy, a commit acknowledged 500 ms after the
// kill is the new master's, which the nodes' epoch index names.
func (b *failoverBench) firstCommitAway(killed time.Time) (node string, at time.Time) {
	if b.haproxy {
		at = b.load.firstLoggedAfter(b.t, killed.Add(500*time.Millisecond), 2*time.Minute)
		return statusJSON(b.t, b.e.cfg).Master.Node, at
	}
	waitFor(b.t, 2*time.Minute, "a commit on a new master", func() bool {
		b.load.mu.Lock()
		defer b.load.mu.Unlock()
		for _, c := range b.commits {
			if c.at.After(killed) && c.node != b.master {
				node, at = c.node, c.at
				return true
			}
		}
		return false
	})
	return node, at
}

// rejoin brings the old master back as a replica, waits until it follows,
// and returns how many transactions it lost.
func (b *failoverBench) rejoin(node string, undo bool) int {
	t := b.t
	args := []string{"rejoin", "--config", b.e.cfg, "--node", node, "--loss-file", filepath.Join(t.TempDir(), "loss.jsonl")}
	if undo {
		args = append(args, "--undo-loss")
	}
	out := mustRowcast(t, args...)
	lost := 0
	if m := lostRe.FindStringSubmatch(out); m != nil {
		lost, _ = strconv.Atoi(m[1])
	}
	b.sinks[node] = startRowcast(t, "sink", "--config", b.e.cfg, "--replica", node)
	waitCaughtUp(t, node, b.e.topic)
	return lost
}

var lostRe = regexp.MustCompile(`(\d+) transactions never reached the topic`)

// stopped waits for the sink of a promoted node to stop by itself.
func (b *failoverBench) stopped(node string) {
	select {
	case <-b.sinks[node].done:
	case <-time.After(time.Minute):
		b.t.Fatalf("the sink of the promoted %s did not stop", node)
	}
}

// writeBenchReport writes the report to ROWCAST_BENCH_OUT and adds it to
// ROWCAST_BENCH_DOC, when they are set.
func writeBenchReport(t *testing.T, report, title string) {
	if p := os.Getenv("ROWCAST_BENCH_OUT"); p != "" {
		if err := os.WriteFile(p, []byte(report), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if p := os.Getenv("ROWCAST_BENCH_DOC"); p != "" {
		if err := addBenchSection(p, report, title); err != nil {
			t.Fatal(err)
		}
	}
}

// clientGap is the time between the last commit on from and the first on
// to, after start.
func clientGap(l *transferLoad, log *[]commitAt, start time.Time, from, to string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var last, first time.Time
	for _, c := range *log {
		if c.at.Before(start) {
			if c.node == from {
				last = c.at
			}
			continue
		}
		if c.node == from && first.IsZero() {
			last = c.at
		}
		if c.node == to && first.IsZero() {
			first = c.at
		}
	}
	if first.IsZero() || last.IsZero() {
		return -1
	}
	return first.Sub(last)
}

// waitCaughtUp waits until a replica's checkpoint reaches the topic's end
// offset as of the call.
func waitCaughtUp(t *testing.T, node, topic string) {
	t.Helper()
	end, err := changelog.EndOffset(context.Background(), changelog.Config{Brokers: testenv.KafkaBrokers(), Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	db := rootDB(t, node)
	defer db.Close()
	waitFor(t, 2*time.Minute, node+" to apply the topic", func() bool {
		var off int64
		err := db.QueryRow("SELECT next_offset FROM rowcast.checkpoint WHERE topic = ?", topic).Scan(&off)
		return err == nil && off >= end
	})
}

// checkLedgerAllowingLoss is checkLedger where acknowledged transfers that
// an emergency failover lost (reported by rejoin) may be missing.
func (l *transferLoad) checkLedgerAllowingLoss(t *testing.T, node string) {
	t.Helper()
	have := ledgerIDs(t, node, l.e.database)
	for id, a := range l.confirmed {
		if !have[id] {
			delete(l.confirmed, id)
			l.unknown[id] = a
		}
	}
	l.checkLedger(t, node)
}

func benchReport(rs []benchRound, rounds int, unreachable string, commits int, haproxy bool) string {
	var b strings.Builder
	commit := os.Getenv("ROWCAST_BENCH_COMMIT")
	if commit == "" {
		commit = "unknown"
	}
	clients := "4 clients transferring money as an application user, each trying the nodes in turn"
	if haproxy {
		clients = "4 clients transferring money as an application user through HAProxy's write port (deployments/haproxy, checks against the pipeline service's /node/NAME/master)"
	}
	fmt.Fprintf(&b, "%s, %s\n\n", benchTitle(haproxy), time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Commit %s; load average before: %s; %d planned switchovers and %d automatic failovers (failover.unreachable_after %s, check_interval 500ms) under %s (%d commits in all).\n\n",
		commit, orDash(os.Getenv("ROWCAST_BENCH_LOAD")), rounds, rounds, unreachable, clients, commits)
	b.WriteString("| # | kind | from → to | writes refused (rowcast promote) | clients: no commit for | promote total | lost transactions |\n|---|---|---|---|---|---|---|\n")
	var planned, auto []time.Duration
	for i, r := range rs {
		clients := "-"
		if r.clients >= 0 {
			clients = r.clients.Round(time.Millisecond).String()
		}
		lost := "-"
		switch {
		case r.kind == "automatic":
			lost = strconv.Itoa(r.lost)
			auto = append(auto, r.clients)
		case r.clients >= 0:
			planned = append(planned, r.clients)
		}
		fmt.Fprintf(&b, "| %d | %s | %s → %s | %s | %s | %s | %s |\n", i+1, r.kind, r.from, r.to, orDash(r.refused), clients, orDash(r.total), lost)
	}
	fmt.Fprintf(&b, "\nPlanned switchover, clients without a commit: median %v, max %v (goal < 2 s). Automatic failover, SIGKILL of mariadbd to the first commit on the new master: median %v, max %v (goal < 15 s; %s of it is the configured failover.unreachable_after).\n",
		median(planned), maxDur(planned), median(auto), maxDur(auto), unreachable)
	return b.String()
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2].Round(time.Millisecond)
}

func maxDur(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m.Round(time.Millisecond)
}

// benchTitle is the heading of a run's section.
func benchTitle(haproxy bool) string {
	if haproxy {
		return "### `scripts/bench failover --haproxy`"
	}
	return "### `scripts/bench failover`"
}

// addBenchSection appends section, headed title, to the doc, replacing a
// section of the same title and day.
func addBenchSection(path, section, title string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc := string(b)
	day := title + ", " + time.Now().UTC().Format("2006-01-02")
	if i := strings.Index(doc, day); i >= 0 {
		rest := doc[i+len(day):]
		end := len(doc)
		if j := strings.Index(rest, "\n### "); j >= 0 {
			end = i + len(day) + j + 1
		}
		if j := strings.Index(rest, "\n## "); j >= 0 && i+len(day)+j+1 < end {
			end = i + len(day) + j + 1
		}
		doc = doc[:i] + doc[end:]
	}
	doc = strings.TrimRight(doc, "\n") + "\n\n" + section
	return os.WriteFile(path, []byte(doc), 0o644)
}
