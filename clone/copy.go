package clone

import (
	"context"
	"database/sql/driver"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// copyAll copies, in one read view, every replicated table that is not
// copied yet. A run that resumes a stopped clone copies the rest in a new
// view: each table keeps the view it was copied in.
func (c *cloner) copyAll(ctx context.Context) error {
	v, err := c.openView(ctx)
	if err != nil {
		return err
	}
	defer v.close()
	var todo []tableName
	var estimate int64
	for _, t := range v.list.tables {
		if _, done := c.done[t]; !done {
			todo = append(todo, t)
			estimate += v.list.estimate[t]
		}
	}
	if err := c.dropGone(ctx, v.list); err != nil {
		return err
	}
	if len(todo) == 0 && len(c.res.Views) > 0 {
		return nil
	}
	c.res.Views = addView(c.res.Views, v.state)
	c.log.Info().Str("node", c.opts.From).Int64("offset", v.state.Offset).Uint64("epoch", v.state.Epoch).
		Uint64("txn_seq", v.state.TxnSeq).Int("tables", len(todo)).Int64("rows_estimate", estimate).
		Msg("read view opened on the source: copying the tables as of its checkpoint")
	if err := c.createDatabases(ctx, v.list.dbs); err != nil {
		return err
	}
	return c.copyTables(ctx, v, todo, estimate)
}

// copyTables streams the tables through one reader (this goroutine, on the
// view's connection) to the loaders. The first error of either side stops
// both.
func (c *cloner) copyTables(ctx context.Context, v *view, todo []tableName, estimate int64) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ld, err := c.startLoaders(ctx, cancel)
	if err != nil {
		return err
	}
	run := &runProgress{tables: len(todo), estimate: estimate}
	for _, t := range todo {
		if err = c.copyTable(ctx, v, t, ld, run); err != nil {
			break
		}
	}
	ld.stop()
	if err != nil && ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	return err
}

// runProgress counts this run's tables and rows.
type runProgress struct {
	tables, done int
	estimate     int64
	rows         atomic.Int64
}

// tableCopy is one table on its way: the loaders count its rows and mark
// its batches done.
type tableCopy struct {
	def      *tableDef
	load     string // the LOAD DATA statement after the file name
	estimate int64
	started  time.Time
	pending  sync.WaitGroup
	rows     atomic.Int64
	run      *runProgress
}

// copyTable creates a table on the target and copies its rows; it returns
// once the target holds all of them and the table is recorded as copied.
func (c *cloner) copyTable(ctx context.Context, v *view, t tableName, ld *loaders, run *runProgress) error {
	ddl, err := v.showCreate(ctx, t)
	if err != nil {
		return fmt.Errorf("%s: %w", c.opts.From, err)
	}
	def, err := describe(ctx, v.conn, t)
	if err != nil {
		return fmt.Errorf("%s: %w", c.opts.From, err)
	}
	if err := c.createTable(ctx, v, t, ddl); err != nil {
		return err
	}
	tc := &tableCopy{def: def, load: loadSQL(def), estimate: v.list.estimate[t], started: time.Now(), run: run}
	r := &tableReader{c: c, tc: tc, ld: ld}
	err = r.readAll(ctx, v)
	tc.pending.Wait()
	if err == nil {
		err = context.Cause(ctx)
	}
	if err != nil {
		return err
	}
	if err := c.tableDone(ctx, v, t, tc.rows.Load(), tc.started); err != nil {
		return err
	}
	c.tableCopied(tc)
	return nil
}

// tableCopied counts and logs a copied table.
func (c *cloner) tableCopied(tc *tableCopy) {
	tc.run.done++
	c.res.Copied++
	rows := tc.rows.Load()
	c.res.Rows += rows
	d := time.Since(tc.started)
	c.report(tc, true)
	c.log.Info().Str("table", tc.def.name.String()).Int64("rows", rows).Dur("elapsed", d).
		Float64("rows_per_second", float64(int64(float64(rows)/max(d.Seconds(), 1e-3)))).Msg("table copied")
}

