package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
)

// Conflicts, on a master of a master-master set: a row change of another
// master applies only to the row as that master saw it. An insert whose key
// exists here, or an update or delete whose before image is not the row
// here, means both masters changed the row concurrently: applied, the
// masters would diverge. Each conflict is recorded in the bookkeeping
// schema's conflicts table, and stops the worker (policy stop): the
// operator decides which row is right (docs/MASTER-MASTER.md).

// conflictPolicy is the only policy so far.
const conflictPolicy = "stop"

// checkConflicts refuses the first update or delete of rows (one table, one
// op class) that does not apply to the row here. A key the batch changed
// before is not checked again: the origin changed it twice in one
// transaction. Inserts are checked where they go as SQL (checkSQLInserts):
// as row events, an existing key fails them (ER_DUP_ENTRY) and sends them
// to SQL, so a batch of inserts costs no extra statement.
func (t *Target) checkConflicts(ctx context.Context, rows []*pipeline.Event) error {
	tbl := rows[0].Table
	if len(tbl.PrimaryKey) == 0 {
		return nil // refused at start-up: a master-master set needs keys
	}
	seen := map[string]bool{}
	for _, ev := range rows {
		k := describeKey(tbl, image(ev))
		if seen[k] {
			continue
		}
		seen[k] = true
		if ev.Op == pipeline.OpUpdate {
			seen[describeKey(tbl, ev.After)] = true
		}
		if ev.Op == pipeline.OpInsert {
			continue
		}
		if ok, err := t.matches(ctx, tbl, ev); err != nil || !ok {
			return t.conflictOrErr(ctx, tbl, ev, err)
		}
	}
	return nil
}

// checkSQLInserts refuses, on a master of a master-master set, the first
// insert of rows, about to be applied as SQL (an upsert would overwrite),
// whose key exists here.
func (t *Target) checkSQLInserts(ctx context.Context, rows []*pipeline.Event) error {
	if t.cfg.OriginDomain == nil || len(rows) == 0 {
		return nil
	}
	var inserts []*pipeline.Event
	for _, ev := range rows {
		if ev.Op == pipeline.OpInsert {
			inserts = append(inserts, ev)
		}
	}
	return t.checkInserts(ctx, rows[0].Table, inserts)
}

// image is the row image that names the row a change meets: the before
// image, or an insert's after image.
func image(ev *pipeline.Event) []any {
	if ev.Op == pipeline.OpInsert || ev.Op == pipeline.OpRead {
		return ev.After
	}
	return ev.Before
}

// matches reports whether the row here equals ev's before image.
func (t *Target) matches(ctx context.Context, tbl *pipeline.Table, ev *pipeline.Event) (bool, error) {
	var b strings.Builder
	b.WriteString("SELECT COUNT(*) FROM " + qualified(tbl))
	writeRowMatch(&b, tbl, !t.mariadb)
	args, err := appendMatch(nil, tbl, ev.Before, !t.mariadb)
	if err != nil {
		return false, err
	}
	var n int
	err = t.ex.QueryRowContext(ctx, b.String(), args...).Scan(&n)
	return n == 1, err
}

// checkInserts refuses the first insert whose key exists here, with one
// statement for all of them when none does.
func (t *Target) checkInserts(ctx context.Context, tbl *pipeline.Table, inserts []*pipeline.Event) error {
	if len(inserts) == 0 {
		return nil
	}
	n, err := t.existing(ctx, tbl, inserts)
	if err != nil || n == 0 {
		return err
	}
	for _, ev := range inserts {
		if n, err := t.existing(ctx, tbl, []*pipeline.Event{ev}); err != nil || n > 0 {
			return t.conflictOrErr(ctx, tbl, ev, err)
		}
	}
	return nil
}

// existing counts the rows here with the keys of rows' after images.
func (t *Target) existing(ctx context.Context, tbl *pipeline.Table, rows []*pipeline.Event) (int, error) {
	q, args, err := keysQuery("SELECT COUNT(*)", tbl, rows)
	if err != nil {
		return 0, err
	}
	var n int
	err = t.ex.QueryRowContext(ctx, q, args...).Scan(&n)
	return n, err
}

// keysQuery is `what FROM table WHERE (key) IN ((...), ...)` for the keys of
// rows' images.
func keysQuery(what string, tbl *pipeline.Table, rows []*pipeline.Event) (string, []any, error) {
	cols := make([]string, len(tbl.PrimaryKey))
	for i, c := range tbl.PrimaryKey {
		cols[i] = quoteIdent(tbl.Columns[c].Name)
	}
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")"
	var b strings.Builder
	b.WriteString(what + " FROM " + qualified(tbl) + " WHERE (" + strings.Join(cols, ",") + ") IN (")
	args := make([]any, 0, len(rows)*len(cols))
	for i, ev := range rows {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(tuple)
		for _, c := range tbl.PrimaryKey {
			v, err := value(tbl, c, image(ev))
			if err != nil {
				return "", nil, err
			}
			args = append(args, v)
		}
	}
	b.WriteString(")")
	return b.String(), args, nil
}

