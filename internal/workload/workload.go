// Package workload drives writes on a master and compares databases, for the
// demo, the end-to-end tests and the benchmarks.
//
// The bank workload moves money between accounts in transactions, so the total
// never changes on the master; prefix consistency means that it never changes
// on any replica either, whenever it is read. Checksum compares whole
// databases, table by table.
package workload

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/rowcast/rowcast/internal/mysqlerr"
)

// Bank is a transfer workload on the table `accounts` of one database.
type Bank struct {
	DB       *sql.DB
	Database string
	Accounts int   // number of accounts
	Initial  int64 // opening balance of each account

	Transfers atomic.Int64 // committed transfers so far
}

func qi(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// Setup creates the table and opens the accounts.
func (b *Bank) Setup(ctx context.Context) error {
	t := qi(b.Database) + ".accounts"
	if _, err := b.DB.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+t+
		" (id INT PRIMARY KEY, balance BIGINT NOT NULL, updated DATETIME(6) NOT NULL, note VARCHAR(64) NOT NULL DEFAULT '') ENGINE=InnoDB"); err != nil {
		return fmt.Errorf("create %s: %w", t, err)
	}
	const chunk = 1000
	for lo := 0; lo < b.Accounts; lo += chunk {
		if _, err := b.DB.ExecContext(ctx, b.openSQL(t, lo, min(lo+chunk, b.Accounts))); err != nil {
			return fmt.Errorf("open accounts in %s: %w", t, err)
		}
	}
	return nil
}

// openSQL opens accounts lo..hi-1 of table t.
func (b *Bank) openSQL(t string, lo, hi int) string {
	var sb strings.Builder
	sb.WriteString("INSERT INTO " + t + " (id, balance, updated) VALUES ")
	for i := lo; i < hi; i++ {
		if i > lo {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, "(%d, %d, NOW(6))", i, b.Initial)
	}
	return sb.String()
}

// Total is the sum of all balances and the number of accounts, read in one
// consistent snapshot.
func Total(ctx context.Context, db *sql.DB, database string) (sum int64, n int64, err error) {
	err = db.QueryRowContext(ctx, "SELECT COALESCE(SUM(balance),0), COUNT(*) FROM "+qi(database)+".accounts").Scan(&sum, &n)
	return sum, n, err
}

// Run performs transfers from `clients` connections until ctx ends or, when
// limit > 0, until limit transfers have committed. Deadlocks are retried.
func (b *Bank) Run(ctx context.Context, clients int, limit int64) error {
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			if err := b.client(ctx, seed, limit); err != nil {
				errs <- err
			}
		}(uint64(c) + uint64(time.Now().UnixNano()))
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// client transfers random amounts between random accounts until ctx ends
// or limit transfers have committed; deadlocks and lock wait timeouts are
// retried.
func (b *Bank) client(ctx context.Context, seed uint64, limit int64) error {
	r := rand.New(rand.NewPCG(seed, 7))
	for ctx.Err() == nil && (limit <= 0 || b.Transfers.Load() < limit) {
		from, to := r.IntN(b.Accounts), r.IntN(b.Accounts)
		if from == to {
			continue
		}
		err := b.transfer(ctx, from, to, int64(r.IntN(100)+1))
		switch {
		case err == nil:
			b.Transfers.Add(1)
		case ctx.Err() != nil:
			return nil
		case !mysqlerr.Is(err, gomysql.ER_LOCK_DEADLOCK, gomysql.ER_LOCK_WAIT_TIMEOUT):
			return err
		}
	}
	return nil
}

