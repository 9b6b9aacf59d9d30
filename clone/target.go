package clone

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/internal/mysqlerr"
	sinkmysql "github.com/rowcast/rowcast/sink/mysql"
)

// targetState is what the target holds before the copy.
type targetState struct {
	checkpoint *checkpoint.State
	progress   map[string]checkpoint.CloneTable
	filled     []string // tables with rows in the replicated databases
	dbs        []string // replicated databases that exist
}

// prepareTarget refuses a target that holds data (unless Overwrite, which
// drops it), finds what a stopped run of the same clone copied, and creates
// the bookkeeping tables.
func (c *cloner) prepareTarget(ctx context.Context) error {
	srcList, err := list(ctx, c.src, c.sel)
	if err != nil {
		return fmt.Errorf("%s: %w", c.opts.From, err)
	}
	st, err := c.inspect(ctx, srcList)
	if err != nil {
		return err
	}
	if c.opts.Overwrite {
		if err := c.overwrite(ctx, st); err != nil {
			return err
		}
		st = targetState{}
	}
	if err := c.refuseData(st); err != nil {
		return err
	}
	if err := c.store.InitClone(ctx, c.ctl); err != nil {
		return fmt.Errorf("%s: %w", c.opts.To, err)
	}
	if err := c.holdReadOnly(ctx, len(st.progress) == 0); err != nil {
		return err
	}
	c.resume(st.progress)
	return nil
}

// holdReadOnly makes the target read-only for everyone but the clone and
// its sink worker: it is left so when the clone ends, and the sink worker
// puts read_only back once it has applied the topic past the clone's
// floors (docs/DESIGN.md, "Replica protection"). fresh: no earlier run of
// this clone, which would have set read_only.
func (c *cloner) holdReadOnly(ctx context.Context, fresh bool) error {
	ro := sinkmysql.NewReadOnly(c.store.Schema(), c.log)
	if err := ro.Hold(ctx, c.ctl, fresh); err != nil {
		return fmt.Errorf("%s: %w", c.opts.To, err)
	}
	c.res.ReadOnly = true
	return nil
}

// inspect reads the target's checkpoint, the clone's progress and the tables
// with rows in the databases the source replicates.
func (c *cloner) inspect(ctx context.Context, srcList *listing) (targetState, error) {
	var st targetState
	cp, found, err := c.store.Load(ctx, c.ctl, c.topic, 0)
	if err != nil && !mysqlerr.Missing(err) {
		return st, fmt.Errorf("%s: %w", c.opts.To, err)
	}
	if found {
		st.checkpoint = &cp
	}
	st.progress, err = c.store.LoadCloneTables(ctx, c.ctl, c.topic)
	if err != nil && !mysqlerr.Missing(err) {
		return st, fmt.Errorf("%s: %w", c.opts.To, err)
	}
	return st, c.inspectDatabases(ctx, srcList, &st)
}

// inspectDatabases finds which replicated databases the target has, and
// their tables with rows.
func (c *cloner) inspectDatabases(ctx context.Context, srcList *listing, st *targetState) error {
	for _, d := range srcList.dbs {
		filled, exists, err := c.filledTables(ctx, d.name)
		if err != nil {
			return err
		}
		if exists {
			st.dbs = append(st.dbs, d.name)
		}
		st.filled = append(st.filled, filled...)
	}
	return nil
}