// conflictOrErr returns err, or, when nil, records ev's conflict and
// returns it.
func (t *Target) conflictOrErr(ctx context.Context, tbl *pipeline.Table, ev *pipeline.Event, err error) error {
	if err != nil {
		return err
	}
	current, err := t.currentRow(ctx, tbl, ev)
	if err != nil {
		return err
	}
	key := describeKey(tbl, image(ev))
	origin := ""
	if t.txnOrigin != nil {
		origin = t.txnOrigin.String()
	}
	incoming := describeChange(tbl, ev)
	if rerr := t.recordConflict(ctx, tbl, ev, conflictRecord{key: key, origin: origin, incoming: incoming, current: current,
		policy: conflictPolicy, resolution: "stopped the worker"}); rerr != nil {
		t.log.Warn().Err(rerr).Msg("could not record the conflict in the conflicts table")
	}
	return fmt.Errorf("%w on %s: the %s of %s key %s in transaction %s of the topic's master changed %s, but the row here is %s; policy %s: the worker stops",
		sink.ErrConflict, t.cfg.Node, opName(ev.Op), qualified(tbl), key, origin, incoming, current, conflictPolicy)
}

func opName(op pipeline.Op) string {
	return map[pipeline.Op]string{pipeline.OpInsert: "insert", pipeline.OpUpdate: "update", pipeline.OpDelete: "delete", pipeline.OpRead: "snapshot read"}[op]
}

// describeChange is a change's images, column by column.
func describeChange(tbl *pipeline.Table, ev *pipeline.Event) string {
	switch ev.Op {
	case pipeline.OpInsert:
		return "nothing into " + describeImage(tbl, ev.After)
	case pipeline.OpDelete:
		return describeImage(tbl, ev.Before) + " into nothing"
	}
	return describeImage(tbl, ev.Before) + " into " + describeImage(tbl, ev.After)
}

func describeImage(tbl *pipeline.Table, img []any) string {
	parts := make([]string, len(tbl.Columns))
	for i, c := range tbl.Columns {
		v := img[i]
		if b, ok := v.([]byte); ok {
			v = string(b)
		}
		parts[i] = fmt.Sprintf("%s=%v", c.Name, v)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// currentRow is the row here with ev's key, as text, or "missing".
func (t *Target) currentRow(ctx context.Context, tbl *pipeline.Table, ev *pipeline.Event) (string, error) {
	q, args, err := keysQuery("SELECT *", tbl, []*pipeline.Event{ev})
	if err != nil {
		return "", err
	}
	rows, err := t.ex.QueryContext(ctx, q, args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil || !rows.Next() {
		return "missing", err
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return "", err
	}
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = c + "=<nil>"
		if vals[i].Valid {
			parts[i] = c + "=" + vals[i].String
		}
	}
	return "(" + strings.Join(parts, ", ") + ")", rows.Err()
}

// conflictsTable is where conflicts are recorded, in the bookkeeping schema.
const conflictsTable = "(" +
	"`id` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, `detected_at` DATETIME(6) NOT NULL, `node` VARCHAR(64) NOT NULL, " +
	"`topic` VARCHAR(249) NOT NULL, `origin_gtid` VARCHAR(64) NOT NULL, `table_name` VARCHAR(200) NOT NULL, " +
	"`row_key` VARCHAR(600) NOT NULL, `op` VARCHAR(8) NOT NULL, `incoming` MEDIUMTEXT NOT NULL, `current_row` MEDIUMTEXT NOT NULL, " +
	"`policy` VARCHAR(32) NOT NULL, `resolution` VARCHAR(64) NOT NULL, " +
	"UNIQUE KEY `conflict` (`topic`, `origin_gtid`, `table_name`, `row_key`(200))) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"

// conflictRecord is a row of the conflicts table.
type conflictRecord struct {
	key, origin, incoming, current string
	policy, resolution             string
}

// recordConflict writes the conflict on a connection of its own, committed
// whatever happens to the open transaction; a conflict met again (a
// restart) is recorded once.
func (t *Target) recordConflict(ctx context.Context, tbl *pipeline.Table, ev *pipeline.Event, r conflictRecord) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	schema := quoteIdent(t.cfg.Schema)
	if _, err := t.db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+schema+".`conflicts` "+conflictsTable); err != nil {
		return err
	}
	_, err := t.db.ExecContext(ctx, "INSERT IGNORE INTO "+schema+".`conflicts` (`detected_at`, `node`, `topic`, `origin_gtid`, `table_name`, `row_key`, `op`, `incoming`, `current_row`, `policy`, `resolution`) "+
		"VALUES (NOW(6), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		t.cfg.Node, t.cfg.Topic, r.origin, tbl.Database+"."+tbl.Name, r.key, opName(ev.Op), r.incoming, r.current, r.policy, r.resolution)
	return err
}
