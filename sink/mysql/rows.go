package mysql

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
)

// ApplyRows applies consecutive row events of one table and one op class.
//
// Tables with a primary key:
//   - inserts, updates and snapshot reads are one multi-row
//     INSERT ... ON DUPLICATE KEY UPDATE of the full after images: rows of
//     one statement are applied in order, and a replayed range converges;
//   - an update that changes the primary key is split: the run of upserts
//     before it, a DELETE of the old key, then its new image joins the next
//     run, so the order of the source transaction is kept;
//   - deletes are one DELETE ... WHERE pk IN (...).
//
// A delete (or the delete half of a key change) that finds fewer rows than
// it should stops the worker (sink.ErrRowMissing), as native replication
// stops on "Can't find record", unless the transaction is a replay of a
// range this replica already applied (TxnSeq <= the checkpoint's MaxTxnSeq),
// where missing rows are expected. An update applied as an upsert cannot
// tell a missing row from a present one: it re-creates the row.
//
// Tables without a primary key are matched on the whole before image, as
// native row-based replication does: UPDATE ... SET <every column> WHERE
// c1 <=> ? AND ... LIMIT 1 and DELETE ... WHERE ... LIMIT 1, one row per
// statement, each required to match one row; inserts are plain multi-row
// INSERTs. Replaying a range over such a table inserts its rows again, as
// native replication would: only tables with a primary key converge.
func (t *Target) ApplyRows(ctx context.Context, rows []*pipeline.Event) error {
	if len(rows) == 0 {
		return nil
	}
	tbl := rows[0].Table
	if len(tbl.Columns) == 0 {
		return fmt.Errorf("%w: table %s has no columns", pipeline.ErrMalformed, qualified(tbl))
	}
	if strings.EqualFold(tbl.Database, t.cfg.Schema) {
		return fmt.Errorf("%w: row events of the bookkeeping schema %s", pipeline.ErrUnsupported, t.cfg.Schema)
	}
	replay := rows[0].Pos.TxnSeq <= t.maxSeq
	if len(tbl.PrimaryKey) == 0 {
		return t.applyNoKey(ctx, tbl, rows, replay)
	}
	if t.binOK && !replay {
		bt, err := t.binTableFor(ctx, tbl)
		if err != nil {
			return err
		}
		if bt != nil {
			n, err := t.applyBinary(ctx, bt, rows)
			if err != nil || n == len(rows) {
				return err
			}
			rows = rows[n:]
		}
	}
	if rows[0].Op == pipeline.OpDelete {
		return t.deleteKeys(ctx, tbl, rows, replay)
	}
	start := 0
	for i, ev := range rows {
		if ev.Op == pipeline.OpUpdate && keyChanged(tbl, ev) {
			if err := t.upsert(ctx, tbl, rows[start:i]); err != nil {
				return err
			}
			if err := t.deleteKeys(ctx, tbl, rows[i:i+1], replay); err != nil {
				return err
			}
			start = i
		}
	}
	return t.upsert(ctx, tbl, rows[start:])
}

func (t *Target) upsert(ctx context.Context, tbl *pipeline.Table, rows []*pipeline.Event) error {
	if len(rows) == 0 {
		return nil
	}
	enumErr := holdsEnumErrorValue(tbl, rows)
	if len(rows) >= loadMinRows && !enumErr {
		load, err := t.loadable(ctx, tbl)
		if err != nil {
			return err
		}
		if load {
			err := t.loadRows(ctx, tbl, rows)
			if !isCode(err, 4166) && !isCode(err, 1148) && !isCode(err, 3948) {
				return err
			}
			// LOAD DATA LOCAL was turned off on the replica since Open
			// (local_infile=OFF; error 4166, 1148 on older servers, 3948 on
			// MySQL): nothing was applied; use the INSERT.
			t.loadOK = false
			t.log.Warn().Err(err).Msg("LOAD DATA LOCAL is not allowed on the replica (local_infile=OFF): upserts use INSERT from now on")
		}
	}
	args := t.args[:0]
	for _, ev := range rows {
		var err error
		if args, err = appendImage(args, tbl, ev.After); err != nil {
			return err
		}
	}
	k := sqlKey{t: tbl, kind: stmtUpsert, n: len(rows)}
	if enumErr {
		return t.leniently(ctx, func() error { _, err := t.exec(ctx, k, args); return err })
	}
	_, err := t.exec(ctx, k, args)
	return err
}

func (t *Target) deleteKeys(ctx context.Context, tbl *pipeline.Table, rows []*pipeline.Event, replay bool) error {
	args := t.args[:0]
	for _, ev := range rows {
		for _, c := range tbl.PrimaryKey {
			v, err := value(tbl, c, ev.Before)
			if err != nil {
				return err
			}
			args = append(args, v)
		}
	}
	n, err := t.exec(ctx, sqlKey{t: tbl, kind: stmtDeletePK, n: len(rows), json: !t.mariadb}, args)
	if err != nil || replay || n == int64(len(rows)) {
		return err
	}
	if len(rows) == 1 {
		return fmt.Errorf("%w: %s has no row with key %s", sink.ErrRowMissing, qualified(tbl), describeKey(tbl, rows[0].Before))
	}
	return fmt.Errorf("%w: %s has %d of %d keys (first %s, last %s)", sink.ErrRowMissing, qualified(tbl), n, len(rows),
		describeKey(tbl, rows[0].Before), describeKey(tbl, rows[len(rows)-1].Before))
}

