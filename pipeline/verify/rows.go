package verify

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/go-sql-driver/mysql"
)

// queryer reads rows: *sql.DB and *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// fullRow is every stored column of a row as read (nil for NULL) and its
// hash.
type fullRow struct {
	key  keyVals
	vals [][]byte
	hash string
}

// rowDiff is a confirmed difference with the row's key and master values.
type rowDiff struct {
	Diff
	key    keyVals
	master *fullRow
}

// readRows reads the rows of the given keys on one side, keyed by
// encodeKey of their key values.
func (w *walk) readRows(ctx context.Context, q queryer, keys []keyVals, lock bool) (map[string]*fullRow, error) {
	query, args, err := w.t.rowsSQL(w.v.hash, keys, lock)
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	n := len(w.t.cols)
	raw := make([]sql.RawBytes, n+1)
	dest := make([]any, n+1)
	for i := range raw {
		dest[i] = &raw[i]
	}
	out := make(map[string]*fullRow, len(keys))
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		r := &fullRow{vals: make([][]byte, n), hash: string(raw[n])}
		for i := range n {
			if raw[i] != nil {
				r.vals[i] = append([]byte{}, raw[i]...)
			}
		}
		r.key = make(keyVals, len(w.t.key))
		for i, ci := range w.t.key {
			r.key[i] = r.vals[ci]
		}
		out[encodeKey(r.key)] = r
	}
	return out, rows.Err()
}

// compareRows reads the rows of keys on both sides, the replica once it has
// reached the master's position after the master's read, and returns those
// that differ. With lock, the master's rows are read under a shared lock
// held until the comparison (and, with repair, the rewrite of the replica's
// rows) is done.
func (w *walk) compareRows(ctx context.Context, keys []keyVals, lock, repair bool) ([]rowDiff, int, error) {
	var mq queryer = w.v.master
	if lock {
		tx, err := w.v.master.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
		if err != nil {
			return nil, 0, err
		}
		defer tx.Rollback() // releases the locks; the transaction wrote nothing
		mq = tx
	}
	mrows, err := w.readRows(ctx, mq, keys, lock)
	if err != nil {
		return nil, 0, fmt.Errorf("read %d row(s) of %s on the master: %w", len(keys), w.t, err)
	}
	pos, err := w.v.pos.masterPos(ctx, mq)
	if err != nil {
		return nil, 0, err
	}
	if err := w.v.pos.wait(ctx, pos); err != nil {
		return nil, 0, fmt.Errorf("%d row(s) of %s differ, first %s: %w", len(keys), w.t, w.keyString(keys[0]), err)
	}
	rrows, err := w.readRows(ctx, w.v.replica, keys, false)
	if err != nil {
		return nil, 0, fmt.Errorf("read %d row(s) of %s on the replica: %w", len(keys), w.t, err)
	}
	order := make([]string, 0, len(keys))
	seen := map[string]bool{}
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			order = append(order, k)
		}
	}
	for _, k := range keys {
		add(encodeKey(k))
	}
	// Keys that read back differently (a case-insensitive collation) too.
	for k := range mrows {
		add(k)
	}
	for k := range rrows {
		add(k)
	}
	var diffs []rowDiff
	for _, k := range order {
		m, r := mrows[k], rrows[k]
		var d rowDiff
		switch {
		case m == nil && r == nil:
			continue // gone from both sides
		case m != nil && r != nil:
			if m.hash == r.hash {
				continue
			}
			d = rowDiff{Diff: Diff{Kind: Changed}, key: m.key}
		case r == nil:
			d = rowDiff{Diff: Diff{Kind: Missing}, key: m.key}
		default:
			d = rowDiff{Diff: Diff{Kind: Extra}, key: r.key}
		}
		d.Key = w.t.keyFields(d.key)
		d.master = m
		if m != nil {
			d.Master = w.t.fields(m.vals)
		}
		if r != nil {
			d.Replica = w.t.fields(r.vals)
		}
		diffs = append(diffs, d)
	}
	repaired := 0
	if lock && repair && len(diffs) > 0 {
		if err := w.rewrite(ctx, diffs); err != nil {
			return nil, 0, err
		}
		repaired = len(diffs)
	}
	return diffs, repaired, nil
}

