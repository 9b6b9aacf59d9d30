package verify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// Metrics receives the measurements of continuous verification.
type Metrics interface {
	// Verified counts rows compared.
	Verified(rows int64)
	// Differences counts confirmed differences.
	Differences(n int)
}

type nopMetrics struct{}

func (nopMetrics) Verified(int64)  {}
func (nopMetrics) Differences(int) {}

// Continuous verifies a replica a slice at a time, round-robin over its
// tables, so that a sink worker can prove its replica all the time at a
// small, steady cost. It never repairs; confirmed differences are logged
// (keys only) and counted, and it follows promotions. docs/DESIGN.md,
// "Continuous verification".
type Continuous struct {
	cfg       Config
	v         *Verifier
	sliceRows int
	m         Metrics
	log       zerolog.Logger

	tables []string
	next   int   // index in tables of the table after cur
	cur    *walk // the table being walked; nil between tables
	lo     keyVals
	noted  map[string]bool // tables skipped, logged once
}

// NewContinuous connects like New; each Slice verifies about sliceRows rows.
// cfg.Repair and cfg.NoWait are ignored; a replica without a checkpoint for
// cfg.Topic is refused (ErrNoCheckpoint) until its sink has written one.
func NewContinuous(ctx context.Context, cfg Config, sliceRows int, m Metrics) (*Continuous, error) {
	cfg.Repair, cfg.Quiet, cfg.Parallel, cfg.LogDiffs = false, true, 1, true
	if sliceRows <= 0 {
		sliceRows = 10000
	}
	if cfg.ChunkRows <= 0 {
		cfg.ChunkRows = min(1000, sliceRows)
	}
	if m == nil {
		m = nopMetrics{}
	}
	cfg.NoWait = false
	v, err := New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if v.Static() {
		// Rows read without knowing how far the replica has applied would
		// report lag as differences.
		v.Close()
		return nil, fmt.Errorf("%w: %s", ErrNoCheckpoint, v.note)
	}
	return &Continuous{cfg: cfg, v: v, sliceRows: sliceRows, m: m, log: cfg.Log, noted: map[string]bool{}}, nil
}

// follow finds the master again if the replica has applied a newer master
// generation than the master compared with.
func (c *Continuous) follow(ctx context.Context) error {
	st, found, err := c.v.pos.applied(ctx)
	if err != nil {
		return fmt.Errorf("read the checkpoint of replica %s: %w", c.cfg.ReplicaName, err)
	}
	moved := c.v.pos.sameMaster(st)
	if !found || moved == nil {
		return nil
	}
	if c.cfg.Locate == nil {
		return fmt.Errorf("%w; continuous verification has no way to find the new master (no locator): it compares nothing until restarted", moved)
	}
	v, err := New(ctx, c.cfg)
	if err != nil {
		return err
	}
	if v.Static() {
		v.Close()
		return fmt.Errorf("%w: %s", ErrNoCheckpoint, v.note)
	}
	c.log.Warn().Str("old_master", c.v.cfg.MasterName).Uint64("old_epoch", c.v.cfg.MasterEpoch).
		Str("master", v.cfg.MasterName).Uint64("epoch", v.cfg.MasterEpoch).
		Msg("continuous verification: the replica follows a new master; comparing with it from the first table")
	c.v.Close()
	c.v, c.cur, c.tables, c.next, c.lo = v, nil, nil, 0, nil
	return nil
}

// Close closes the connections.
func (c *Continuous) Close() { c.v.Close() }

// Run verifies a slice every interval until ctx ends. Errors are logged and
// the next slice goes on: verification must never stop the worker.
func (c *Continuous) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, _, err := c.Slice(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn().Err(err).Msg("continuous verification: slice failed; going on with the next one")
		}
	}
}

// Slice verifies the next chunks, about sliceRows rows, and returns the rows
// compared and the differences confirmed.
func (c *Continuous) Slice(ctx context.Context) (rows int64, diffs int, err error) {
	if err := c.follow(ctx); err != nil {
		return 0, 0, err
	}
	tablesSeen := 0
	for rows < int64(c.sliceRows) {
		if c.cur == nil {
			more, err := c.haveTable(ctx, tablesSeen)
			if err != nil || !more {
				return rows, diffs, err
			}
			tablesSeen++
			diffs += c.openNext(ctx)
			if c.cur == nil {
				continue
			}
		}
		n, d, err := c.nextChunk(ctx)
		rows, diffs = rows+n, diffs+d
		if err != nil {
			return rows, diffs, err
		}
	}
	return rows, diffs, nil
}