// filledTables lists the base tables of db on the target that hold a row.
func (c *cloner) filledTables(ctx context.Context, db string) (filled []string, exists bool, err error) {
	rows, err := c.ctl.QueryContext(ctx, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=? AND TABLE_TYPE<>'VIEW'", db)
	if err != nil {
		return nil, false, fmt.Errorf("%s: list the tables of %s: %w", c.opts.To, db, err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, false, err
		}
		names = append(names, n)
	}
	rows.Close()
	for _, n := range names {
		t := tableName{db, n}
		var one int
		err := c.ctl.QueryRowContext(ctx, "SELECT 1 FROM "+t.quoted()+" LIMIT 1").Scan(&one)
		switch {
		case err == nil:
			filled = append(filled, t.String())
		case !errors.Is(err, sql.ErrNoRows):
			return nil, false, fmt.Errorf("%s: read %s: %w", c.opts.To, t, err)
		}
	}
	if err := c.ctl.QueryRowContext(ctx, "SELECT COUNT(*) > 0 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=?", db).Scan(&exists); err != nil {
		return nil, false, err
	}
	return filled, exists, rows.Err()
}

// refuseData refuses a target with a checkpoint, or with rows that no
// stopped run of this clone wrote.
func (c *cloner) refuseData(st targetState) error {
	if st.checkpoint != nil {
		return fmt.Errorf("%w: %s holds a rowcast checkpoint for topic %s at offset %d (e%d/t%d): it is a replica already, or a finished clone. "+
			"Start its sink worker (rowcast sink --replica %s), or clone it again from scratch with --overwrite (drops its replicated databases)",
			ErrNotEmpty, c.opts.To, c.topic, st.checkpoint.Offset, st.checkpoint.Epoch, st.checkpoint.TxnSeq, c.opts.To)
	}
	var foreign []string
	for _, t := range st.filled {
		if _, ours := st.progress[t]; !ours {
			foreign = append(foreign, t)
		}
	}
	if len(foreign) == 0 {
		return nil
	}
	more := ""
	if len(foreign) > 5 {
		more = fmt.Sprintf(" and %d more", len(foreign)-5)
		foreign = foreign[:5]
	}
	return fmt.Errorf("%w: %s holds rows in the replicated databases: %s%s. Clone into an empty node, or pass --overwrite to drop the databases %s on %s first",
		ErrNotEmpty, c.opts.To, strings.Join(foreign, ", "), more, strings.Join(st.dbs, ", "), c.opts.To)
}

// overwrite drops the replicated databases of the target and forgets its
// checkpoint, bootstrap tables and clone progress for the topic.
func (c *cloner) overwrite(ctx context.Context, st targetState) error {
	for _, db := range st.dbs {
		c.log.Warn().Str("node", c.opts.To).Str("database", db).Msg("--overwrite: dropping the database")
		if _, err := c.ctl.ExecContext(ctx, "DROP DATABASE "+qi(db)); err != nil {
			return fmt.Errorf("%s: drop database %s: %w", c.opts.To, db, err)
		}
	}
	if err := c.store.InitClone(ctx, c.ctl); err != nil {
		return fmt.Errorf("%s: %w", c.opts.To, err)
	}
	boot, err := c.store.LoadBootstrap(ctx, c.ctl, c.topic)
	if err != nil {
		return fmt.Errorf("%s: %w", c.opts.To, err)
	}
	for _, b := range boot {
		if err := c.store.DeleteBootstrap(ctx, c.ctl, c.topic, b.DB, b.Table); err != nil {
			return fmt.Errorf("%s: %w", c.opts.To, err)
		}
	}
	if err := c.store.DeleteCloneTables(ctx, c.ctl, c.topic); err != nil {
		return fmt.Errorf("%s: %w", c.opts.To, err)
	}
	return c.store.Delete(ctx, c.ctl, c.topic, 0)
}

// resume keeps the tables a stopped run copied, and notes the ones it cut,
// which are copied again.
func (c *cloner) resume(progress map[string]checkpoint.CloneTable) {
	c.done, c.redo = map[tableName]checkpoint.CloneTable{}, map[tableName]bool{}
	for _, p := range progress {
		t := tableName{p.DB, p.Table}
		if p.State == checkpoint.CloneDone {
			c.done[t] = p
			c.res.Views = addView(c.res.Views, p.View)
		} else {
			c.redo[t] = true
		}
	}
	if len(progress) > 0 {
		c.log.Info().Int("tables_copied", len(c.done)).Int("tables_cut", len(c.redo)).
			Msg("resuming a stopped clone: the tables it copied are kept, the ones it cut are copied again")
	}
}

// addView adds a view's checkpoint to the list, by offset, once.
func addView(views []checkpoint.State, v checkpoint.State) []checkpoint.State {
	i, found := slices.BinarySearchFunc(views, v.Offset, func(s checkpoint.State, o int64) int {
		return int(max(-1, min(1, s.Offset-o)))
	})
	if found {
		return views
	}
	return slices.Insert(views, i, v)
}

// dropGone drops the tables a stopped run cut that the source no longer
// has: nothing would copy them again.
func (c *cloner) dropGone(ctx context.Context, l *listing) error {
	for t := range c.redo {
		if l.has(t) {
			continue
		}
		c.log.Info().Str("table", t.String()).Msg("a table cut by the stopped run is gone from the source: dropping it")
		if _, err := c.ctl.ExecContext(ctx, "DROP TABLE IF EXISTS "+t.quoted()); err != nil {
			return fmt.Errorf("%s: drop %s: %w", c.opts.To, t, err)
		}
	}
	return nil
}

// createDatabases creates the replicated databases with the source's
// defaults, or gives existing ones those defaults: DDL the sink applies later
// may rely on them.
func (c *cloner) createDatabases(ctx context.Context, dbs []database) error {
	for _, d := range dbs {
		opts := " CHARACTER SET " + d.charset + " COLLATE " + d.collation
		for _, q := range []string{"CREATE DATABASE IF NOT EXISTS " + qi(d.name) + opts, "ALTER DATABASE " + qi(d.name) + opts} {
			if _, err := c.ctl.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("%s: create database %s: %w", c.opts.To, d.name, err)
			}
		}
	}
	return nil
}