func (b *Bank) transfer(ctx context.Context, from, to int, amount int64) error {
	t := qi(b.Database) + ".accounts"
	tx, err := b.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Lock in id order to keep deadlocks rare. The ids are in the text, not
	// arguments: go-sql-driver 1.10.1's Exec of a prepared SELECT skips as
	// many column definitions as the result has columns even when MariaDB
	// left them out (cached metadata), so it may take rows for them and then
	// wait for packets that never come (a transfer hung until ctx ended).
	lo, hi := min(from, to), max(from, to)
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("SELECT id FROM %s WHERE id IN (%d, %d) ORDER BY id FOR UPDATE", t, lo, hi)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE "+t+" SET balance = balance - ?, updated = NOW(6) WHERE id = ?", amount, from); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE "+t+" SET balance = balance + ?, updated = NOW(6) WHERE id = ?", amount, to); err != nil {
		return err
	}
	return tx.Commit()
}

// TableChecksum is the row count and an order-independent hash of one table.
type TableChecksum struct {
	Table string
	Rows  int64
	Hash  string // exact decimal sum of 64-bit row hashes
}

// Checksum hashes every base table of a database: the row count and the exact
// sum of a 64-bit hash (the first half of MD5) of each row's columns,
// NULL-safe. A sum, unlike XOR, does not cancel out duplicated rows. Equal
// results on master and replica mean equal contents, whatever the row order.
func Checksum(ctx context.Context, db *sql.DB, database string) ([]TableChecksum, error) {
	order, cols, err := baseTableColumns(ctx, db, database)
	if err != nil {
		return nil, err
	}
	out := make([]TableChecksum, 0, len(order))
	for _, t := range order {
		cs := TableChecksum{Table: t}
		if err := db.QueryRowContext(ctx, checksumSQL(database, t, cols[t])).Scan(&cs.Rows, &cs.Hash); err != nil {
			return nil, fmt.Errorf("checksum %s.%s: %w", database, t, err)
		}
		out = append(out, cs)
	}
	return out, nil
}

// baseTableColumns lists the base tables of a database in name order, and
// their columns in order.
func baseTableColumns(ctx context.Context, db *sql.DB, database string) (order []string, cols map[string][]string, err error) {
	rows, err := db.QueryContext(ctx, `SELECT c.TABLE_NAME, c.COLUMN_NAME FROM information_schema.COLUMNS c
		JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
		WHERE c.TABLE_SCHEMA = ? AND t.TABLE_TYPE = 'BASE TABLE' ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION`, database)
	if err != nil {
		return nil, nil, fmt.Errorf("list columns of %s: %w", database, err)
	}
	defer rows.Close()
	cols = map[string][]string{}
	for rows.Next() {
		var t, c string
		if err := rows.Scan(&t, &c); err != nil {
			return nil, nil, err
		}
		if _, ok := cols[t]; !ok {
			order = append(order, t)
		}
		cols[t] = append(cols[t], c)
	}
	return order, cols, rows.Err()
}

// checksumSQL sums up a table: ISNULL distinguishes NULL from ”, HEX keeps
// binary exact.
func checksumSQL(database, table string, cols []string) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = fmt.Sprintf("ISNULL(%s), HEX(%s)", qi(c), qi(c))
	}
	return fmt.Sprintf("SELECT COUNT(*), COALESCE(SUM(CAST(CONV(LEFT(MD5(CONCAT_WS('#', %s)), 16), 16, 10) AS UNSIGNED)), 0) FROM %s.%s",
		strings.Join(parts, ", "), qi(database), qi(table))
}

// Diff describes how two checksums differ, "" when they are equal.
func Diff(a, b []TableChecksum) string {
	var d []string
	m := map[string]TableChecksum{}
	for _, c := range b {
		m[c.Table] = c
	}
	for _, c := range a {
		o, ok := m[c.Table]
		switch {
		case !ok:
			d = append(d, fmt.Sprintf("%s: missing on the second side", c.Table))
		case o != c:
			d = append(d, fmt.Sprintf("%s: %d rows hash %s vs %d rows hash %s", c.Table, c.Rows, c.Hash, o.Rows, o.Hash))
		}
		delete(m, c.Table)
	}
	for t := range m {
		d = append(d, fmt.Sprintf("%s: missing on the first side", t))
	}
	return strings.Join(d, "; ")
}
