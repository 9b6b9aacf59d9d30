package mysql

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// TestLockName: at most 64 characters, readable, and distinct for names
// that differ in case, in characters it replaces, or after the cut.
func TestLockName(t *testing.T) {
	long := strings.Repeat("x", 80)
	names := map[string]bool{}
	for _, c := range [][3]string{
		{"rowcast", "rowcast.shop", "0"}, {"rowcast", "rowcast.Shop", "0"}, {"rowcast", "rowcast.shop", "1"},
		{"bookkeeping", "rowcast.shop", "0"}, {"bé", "t", "0"}, {"b_", "t", "0"},
		{long, long + "a", "0"}, {long, long + "b", "0"},
	} {
		var p int32
		fmt.Sscan(c[2], &p)
		n := LockName(c[0], c[1], p)
		if len(n) > maxLockName || !utf8.ValidString(n) || !strings.HasPrefix(n, "rowcast:") {
			t.Errorf("LockName%q = %q: over 64 bytes, or not readable", c, n)
		}
		if names[strings.ToLower(n)] {
			t.Errorf("LockName%q = %q collides", c, n)
		}
		names[strings.ToLower(n)] = true
	}
	if n := LockName("rowcast", "rowcast.shop", 0); !strings.HasPrefix(n, "rowcast:rowcast/rowcast.shop/0:") {
		t.Errorf("LockName = %q, want the names readable", n)
	}
}

// TestOneWorkerPerReplica: a second Target for the same replica, schema
// and topic is refused with the holder named; the first keeps the lock
// across a reconnect after its connection was killed, and a reconnecting
// Target that finds another one holding it stops.
func TestOneWorkerPerReplica(t *testing.T) {
	defer func(w int) { lockWait = w }(lockWait)
	lockWait = 1
	ctx := context.Background()
	r := newReplica(t, testenv.Replica1)
	a := r.open(t)
	b := r.target(t)
	t.Cleanup(func() { b.Close() })
	checkLocked(t, b, a.connID)

	// a reconnects, healthy or killed: it keeps the lock.
	if _, _, err := a.Open(ctx); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	testenv.Exec(t, r.root, fmt.Sprintf("KILL %d", a.connID))
	if _, _, err := a.Open(ctx); err != nil {
		t.Fatalf("reconnect after a kill: %v", err)
	}
	checkLocked(t, b, a.connID)

	// Another Target takes the lock while a is disconnected: a stops.
	testenv.Exec(t, r.root, fmt.Sprintf("KILL %d", a.connID))
	if _, _, err := b.Open(ctx); err != nil {
		t.Fatalf("the lock of a killed session: %v", err)
	}
	checkLocked(t, a, b.connID)

	// Another topic, or another bookkeeping schema, is another lock.
	other := r.target(t, func(c *Config) { c.Topic = sinktest.Topic + ".other" })
	t.Cleanup(func() { other.Close() })
	if _, _, err := other.Open(ctx); err != nil {
		t.Fatalf("another topic: %v", err)
	}
}

// checkLocked checks that tgt's Open is refused, naming the session id.
func checkLocked(t *testing.T, tgt *Target, holder int64) {
	t.Helper()
	_, _, err := tgt.Open(context.Background())
	if !errors.Is(err, ErrLocked) || sink.Classify(err) != sink.Human {
		t.Fatalf("a second worker: %v, want ErrLocked", err)
	}
	msg := err.Error()
	for _, want := range []string{fmt.Sprintf("connection %d of rowcast@", holder), sinktest.Topic + "[0]",
		fmt.Sprintf("KILL %d", holder), "stop that worker"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if fix := sink.Advice(err); !strings.HasPrefix(fix, "stop that worker") || !strings.HasSuffix(msg, "; fix: "+fix) {
		t.Errorf("advice %q of %q", fix, msg)
	}
}
