package source

import (
	"context"
	"database/sql"
	"errors"
	"math/rand/v2"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
)

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// testConfig reads db1 as root (or ROWCAST_TEST_DB_USER), filtered to one
// test database, with a server_id of its own: two replicas with the same
// server_id make the master drop one of them.
func testConfig(t testing.TB, dbName string) Config {
	t.Helper()
	testenv.Need(t, testenv.Master)
	return Config{
		Addr:            testenv.Addr(testenv.Master),
		User:            envOr("ROWCAST_TEST_DB_USER", "root"),
		Password:        os.Getenv("ROWCAST_TEST_DB_PASSWORD"),
		ServerID:        uniqueServerID(),
		Include:         []string{"^" + regexp.QuoteMeta(dbName) + `\.`},
		HeartbeatPeriod: 200 * time.Millisecond,
		ReadTimeout:     20 * time.Second,
	}
}

func uniqueServerID() uint32 { return 0x40000000 + rand.Uint32N(0x10000000) }

func testLogger(t testing.TB) zerolog.Logger {
	if os.Getenv("ROWCAST_TEST_LOG") != "" {
		return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	}
	return zerolog.Nop()
}

// binlogPos is the master's @@gtid_binlog_pos now.
func binlogPos(t testing.TB, db *sql.DB) string {
	t.Helper()
	var pos string
	if err := db.QueryRow("SELECT @@GLOBAL.gtid_binlog_pos").Scan(&pos); err != nil {
		t.Fatal(err)
	}
	return pos
}

// collector runs a Reader in the background and hands its events to the test.
type collector struct {
	r      *Reader
	ch     chan *pipeline.Event
	done   chan error
	cancel context.CancelFunc
	err    error
	ended  bool
}

func startReader(t testing.TB, cfg Config, start Start) *collector {
	t.Helper()
	return runReader(t, NewReader(cfg, testLogger(t)), start)
}

// runReader runs r from start in the background.
func runReader(t testing.TB, r *Reader, start Start) *collector {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{r: r, ch: make(chan *pipeline.Event, 4096),
		done: make(chan error, 1), cancel: cancel}
	go func() {
		c.done <- c.r.Run(ctx, start, func(ctx context.Context, ev *pipeline.Event) error {
			select {
			case c.ch <- ev:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	t.Cleanup(func() { c.stop(t) })
	return c
}

// stop cancels Run and returns its error, nil when it ended by the cancel.
func (c *collector) stop(t testing.TB) error {
	if !c.ended {
		c.cancel()
		select {
		case c.err = <-c.done:
		case <-time.After(30 * time.Second):
			t.Errorf("Run did not return within 30s of cancel")
		}
		c.ended = true
		if errors.Is(c.err, context.Canceled) {
			c.err = nil
		}
	}
	return c.err
}

// next returns the next event, failing the test after timeout or when Run ends.
func (c *collector) next(t testing.TB, timeout time.Duration) *pipeline.Event {
	t.Helper()
	select {
	case ev := <-c.ch:
		return ev
	case err := <-c.done:
		c.ended, c.err = true, err
		t.Fatalf("Run ended early: %v", err)
	case <-time.After(timeout):
		t.Fatalf("no event within %v", timeout)
	}
	return nil
}

// txn returns the events of the next transaction, up to its last message.
func (c *collector) txn(t testing.TB) []*pipeline.Event {
	t.Helper()
	var out []*pipeline.Event
	for {
		ev := c.next(t, 30*time.Second)
		out = append(out, ev)
		if ev.Pos.Last {
			return out
		}
	}
}

// quiet asserts no event arrives for d.
func (c *collector) quiet(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case ev := <-c.ch:
		t.Fatalf("unexpected event %s %s %v", ev.Pos, ev.Kind, ev.Statement)
	case err := <-c.done:
		c.ended, c.err = true, err
		t.Fatalf("Run ended early: %v", err)
	case <-time.After(d):
	}
}
