package mysql

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/rowcast/rowcast/internal/mysqlerr"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
)

// ApplyRows applies consecutive row events of one table and one op class:
// as row events or multi-row upserts and deletes by primary key, or row by
// row on the whole before image for a table without one. docs/DESIGN.md,
// "Applying rows", has the semantics and how they compare with native
// replication.
func (t *Target) ApplyRows(ctx context.Context, rows []*pipeline.Event) error {
	return t.aheadOfDDL(t.applyRows(ctx, rows, false))
}

// aheadOfDDL makes a row's unknown column or table a transient error on a
// master of a master-master set: the DDL that adds it may be on its way
// through another master's topic (that master's unit waits, for instance,
// for this one's), while the row came from a third master that has applied
// it already. The worker retries until the DDL is there.
func (t *Target) aheadOfDDL(err error) error {
	if err == nil || t.cfg.OriginDomain == nil || !mysqlerr.Is(err, gomysql.ER_BAD_FIELD_ERROR, gomysql.ER_NO_SUCH_TABLE) {
		return err
	}
	return sink.MarkTransient(fmt.Errorf("%w (master-master: waiting for the DDL that adds it, from another master's topic; if no master has it, apply the missing ALTER or CREATE here)", err))
}

// ApplyRowsLenient applies rows of a table a snapshot is loading: as
// ApplyRows, but a delete that finds no row does nothing and an update that
// finds none inserts its after image. Row events that meet a missing or
// existing row fall back to SQL, as they always do.
func (t *Target) ApplyRowsLenient(ctx context.Context, rows []*pipeline.Event) error {
	return t.aheadOfDDL(t.applyRows(ctx, rows, true))
}

// missing says what a delete or an update does when it finds no row.
type missing uint8

const (
	missingFails   missing = iota // sink.ErrRowMissing: the replica diverged
	missingSkips                  // a replay: a later change removed the row
	missingInserts                // a snapshot loads the table: an update inserts its after image
)

// applyRun applies rows without large upserts (bigrow.go).
func (t *Target) applyRun(ctx context.Context, rows []*pipeline.Event, lenient bool) error {
	if len(rows) == 0 {
		return nil
	}
	tbl := rows[0].Table
	replay := rows[0].Pos.TxnSeq <= t.maxSeq
	miss := missingMode(replay, lenient)
	if len(tbl.PrimaryKey) == 0 {
		return t.applyNoKey(ctx, tbl, rows, miss)
	}
	rows, err := t.binaryFirst(ctx, tbl, rows, replay)
	if err != nil || len(rows) == 0 {
		return err
	}
	if err := t.checkSQLInserts(ctx, rows); err != nil {
		return err
	}
	if rows[0].Op == pipeline.OpDelete {
		return t.deleteKeys(ctx, tbl, rows, miss != missingFails)
	}
	return t.upsertRuns(ctx, tbl, rows, miss != missingFails)
}

func missingMode(replay, lenient bool) missing {
	switch {
	case lenient:
		return missingInserts
	case replay:
		return missingSkips
	}
	return missingFails
}

// checkRows refuses rows of a table without columns, of the bookkeeping
// schema or on an engine that cannot roll back (engine.go).
func (t *Target) checkRows(ctx context.Context, rows []*pipeline.Event) error {
	if len(rows) == 0 {
		return nil
	}
	if err := t.checkTable(rows[0].Table); err != nil {
		return err
	}
	return t.checkEngine(ctx, rows[0].Table)
}

// checkTable refuses rows of a table without columns or of the bookkeeping
// schema.
func (t *Target) checkTable(tbl *pipeline.Table) error {
	if len(tbl.Columns) == 0 {
		return fmt.Errorf("%w: table %s has no columns", pipeline.ErrMalformed, qualified(tbl))
	}
	if strings.EqualFold(tbl.Database, t.cfg.Schema) {
		return fmt.Errorf("%w: row events of the bookkeeping schema %s", pipeline.ErrUnsupported, t.cfg.Schema)
	}
	return nil
}

// binaryFirst applies the leading rows it can as row events (binlog.go) and
// returns the rest, for SQL. A replay goes as SQL.
func (t *Target) binaryFirst(ctx context.Context, tbl *pipeline.Table, rows []*pipeline.Event, replay bool) ([]*pipeline.Event, error) {
	if !t.binOK || replay {
		return rows, nil
	}
	bt, err := t.binTableFor(ctx, tbl)
	if err != nil || bt == nil {
		return rows, err
	}
	n, err := t.applyBinary(ctx, bt, rows)
	return rows[n:], err
}

// upsertRuns applies inserts, updates and snapshot reads as upserts of the
// full after images. An update that moves its row to another primary key
// ends the run of upserts before it and deletes its old key; its new image
// starts the next run, so the source transaction's order is kept.
func (t *Target) upsertRuns(ctx context.Context, tbl *pipeline.Table, rows []*pipeline.Event, missingOK bool) error {
	start := 0
	for i, ev := range rows {
		if ev.Op == pipeline.OpUpdate && keyChanged(tbl, ev) {
			if err := t.upsert(ctx, tbl, rows[start:i]); err != nil {
				return err
			}
			if err := t.deleteKeys(ctx, tbl, rows[i:i+1], missingOK); err != nil {
				return err
			}
			start = i
		}
	}
	return t.upsert(ctx, tbl, rows[start:])
}