// The replica's sql_mode for repairs (the sink's), and the one a repair of
// rows holding the ENUM error value runs under.
//
// A master not in strict mode stores a value that is not a member of an
// ENUM as the special error value 0, which reads back as an empty string.
// Writing that into the ENUM under strict mode fails (error 1265), although
// it is exactly what the master holds; the sink has the same problem and the
// same answer (sink/mysql/enum.go): the statement that writes such rows runs
// with strict mode off, and only that statement, so that any other value the
// replica cannot hold still fails the repair.
const (
	strictSQLMode  = "STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION"
	lenientSQLMode = "NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION"
)

// enumErrorValue reports whether a row (every stored column as read) holds
// the empty string, the error value, in an ENUM column.
func (t *Table) enumErrorValue(vals [][]byte) bool {
	for i, c := range t.cols {
		if c.DataType == "enum" && vals[i] != nil && len(vals[i]) == 0 {
			return true
		}
	}
	return false
}

// rewrite makes the replica's rows equal to the master's, in one replica
// transaction: rows absent on the master are deleted first (which also
// frees their unique keys), then the master's rows are upserted, those with
// the ENUM error value in a statement of their own under lenientSQLMode.
// The checkpoint is not touched: these are not changelog transactions.
func (w *walk) rewrite(ctx context.Context, diffs []rowDiff) error {
	var del []keyVals
	var up, upEnum [][][]byte
	for _, d := range diffs {
		switch {
		case d.master == nil:
			del = append(del, d.key)
		case w.t.enumErrorValue(d.master.vals):
			upEnum = append(upEnum, d.master.vals)
		default:
			up = append(up, d.master.vals)
		}
	}
	tx, err := w.v.replica.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("repair %s on the replica: %w", w.t, err)
	}
	defer tx.Rollback()
	if len(del) > 0 {
		q, args, err := w.t.deleteSQL(del)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("repair %s on the replica: delete %d row(s) absent on the master: %w", w.t, len(del), err)
		}
	}
	if len(up) > 0 {
		q, args, err := w.t.upsertSQL(up)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("repair %s on the replica: write %d row(s) from the master: %w", w.t, len(up), err)
		}
	}
	if len(upEnum) > 0 {
		q, args, err := w.t.upsertSQL(upEnum)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "SET SESSION sql_mode = '"+lenientSQLMode+"'"); err != nil {
			return fmt.Errorf("repair %s on the replica: %w", w.t, err)
		}
		_, werr := tx.ExecContext(ctx, q, args...)
		// Strict again before anything else runs on this connection (the
		// transaction's, which goes back to the pool).
		if _, err := tx.ExecContext(ctx, "SET SESSION sql_mode = '"+strictSQLMode+"'"); err != nil && werr == nil {
			werr = err
		}
		if werr != nil {
			return fmt.Errorf("repair %s on the replica: write %d row(s) from the master holding the ENUM error value '': %w", w.t, len(upEnum), werr)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("repair %s on the replica: commit: %w", w.t, err)
	}
	return nil
}

func (t *Table) fields(vals [][]byte) []Field {
	fs := make([]Field, len(t.cols))
	for i, c := range t.cols {
		fs[i] = Field{Column: c.Name, Value: display(vals[i], c)}
	}
	return fs
}

// retryable reports a lock wait timeout or a deadlock.
func retryable(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1205 || me.Number == 1213)
}

// transient reports an error that verifying again can get past: a lost
// connection (the server restarting, a network fault), a lock wait timeout
// or a deadlock.
func transient(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1205, 1213, 1927, 2006, 2013: // lock wait, deadlock, connection killed, gone away, lost
			return true
		}
		return false
	}
	var ne net.Error
	return errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, driver.ErrBadConn) || errors.As(err, &ne) ||
		errors.Is(err, io.ErrUnexpectedEOF)
}
