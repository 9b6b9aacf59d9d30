package verify

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/internal/mysqlerr"
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
	mrows, rrows, err := w.readBoth(ctx, mq, keys, lock)
	if err != nil {
		return nil, 0, err
	}
	diffs := w.diffRows(keyOrder(keys, mrows, rrows), mrows, rrows)
	if !lock || !repair || len(diffs) == 0 {
		return diffs, 0, nil
	}
	if err := w.rewrite(ctx, diffs); err != nil {
		return nil, 0, err
	}
	return diffs, len(diffs), nil
}

// readBoth reads the rows of keys on the master through mq, then on the
// replica once it has reached the master's position.
func (w *walk) readBoth(ctx context.Context, mq queryer, keys []keyVals, lock bool) (mrows, rrows map[string]*fullRow, err error) {
	mrows, err = w.readRows(ctx, mq, keys, lock)
	if err != nil {
		return nil, nil, fmt.Errorf("read %d row(s) of %s on the master: %w", len(keys), w.t, err)
	}
	pos, err := w.v.pos.masterPos(ctx, mq)
	if err != nil {
		return nil, nil, err
	}
	limit := w.v.pos.timeout
	if lock {
		limit = min(limit, lockedWait)
	}
	if err := w.v.pos.waitWithin(ctx, pos, limit); err != nil {
		return nil, nil, fmt.Errorf("%d row(s) of %s differ, first %s: %w", len(keys), w.t, w.keyString(keys[0]), err)
	}
	rrows, err = w.readRows(ctx, w.v.replica, keys, false)
	if err != nil {
		return nil, nil, fmt.Errorf("read %d row(s) of %s on the replica: %w", len(keys), w.t, err)
	}
	return mrows, rrows, nil
}

// keyOrder lists the encoded keys asked for, in order, then the keys that
// read back differently (a case-insensitive collation) on either side.
func keyOrder(keys []keyVals, mrows, rrows map[string]*fullRow) []string {
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
	for k := range mrows {
		add(k)
	}
	for k := range rrows {
		add(k)
	}
	return order
}

// diffRows compares the rows of each key in order.
func (w *walk) diffRows(order []string, mrows, rrows map[string]*fullRow) []rowDiff {
	var diffs []rowDiff
	for _, k := range order {
		if d, ok := w.diffRow(mrows[k], rrows[k]); ok {
			diffs = append(diffs, d)
		}
	}
	return diffs
}

// diffRow compares the master's and the replica's row of one key (nil where
// it is absent); ok is false when they are equal, or both absent.
func (w *walk) diffRow(m, r *fullRow) (d rowDiff, ok bool) {
	switch {
	case m == nil && r == nil:
		return d, false // gone from both sides
	case m != nil && r != nil:
		if m.hash == r.hash {
			return d, false
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
	return d, true
}

// The replica's sql_mode for repairs (the sink's), and the one a repair of
// rows holding the ENUM error value (the empty string) runs under: strict
// mode off for that statement only, as the sink does and for the same
// reason (sink/mysql/enum.go).
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
	del, up, upEnum := w.partition(diffs)
	tx, err := w.v.replica.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("repair %s on the replica: %w", w.t, err)
	}
	defer tx.Rollback()
	if err := w.deleteRows(ctx, tx, del); err != nil {
		return err
	}
	if err := w.upsertRows(ctx, tx, up); err != nil {
		return err
	}
	if err := w.upsertLeniently(ctx, tx, upEnum); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("repair %s on the replica: commit: %w", w.t, err)
	}
	return nil
}

// partition sorts the differences into the keys to delete and the master's
// rows to write, those with the ENUM error value apart.
func (w *walk) partition(diffs []rowDiff) (del []keyVals, up, upEnum [][][]byte) {
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
	return del, up, upEnum
}

func (w *walk) deleteRows(ctx context.Context, tx *sql.Tx, del []keyVals) error {
	if len(del) == 0 {
		return nil
	}
	q, args, err := w.t.deleteSQL(del)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("repair %s on the replica: delete %d row(s) absent on the master: %w", w.t, len(del), err)
	}
	return nil
}

func (w *walk) upsertRows(ctx context.Context, tx *sql.Tx, up [][][]byte) error {
	if len(up) == 0 {
		return nil
	}
	q, args, err := w.t.upsertSQL(up)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("repair %s on the replica: write %d row(s) from the master: %w", w.t, len(up), err)
	}
	return nil
}

// upsertLeniently writes rows holding the ENUM error value with strict mode
// off, and strict again before anything else runs on this connection (the
// transaction's, which goes back to the pool).
func (w *walk) upsertLeniently(ctx context.Context, tx *sql.Tx, rows [][][]byte) error {
	if len(rows) == 0 {
		return nil
	}
	q, args, err := w.t.upsertSQL(rows)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "SET SESSION sql_mode = '"+lenientSQLMode+"'"); err != nil {
		return fmt.Errorf("repair %s on the replica: %w", w.t, err)
	}
	_, werr := tx.ExecContext(ctx, q, args...)
	if _, err := tx.ExecContext(ctx, "SET SESSION sql_mode = '"+strictSQLMode+"'"); err != nil && werr == nil {
		werr = err
	}
	if werr != nil {
		return fmt.Errorf("repair %s on the replica: write %d row(s) from the master holding the ENUM error value '': %w", w.t, len(rows), werr)
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

// lockConflicts are a lock wait timeout and a deadlock.
var lockConflicts = []uint16{gomysql.ER_LOCK_WAIT_TIMEOUT, gomysql.ER_LOCK_DEADLOCK}

// lostConnection are the server errors of a connection that is gone.
var lostConnection = []uint16{mysqlerr.ErConnectionKilled, mysqlerr.CrServerGone, mysqlerr.CrServerLost}

// retryable reports a lock wait timeout or a deadlock.
func retryable(err error) bool { return mysqlerr.Is(err, lockConflicts...) }

// transient reports an error that verifying again can get past: a lost
// connection (the server restarting, a network fault), a lock wait timeout
// or a deadlock.
func transient(err error) bool {
	if mysqlerr.Code(err) != 0 {
		return retryable(err) || mysqlerr.Is(err, lostConnection...)
	}
	var ne net.Error
	return errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, driver.ErrBadConn) || errors.As(err, &ne) ||
		errors.Is(err, io.ErrUnexpectedEOF)
}
