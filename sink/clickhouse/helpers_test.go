package clickhouse

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// chURL is the local ClickHouse, from the stack's environment.
func chURL() string {
	if u := os.Getenv("ROWCAST_CLICKHOUSE_URL"); u != "" {
		return u
	}
	return testenv.ClickHouseURL() + "/"
}

// replica is a test's own ClickHouse databases: one for the tables, one for
// the bookkeeping; both dropped at cleanup.
type replica struct {
	cl       *client
	db, book string
	cfg      Config
}

func newReplica(t testing.TB, cfg Config) *replica {
	t.Helper()
	testenv.Need(t, "clickhouse_http")
	cl, err := newClient(chURL())
	if err != nil {
		t.Fatal(err)
	}
	name := testenv.UniqueName(t, "ch")
	r := &replica{cl: cl, db: name, book: name + "_rc", cfg: cfg}
	r.cfg.URL, r.cfg.Database, r.cfg.Topic = chURL(), r.book, sinktest.Topic
	t.Cleanup(func() {
		for _, db := range []string{r.db, r.book} {
			r.cl.exec(context.Background(), "DROP DATABASE IF EXISTS "+quoteIdent(db))
		}
		r.cl.close()
	})
	r.exec(t, "CREATE DATABASE "+quoteIdent(r.db))
	return r
}

func (r *replica) exec(t testing.TB, q string) {
	t.Helper()
	if err := r.cl.exec(context.Background(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (r *replica) query(t testing.TB, q string) [][]string {
	t.Helper()
	rows, err := r.cl.query(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return rows
}

func (r *replica) target(t testing.TB) *Target {
	t.Helper()
	tgt, err := New(r.cfg, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel))
	if err != nil {
		t.Fatal(err)
	}
	return tgt
}

// Database implements sinktest.Inspect.
func (r *replica) Database() string { return r.db }

// Setup maps MySQL DDL as the sink does.
func (r *replica) Setup(t testing.TB, stmts ...string) {
	t.Helper()
	tgt := r.target(t)
	defer tgt.Close()
	tgt.forgetShapes()
	for _, s := range stmts {
		acts, err := ddlPlan(s, r.db)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		for _, a := range acts {
			if err := tgt.runAction(context.Background(), a); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
}

// columns are a table's source columns, in table order.
func (r *replica) columns(t testing.TB, table string) []string {
	var cols []string
	for _, row := range r.query(t, "SELECT name FROM system.columns WHERE database = "+quoteString(r.db)+
		" AND table = "+quoteString(table)) {
		if !strings.HasPrefix(row[0], "_") {
			cols = append(cols, quoteIdent(row[0]))
		}
	}
	return cols
}

// Rows reads the current rows: FINAL, deleted rows hidden.
func (r *replica) Rows(t testing.TB, table string) []string {
	t.Helper()
	cols := r.columns(t, table)
	if len(cols) == 0 {
		return []string{}
	}
	out := []string{}
	for _, row := range r.query(t, "SELECT "+strings.Join(cols, ", ")+" FROM "+qualified(r.db, table)+" FINAL WHERE _deleted = 0") {
		for i, v := range row {
			if v == `\N` {
				row[i] = "NULL"
			}
		}
		out = append(out, strings.Join(row, "|"))
	}
	slices.Sort(out)
	return out
}

// Count counts the current rows.
func (r *replica) Count(t testing.TB, table string) int { return len(r.Rows(t, table)) }

// Reopen returns another Target on the same databases.
func (r *replica) Reopen(t testing.TB) sink.Target { return r.target(t) }

// Bootstrap reads the bootstrap entries.
func (r *replica) Bootstrap(t testing.TB) map[string]checkpoint.Bootstrap {
	t.Helper()
	s := store{cl: r.cl, db: r.book}
	m, err := s.loadBoot(context.Background(), sinktest.Topic)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// SaveBootstrap records an entry as rowcast clone does.
func (r *replica) SaveBootstrap(t testing.TB, b checkpoint.Bootstrap) {
	t.Helper()
	s := store{cl: r.cl, db: r.book}
	if err := s.loadSeq(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.saveBoot(context.Background(), bootOp{b: b}); err != nil {
		t.Fatal(err)
	}
}
