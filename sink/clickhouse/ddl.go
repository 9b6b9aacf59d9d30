package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
)

// ApplyDDL inserts everything pending, maps the statement to ClickHouse
// statements and runs them, then saves st. Every mapped statement checks
// the table first (CREATE ... IF NOT EXISTS, a column added only when
// missing, a rename only when its source exists), so running it again after
// a crash before st was saved does what it did once.
func (t *Target) ApplyDDL(ctx context.Context, ev *pipeline.Event, st checkpoint.State) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.land(); err != nil {
		return err
	}
	acts, err := ddlPlan(ev.Statement, ev.Database)
	if err != nil {
		return notMapped(ev, err)
	}
	if err := t.flush(ctx); err != nil {
		return err
	}
	t.forgetShapes()
	for _, a := range acts {
		if strings.EqualFold(a.table.db, t.cfg.Database) || strings.EqualFold(a.to.db, t.cfg.Database) {
			t.log.Warn().Stringer("position", ev.Pos).Msg("not applying a DDL statement on the bookkeeping database")
			continue
		}
		if err := t.runAction(ctx, a); err != nil {
			return fmt.Errorf("DDL %q: %w", truncate(ev.Statement, 300), err)
		}
	}
	return t.store.saveAll(ctx, nil, nil, st)
}

// notMapped is the error of a statement the sink cannot map.
func notMapped(ev *pipeline.Event, err error) error {
	if errors.Is(err, errNotMapped) {
		err = fmt.Errorf("%w: %w", pipeline.ErrUnsupported, err)
	}
	return sink.WithAdvice(fmt.Errorf("DDL %q in database %q: %w", truncate(ev.Statement, 300), ev.Database, err),
		"apply the equivalent change to the ClickHouse tables by hand (docs/CLICKHOUSE.md lists what the sink maps), then skip this offset")
}

func (t *Target) runAction(ctx context.Context, a action) error {
	switch a.kind {
	case aCreateDB:
		return t.run(ctx, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(a.table.db))
	case aDropDB:
		return t.run(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(a.table.db))
	case aCreateTable:
		return t.createTable(ctx, a)
	case aDropTable:
		return t.run(ctx, "DROP TABLE IF EXISTS "+qualified(a.table.db, a.table.name))
	case aRename:
		return t.renameTable(ctx, a.table, a.to)
	case aTruncate:
		return t.truncateTable(ctx, a.table)
	}
	return t.columnAction(ctx, a)
}

// createTable creates a table from its CREATE TABLE; one the sink could not
// read, or without a primary key, is created from its first row event (or
// refused then).
func (t *Target) createTable(ctx context.Context, a action) error {
	if a.def == nil || len(a.def.PrimaryKey) == 0 {
		t.log.Info().Str("table", qualified(a.table.db, a.table.name)).
			Msg("CREATE TABLE not mapped now: the table is created from its first row event")
		return nil
	}
	types, err := columnTypes(a.def)
	if err != nil {
		return err
	}
	q, err := createSQL(a.def, types, t.cfg.History)
	if err != nil {
		return err
	}
	if err := t.ensureDatabase(ctx, a.table.db); err != nil {
		return err
	}
	return t.run(ctx, q)
}

func (t *Target) renameTable(ctx context.Context, from, to tableRef) error {
	src, err := t.describe(ctx, from.db, from.name)
	if err != nil || src == nil {
		return err // gone already: renamed before a restart, or never created
	}
	dst, err := t.describe(ctx, to.db, to.name)
	if err != nil {
		return err
	}
	if dst != nil {
		return sink.WithAdvice(fmt.Errorf("rename %s to %s: both exist in ClickHouse", qualified(from.db, from.name), qualified(to.db, to.name)),
			"a replay across a RENAME recreated its source: drop the one of the two tables that is not the master's, then restart the worker")
	}
	if err := t.ensureDatabase(ctx, to.db); err != nil {
		return err
	}
	return t.run(ctx, "RENAME TABLE "+qualified(from.db, from.name)+" TO "+qualified(to.db, to.name))
}

// truncateTable empties a table ClickHouse has.
func (t *Target) truncateTable(ctx context.Context, tr tableRef) error {
	have, err := t.describe(ctx, tr.db, tr.name)
	if err != nil || have == nil {
		return err
	}
	return t.run(ctx, "TRUNCATE TABLE "+qualified(tr.db, tr.name))
}

// columnAction adds, drops or retypes a column of an existing table. A
// table ClickHouse does not have yet gets its columns with its first row.
func (t *Target) columnAction(ctx context.Context, a action) error {
	have, err := t.describe(ctx, a.table.db, a.table.name)
	if err != nil || have == nil {
		return err
	}
	name := qualified(a.table.db, a.table.name)
	_, exists := have.types[a.col.Name]
	key := isKeyColumn(have, a.col.Name)
	if a.kind == aDropColumn {
		if key {
			return keyColumnChange(a.col.Name, name)
		}
		if exists {
			return t.run(ctx, "ALTER TABLE "+name+" DROP COLUMN "+quoteIdent(a.col.Name))
		}
		return nil
	}
	ct, err := mapColumn(a.col, !key)
	switch {
	case err != nil:
		return err
	case !exists:
		return t.run(ctx, "ALTER TABLE "+name+" ADD COLUMN "+quoteIdent(a.col.Name)+" "+ct.String())
	case have.types[a.col.Name] == ct.String():
		return nil
	case key:
		return keyColumnChange(a.col.Name, name)
	}
	return t.run(ctx, "ALTER TABLE "+name+" MODIFY COLUMN "+quoteIdent(a.col.Name)+" "+ct.String())
}

func keyColumnChange(col, table string) error {
	return sink.WithAdvice(fmt.Errorf("%w: column %s is in the primary key of %s", pipeline.ErrUnsupported, col, table),
		"ClickHouse cannot change a sorting key column: drop the table in ClickHouse, skip this offset, and re-seed the table with a snapshot")
}

func isKeyColumn(have *chTable, col string) bool {
	for _, k := range have.key {
		if k == col {
			return true
		}
	}
	return false
}
