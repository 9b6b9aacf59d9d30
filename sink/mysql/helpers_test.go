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

	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// userDSN is a DSN for user on a node of the local stack.
func userDSN(node, user, password string) string {
	c := mysql.NewConfig()
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

// open returns a Target on the replica, opened, closed when the test ends.
func (r *replica) open(t testing.TB, mod ...func(*Config)) *Target {
	t.Helper()
	tgt := r.target(t, mod...)
	if _, _, err := tgt.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tgt.Close() })
	return tgt
}

// binTable returns an opened Target and its row-event encoding of tbl.
func (r *replica) binTable(t testing.TB, tbl *pipeline.Table) (*Target, *binTable) {
	t.Helper()
	tgt := r.open(t)
	bt, err := tgt.binTableFor(context.Background(), tbl)
	if err != nil || bt == nil {
		t.Fatalf("no row-event encoding of %s: %v, %v", tbl.Name, bt, err)
	}
	return tgt, bt
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

// queryStrings returns the first column of every row of query.
func queryStrings(t testing.TB, db *sql.DB, query string) []string {
	t.Helper()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
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

func (r *replica) Bootstrap(t testing.TB) map[string]checkpoint.Bootstrap {
	t.Helper()
	boot, err := checkpoint.NewMySQL(r.schema).LoadBootstrap(context.Background(), r.root, sinktest.Topic)
	if err != nil {
		t.Fatal(err)
	}
	return boot
}

func (r *replica) SaveBootstrap(t testing.TB, b checkpoint.Bootstrap) {
	t.Helper()
	if err := checkpoint.NewMySQL(r.schema).SaveBootstrap(context.Background(), r.root, b); err != nil {
		t.Fatal(err)
	}
}

// recorder records every statement the target sends.
type recorder struct {
	execer
	mu    sync.Mutex
	stmts []string
}

// record makes tgt record its statements.
func record(tgt *Target) *recorder {
	rec := &recorder{}
	tgt.wrap = rec.wrap
	return rec
}

// wrap records what e runs.
func (r *recorder) wrap(e execer) execer {
	r.execer = e
	return r
}

// sameRows compares the rows two ways of applying gave, a and b.
func sameRows(t *testing.T, a, b string, aRows, bRows []string) {
	t.Helper()
	if slices.Equal(aRows, bRows) {
		return
	}
	for i := range min(len(aRows), len(bRows)) {
		if aRows[i] != bRows[i] {
			t.Fatalf("%s and %s differ, first at row %d:\n%.300s\n%.300s", a, b, i, aRows[i], bRows[i])
		}
	}
	t.Fatalf("%s gave %d rows, %s %d", a, len(aRows), b, len(bRows))
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

func (r *recorder) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	r.add(q)
	return r.execer.QueryContext(ctx, q, args...)
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
