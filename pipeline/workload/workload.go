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
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
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
		var sb strings.Builder
		sb.WriteString("INSERT INTO " + t + " (id, balance, updated) VALUES ")
		for i := lo; i < min(lo+chunk, b.Accounts); i++ {
			if i > lo {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, "(%d, %d, NOW(6))", i, b.Initial)
		}
		if _, err := b.DB.ExecContext(ctx, sb.String()); err != nil {
			return fmt.Errorf("open accounts in %s: %w", t, err)
		}
	}
	return nil
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
			r := rand.New(rand.NewPCG(seed, 7))
			for ctx.Err() == nil {
				if limit > 0 && b.Transfers.Load() >= limit {
					return
				}
				from, to := r.IntN(b.Accounts), r.IntN(b.Accounts)
				if from == to {
					continue
				}
				if err := b.transfer(ctx, from, to, int64(r.IntN(100)+1)); err != nil {
					if ctx.Err() != nil {
						return
					}
					var me *mysql.MySQLError
					if errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205) {
						continue
					}
					errs <- err
					return
				}
				b.Transfers.Add(1)
			}
		}(uint64(c) + uint64(time.Now().UnixNano()))
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func (b *Bank) transfer(ctx context.Context, from, to int, amount int64) error {
	t := qi(b.Database) + ".accounts"
	tx, err := b.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Lock in id order to keep deadlocks rare.
	lo, hi := min(from, to), max(from, to)
	if _, err := tx.ExecContext(ctx, "SELECT id FROM "+t+" WHERE id IN (?, ?) ORDER BY id FOR UPDATE", lo, hi); err != nil {
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
	rows, err := db.QueryContext(ctx, `SELECT c.TABLE_NAME, c.COLUMN_NAME FROM information_schema.COLUMNS c
		JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
		WHERE c.TABLE_SCHEMA = ? AND t.TABLE_TYPE = 'BASE TABLE' ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION`, database)
	if err != nil {
		return nil, fmt.Errorf("list columns of %s: %w", database, err)
	}
	cols := map[string][]string{}
	var order []string
	for rows.Next() {
		var t, c string
		if err := rows.Scan(&t, &c); err != nil {
			rows.Close()
			return nil, err
		}
		if _, ok := cols[t]; !ok {
			order = append(order, t)
		}
		cols[t] = append(cols[t], c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]TableChecksum, 0, len(order))
	for _, t := range order {
		parts := make([]string, len(cols[t]))
		for i, c := range cols[t] {
			// ISNULL distinguishes NULL from ''; HEX keeps binary exact.
			parts[i] = fmt.Sprintf("ISNULL(%s), HEX(%s)", qi(c), qi(c))
		}
		q := fmt.Sprintf("SELECT COUNT(*), COALESCE(SUM(CAST(CONV(LEFT(MD5(CONCAT_WS('#', %s)), 16), 16, 10) AS UNSIGNED)), 0) FROM %s.%s",
			strings.Join(parts, ", "), qi(database), qi(t))
		cs := TableChecksum{Table: t}
		if err := db.QueryRowContext(ctx, q).Scan(&cs.Rows, &cs.Hash); err != nil {
			return nil, fmt.Errorf("checksum %s.%s: %w", database, t, err)
		}
		out = append(out, cs)
	}
	return out, nil
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
