package mysql

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
)

// alreadyApplied are the errors a DDL statement gets when its effect is
// already on the replica: table or database exists or is gone, column or
// key exists or is gone.
var alreadyApplied = map[uint16]string{
	1007: "database exists",
	1008: "database does not exist",
	1050: "table exists",
	1051: "unknown table",
	1054: "unknown column",
	1060: "duplicate column",
	1061: "duplicate key name",
	1091: "cannot drop: does not exist",
}

// ApplyDDL runs a DDL statement. MySQL commits DDL implicitly, so it cannot
// share a transaction with the checkpoint. Instead:
//
//  1. save the current checkpoint with ddl_pending = the DDL's TxnSeq, in a
//     transaction of its own;
//  2. USE the event's database, run the statement;
//  3. save st, the checkpoint after the DDL.
//
// A crash between 1 and 3 leaves ddl_pending set: the restarted worker reads
// the DDL again, and the errors that mean "already applied" (table exists,
// unknown table, duplicate column...) are then accepted and logged. They
// are also accepted when the DDL is a replay (TxnSeq <= max_txn_seq). Any
// other failure stops the worker.
//
// DDL on the bookkeeping schema is never applied: it is logged and passed.
func (t *Target) ApplyDDL(ctx context.Context, ev *pipeline.Event, st checkpoint.State) error {
	seq := ev.Pos.TxnSeq
	if t.onBookkeeping(ev) {
		t.log.Warn().Stringer("position", ev.Pos).Str("schema", t.cfg.Schema).
			Msg("not applying a DDL statement on the bookkeeping schema")
		return t.saveAlone(ctx, st)
	}
	retry := t.saved.DDLPending == seq || seq <= t.maxSeq
	before := t.saved
	pending := before
	pending.DDLPending = seq
	pending.UpdatedAt = st.UpdatedAt
	if err := t.saveAlone(ctx, pending); err != nil {
		return fmt.Errorf("save ddl_pending: %w", err)
	}
	t.forgetTables() // keys, foreign keys or triggers may change
	if err := t.runDDL(ctx, ev, retry); err != nil {
		// The statement failed: unless the connection broke (it may then
		// have run), it did not run, so ddl_pending must not make the next
		// attempt accept "already exists" as success.
		if sink.Classify(err) == sink.Human {
			if rerr := t.saveAlone(ctx, before); rerr != nil {
				t.log.Warn().Err(rerr).Msg("could not clear ddl_pending after a failed DDL")
			}
		}
		return err
	}
	return t.saveAlone(ctx, st)
}

// runDDL runs the statement in the event's database.
func (t *Target) runDDL(ctx context.Context, ev *pipeline.Event, retry bool) error {
	if ev.Database != "" {
		if _, err := t.ex.ExecContext(ctx, "USE "+quoteIdent(ev.Database)); err != nil {
			if !isDatabaseDDL(ev.Statement) || !isCode(err, 1049) {
				return fmt.Errorf("USE %s before DDL: %w", ev.Database, err)
			}
			// CREATE/DROP DATABASE does not need its session's database.
		}
	}
	if _, err := t.ex.ExecContext(ctx, ev.Statement); err != nil {
		var me *mysql.MySQLError
		if !retry || !errors.As(err, &me) || alreadyApplied[me.Number] == "" {
			return fmt.Errorf("DDL %q: %w", truncate(ev.Statement, 300), err)
		}
		t.log.Info().Stringer("position", ev.Pos).Uint16("error", me.Number).Str("meaning", alreadyApplied[me.Number]).
			Msg("DDL was already applied before a restart or replay; continuing")
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

func isCode(err error, code uint16) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == code
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
