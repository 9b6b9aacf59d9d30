package mysql

import (
	"context"
	"fmt"

	"github.com/rowcast/rowcast/pipeline"
)

// Large rows: an upsert whose after image holds at least bigRowBytes goes
// alone through a server-side prepared statement. Its values then travel
// once, in chunks (COM_STMT_SEND_LONG_DATA), instead of being escaped into
// the statement text or a BINLOG statement's base64, each a copy larger
// than the row. docs/DESIGN.md, "Large rows".
const bigRowBytes = 1 << 20

// applyRows applies rows, each large upsert alone (bigUpsert) and the runs
// between them as usual.
func (t *Target) applyRows(ctx context.Context, rows []*pipeline.Event, lenient bool) error {
	if t.cfg.OriginDomain != nil && len(rows) > 0 {
		if done, err := t.takeVersioned(ctx, rows); done || err != nil {
			return err
		}
	}
	if err := t.checkRows(ctx, rows); err != nil {
		return err
	}
	if t.cfg.OriginDomain != nil && len(rows) > 0 {
		if err := t.checkConflicts(ctx, rows); err != nil {
			return err
		}
	}
	for len(rows) > 0 {
		i := firstBigUpsert(rows)
		if err := t.applyRun(ctx, rows[:i], lenient); err != nil || i == len(rows) {
			return err
		}
		if err := t.checkSQLInserts(ctx, rows[i:i+1]); err != nil {
			return err
		}
		if err := t.bigUpsert(ctx, rows[i], lenient); err != nil {
			return err
		}
		rows = rows[i+1:]
	}
	return nil
}

// firstBigUpsert is the index of the first large upsert of a table with a
// primary key, or len(rows).
func firstBigUpsert(rows []*pipeline.Event) int {
	for i, ev := range rows {
		if ev.Op != pipeline.OpDelete && len(ev.Table.PrimaryKey) > 0 && imageBytes(ev.After) >= bigRowBytes {
			return i
		}
	}
	return len(rows)
}

// imageBytes is the size of an image's string and byte values.
func imageBytes(img []any) int {
	n := 0
	for _, v := range img {
		switch v := v.(type) {
		case string:
			n += len(v)
		case []byte:
			n += len(v)
		}
	}
	return n
}

// bigUpsert upserts one large row with a prepared statement, after deleting
// its old key when an update moves it. A value the table's enum rejects
// takes the usual path, which knows how to store it.
func (t *Target) bigUpsert(ctx context.Context, ev *pipeline.Event, lenient bool) error {
	tbl := ev.Table
	one := []*pipeline.Event{ev}
	if holdsEnumErrorValue(tbl, one) || t.conn == nil {
		return t.applyRun(ctx, one, lenient)
	}
	if ev.Op == pipeline.OpUpdate && keyChanged(tbl, ev) {
		replay := ev.Pos.TxnSeq <= t.maxSeq
		if err := t.deleteKeys(ctx, tbl, one, missingMode(replay, lenient) != missingFails); err != nil {
			return err
		}
	}
	args, err := t.afterArgs(tbl, one)
	if err != nil {
		return err
	}
	stmt, err := t.conn.PrepareContext(ctx, t.sql.get(sqlKey{t: tbl, kind: stmtUpsert, n: 1}))
	if err != nil {
		return fmt.Errorf("prepare the upsert of a %d-byte row of %s: %w", imageBytes(ev.After), qualified(tbl), err)
	}
	defer stmt.Close()
	_, err = stmt.ExecContext(ctx, args...)
	clear(args)
	t.args = args[:0]
	return err
}
