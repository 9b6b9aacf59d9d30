package failover

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// stmtLog records, in the order they are sent, the statements that the steps
// send to each node, as "node: statement" with runs of white space made one
// space; "begin", "commit" and "rollback" stand for the transaction's ends,
// and "step: name" for a promotion step that ended (OnStep). The statements
// still go to the real server: the log only watches them.
type stmtLog struct {
	mu      sync.Mutex
	entries []stmt
}

type stmt struct{ node, text string }

func (s stmt) String() string { return s.node + ": " + s.text }

var _ recorder = (*stmtLog)(nil)

func (l *stmtLog) add(node, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, stmt{node, strings.Join(strings.Fields(text), " ")})
}

// step records a promotion step; set it as the Promoter's OnStep.
func (l *stmtLog) step(s Step) { l.add("step", s.Name) }

func (l *stmtLog) wrap(node string, ex execer) execer { return recExec{ex: ex, log: l, node: node} }

func (l *stmtLog) wrapTx(node string, tx txn) txn {
	l.add(node, "begin")
	return recTx{recExec{ex: tx, log: l, node: node}, tx}
}

// of is what the log holds of the named nodes ("step" for the steps), in
// order.
func (l *stmtLog) of(names ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.entries {
		if slices.Contains(names, e.node) {
			out = append(out, e.String())
		}
	}
	return out
}

// only is what the log holds that matches one of the patterns (as in
// expect), in order. A test that uses it says which statements it leaves
// out and why.
func (l *stmtLog) only(patterns ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.entries {
		if slices.ContainsFunc(patterns, func(p string) bool { return matches(p, e.String()) }) {
			out = append(out, e.String())
		}
	}
	return out
}

// reset forgets what the log holds.
func (l *stmtLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = nil
}

// recExec records each statement, then sends it.
type recExec struct {
	ex   execer
	log  *stmtLog
	node string
}

func (r recExec) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	r.log.add(r.node, q)
	return r.ex.ExecContext(ctx, q, args...)
}

func (r recExec) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	r.log.add(r.node, q)
	return r.ex.QueryContext(ctx, q, args...)
}

func (r recExec) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	r.log.add(r.node, q)
	return r.ex.QueryRowContext(ctx, q, args...)
}

// recTx records a transaction's statements and its end. A Rollback after
// Commit sends nothing and is not recorded.
type recTx struct {
	recExec
	tx txn
}

func (r recTx) Commit() error {
	r.log.add(r.node, "commit")
	return r.tx.Commit()
}

func (r recTx) Rollback() error {
	err := r.tx.Rollback()
	if !errors.Is(err, sql.ErrTxDone) {
		r.log.add(r.node, "rollback")
	}
	return err
}

// expect fails the test unless got is want, entry by entry and in order, as
// Vitess's queryhistory does: an entry of want is the exact statement, or,
// after a leading "/", a regular expression that must match all of it.
func expect(t *testing.T, got []string, want ...string) {
	t.Helper()
	if i := mismatch(got, want); i >= 0 {
		t.Fatalf("statement %d differs:\n got: %s\nwant: %s", i+1, numbered(got), numbered(want))
	}
}

// mismatch is the index of the first entry where got differs from want, -1
// when none does.
func mismatch(got, want []string) int {
	for i := range max(len(got), len(want)) {
		if i >= len(got) || i >= len(want) || !matches(want[i], got[i]) {
			return i
		}
	}
	return -1
}

func matches(pattern, s string) bool {
	if re, ok := strings.CutPrefix(pattern, "/"); ok {
		return regexp.MustCompile("^(?:" + re + ")$").MatchString(s)
	}
	return pattern == s
}

func numbered(ss []string) string {
	var b strings.Builder
	for i, s := range ss {
		fmt.Fprintf(&b, "\n  %2d %s", i+1, s)
	}
	return b.String()
}

// collapse makes each run of one repeated statement one: for the polls of a
// step that waits (how often it asks depends on timing).
func collapse(ss []string) []string { return slices.Compact(slices.Clone(ss)) }

// TestExpect: the helper itself. The order, the number of statements and
// each pattern count.
func TestExpect(t *testing.T) {
	got := []string{"db1: begin", "db1: SELECT 1", "db1: commit"}
	for _, c := range []struct {
		want []string
		at   int
	}{
		{[]string{"db1: begin", "db1: SELECT 1", "db1: commit"}, -1},
		{[]string{"db1: begin", "/db1: SELECT \\d", "/db1: (commit|rollback)"}, -1},
		{[]string{"db1: SELECT 1", "db1: begin", "db1: commit"}, 0},
		{[]string{"db1: begin", "/db1: SELECT", "db1: commit"}, 1},
		{[]string{"db1: begin", "db1: SELECT 1"}, 2},
		{[]string{"db1: begin", "db1: SELECT 1", "db1: commit", "db1: commit"}, 3},
	} {
		if at := mismatch(got, c.want); at != c.at {
			t.Fatalf("%q against %q: mismatch at %d, want %d", got, c.want, at, c.at)
		}
	}
	if c := collapse([]string{"a", "b", "b", "b", "a"}); !slices.Equal(c, []string{"a", "b", "a"}) {
		t.Fatalf("collapse: %q", c)
	}
}