// report tells opts.Progress how far the copy is.
func (c *cloner) report(tc *tableCopy, done bool) {
	if c.opts.Progress == nil {
		return
	}
	c.opts.Progress(Progress{Table: tc.def.name.String(), Rows: tc.rows.Load(), Estimate: tc.estimate,
		Total: tc.run.rows.Load(), TotalEstimate: tc.run.estimate, TablesDone: tc.run.done, Tables: tc.run.tables, Done: done})
}

// tableReader reads one table in chunks of its primary key and cuts its rows
// into batches.
type tableReader struct {
	c     *cloner
	tc    *tableCopy
	ld    *loaders
	b     *batch
	count int            // rows of the current chunk
	last  []driver.Value // the key of the last row read, copied
}

// readAll reads the table, chunk after chunk, and sends the last batch.
func (r *tableReader) readAll(ctx context.Context, v *view) error {
	var after []string
	for {
		r.count = 0
		q := r.tc.def.chunkSQL(after, r.c.opts.ChunkRows)
		if err := query(ctx, v, q, r.add); err != nil {
			return fmt.Errorf("%s: read %s: %w", r.c.opts.From, r.tc.def.name, err)
		}
		if r.tc.def.key == nil || r.count < r.c.opts.ChunkRows {
			return r.send(ctx)
		}
		var err error
		if after, err = r.lastKey(); err != nil {
			return err
		}
	}
}

// query runs q on the view's connection with the text protocol and hands
// each row to fn. The values are the driver's, valid until the next row.
func query(ctx context.Context, v *view, q string, fn func(context.Context, []driver.Value) error) error {
	return v.conn.Raw(func(dc any) error {
		rows, err := dc.(driver.QueryerContext).QueryContext(ctx, q, nil)
		if err != nil {
			return err
		}
		defer rows.Close()
		vals := make([]driver.Value, len(rows.Columns()))
		for {
			if err := rows.Next(vals); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
			if err := fn(ctx, vals); err != nil {
				return err
			}
		}
	})
}

// add appends a row to the batch, and sends the batch once it is full.
func (r *tableReader) add(ctx context.Context, vals []driver.Value) error {
	if r.b == nil {
		buf, err := r.ld.buffer(ctx)
		if err != nil {
			return err
		}
		r.b = &batch{t: r.tc, buf: buf}
	}
	var warnings int
	var err error
	if r.b.buf, warnings, err = appendRow(r.b.buf, r.tc.def.cols, vals); err != nil {
		return fmt.Errorf("%s: %w", r.tc.def.name, err)
	}
	r.b.rows++
	r.b.warnings += warnings
	r.count++
	if r.tc.def.key != nil {
		r.keep(vals)
	}
	if len(r.b.buf) >= r.c.opts.BatchBytes {
		return r.send(ctx)
	}
	return nil
}

// keep copies the key of the row just read.
func (r *tableReader) keep(vals []driver.Value) {
	if r.last == nil {
		r.last = make([]driver.Value, len(r.tc.def.key))
	}
	for i, k := range r.tc.def.key {
		if b, ok := vals[k].([]byte); ok {
			prev, _ := r.last[i].([]byte)
			r.last[i] = append(prev[:0], b...)
		} else {
			r.last[i] = vals[k]
		}
	}
}

// lastKey writes the key of the chunk's last row as SQL literals.
func (r *tableReader) lastKey() ([]string, error) {
	after := make([]string, len(r.last))
	for i, v := range r.last {
		lit, err := keyLiteral(r.tc.def.cols[r.tc.def.key[i]], v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.tc.def.name, err)
		}
		after[i] = lit
	}
	return after, nil
}

// send hands the batch to the loaders.
func (r *tableReader) send(ctx context.Context) error {
	b := r.b
	if b == nil {
		return nil
	}
	r.b = nil
	if err := r.ld.send(ctx, b); err != nil {
		return err
	}
	r.c.report(r.tc, false)
	return nil
}