func (t *Target) applyNoKey(ctx context.Context, tbl *pipeline.Table, rows []*pipeline.Event, replay bool) error {
	for i := 0; i < len(rows); {
		ev := rows[i]
		if ev.Op == pipeline.OpInsert || ev.Op == pipeline.OpRead {
			j := i
			args := t.args[:0]
			for ; j < len(rows) && (rows[j].Op == pipeline.OpInsert || rows[j].Op == pipeline.OpRead); j++ {
				var err error
				if args, err = appendImage(args, tbl, rows[j].After); err != nil {
					return err
				}
			}
			if _, err := t.exec(ctx, sqlKey{t: tbl, kind: stmtInsert, n: j - i}, args); err != nil {
				return err
			}
			i = j
			continue
		}
		kind := stmtDeleteRow
		args := t.args[:0]
		var err error
		if ev.Op == pipeline.OpUpdate {
			kind = stmtUpdateRow
			if args, err = appendImage(args, tbl, ev.After); err != nil {
				return err
			}
		}
		if args, err = appendImage(args, tbl, ev.Before); err != nil {
			return err
		}
		n, err := t.exec(ctx, sqlKey{t: tbl, kind: uint8(kind), n: 1, json: !t.mariadb}, args)
		if err != nil {
			return err
		}
		if n != 1 && !replay {
			return fmt.Errorf("%w: %s (no primary key) has no row equal to the before image of the %s at %s",
				sink.ErrRowMissing, qualified(tbl), map[pipeline.Op]string{pipeline.OpUpdate: "update", pipeline.OpDelete: "delete"}[ev.Op], ev.Pos)
		}
		i++
	}
	return nil
}

// exec runs a cached statement and returns the rows it affected.
func (t *Target) exec(ctx context.Context, k sqlKey, args []any) (int64, error) {
	res, err := t.ex.ExecContext(ctx, t.sql.get(k), args...)
	clear(args) // drop references to the events' values
	t.args = args[:0]
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func appendImage(args []any, tbl *pipeline.Table, img []any) ([]any, error) {
	if len(img) != len(tbl.Columns) {
		return args, fmt.Errorf("%w: %s: row image of %d values for %d columns", pipeline.ErrMalformed, qualified(tbl), len(img), len(tbl.Columns))
	}
	for i := range tbl.Columns {
		v, err := value(tbl, i, img)
		if err != nil {
			return args, err
		}
		args = append(args, v)
	}
	return args, nil
}

// value checks that a value has the Go type its kind promises (see
// pipeline.ValueKind) and returns it as the driver takes it: every kind
// passes through (integers, uint64 for BIGINT UNSIGNED and BIT, float64,
// strings for DECIMAL, temporal, ENUM, SET and JSON text, []byte for binary
// strings and geometry in MySQL's internal form).
func value(tbl *pipeline.Table, col int, img []any) (any, error) {
	if col >= len(img) {
		return nil, fmt.Errorf("%w: %s: row image too short", pipeline.ErrMalformed, qualified(tbl))
	}
	v := img[col]
	if v == nil {
		return nil, nil
	}
	c := tbl.Columns[col]
	var ok bool
	switch c.Kind {
	case pipeline.VInt, pipeline.VYear:
		_, ok = v.(int64)
	case pipeline.VUint, pipeline.VBit:
		_, ok = v.(uint64)
	case pipeline.VFloat, pipeline.VDouble:
		_, ok = v.(float64)
	case pipeline.VBytes, pipeline.VGeometry:
		_, ok = v.([]byte)
	case pipeline.VDecimal, pipeline.VString, pipeline.VDate, pipeline.VDateTime, pipeline.VTimestamp,
		pipeline.VTime, pipeline.VEnum, pipeline.VSet, pipeline.VJSON:
		_, ok = v.(string)
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s column %s of kind %s holds a %T", pipeline.ErrMalformed, qualified(tbl), c.Name, c.Kind, v)
	}
	return v, nil
}

// keyChanged reports whether an update moves its row to another primary key.
// Values are compared exactly (bytes), so a change a case-insensitive
// collation would call equal is still applied as a key change.
func keyChanged(tbl *pipeline.Table, ev *pipeline.Event) bool {
	for _, c := range tbl.PrimaryKey {
		a, b := ev.Before[c], ev.After[c]
		ab, aok := a.([]byte)
		bb, bok := b.([]byte)
		switch {
		case aok || bok:
			if !aok || !bok || !bytes.Equal(ab, bb) {
				return true
			}
		case a != b:
			return true
		}
	}
	return false
}

// describeKey names a primary key for an error message: key columns only,
// never other values of the row.
func describeKey(tbl *pipeline.Table, img []any) string {
	parts := make([]string, len(tbl.PrimaryKey))
	for i, c := range tbl.PrimaryKey {
		v := img[c]
		s := fmt.Sprint(v)
		if b, ok := v.([]byte); ok {
			s = "0x" + hex.EncodeToString(b)
		}
		if len(s) > 64 {
			s = s[:64] + "..."
		}
		parts[i] = tbl.Columns[c].Name + "=" + s
	}
	return "(" + strings.Join(parts, ", ") + ")"
}
