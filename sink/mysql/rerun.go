package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/rowcast/rowcast/internal/mysqlerr"
	"github.com/rowcast/rowcast/internal/redact"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
)

// A DDL run again after a crash between it and its checkpoint (ddl_pending),
// or in a replay, fails when its effect is already there. Such a failure is
// accepted only where the replica shows that effect: docs/DESIGN.md, "DDL
// on a MySQL target".

// existsCode is the error of a CREATE whose object exists, by kind.
var existsCode = map[string]uint16{
	"TRIGGER":   gomysql.ER_TRG_ALREADY_EXISTS,
	"PROCEDURE": gomysql.ER_SP_ALREADY_EXISTS,
	"FUNCTION":  gomysql.ER_SP_ALREADY_EXISTS,
	"EVENT":     gomysql.ER_EVENT_ALREADY_EXISTS,
}

// alreadyRan reports whether err, the failure of a statement that may have
// run before, shows its effect already on the replica, and what it means.
// cerr is a failure to check that is not the server's answer.
func (t *Target) alreadyRan(ctx context.Context, ev *pipeline.Event, shape ddlShape, err error) (meaning string, done bool, cerr error) {
	code := mysqlerr.Code(err)
	switch {
	case len(shape.renames) > 0:
		if code != gomysql.ER_NO_SUCH_TABLE && code != gomysql.ER_TABLE_EXISTS_ERROR {
			return "", false, nil
		}
		done, cerr = t.renamed(ctx, shape.renames)
		return "the rename's tables are gone and its new names exist", done, cerr
	case shape.object != nil:
		if code != existsCode[shape.object.kind] {
			return "", false, nil
		}
		done, cerr = t.sameDefinition(ctx, shape.object, ev.Statement)
		return strings.ToLower(shape.object.kind) + " exists with the same definition", done, cerr
	}
	return alreadyApplied[code], alreadyApplied[code] != "", nil
}

// renamed reports whether every table of pairs is under its new name only.
func (t *Target) renamed(ctx context.Context, pairs []renamePair) (bool, error) {
	for _, p := range pairs {
		from, err := t.tableExists(ctx, p.from)
		if err != nil || from {
			return false, err
		}
		to, err := t.tableExists(ctx, p.to)
		if err != nil || !to {
			return false, err
		}
	}
	return true, nil
}

// tableExists reports whether a table or view of that name exists.
func (t *Target) tableExists(ctx context.Context, r tableRef) (bool, error) {
	var n int
	err := t.ex.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=? AND TABLE_NAME=?",
		r.db, r.name).Scan(&n)
	return n > 0, checkErr(err)
}

// sameDefinition reports whether the replica's object is the one stmt
// creates: the statement SHOW CREATE returns for a trigger (the statement
// as run) and a routine (rebuilt as the server also logs it), or for an
// event, whose schedule the server rewrites, the same definer and body.
func (t *Target) sameDefinition(ctx context.Context, o *objectRef, stmt string) (bool, error) {
	column := map[string]string{"TRIGGER": "SQL Original Statement", "PROCEDURE": "Create Procedure",
		"FUNCTION": "Create Function", "EVENT": "Create Event"}[o.kind]
	def, err := t.showCreate(ctx, o, column)
	if err != nil || def == "" {
		return false, err
	}
	stmt = strings.TrimRight(strings.TrimSpace(stmt), "; \t\r\n")
	if o.kind != "EVENT" {
		return def == stmt, nil
	}
	body, err := t.eventBody(ctx, o)
	return definer(def) == definer(stmt) && body != "" && strings.HasSuffix(stmt, body), err
}

// showCreate returns column of SHOW CREATE <kind> for o; "" when the
// sink's user may not read it (NULL) or the object is gone.
func (t *Target) showCreate(ctx context.Context, o *objectRef, column string) (string, error) {
	rows, err := t.ex.QueryContext(ctx, "SHOW CREATE "+o.String())
	if err != nil {
		return "", checkErr(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil || !rows.Next() {
		return "", checkErr(firstErr(err, rows.Err()))
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return "", checkErr(err)
	}
	for i, c := range cols {
		if strings.EqualFold(c, column) {
			return vals[i].String, nil
		}
	}
	return "", nil
}

// eventBody is the body of event o as the server keeps it ("" when it
// cannot be read).
func (t *Target) eventBody(ctx context.Context, o *objectRef) (string, error) {
	var body sql.NullString
	err := t.ex.QueryRowContext(ctx, "SELECT EVENT_DEFINITION FROM information_schema.EVENTS WHERE EVENT_SCHEMA=? AND EVENT_NAME=?",
		o.db, o.name).Scan(&body)
	return strings.TrimSpace(body.String), checkErr(err)
}

// definer is the head of a CREATE statement before its kind's keyword
// (" EVENT "): CREATE and the DEFINER clause.
func definer(stmt string) string {
	if i := strings.Index(strings.ToUpper(stmt), " EVENT "); i >= 0 {
		return stmt[:i]
	}
	return stmt
}

// checkErr passes on a failure to check that is not the server's answer
// (a lost connection: the worker retries); the server's refusal, or no
// rows, leaves the question open: nil.
func checkErr(err error) error {
	if err == nil || err == sql.ErrNoRows || mysqlerr.Code(err) != 0 {
		return nil
	}
	return fmt.Errorf("check whether the DDL ran before: %w", err)
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// undecidedRename refuses to run a RENAME that reuses names again: whether
// it ran before cannot be told from the tables, and running it twice moves
// them back. ddl_pending stays, so that a restart refuses it again.
func undecidedRename(ev *pipeline.Event) error {
	err := fmt.Errorf("%w: DDL %q renames tables through names it also renames (a swap), and it may have run before the restart: "+
		"run again, it would move them back", ErrDDLUndecided, redact.SQL(ev.Statement))
	return sink.WithAdvice(err, "compare the tables on the replica with the master's (SHOW CREATE TABLE, rowcast verify): "+
		"if the replica already holds the rename's result, skip this offset; otherwise run the statement by hand on the replica, then skip this offset")
}

// ddlFailed is the error of a DDL statement that failed, with the fix for
// the statements whose codes' general advice would mislead.
func ddlFailed(ev *pipeline.Event, shape ddlShape, err error, retry bool) error {
	err = fmt.Errorf("DDL %q: %w", redact.SQL(ev.Statement), err)
	if fix := ddlFix(shape, mysqlerr.Code(err), retry); fix != "" {
		return sink.WithAdvice(err, fix)
	}
	return err
}

// ddlFix is the fix of a failed RENAME or CREATE of a trigger, routine or
// event; "" for the general advice of its error code.
func ddlFix(shape ddlShape, code uint16, retry bool) string {
	switch {
	case len(shape.renames) > 0 && code == gomysql.ER_NO_SUCH_TABLE:
		return "a table to rename does not exist on the replica: if the replica already holds the rename's result, skip this offset; " +
			"otherwise create the table with the master's definition before the rename, and restart the worker"
	case len(shape.renames) > 0 && code == gomysql.ER_TABLE_EXISTS_ERROR:
		return "a new name of the rename is already taken on the replica while the table to rename is still there: " +
			"the replica diverged; compare both tables with the master's and drop or rename the one that does not belong, then restart the worker"
	case shape.object != nil && code == existsCode[shape.object.kind] && retry:
		o := shape.object
		return fmt.Sprintf("the replica has %s with another definition than the statement's (or one the sink's user cannot read): "+
			"compare SHOW CREATE %s on the master and the replica; if the replica's is the master's, skip this offset, "+
			"otherwise DROP %s on the replica and restart the worker", o, o, o)
	}
	return ""
}
