package clone

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/internal/mysqlerr"
)

// view is one consistent read view of the source: the source's checkpoint
// read in it says which messages of the topic its rows hold. The tables it
// copies are locked against DDL (a shared metadata lock) from before the
// view was taken until it ends, so their definitions are the view's.
// docs/DESIGN.md, "Clone", says how.
type view struct {
	conn  *sql.Conn
	state checkpoint.State
	list  *listing
}

// View opening is retried while the source's tables change under it.
var (
	viewAttempts = 30
	viewRetry    = time.Second
)

// openView opens a read view of the source in which the tables not copied
// yet are locked.
func (c *cloner) openView(ctx context.Context) (*view, error) {
	for attempt := 1; ; attempt++ {
		v, why, err := c.tryView(ctx)
		if err != nil || why == "" {
			return v, err
		}
		if attempt == viewAttempts {
			return nil, fmt.Errorf("%w: %s after %d attempts; wait until the source's sink worker has applied it (rowcast status), or clone from another replica",
				ErrUnstable, why, attempt)
		}
		c.log.Info().Str("node", c.opts.From).Str("why", why).Msg("opening the read view again")
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(viewRetry):
		}
	}
}

// tryView opens a view; why says what changed under it when it must be
// opened again.
func (c *cloner) tryView(ctx context.Context) (v *view, why string, err error) {
	before, err := list(ctx, c.src, c.sel)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", c.opts.From, err)
	}
	conn, err := c.src.Conn(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("connect to %s: %w", c.opts.From, err)
	}
	v = &view{conn: conn, list: before}
	why, err = c.begin(ctx, v)
	if err != nil || why != "" {
		v.close()
		return nil, why, err
	}
	return v, "", nil
}

// begin locks the tables to copy, then takes the view by reading the
// source's checkpoint (InnoDB opens a read view at a transaction's first
// read, and SELECT ... LIMIT 0 reads nothing), then checks that no table
// came or went meanwhile.
func (c *cloner) begin(ctx context.Context, v *view) (why string, err error) {
	for _, q := range []string{"SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", "START TRANSACTION READ ONLY"} {
		if _, err := v.conn.ExecContext(ctx, q); err != nil {
			return "", fmt.Errorf("%s: %w", c.opts.From, err)
		}
	}
	if why, err := c.lockTables(ctx, v); why != "" || err != nil {
		return why, err
	}
	if why, err := c.readCheckpoint(ctx, v); why != "" || err != nil {
		return why, err
	}
	after, err := list(ctx, v.conn, c.sel)
	if err != nil {
		return "", fmt.Errorf("%s: %w", c.opts.From, err)
	}
	if !after.sameTables(v.list) {
		return "the source's replicated tables changed", nil
	}
	return "", nil
}

// lockTables takes a shared metadata lock on each table not copied yet,
// which the transaction holds until it ends: DDL on them waits.
func (c *cloner) lockTables(ctx context.Context, v *view) (why string, err error) {
	for _, t := range v.list.tables {
		if _, done := c.done[t]; done {
			continue
		}
		_, err := v.conn.ExecContext(ctx, "SELECT 1 FROM "+t.quoted()+" LIMIT 0")
		if mysqlerr.Missing(err) {
			return t.String() + " was dropped", nil
		}
		if err != nil {
			return "", fmt.Errorf("%s: lock %s: %w", c.opts.From, t, err)
		}
	}
	return "", nil
}

// readCheckpoint reads the source's checkpoint in the view. A checkpoint
// saved while a DDL statement was being applied does not say whether the
// statement ran.
func (c *cloner) readCheckpoint(ctx context.Context, v *view) (why string, err error) {
	st, found, err := c.store.Load(ctx, v.conn, c.topic, 0)
	switch {
	case mysqlerr.Missing(err) || err == nil && !found:
		return "", fmt.Errorf("%w: %s holds no rowcast checkpoint for topic %s in %s: it is not a replica of this topic. Clone from a replica whose sink worker runs",
			ErrSource, c.opts.From, c.topic, c.store.Schema())
	case err != nil:
		return "", fmt.Errorf("%s: %w", c.opts.From, err)
	case st.DDLPending != 0:
		return fmt.Sprintf("the source's checkpoint is in the middle of a DDL statement (transaction %d)", st.DDLPending), nil
	}
	v.state = st
	return "", nil
}

// showCreate reads a table's CREATE TABLE statement.
func (v *view) showCreate(ctx context.Context, t tableName) (string, error) {
	var name, ddl string
	if err := v.conn.QueryRowContext(ctx, "SHOW CREATE TABLE "+t.quoted()).Scan(&name, &ddl); err != nil {
		return "", fmt.Errorf("read the definition of %s: %w", t, err)
	}
	return ddl, nil
}

// close ends the view and its locks.
func (v *view) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = v.conn.ExecContext(ctx, "ROLLBACK")
	v.conn.Close()
}
