package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/rowcast/rowcast/internal/mysqlerr"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
)

// Concurrent DDL, on a master of a master-master set: another master's DDL
// statement on a table this master changed itself after what the other had
// seen of it (both changed the table's definition at once) stops the worker
// before it runs, so that neither definition is applied over the other.
// This master's own DDL statements, by table and seq_no of its GTID domain,
// and how far its unit's reader has recorded them, are in the bookkeeping
// schema (service.DDLLog writes them); the incoming statement's GTID set
// says up to which seq_no of this master's domain its origin had applied.

// ErrConcurrentDDL: two masters changed one table's definition at once.
var ErrConcurrentDDL = errors.New("master-master: concurrent DDL")

// DDLLogTables creates the tables of a master's own DDL statements.
func DDLLogTables(schema string) []string {
	q := quoteIdent(schema)
	return []string{"CREATE DATABASE IF NOT EXISTS " + q,
		"CREATE TABLE IF NOT EXISTS " + q + ".`own_ddl` (`table_name` VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, " +
			"`seq` BIGINT UNSIGNED NOT NULL, `gtid` VARCHAR(64) NOT NULL, `stmt` MEDIUMTEXT NOT NULL, PRIMARY KEY (`table_name`, `seq`)) ENGINE=InnoDB",
		"CREATE TABLE IF NOT EXISTS " + q + ".`own_ddl_progress` (`id` TINYINT NOT NULL PRIMARY KEY, `seq` BIGINT UNSIGNED NOT NULL) ENGINE=InnoDB"}
}

// ddlRecordWarn is how often a DDL statement waiting for this master's
// reader says so in the log.
const ddlRecordWarn = 30 * time.Second

// checkConcurrentDDL refuses ev when this master changed its table after
// what ev's origin had seen of this master.
func (t *Target) checkConcurrentDDL(ctx context.Context, ev *pipeline.Event) error {
	table, ok := sink.DDLTable(ev.Database, ev.Statement)
	if t.cfg.OriginDomain == nil || !ok || ev.GTIDSet == "" {
		return nil
	}
	seen, err := DomainSeq(ev.GTIDSet, t.origin.own)
	if err != nil {
		return fmt.Errorf("%w: the GTID set of DDL %s: %w", pipeline.ErrMalformed, ev.GTID, err)
	}
	if err := t.waitDDLRecorded(ctx); err != nil {
		return err
	}
	var seq uint64
	var gtid, stmt string
	err = t.ex.QueryRowContext(ctx, "SELECT `seq`, `gtid`, `stmt` FROM "+quoteIdent(t.cfg.Schema)+".`own_ddl` WHERE `table_name` = ? AND `seq` > ? ORDER BY `seq` LIMIT 1",
		table, seen).Scan(&seq, &gtid, &stmt)
	if err != nil {
		return ignoreNoRows(err)
	}
	return sink.WithAdvice(fmt.Errorf("%w on %s: the DDL %q (GTID %s) on %s meets this master's own DDL %q (GTID %s) on the same table, which the other master had not applied when it ran its statement (it had this master's domain %d up to seq %d): "+
		"applied, the two masters' definitions of %s would differ", ErrConcurrentDDL, t.cfg.Node, clip(ev.Statement, 200), ev.GTID, table, clip(stmt, 200), gtid, t.origin.own, seen, table),
		"make the table's definition the same on every master by hand (with SET SESSION sql_log_bin=0, so that it goes nowhere else), then skip this statement's offset on every master it stopped (rowcast sink --master M --replica R --skip-offset N)")
}

// waitDDLRecorded waits until this master's reader has recorded its own
// DDL up to its binlog's position now.
func (t *Target) waitDDLRecorded(ctx context.Context) error {
	var pos string
	if err := t.ex.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&pos); err != nil {
		return err
	}
	now, err := DomainSeq(pos, t.origin.own)
	if err != nil || now == 0 {
		return err
	}
	warn := time.Now().Add(ddlRecordWarn)
	for {
		var got uint64
		err := t.ex.QueryRowContext(ctx, "SELECT `seq` FROM "+quoteIdent(t.cfg.Schema)+".`own_ddl_progress` WHERE `id` = 1").Scan(&got)
		if err := ignoreNoRows(err); err != nil && !mysqlerr.Missing(err) {
			return err
		}
		if got >= now {
			return nil
		}
		if time.Now().After(warn) {
			t.log.Warn().Str("node", t.cfg.Node).Uint64("recorded", got).Uint64("own_seq", now).
				Msgf("master-master: a DDL statement waits until %s's own unit has recorded its DDL up to seq %d of domain %d: is `rowcast run --master %s` running?", t.cfg.Node, now, t.origin.own, t.cfg.Node)
			warn = time.Now().Add(ddlRecordWarn)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// clip shortens s to n bytes for a message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func ignoreNoRows(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	return err
}
