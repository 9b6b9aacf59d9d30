package verify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
)

type countMetrics struct {
	mu          sync.Mutex
	rows        int64
	differences int
}

func (m *countMetrics) Verified(n int64) { m.mu.Lock(); m.rows += n; m.mu.Unlock() }
func (m *countMetrics) Differences(n int) {
	m.mu.Lock()
	m.differences += n
	m.mu.Unlock()
}

// TestContinuousSlices walks a replica slice by slice: each slice stays near
// its size, a whole round covers every keyed table once, and the one row
// changed behind rowcast's back is counted once per round.
func TestContinuousSlices(t *testing.T) {
	database, _, replica := pair(t, 50)
	cfg := followed(t, database, replica, "0-1-999999999999")
	testenv.Exec(t, replica, "UPDATE `"+database+"`.composite SET payload = 'x' WHERE seq = 20")
	cfg.ChunkRows = 10
	m := &countMetrics{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := NewContinuous(ctx, cfg, 25, m)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Three keyed tables of 50 rows; the table without a key is skipped.
	var rows int64
	diffs := 0
	for i := 0; rows < 150; i++ {
		n, d, err := c.Slice(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n > 30 {
			t.Fatalf("slice %d compared %d rows, want about 25", i, n)
		}
		rows, diffs = rows+n, diffs+d
		if i > 20 {
			t.Fatalf("no full round after %d slices (%d rows)", i, rows)
		}
	}
	if rows != 150 || diffs != 1 || m.rows != rows || m.differences != 1 {
		t.Fatalf("one round: %d rows, %d differences; metrics %d, %d; want 150 rows, 1 difference", rows, diffs, m.rows, m.differences)
	}
}

func TestContinuousNeedsACheckpoint(t *testing.T) {
	database, _, _ := pair(t, 1)
	if _, err := NewContinuous(context.Background(), baseConfig(database), 100, nil); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("err = %v, want ErrNoCheckpoint", err)
	}
}

// promotionSetup makes one database with the same rows on db1, db2 and db3,
// then changes a row on db1: db1 plays an old master that kept a
// transaction the others never got, db3 the master promoted in its place,
// db2 the replica (with a checkpoint of epoch 1, far ahead of any GTID).
func promotionSetup(t *testing.T) (cfg Config, setEpoch func(uint64)) {
	t.Helper()
	database := testenv.CreateDatabase(t, testenv.Master, testenv.Replica1, testenv.Replica2)
	for _, node := range []string{testenv.Master, testenv.Replica1, testenv.Replica2} {
		fill(t, testenv.DB(t, node), database, 30)
	}
	testenv.Exec(t, testenv.DB(t, testenv.Master), "UPDATE `"+database+"`.single SET name = 'old master' WHERE id = 5")
	replica := testenv.DB(t, testenv.Replica1)
	cfg = followed(t, database, replica, "0-1-999999999999")
	cfg.Filter.Tables = []string{database + ".single"}
	setEpoch = func(e uint64) {
		testenv.Exec(t, replica, fmt.Sprintf("UPDATE `%s`.checkpoint SET epoch = %d", cfg.Filter.Bookkeeping, e))
	}
	return cfg, setEpoch
}

// locator answers like failover.Locator: the master of now, settable.
type locator struct {
	mu  sync.Mutex
	cur Master
	err error
}

func (l *locator) set(node string, epoch uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cur = Master{Name: node, DSN: testenv.RootDSN(node, ""), Epoch: epoch, From: "epoch record"}
}

func (l *locator) locate(context.Context) (Master, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur, l.err
}

// TestContinuousFollowsPromotion: continuous verification compares with the
// master the locator names; once the replica's checkpoint shows the epoch of
// a promotion, it finds the new master and compares with it. Without a
// locator it stops comparing instead of reporting the old master's rows.
func TestContinuousFollowsPromotion(t *testing.T) {
	cfg, setEpoch := promotionSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	loc := &locator{}
	loc.set(testenv.Master, 1)
	cfg.Locate = loc.locate
	cfg.ChunkRows = 10
	c, err := NewContinuous(ctx, cfg, 30, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { c.Close() }()
	if rows, diffs, err := round(ctx, c, 30); err != nil || diffs != 1 {
		t.Fatalf("against db1 before the promotion: %d rows, %d differences, %v; want the old master's row", rows, diffs, err)
	}
	// db3 is promoted (epoch 2) and the replica applies the epoch record.
	loc.set(testenv.Replica2, 2)
	setEpoch(2)
	if rows, diffs, err := round(ctx, c, 30); err != nil || diffs != 0 || c.v.cfg.MasterName != "db3" {
		t.Fatalf("after the promotion: %d rows, %d differences, %v, master %s; want db3 and no difference", rows, diffs, err, c.v.cfg.MasterName)
	}
	cfg.Locate = nil
	checkNoLocator(ctx, t, cfg, setEpoch)
}

// round runs slices until they compared rows rows.
func round(ctx context.Context, c *Continuous, rows int64) (n int64, diffs int, err error) {
	for n < rows {
		r, d, err := c.Slice(ctx)
		if err != nil {
			return n, diffs, err
		}
		n, diffs = n+r, diffs+d
	}
	return n, diffs, nil
}

// checkNoLocator: without a locator, the configured master, epoch 1, is
// refused once the replica is at epoch 2, at the start as while running.
func checkNoLocator(ctx context.Context, t *testing.T, cfg Config, setEpoch func(uint64)) {
	t.Helper()
	if _, err := NewContinuous(ctx, cfg, 30, nil); !errors.Is(err, ErrMasterMoved) {
		t.Fatalf("no locator, replica at epoch 2: %v, want ErrMasterMoved", err)
	}
	setEpoch(1)
	c, err := NewContinuous(ctx, cfg, 30, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	setEpoch(2)
	if _, _, err := c.Slice(ctx); !errors.Is(err, ErrMasterMoved) || !strings.Contains(err.Error(), "no way to find the new master") {
		t.Fatalf("no locator, promotion while running: %v, want ErrMasterMoved", err)
	}
}

// TestLocateFailsClosed: verify never falls back to the configured master
// when the locator fails, refuses to compare the current master with
// itself, and refuses a master older than what the replica applied.
func TestLocateFailsClosed(t *testing.T) {
	cfg, setEpoch := promotionSetup(t)
	ctx := context.Background()
	loc := &locator{err: errors.New("topic unreachable")}
	cfg.Locate = loc.locate
	if _, err := New(ctx, cfg); !errors.Is(err, ErrMasterUnknown) || !strings.Contains(err.Error(), "topic unreachable") {
		t.Fatalf("locator error: %v, want ErrMasterUnknown", err)
	}
	loc.err = nil
	loc.set(testenv.Replica1, 2)
	if _, err := New(ctx, cfg); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "db2 is the current master") {
		t.Fatalf("replica is the master: %v", err)
	}
	loc.set(testenv.Replica2, 2)
	setEpoch(3)
	if _, err := New(ctx, cfg); !errors.Is(err, ErrMasterMoved) {
		t.Fatalf("replica ahead of the located master: %v, want ErrMasterMoved", err)
	}
	setEpoch(2)
	rep := run(t, cfg)
	if rep.Master != "db3" || rep.MasterEpoch != 2 || !rep.Equal() {
		t.Fatalf("against the located master:\n%s", report(rep))
	}
	if text := report(rep); !strings.Contains(text, "compared with master db3, epoch 2 (from the epoch record)") {
		t.Fatalf("report:\n%s", text)
	}
}
