package mysql

import (
	"context"
	"fmt"
	"strings"

	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
)

// Exactly-once apply commits a transaction's rows with the checkpoint row,
// an InnoDB table: rows of a table whose engine cannot roll back (MyISAM,
// Aria, MEMORY, ...) stay written when the transaction does not commit, and
// the worker applies them again. docs/DESIGN.md, "Table engines".

// checkEngine refuses rows of a replica table whose engine cannot commit
// with the checkpoint, unless the configuration accepts that (with a
// warning, once per table and Target).
func (t *Target) checkEngine(ctx context.Context, tbl *pipeline.Table) error {
	info, err := t.tableInfo(ctx, tbl)
	if err != nil || info.engine == "" { // a view, or missing: the statement says
		return err
	}
	ok, err := t.transactional(ctx, info.engine)
	if err != nil || ok {
		return err
	}
	if !t.cfg.AllowNonTransactional {
		return nonTransactional(tbl, info.engine)
	}
	t.warnEngine(tbl, info.engine)
	return nil
}

// transactional reports whether engine commits atomically with InnoDB:
// InnoDB itself, or an engine that information_schema.ENGINES says takes
// part in transactions and in the server's two-phase commit (MyRocks,
// TokuDB, NDB), which makes a commit across engines atomic on a crash.
func (t *Target) transactional(ctx context.Context, engine string) (bool, error) {
	if strings.EqualFold(engine, "InnoDB") {
		return true, nil
	}
	if ok, known := t.engines[engine]; known {
		return ok, nil
	}
	var ok bool
	err := t.ex.QueryRowContext(ctx, "SELECT COALESCE(MAX(TRANSACTIONS='YES' AND XA='YES'), 0) FROM information_schema.ENGINES WHERE ENGINE=?",
		engine).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("read whether engine %s is transactional: %w", engine, err)
	}
	if t.engines == nil {
		t.engines = map[string]bool{}
	}
	t.engines[engine] = ok
	return ok, nil
}

// nonTransactional is the error of a table whose rows cannot commit with
// the checkpoint.
func nonTransactional(tbl *pipeline.Table, engine string) error {
	err := fmt.Errorf("%w: %s uses the %s engine on the replica, which cannot roll back: its rows would not commit "+
		"with the checkpoint, and a crash or a retry would apply them twice or leave them half applied",
		ErrNonTransactional, qualified(tbl), engine)
	return sink.WithAdvice(err, fmt.Sprintf("ALTER TABLE %s ENGINE=InnoDB on the replica, or exclude the table (source.exclude), "+
		"or accept duplicates after crashes with sink.allow_non_transactional: true; then restart the worker", qualified(tbl)))
}

// warnEngine logs, once per table, that its rows are applied without
// exactly-once.
func (t *Target) warnEngine(tbl *pipeline.Table, engine string) {
	name := qualified(tbl)
	if t.engineWarned[name] {
		return
	}
	if t.engineWarned == nil || len(t.engineWarned) >= 4096 {
		t.engineWarned = map[string]bool{}
	}
	t.engineWarned[name] = true
	t.log.Warn().Str("table", name).Str("engine", engine).
		Msg("NOT EXACTLY-ONCE: this replica table's engine cannot roll back, and sink.allow_non_transactional is set: " +
			"after a crash or a retry its rows may be applied twice (keyless inserts doubled, a delete that finds no row stops the worker); " +
			"ALTER TABLE ... ENGINE=InnoDB on the replica to make it exact")
}
