package mysql

import (
	"context"
	"fmt"
	"strings"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/internal/redact"
	"github.com/rowcast/rowcast/pipeline"
)

// StartSnapshot applies a table's snapshot start marker: DROP TABLE IF
// EXISTS and the marker's CREATE TABLE, run in the table's database, then
// the bootstrap entry and st in one transaction. DDL commits implicitly, so
// a crash between the two leaves the checkpoint before the marker, and the
// restarted worker replaces the table again.
func (t *Target) StartSnapshot(ctx context.Context, ev *pipeline.Event, st checkpoint.State) error {
	if err := t.checkMarker(ev); err != nil {
		return err
	}
	t.forgetTables() // the table's keys and columns are new
	if err := t.holdWhileBooting(ctx, true, len(t.booting) == 0); err != nil {
		return err
	}
	if err := t.recreate(ctx, ev); err != nil {
		return err
	}
	if err := t.Begin(ctx); err != nil {
		return err
	}
	b := checkpoint.Bootstrap{Topic: t.cfg.Topic, DB: ev.Table.Database, Table: ev.Table.Name,
		Mode: checkpoint.ModeSnapshot, Since: st.UpdatedAt}
	if err := t.store.SaveBootstrap(ctx, t.ex, b); err != nil {
		t.Rollback(ctx)
		return err
	}
	t.booting[b.Key()] = true // before the commit, which ends the hold without tables
	if err := t.Commit(ctx, st); err != nil {
		delete(t.booting, b.Key())
		t.Rollback(ctx)
		return err
	}
	t.log.Info().Str("table", qualified(ev.Table)).Stringer("position", ev.Pos).
		Msg("table recreated from the snapshot's definition")
	return nil
}

// checkMarker refuses a start marker without a definition, or of the
// bookkeeping schema.
func (t *Target) checkMarker(ev *pipeline.Event) error {
	switch {
	case ev.Table == nil || strings.TrimSpace(ev.Statement) == "":
		return fmt.Errorf("%w: a snapshot start marker without a table or its definition", pipeline.ErrMalformed)
	case strings.EqualFold(ev.Table.Database, t.cfg.Schema):
		return fmt.Errorf("%w: a snapshot of the bookkeeping schema %s", pipeline.ErrUnsupported, t.cfg.Schema)
	}
	return nil
}

// recreate drops the table and runs its definition in its database (SHOW
// CREATE TABLE names the table without its database), which it creates
// when the replica lacks it. The session runs with foreign_key_checks=0, so
// tables that reference it do not block it.
func (t *Target) recreate(ctx context.Context, ev *pipeline.Event) error {
	tbl := ev.Table
	if err := t.createDatabase(ctx, tbl.Database); err != nil {
		return err
	}
	if _, err := t.ex.ExecContext(ctx, "DROP TABLE IF EXISTS "+qualified(tbl)); err != nil {
		return fmt.Errorf("drop %s before its snapshot: %w", qualified(tbl), err)
	}
	if _, err := t.ex.ExecContext(ctx, "USE "+quoteIdent(tbl.Database)); err != nil {
		return fmt.Errorf("USE %s before creating %s: %w", tbl.Database, tbl.Name, err)
	}
	if _, err := t.ex.ExecContext(ctx, ev.Statement); err != nil {
		return fmt.Errorf("create %s from the snapshot's definition %q: %w", qualified(tbl), redact.SQL(ev.Statement), err)
	}
	return nil
}

// createDatabase creates a table's database on a replica that lacks it (a
// new, empty server bootstraps from the topic alone). The marker does not
// carry the master's database defaults, so it gets the server's: the table
// itself is created with its own character set and collation.
func (t *Target) createDatabase(ctx context.Context, db string) error {
	if _, err := t.ex.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(db)); err != nil {
		return fmt.Errorf("create database %s for its snapshot: %w", db, err)
	}
	return nil
}

// EndBootstrap deletes the bootstrap entry of db.table in the open
// transaction.
func (t *Target) EndBootstrap(ctx context.Context, db, table string) error {
	t.ending = append(t.ending, db+"."+table)
	return t.store.DeleteBootstrap(ctx, t.ex, t.cfg.Topic, db, table)
}

// Bootstrap returns the bootstrap entries of the topic: those Open read,
// when no transaction ran since, else read again.
func (t *Target) Bootstrap(ctx context.Context) (map[string]checkpoint.Bootstrap, error) {
	if t.bootFresh {
		t.bootFresh = false
		return t.boot, nil
	}
	boot, err := t.store.LoadBootstrap(ctx, t.ex, t.cfg.Topic)
	if err == nil {
		t.trackBoot(boot)
	}
	return boot, err
}

// trackBoot replaces the names of the tables bootstrapping with those of
// entries read from the replica.
func (t *Target) trackBoot(entries map[string]checkpoint.Bootstrap) {
	if t.booting == nil {
		t.booting = map[string]bool{}
	}
	clear(t.booting)
	for _, e := range entries {
		t.booting[e.Key()] = true
	}
}

// holdWhileBooting keeps the replica read-only while it has tables to load,
// whatever Config.Protect says (which holds it read-only always), and ends
// the hold when it has none. fresh: the first table starts loading now.
func (t *Target) holdWhileBooting(ctx context.Context, booting, fresh bool) error {
	switch {
	case t.cfg.Protect:
		return nil
	case booting:
		return t.ro.Hold(ctx, t.ex, fresh)
	default:
		return t.ro.Release(ctx, t.ex)
	}
}

// afterCommit ends the read-only hold once a commit deleted the last
// bootstrap entry, and checks a held one again now and then. The rows are
// committed: a failure here is logged, and tried again at a later commit.
func (t *Target) afterCommit(ctx context.Context) {
	for _, k := range t.ending {
		delete(t.booting, k)
	}
	t.ending = t.ending[:0]
	t.keepProtected(ctx)
	if t.cfg.Protect || !t.ro.Held() {
		return
	}
	var err error
	if len(t.booting) == 0 {
		err = t.ro.Release(ctx, t.ex)
	} else {
		err = t.ro.Refresh(ctx, t.ex)
	}
	if err != nil {
		t.log.Warn().Err(err).Msg("read_only while tables bootstrap")
	}
}