// upsert writes rows with one INSERT ... ON DUPLICATE KEY UPDATE, or with
// LOAD DATA (load.go). An upsert cannot tell a missing row from a present
// one: it re-creates the row.
func (t *Target) upsert(ctx context.Context, tbl *pipeline.Table, rows []*pipeline.Event) error {
	if len(rows) == 0 {
		return nil
	}
	enumErr := holdsEnumErrorValue(tbl, rows)
	if len(rows) >= loadMinRows && !enumErr {
		if done, err := t.tryLoad(ctx, tbl, rows); done || err != nil {
			return err
		}
	}
	args, err := t.afterArgs(tbl, rows)
	if err != nil {
		return err
	}
	k := sqlKey{t: tbl, kind: stmtUpsert, n: len(rows)}
	if enumErr {
		return t.leniently(ctx, func() error { _, err := t.exec(ctx, k, args); return err })
	}
	_, err = t.exec(ctx, k, args)
	return err
}

// deleteKeys deletes rows by primary key. Finding fewer rows than it should
// is sink.ErrRowMissing (native replication stops on "Can't find record"),
// unless missingOK: in a replay or while a snapshot loads the table, missing
// rows are expected.
func (t *Target) deleteKeys(ctx context.Context, tbl *pipeline.Table, rows []*pipeline.Event, missingOK bool) error {
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
	if err != nil || missingOK || n == int64(len(rows)) {
		return err
	}
	if len(rows) == 1 {
		return fmt.Errorf("%w: %s has no row with key %s", sink.ErrRowMissing, qualified(tbl), describeKey(tbl, rows[0].Before))
	}
	return fmt.Errorf("%w: %s has %d of %d keys (first %s, last %s)", sink.ErrRowMissing, qualified(tbl), n, len(rows),
		describeKey(tbl, rows[0].Before), describeKey(tbl, rows[len(rows)-1].Before))
}

// applyNoKey applies the rows of a table without a primary key: runs of
// inserts as multi-row INSERTs, updates and deletes one row at a time,
// matched on the whole before image as native row-based replication does.
// Replaying a range inserts its rows again, as native replication would.
func (t *Target) applyNoKey(ctx context.Context, tbl *pipeline.Table, rows []*pipeline.Event, miss missing) error {
	for len(rows) > 0 {
		n := insertRun(rows)
		var err error
		if n > 0 {
			err = t.insertRows(ctx, tbl, rows[:n])
		} else {
			n, err = 1, t.matchRow(ctx, tbl, rows[0], miss)
		}
		if err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// insertRun is the number of leading inserts and snapshot reads of rows.
func insertRun(rows []*pipeline.Event) int {
	n := 0
	for n < len(rows) && (rows[n].Op == pipeline.OpInsert || rows[n].Op == pipeline.OpRead) {
		n++
	}
	return n
}

// insertRows writes rows with one plain INSERT.
func (t *Target) insertRows(ctx context.Context, tbl *pipeline.Table, rows []*pipeline.Event) error {
	args, err := t.afterArgs(tbl, rows)
	if err != nil {
		return err
	}
	_, err = t.exec(ctx, sqlKey{t: tbl, kind: stmtInsert, n: len(rows)}, args)
	return err
}

// afterArgs are the after images of rows as statement arguments, in t.args.
func (t *Target) afterArgs(tbl *pipeline.Table, rows []*pipeline.Event) ([]any, error) {
	args := t.args[:0]
	for _, ev := range rows {
		var err error
		if args, err = appendImage(args, tbl, ev.After); err != nil {
			return args, err
		}
	}
	return args, nil
}

// matchRow applies an update or a delete to one row equal to its before
// image; finding none is what miss says.
func (t *Target) matchRow(ctx context.Context, tbl *pipeline.Table, ev *pipeline.Event, miss missing) error {
	kind := stmtDeleteRow
	args := t.args[:0]
	var err error
	if ev.Op == pipeline.OpUpdate {
		kind = stmtUpdateRow
		if args, err = appendImage(args, tbl, ev.After); err != nil {
			return err
		}
	}
	if args, err = appendMatch(args, tbl, ev.Before, !t.mariadb); err != nil {
		return err
	}
	n, err := t.exec(ctx, sqlKey{t: tbl, kind: uint8(kind), n: 1, json: !t.mariadb}, args)
	switch {
	case err != nil || n == 1 || miss == missingSkips:
		return err
	case miss == missingInserts && ev.Op == pipeline.OpUpdate:
		return t.insertRows(ctx, tbl, []*pipeline.Event{ev})
	case miss == missingInserts:
		return nil
	}
	return fmt.Errorf("%w: %s (no primary key) has no row equal to the before image of the %s at %s",
		sink.ErrRowMissing, qualified(tbl), map[pipeline.Op]string{pipeline.OpUpdate: "update", pipeline.OpDelete: "delete"}[ev.Op], ev.Pos)
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

// appendMatch appends the arguments of writeRowMatch: every value of img,
// twice for the columns it compares twice.
func appendMatch(args []any, tbl *pipeline.Table, img []any, json bool) ([]any, error) {
	return appendValues(args, tbl, img, func(c pipeline.Column) bool { return exactMatch(c, json) })
}

func appendImage(args []any, tbl *pipeline.Table, img []any) ([]any, error) {
	return appendValues(args, tbl, img, nil)
}

// appendValues appends the values of img, and again those of the columns
// twice says.
func appendValues(args []any, tbl *pipeline.Table, img []any, twice func(pipeline.Column) bool) ([]any, error) {
	if len(img) != len(tbl.Columns) {
		return args, fmt.Errorf("%w: %s: row image of %d values for %d columns", pipeline.ErrMalformed, qualified(tbl), len(img), len(tbl.Columns))
	}
	for i, c := range tbl.Columns {
		v, err := value(tbl, i, img)
		if err != nil {
			return args, err
		}
		args = append(args, v)
		if twice != nil && twice(c) {
			args = append(args, v)
		}
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
