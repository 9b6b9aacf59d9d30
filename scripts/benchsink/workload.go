package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"golang.org/x/sync/errgroup"
)

// benchDB is the database of every workload, on the master and (created
// beforehand, outside the binlog) on both replicas.
const benchDB = "rcbench"

// tableDDL is the shape of every bench table: about 190 bytes per row image
// in the binlog (BIGINT, two INT, DECIMAL(12,2), DATETIME, DATETIME(3) and
// three VARCHARs of 36, 40 and 76 characters), the same rows as
// scripts/benchsource writes.
const tableDDL = `CREATE TABLE %s (
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

const columns = 9

// workload is one measured binlog range.
type workload struct {
	Name  string // insert, update, insert-small, update-small
	Table string
	Kind  string // insert or update
	Rows  int
	Txn   int // rows per transaction
}

func (w workload) txns() int { return (w.Rows + w.Txn - 1) / w.Txn }

// span is the binlog range a workload wrote.
type span struct {
	workload
	Start, End string // master's gtid_binlog_pos before and after
	end        mysql.GTIDSet
	Took       time.Duration
}

// master writes the workloads.
type master struct {
	s     *server
	conns int
}

func createTables(ctx context.Context, db *sql.DB, binlog bool, tables ...string) error {
	stmts := []string{}
	if !binlog {
		stmts = append(stmts, "SET SESSION sql_log_bin = 0")
	}
	stmts = append(stmts, "CREATE DATABASE IF NOT EXISTS "+benchDB)
	for _, t := range tables {
		stmts = append(stmts, fmt.Sprintf(tableDDL, benchDB+"."+t))
	}
	return execAll(ctx, db, stmts...)
}

func gtidPos(ctx context.Context, s *server) (string, error) {
	return s.variable(ctx, "gtid_binlog_pos")
}

// write runs a workload, over m.conns connections, each transaction one
// autocommit statement, and returns its span.
func (m *master) write(ctx context.Context, w workload) (span, error) {
	sp := span{workload: w}
	var err error
	if sp.Start, err = gtidPos(ctx, m.s); err != nil {
		return sp, err
	}
	t0 := time.Now()
	txns := w.txns()
	g, gctx := errgroup.WithContext(ctx)
	for c := range m.conns {
		g.Go(func() error {
			conn, err := m.s.root.Conn(gctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			for i := c; i < txns; i += m.conns {
				first := i*w.Txn + 1
				n := min(w.Txn, w.Rows-first+1)
				var q string
				var args []any
				if w.Kind == "insert" {
					q, args = insertStmt(w.Table, first, n)
				} else {
					q, args = updateStmt(w.Table, first, n)
				}
				if _, err := conn.ExecContext(gctx, q, args...); err != nil {
					return fmt.Errorf("%s transaction %d: %w", w.Name, i, err)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return sp, err
	}
	sp.Took = time.Since(t0)
	if sp.End, err = gtidPos(ctx, m.s); err != nil {
		return sp, err
	}
	sp.end, err = mysql.ParseMariadbGTIDSet(sp.End)
	return sp, err
}

var created = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// rowArgs appends the values of row id: the same row for the same id on
// every run.
func rowArgs(args []any, id int) []any {
	r := rand.New(rand.NewPCG(uint64(id), 0x5eed))
	return append(args, id, r.IntN(100000), r.IntN(1000),
		fmt.Sprintf("%d.%02d", r.IntN(1000000), r.IntN(100)),
		created.Add(time.Duration(id)*time.Second).Format(time.DateTime),
		created.Add(time.Duration(id)*time.Second+time.Duration(r.IntN(1000))*time.Millisecond).Format("2006-01-02 15:04:05.000"),
		text(r, 36), text(r, 28)+"@example.com", text(r, 76))
}

var (
	insertMu    sync.Mutex
	insertCache = map[string]string{}
)

// insertStmt inserts rows first..first+n-1 in one statement.
func insertStmt(table string, first, n int) (string, []any) {
	key := fmt.Sprintf("%s/%d", table, n)
	insertMu.Lock()
	q, ok := insertCache[key]
	insertMu.Unlock()
	if !ok {
		var b strings.Builder
		b.WriteString("INSERT INTO " + benchDB + "." + table + " (id, account_id, qty, amount, created_at, updated_at, name, email, note) VALUES ")
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?,?,?,?,?,?,?,?,?)")
		}
		q = b.String()
		insertMu.Lock()
		insertCache[key] = q
		insertMu.Unlock()
	}
	args := make([]any, 0, n*columns)
	for id := first; id < first+n; id++ {
		args = rowArgs(args, id)
	}
	return q, args
}

// updateStmt updates rows first..first+n-1 in one statement, keeping the
// row size: each row change carries a before and an after image.
func updateStmt(table string, first, n int) (string, []any) {
	return "UPDATE " + benchDB + "." + table + " SET qty = qty + 1, amount = amount + 1.25, updated_at = NOW(3), " +
		"note = CONCAT(SUBSTRING(note, 2), LEFT(note, 1)) WHERE id BETWEEN ? AND ?", []any{first, first + n - 1}
}

const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789     "

func text(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[r.IntN(len(letters))]
	}
	return string(b)
}

// containsGTIDs reports whether GTID set text have includes want.
func containsGTIDs(have string, want mysql.GTIDSet) bool {
	if have == "" {
		return false
	}
	h, err := mysql.ParseMariadbGTIDSet(have)
	if err != nil {
		return false
	}
	return h.Contain(want)
}