// createTable makes t on the target anew from the source's definition,
// after recording that its copy begins.
func (c *cloner) createTable(ctx context.Context, v *view, t tableName, ddl string) error {
	p := checkpoint.CloneTable{Topic: c.topic, DB: t.db, Table: t.name, State: checkpoint.CloneCopying, Source: c.opts.From, View: v.state}
	if err := c.store.SaveCloneTable(ctx, c.ctl, p); err != nil {
		return fmt.Errorf("%s: %w", c.opts.To, err)
	}
	for _, q := range []string{"DROP TABLE IF EXISTS " + t.quoted(), "USE " + qi(t.db), ddl} {
		if _, err := c.ctl.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: create table %s: %w", c.opts.To, t, err)
		}
	}
	return nil
}

// tableDone records, in one transaction, that t holds the source's rows as
// of the view, and its bootstrap entry: the sink skips the table's messages
// up to the view's position (floor = the offset before the view's next).
func (c *cloner) tableDone(ctx context.Context, v *view, t tableName, rows int64, started time.Time) error {
	tx, err := c.ctl.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", c.opts.To, err)
	}
	defer tx.Rollback()
	p := checkpoint.CloneTable{Topic: c.topic, DB: t.db, Table: t.name, State: checkpoint.CloneDone, Source: c.opts.From,
		View: v.state, Rows: rows, StartedAt: started}
	b := checkpoint.Bootstrap{Topic: c.topic, DB: t.db, Table: t.name, Mode: checkpoint.ModeClone, FloorOffset: floor(v.state)}
	if err := c.store.SaveCloneTable(ctx, tx, p); err != nil {
		return fmt.Errorf("%s: %w", c.opts.To, err)
	}
	if err := c.store.SaveBootstrap(ctx, tx, b); err != nil {
		return fmt.Errorf("%s: %w", c.opts.To, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: %w", c.opts.To, err)
	}
	c.done[t] = p
	return nil
}

// floor is a view's clone floor: the last offset whose message its rows
// hold (the checkpoint's offset is the next one to read).
func floor(view checkpoint.State) int64 { return view.Offset - 1 }

// finish writes the target's checkpoint, last, and forgets the progress in
// the same transaction. The checkpoint is the oldest view's: every table
// holds at least the messages before it. Its MaxTxnSeq is the newest view's,
// so that a sink without per-table floors treats the transactions between
// the views as the replays they are for the tables copied later
// (docs/DESIGN.md, "Clone").
func (c *cloner) finish(ctx context.Context) error {
	if len(c.res.Views) == 0 {
		return fmt.Errorf("%w: nothing was copied: %s replicates no table that %s holds", ErrSource, c.topic, c.opts.From)
	}
	cp := c.res.Views[0]
	for _, v := range c.res.Views {
		cp.MaxTxnSeq = max(cp.MaxTxnSeq, v.MaxTxnSeq, v.TxnSeq)
	}
	cp.Topic, cp.Partition, cp.DDLPending, cp.UpdatedAt = c.topic, 0, 0, time.Time{}
	tx, err := c.ctl.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", c.opts.To, err)
	}
	defer tx.Rollback()
	if err := c.store.Save(ctx, tx, cp); err != nil {
		return fmt.Errorf("%s: %w", c.opts.To, err)
	}
	if err := c.store.DeleteCloneTables(ctx, tx, c.topic); err != nil {
		return fmt.Errorf("%s: %w", c.opts.To, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: write the checkpoint: %w", c.opts.To, err)
	}
	c.res.Checkpoint, c.res.Kept = cp, len(c.done)-c.res.Copied
	return nil
}