// haveTable makes sure a table is next, listing the tables again after a
// round; more is false when the slice ends here: it did a whole round
// already, or there is no table.
func (c *Continuous) haveTable(ctx context.Context, tablesSeen int) (more bool, err error) {
	if c.next < len(c.tables) {
		return true, nil
	}
	if tablesSeen > 0 && tablesSeen >= len(c.tables) {
		return false, nil // a whole round in this slice: enough
	}
	if c.tables, err = c.v.Tables(ctx); err != nil {
		return false, err
	}
	c.next = 0
	return len(c.tables) > 0, nil
}

// openNext starts the walk of the next table (c.cur stays nil for a table
// that is skipped) and returns the differences found in its definition.
func (c *Continuous) openNext(ctx context.Context) int {
	name := c.tables[c.next]
	c.next++
	cur, differs, err := c.open(ctx, name)
	c.cur, c.lo = cur, nil
	if err != nil {
		c.log.Warn().Err(err).Str("table", name).Msg("continuous verification: cannot verify the table")
		return 0
	}
	if !differs {
		return 0
	}
	c.m.Differences(1)
	return 1
}

// nextChunk verifies the next chunk of the table being walked.
func (c *Continuous) nextChunk(ctx context.Context) (rows int64, diffs int, err error) {
	w := c.cur
	if err := c.v.thr.take(ctx, c.v.cfg.ChunkRows); err != nil {
		return 0, 0, err
	}
	hi, err := w.bound(ctx, c.lo)
	if err != nil {
		c.cur = nil
		return 0, 0, err
	}
	before, beforeRows := w.tr.Differences, w.tr.Rows
	err = w.chunk(ctx, chunk{lo: c.lo, hi: hi})
	rows, diffs = w.tr.Rows-beforeRows, w.tr.Differences-before
	c.m.Verified(rows)
	if diffs > 0 {
		c.m.Differences(diffs)
	}
	switch {
	case errors.Is(err, ErrBehind):
		c.log.Debug().Err(err).Str("table", w.t.String()).Msg("continuous verification: a difference is not confirmed yet; the next round checks it again")
	case err != nil:
		c.cur = nil
		return rows, diffs, err
	}
	c.lo = hi
	if hi == nil {
		c.cur = nil
	}
	return rows, diffs, nil
}

// open prepares the walk of one table; nil without error for a table that
// is skipped: without a usable key (continuous mode only walks keys), or
// missing or defined differently on the replica (differs: one difference).
func (c *Continuous) open(ctx context.Context, name string) (w *walk, differs bool, err error) {
	tr := &TableReport{Table: name}
	w, t, err := c.v.prepare(ctx, name, tr)
	switch {
	case err != nil:
		return nil, false, err
	case t == nil:
		// Missing or defined differently on the replica. Under a live
		// load the CREATE or ALTER may just not have reached it yet: the
		// difference counts once it persists after the replica applied
		// what the master had executed when it was seen.
		confirmed, err := c.schemaDiffers(ctx, name)
		if err != nil || !confirmed {
			return nil, false, err
		}
		c.log.Warn().Str("table", name).Str("replica", c.v.cfg.ReplicaName).Msg("continuous verification: " + tr.Note)
		return nil, true, nil
	case w == nil:
		if !c.noted[name] {
			c.noted[name] = true
			c.log.Info().Str("table", name).Msg("continuous verification skips a table without a usable key; `rowcast verify` compares it as a whole")
		}
		return nil, false, nil
	}
	return w, false, nil
}

// schemaDiffers checks a table found missing or different on the replica
// again, once the replica has passed the master's position: true if it still
// is; false without error while the replica is behind (the next round looks
// again).
func (c *Continuous) schemaDiffers(ctx context.Context, name string) (bool, error) {
	pos, err := c.v.pos.masterPos(ctx, c.v.master)
	if err != nil {
		return false, err
	}
	if err := c.v.pos.wait(ctx, pos); err != nil {
		if errors.Is(err, ErrBehind) {
			c.log.Debug().Err(err).Str("table", name).Msg("continuous verification: a table definition difference is not confirmed yet; the next round checks it again")
			return false, nil
		}
		return false, err
	}
	_, t, err := c.v.prepare(ctx, name, &TableReport{Table: name})
	return t == nil && err == nil, err
}
