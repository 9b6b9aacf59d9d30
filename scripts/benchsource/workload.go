package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"golang.org/x/sync/errgroup"
)

// benchTable is the table both workloads write: about 190 bytes per row image
// in the binlog (BIGINT, two INT, DECIMAL(12,2), DATETIME, DATETIME(3) and
// three VARCHARs of 36, 40 and 76 characters).
const benchTable = "bench_rows"

const createTable = `CREATE TABLE bench_rows (
	id BIGINT NOT NULL PRIMARY KEY,
	account_id INT NOT NULL,
	qty INT NOT NULL,
	amount DECIMAL(12,2) NOT NULL,
	created_at DATETIME NOT NULL,
	updated_at DATETIME(3) NOT NULL,
	name VARCHAR(64) NOT NULL,
	email VARCHAR(96) NOT NULL,
	note VARCHAR(255) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`

const benchColumns = 9

// span is the binlog range of one workload: the master's GTID set before its
// first transaction, after its last one, and the GTID of that last
// transaction, which is where every measurement stops.
type span struct {
	Name     string
	Rows     int
	Txns     int
	Start    string
	End      string
	Last     mysql.MariadbGTID
	LastText string
	Took     time.Duration
}

// master is the bench database on db1.
type master struct {
	db     *sql.DB
	name   string // database name, unique per run
	flavor string
}

func openMaster(ctx context.Context, o *options) (*master, error) {
	dsn := fmt.Sprintf("%s:%s@tcp(%s)/?interpolateParams=true&maxAllowedPacket=0&parseTime=false", o.dbUser, o.dbPassword, o.dbAddr)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(o.insertConns + 2)
	db.SetMaxIdleConns(o.insertConns + 2)
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to db1 at %s as %s (start the stack with scripts/stack up): %w", o.dbAddr, o.dbUser, err)
	}
	if !strings.Contains(version, "MariaDB") {
		db.Close()
		return nil, fmt.Errorf("db1 at %s runs %s: this benchmark reads MariaDB GTIDs (@@last_gtid); point it at the stack's MariaDB master", o.dbAddr, version)
	}
	m := &master{db: db, flavor: mysql.MariaDBFlavor,
		name: fmt.Sprintf("rcbench_%s_%04x", time.Now().UTC().Format("20060102_150405"), rand.Uint32()&0xffff)}
	return m, nil
}

// setup creates the database and the table, and starts a new binlog file so
// that the master does not scan an old file's events to find the start GTID
// (that cost would be the same for every measurement, but it is not decoding).
func (m *master) setup(ctx context.Context) error {
	stmts := []string{
		"CREATE DATABASE " + quoteIdent(m.name),
		"CREATE TABLE " + quoteIdent(m.name) + "." + strings.TrimPrefix(createTable, "CREATE TABLE "),
		"FLUSH BINARY LOGS",
	}
	for _, s := range stmts {
		if _, err := m.db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%.40s...: %w", s, err)
		}
	}
	return nil
}

func (m *master) drop(ctx context.Context) error {
	_, err := m.db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(m.name))
	return err
}

func (m *master) gtidPos(ctx context.Context) (string, error) {
	var pos string
	err := m.db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&pos)
	return pos, err
}

// run executes a workload of txns statements (one transaction each, autocommit)
// over conns connections and returns its binlog span. stmt builds transaction
// i's statement and arguments.
func (m *master) run(ctx context.Context, name string, rows, txns, conns int, stmt func(i int) (string, []any)) (span, error) {
	sp := span{Name: name, Rows: rows, Txns: txns}
	var err error
	if sp.Start, err = m.gtidPos(ctx); err != nil {
		return sp, err
	}
	start := time.Now()
	lasts := make([]string, conns)
	g, gctx := errgroup.WithContext(ctx)
	for w := range conns {
		g.Go(func() error {
			conn, err := m.db.Conn(gctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			if _, err := conn.ExecContext(gctx, "USE "+quoteIdent(m.name)); err != nil {
				return err
			}
			for i := w; i < txns; i += conns {
				q, args := stmt(i)
				if _, err := conn.ExecContext(gctx, q, args...); err != nil {
					return fmt.Errorf("%s transaction %d: %w", name, i, err)
				}
			}
			return conn.QueryRowContext(gctx, "SELECT @@last_gtid").Scan(&lasts[w])
		})
	}
	if err := g.Wait(); err != nil {
		return sp, err
	}
	sp.Took = time.Since(start)
	// The connections' last transactions: the one with the highest sequence
	// number (one domain) is the workload's last in commit order.
	for _, s := range lasts {
		if s == "" {
			continue
		}
		g, err := mysql.ParseMariadbGTID(s)
		if err != nil {
			return sp, fmt.Errorf("@@last_gtid %q: %w", s, err)
		}
		if sp.LastText != "" && g.DomainID != sp.Last.DomainID {
			return sp, fmt.Errorf("workload transactions in two GTID domains (%s, %s): run it on one connection domain", sp.LastText, s)
		}
		if sp.LastText == "" || g.SequenceNumber > sp.Last.SequenceNumber {
			sp.Last, sp.LastText = *g, s
		}
	}
	if sp.End, err = m.gtidPos(ctx); err != nil {
		return sp, err
	}
	return sp, nil
}

// insertWorkload inserts rows rows in transactions of txn rows, one multi-row
// INSERT each.
func (m *master) insertWorkload(ctx context.Context, rows, txn, conns int) (span, error) {
	txns := (rows + txn - 1) / txn
	full := insertSQL(txn)
	created := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	return m.run(ctx, "insert", rows, txns, conns, func(i int) (string, []any) {
		first := i * txn
		n := min(txn, rows-first)
		q := full
		if n != txn {
			q = insertSQL(n)
		}
		args := make([]any, 0, n*benchColumns)
		for id := first + 1; id <= first+n; id++ {
			r := rand.New(rand.NewPCG(uint64(id), 0x5eed))
			args = append(args, id, r.IntN(100000), r.IntN(1000),
				fmt.Sprintf("%d.%02d", r.IntN(1000000), r.IntN(100)),
				created.Add(time.Duration(id)*time.Second).Format(time.DateTime),
				created.Add(time.Duration(id)*time.Second+time.Duration(r.IntN(1000))*time.Millisecond).Format("2006-01-02 15:04:05.000"),
				text(r, 36), text(r, 28)+"@example.com", text(r, 76))
		}
		return q, args
	})
}

func insertSQL(n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO bench_rows (id, account_id, qty, amount, created_at, updated_at, name, email, note) VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?,?)")
	}
	return b.String()
}

// updateWorkload updates every row once, txn rows per transaction, keeping
// the row size: each row change carries a before and an after image.
func (m *master) updateWorkload(ctx context.Context, rows, txn, conns int) (span, error) {
	txns := (rows + txn - 1) / txn
	const q = "UPDATE bench_rows SET qty = qty + 1, amount = amount + 1.25, updated_at = NOW(3), " +
		"note = CONCAT(SUBSTRING(note, 2), LEFT(note, 1)) WHERE id BETWEEN ? AND ?"
	return m.run(ctx, "update", rows, txns, conns, func(i int) (string, []any) {
		first := i*txn + 1
		return q, []any{first, min(first+txn-1, rows)}
	})
}

const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789     "

// text returns n characters of words-like ASCII.
func text(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[r.IntN(len(letters))]
	}
	return string(b)
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
