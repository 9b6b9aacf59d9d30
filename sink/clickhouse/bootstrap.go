package clickhouse

import (
	"context"
	"fmt"
	"maps"
	"strings"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/pipeline"
)

// StartSnapshot applies a table's snapshot start marker: everything pending
// is inserted, the table is dropped and created empty from the marker's
// columns and key, then the bootstrap entry and st are saved. A crash in
// between replaces the table again.
func (t *Target) StartSnapshot(ctx context.Context, ev *pipeline.Event, st checkpoint.State) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.checkMarker(ev); err != nil {
		return err
	}
	if err := t.flush(ctx); err != nil {
		return err
	}
	t.forgetShapes()
	if err := t.recreate(ctx, ev.Table); err != nil {
		return err
	}
	op := bootOp{b: checkpoint.Bootstrap{Topic: t.cfg.Topic, DB: ev.Table.Database, Table: ev.Table.Name,
		Mode: checkpoint.ModeSnapshot, FloorOffset: -1, Since: st.UpdatedAt}}
	t.applyBoot([]bootOp{op})
	if err := t.store.saveAll(ctx, []bootOp{op}, nil, st); err != nil {
		return err
	}
	t.log.Info().Str("table", qualified(ev.Table.Database, ev.Table.Name)).Stringer("position", ev.Pos).
		Msg("table recreated from the snapshot's columns")
	return nil
}

// checkMarker refuses a start marker without a table, or of the
// bookkeeping database.
func (t *Target) checkMarker(ev *pipeline.Event) error {
	switch {
	case ev.Table == nil || len(ev.Table.Columns) == 0:
		return fmt.Errorf("%w: a snapshot start marker without a table or its columns", pipeline.ErrMalformed)
	case strings.EqualFold(ev.Table.Database, t.cfg.Database):
		return fmt.Errorf("%w: a snapshot of the bookkeeping database %s", pipeline.ErrUnsupported, t.cfg.Database)
	}
	return nil
}

// recreate drops the table and creates it from tbl's columns.
func (t *Target) recreate(ctx context.Context, tbl *pipeline.Table) error {
	types, err := columnTypes(tbl)
	if err != nil {
		return err
	}
	create, err := createSQL(tbl, types, t.cfg.History)
	if err != nil {
		return err
	}
	if err := t.ensureDatabase(ctx, tbl.Database); err != nil {
		return err
	}
	if err := t.run(ctx, "DROP TABLE IF EXISTS "+qualified(tbl.Database, tbl.Name)); err != nil {
		return err
	}
	return t.run(ctx, create)
}

// EndBootstrap deletes the bootstrap entry of db.table with the open
// transaction.
func (t *Target) EndBootstrap(ctx context.Context, db, table string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bootOpen = append(t.bootOpen, bootOp{b: checkpoint.Bootstrap{Topic: t.cfg.Topic, DB: db, Table: table}, deleted: true})
	return nil
}

// Bootstrap returns the bootstrap entries as committed.
func (t *Target) Bootstrap(ctx context.Context) (map[string]checkpoint.Bootstrap, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.boot), nil
}

// applyBoot applies committed changes to the entries in memory.
func (t *Target) applyBoot(ops []bootOp) {
	if t.boot == nil {
		t.boot = map[string]checkpoint.Bootstrap{}
	}
	for _, op := range ops {
		if op.deleted {
			delete(t.boot, op.b.Key())
		} else {
			t.boot[op.b.Key()] = op.b
		}
	}
}

// forgetShapes drops the blocks (all empty after a flush) and the schema
// cache, before a statement changes tables.
func (t *Target) forgetShapes() {
	t.blocks = map[*pipeline.Table]*block{}
	t.order = nil
	t.dbs = map[string]bool{}
}
