package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/pipeline/testenv"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// userDSN is a DSN for user on a node of the local stack.
func userDSN(node, user, password string) string {
	c := gomysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr = user, password, "tcp", testenv.Addr(node)
	return c.FormatDSN()
}

// rowcastDSN is the DSN of the rowcast user, which the sink runs as.
func rowcastDSN(node string) string {
	pw := os.Getenv("ROWCAST_DB_PASSWORD")
	if pw == "" {
		pw = "rowcast"
	}
	return userDSN(node, "rowcast", pw)
}

// replica is a unique database and bookkeeping schema on a node: the
// sinktest.Inspect of the MySQL target.
type replica struct {
	node, db, schema string
	root             *sql.DB
}

var _ sinktest.Inspect = (*replica)(nil)

func newReplica(t testing.TB, node string) *replica {
	t.Helper()
	r := &replica{node: node, db: testenv.CreateDatabase(t, node), schema: testenv.UniqueName(t, "rcbk")}
	r.root = testenv.DBAt(t, node, r.db)
	t.Cleanup(func() { r.root.Exec("DROP DATABASE IF EXISTS " + quoteIdent(r.schema)) })
	return r
}

// sqlOnly makes a Target apply every row as SQL (tests of the SQL path).
func sqlOnly(c *Config) { c.NoBinlog = true }

// target returns a new Target on the replica, running as rowcast.
func (r *replica) target(t testing.TB, mod ...func(*Config)) *Target {
	t.Helper()
	cfg := Config{DSN: rowcastDSN(r.node), Schema: r.schema, Topic: sinktest.Topic}
	for _, m := range mod {
		m(&cfg)
	}
	tgt, err := New(cfg, sinktest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	return tgt
}

func (r *replica) Database() string { return r.db }

func (r *replica) Setup(t testing.TB, stmts ...string) {
	t.Helper()
	testenv.Exec(t, r.root, stmts...)
}

func (r *replica) Rows(t testing.TB, table string) []string {
	t.Helper()
	rows, err := r.root.Query("SELECT * FROM " + quoteIdent(r.db) + "." + quoteIdent(table))
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	out := []string{}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			if v == nil {
				parts[i] = "NULL"
			} else {
				parts[i] = string(v)
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func (r *replica) Count(t testing.TB, table string) int {
	t.Helper()
	var n int
	if err := r.root.QueryRow("SELECT COUNT(*) FROM " + quoteIdent(r.db) + "." + quoteIdent(table)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (r *replica) Reopen(t testing.TB) sink.Target { return r.target(t) }

// recorder records every statement the target sends.
type recorder struct {
	execer
	mu    sync.Mutex
	stmts []string
}

func (r *recorder) add(q string) {
	r.mu.Lock()
	r.stmts = append(r.stmts, q)
	r.mu.Unlock()
}

func (r *recorder) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	r.add(q)
	return r.execer.ExecContext(ctx, q, args...)
}

func (r *recorder) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	r.add(q)
	return r.execer.QueryRowContext(ctx, q, args...)
}

func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.stmts)
}

func q(db, table string) string { return fmt.Sprintf("`%s`.`%s`", db, table) }

func openDB(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
