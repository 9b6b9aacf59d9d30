package verify

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/sink/clickhouse"
)

// chClient reads a ClickHouse replica over the sink's HTTP client.
type chClient struct{ r *clickhouse.Reader }

func newCHClient(rawURL string, timeout time.Duration) (*chClient, error) {
	r, err := clickhouse.NewReader(rawURL, 10*timeout)
	if err != nil {
		return nil, fmt.Errorf("ClickHouse URL %q: %w", rawURL, err)
	}
	return &chClient{r: r}, nil
}

func (c *chClient) close() {
	if c != nil {
		c.r.Close()
	}
}

// query runs a SELECT and returns its rows; a nil value is NULL. A table or
// database that does not exist is ErrNoTable.
func (c *chClient) query(ctx context.Context, q string) ([][]*string, error) {
	rows, err := c.r.Query(ctx, q)
	if clickhouse.Missing(err) {
		return nil, fmt.Errorf("%w: %v", ErrNoTable, err)
	}
	return rows, err
}

// chPositions waits for a ClickHouse replica's checkpoint (saved by the sink
// after the rows it covers) to reach the master's position; the master's
// side is positions'.
type chPositions struct {
	*positions
	ch clickhouse.Config
}

func newCHPositions(master *sql.DB, mver string, ch clickhouse.Config, cfg Config) *chPositions {
	flavor := gomysql.MySQLFlavor
	if strings.Contains(mver, "MariaDB") {
		flavor = gomysql.MariaDBFlavor
	}
	p := &positions{flavor: flavor, master: master, timeout: cfg.WaitTimeout, poll: 100 * time.Millisecond,
		masterName: cfg.MasterName, epoch: cfg.MasterEpoch}
	return &chPositions{positions: p, ch: ch}
}

// applied loads the replica's checkpoint; found is false when it has none.
func (p *chPositions) applied(ctx context.Context) (checkpoint.State, bool, error) {
	return clickhouse.LoadCheckpoint(ctx, p.ch)
}

// wait returns once the replica's checkpoint contains pos, or fails with
// ErrBehind after the timeout.
func (p *chPositions) wait(ctx context.Context, pos string) error {
	if p.static || pos == "" {
		return nil
	}
	want, err := gomysql.ParseGTIDSet(p.flavor, pos)
	if err != nil {
		return fmt.Errorf("parse the master's GTID position %q: %w", pos, err)
	}
	deadline := time.Now().Add(p.timeout)
	for {
		st, ok, err := p.reached(ctx, want)
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: its checkpoint (offset %d, GTID set %q) did not reach the master's position %q within %v: "+
				"check that its sink worker runs and keeps up (rowcast status), then run verify again or raise --wait-timeout; "+
				"--no-wait compares the rows as they are (differences may then be replication lag)",
				ErrBehind, st.Offset, st.GTIDSet, pos, p.timeout)
		}
		if err := sleepCtx(ctx, p.poll); err != nil {
			return err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// reached reads the replica's checkpoint and reports whether it contains
// want.
func (p *chPositions) reached(ctx context.Context, want gomysql.GTIDSet) (checkpoint.State, bool, error) {
	st, found, err := p.applied(ctx)
	if err != nil || !found || st.GTIDSet == "" {
		return st, false, err
	}
	if err := p.sameMaster(st); err != nil {
		return st, false, err
	}
	got, err := gomysql.ParseGTIDSet(p.flavor, st.GTIDSet)
	if err != nil {
		return st, false, fmt.Errorf("parse the replica's checkpoint GTID set %q: %w", st.GTIDSet, err)
	}
	return st, got.Contain(want), nil
}
