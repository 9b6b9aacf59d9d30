package verify

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rowcast/rowcast/pipeline/testenv"
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
	schema, topic := saveCheckpoint(t, replica, "0-1-999999999999")
	testenv.Exec(t, replica, "UPDATE `"+database+"`.composite SET payload = 'x' WHERE seq = 20")
	cfg := baseConfig(database)
	cfg.Filter.Bookkeeping, cfg.Topic = schema, topic
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
