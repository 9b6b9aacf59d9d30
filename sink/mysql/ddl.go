package mysql

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/internal/mysqlerr"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
)

// alreadyApplied are the errors a DDL statement gets when its effect is
// already on the replica: table or database exists or is gone, column or
// key exists or is gone, trigger, routine or event is gone. RENAME and
// CREATE TRIGGER/PROCEDURE/FUNCTION/EVENT are checked otherwise (rerun.go).
var alreadyApplied = map[uint16]string{
	gomysql.ER_DB_CREATE_EXISTS:       "database exists",
	gomysql.ER_DB_DROP_EXISTS:         "database does not exist",
	gomysql.ER_TABLE_EXISTS_ERROR:     "table exists",
	gomysql.ER_BAD_TABLE_ERROR:        "unknown table",
	gomysql.ER_BAD_FIELD_ERROR:        "unknown column",
	gomysql.ER_DUP_FIELDNAME:          "duplicate column",
	gomysql.ER_DUP_KEYNAME:            "duplicate key name",
	gomysql.ER_CANT_DROP_FIELD_OR_KEY: "cannot drop: does not exist",
	gomysql.ER_TRG_DOES_NOT_EXIST:     "trigger does not exist",
	gomysql.ER_SP_DOES_NOT_EXIST:      "routine does not exist",
	gomysql.ER_EVENT_DOES_NOT_EXIST:   "event does not exist",
}

// ApplyDDL runs a DDL statement, which MySQL commits implicitly, between two
// checkpoint saves: ddl_pending first, then st. After a crash between them,
// or in a replay, a failure that shows the statement's effect already there
// is accepted (rerun.go). DDL on the bookkeeping schema is logged and
// passed. docs/DESIGN.md, "DDL on a MySQL target".
func (t *Target) ApplyDDL(ctx context.Context, ev *pipeline.Event, st checkpoint.State) error {
	seq := ev.Pos.TxnSeq
	origin := t.takeOrigin() // the statement's, not the checkpoint saves'
	if t.onBookkeeping(ev) {
		t.log.Warn().Stringer("position", ev.Pos).Str("schema", t.cfg.Schema).
			Msg("not applying a DDL statement on the bookkeeping schema")
		return t.saveAlone(ctx, st)
	}
	retry := t.saved.DDLPending == seq || seq <= t.maxSeq
	if !retry {
		if err := t.checkConcurrentDDL(ctx, ev); err != nil {
			return err
		}
	}
	before := t.saved
	pending := before
	pending.DDLPending = seq
	pending.UpdatedAt = st.UpdatedAt
	if err := t.saveAlone(ctx, pending); err != nil {
		return fmt.Errorf("save ddl_pending: %w", err)
	}
	t.forgetTables() // keys, foreign keys or triggers may change
	if err := t.sessionGTID(ctx, origin); err != nil {
		return err
	}
	if err := t.binlogged(ctx, true); err != nil {
		return err
	}
	if err := t.runDDL(ctx, ev, retry); err != nil {
		// The statement failed: unless the connection broke (it may then
		// have run), or a run before a restart cannot be ruled out, it did
		// not run, so ddl_pending must not make the next attempt accept
		// "already exists" as success.
		if sink.Classify(err) == sink.Human && !errors.Is(err, ErrDDLUndecided) {
			if rerr := t.saveAlone(ctx, before); rerr != nil {
				t.log.Warn().Err(rerr).Msg("could not clear ddl_pending after a failed DDL")
			}
		}
		return err
	}
	t.appliedOrigin(origin)
	return t.saveAlone(ctx, st)
}

// runDDL runs the statement in the event's database, under the master's
// session (session.go); retry says it may have run before (rerun.go).
func (t *Target) runDDL(ctx context.Context, ev *pipeline.Event, retry bool) error {
	if err := t.useDatabase(ctx, ev); err != nil {
		return err
	}
	shape := parseDDL(ev.Statement, ev.Database)
	if retry && shape.reusesNames() {
		return undecidedRename(ev)
	}
	err := t.execInSession(ctx, ev)
	if err == nil {
		return nil
	}
	if retry {
		meaning, done, cerr := t.alreadyRan(ctx, ev, shape, err)
		if cerr != nil {
			return cerr
		}
		if done {
			t.log.Info().Stringer("position", ev.Pos).Uint16("error", mysqlerr.Code(err)).Str("meaning", meaning).
				Msg("DDL was already applied before a restart or replay; continuing")
			return nil
		}
	}
	return ddlFailed(ev, shape, err, retry)
}

// execInSession runs the statement between entering the master's session
// and leaving it; a failure to leave it is the error when the statement
// succeeded.
func (t *Target) execInSession(ctx context.Context, ev *pipeline.Event) error {
	restore, args, err := t.enterSession(ctx, ev)
	if err != nil {
		return err
	}
	_, err = t.ex.ExecContext(ctx, ev.Statement)
	if rerr := t.leaveSession(ctx, restore, args); rerr != nil && err == nil {
		return rerr
	}
	return err
}

// useDatabase makes the event's database the session's.
func (t *Target) useDatabase(ctx context.Context, ev *pipeline.Event) error {
	if ev.Database == "" {
		return nil
	}
	if _, err := t.ex.ExecContext(ctx, "USE "+quoteIdent(ev.Database)); err != nil {
		if !isDatabaseDDL(ev.Statement) || !mysqlerr.Is(err, gomysql.ER_BAD_DB_ERROR) {
			return fmt.Errorf("USE %s before DDL: %w", ev.Database, err)
		}
		// CREATE/DROP DATABASE does not need its session's database.
	}
	return nil
}

var databaseDDL = regexp.MustCompile(`(?is)^\s*(CREATE|DROP|ALTER)\s+(DATABASE|SCHEMA)\b`)

func isDatabaseDDL(stmt string) bool { return databaseDDL.MatchString(stmt) }

// onBookkeeping reports whether a DDL event touches the bookkeeping schema:
// run in it, on it (CREATE/DROP/ALTER DATABASE), or naming one of its
// objects qualified. A column or table that merely shares the schema's name
// does not count.
func (t *Target) onBookkeeping(ev *pipeline.Event) bool {
	s := t.cfg.Schema
	if strings.EqualFold(ev.Database, s) {
		return true
	}
	name := "`?" + regexp.QuoteMeta(s) + "`?"
	qualifiedRef := regexp.MustCompile(`(?i)(^|[^A-Za-z0-9_$` + "`" + `])` + name + `\s*\.`)
	onSchema := regexp.MustCompile(`(?is)^\s*(CREATE|DROP|ALTER)\s+(DATABASE|SCHEMA)\s+(IF\s+(NOT\s+)?EXISTS\s+)?` + name + `(\s|;|$)`)
	return qualifiedRef.MatchString(ev.Statement) || onSchema.MatchString(ev.Statement)
}
