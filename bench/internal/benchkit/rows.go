package benchkit

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// tableDDL is the shape of the tables bench/source and bench/sink write:
// about 190 bytes per row image in the binlog (BIGINT, two INT,
// DECIMAL(12,2), DATETIME, DATETIME(3) and three VARCHARs of 36, 40 and 76
// characters).
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

// columns is the number of columns of a bench table.
const columns = 9

// CreateTable is the statement that creates the bench table name, named as
// the statement should name it (qualified or not, quoted where needed).
func CreateTable(name string) string { return fmt.Sprintf(tableDDL, name) }

// created is the first row's created_at.
var created = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// RowArgs appends the values of row id: the same row for the same id on
// every run.
func RowArgs(args []any, id int) []any {
	r := rand.New(rand.NewPCG(uint64(id), 0x5eed))
	return append(args, id, r.IntN(100000), r.IntN(1000),
		fmt.Sprintf("%d.%02d", r.IntN(1000000), r.IntN(100)),
		created.Add(time.Duration(id)*time.Second).Format(time.DateTime),
		created.Add(time.Duration(id)*time.Second+time.Duration(r.IntN(1000))*time.Millisecond).Format("2006-01-02 15:04:05.000"),
		Text(r, 36), Text(r, 28)+"@example.com", Text(r, 76))
}

const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789     "

// Text returns n characters of words-like ASCII.
func Text(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[r.IntN(len(letters))]
	}
	return string(b)
}

var (
	insertMu    sync.Mutex
	insertCache = map[string]string{}
)

// InsertRows inserts rows first..first+n-1 into table in one statement.
func InsertRows(table string, first, n int) (string, []any) {
	args := make([]any, 0, n*columns)
	for id := first; id < first+n; id++ {
		args = RowArgs(args, id)
	}
	return insertSQL(table, n), args
}

// insertSQL is the statement that inserts n rows into table, built once.
func insertSQL(table string, n int) string {
	key := fmt.Sprintf("%s/%d", table, n)
	insertMu.Lock()
	defer insertMu.Unlock()
	if q, ok := insertCache[key]; ok {
		return q
	}
	var b strings.Builder
	b.WriteString("INSERT INTO " + table + " (id, account_id, qty, amount, created_at, updated_at, name, email, note) VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?,?)")
	}
	insertCache[key] = b.String()
	return insertCache[key]
}

// UpdateRows updates rows first..first+n-1 of table in one statement,
// keeping the row size: each row change carries a before and an after
// image.
func UpdateRows(table string, first, n int) (string, []any) {
	return "UPDATE " + table + " SET qty = qty + 1, amount = amount + 1.25, updated_at = NOW(3), " +
		"note = CONCAT(SUBSTRING(note, 2), LEFT(note, 1)) WHERE id BETWEEN ? AND ?", []any{first, first + n - 1}
}

// Kinds of Load.
const (
	Insert = "insert" // inserts rows 1..Rows
	Update = "update" // updates each of them once
)

// Load is a workload on a bench table: Rows rows inserted or updated, Txn
// rows per transaction, each transaction one statement.
type Load struct {
	Name  string
	Table string // as the statements name it
	Kind  string // Insert or Update
	Rows  int
	Txn   int // rows per transaction
}

// Txns is the number of transactions.
func (l Load) Txns() int { return (l.Rows + l.Txn - 1) / l.Txn }

// Stmt is the statement of transaction i.
func (l Load) Stmt(i int) (string, []any) {
	first := i*l.Txn + 1
	n := min(l.Txn, l.Rows-first+1)
	if l.Kind == Insert {
		return InsertRows(l.Table, first, n)
	}
	return UpdateRows(l.Table, first, n)
}

// Writer writes loads over Conns connections of DB at once.
type Writer struct {
	DB    *sql.DB
	Conns int
	// Open, if set, runs on each connection before its first transaction.
	Open func(ctx context.Context, c *sql.Conn) error
	// Close, if set, runs on connection w after its last transaction.
	Close func(ctx context.Context, c *sql.Conn, w int) error
}

// Write runs the load's transactions, each an autocommit statement,
// transaction i on connection i mod w.Conns.
func (w Writer) Write(ctx context.Context, l Load) error {
	g, gctx := errgroup.WithContext(ctx)
	for c := range w.Conns {
		g.Go(func() error { return w.conn(gctx, l, c) })
	}
	return g.Wait()
}

// conn runs connection c's share of the load.
func (w Writer) conn(ctx context.Context, l Load, c int) error {
	conn, err := w.DB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if w.Open != nil {
		if err := w.Open(ctx, conn); err != nil {
			return err
		}
	}
	for i := c; i < l.Txns(); i += w.Conns {
		q, args := l.Stmt(i)
		if _, err := conn.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("%s transaction %d: %w", l.Name, i, err)
		}
	}
	if w.Close != nil {
		return w.Close(ctx, conn, c)
	}
	return nil
}
