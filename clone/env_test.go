package clone

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/clone/clonetest"
	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/internal/workload"
)

// env is a clone from db2 into an empty server of the test's own: a
// database of the test's own on db2, replicated by a config whose topic and
// bookkeeping schema are the test's too, with a checkpoint on db2 that says
// where the copy stands (no Kafka is read).
type env struct {
	cfg      *config.Config
	src      *sql.DB
	target   *clonetest.Server
	dst      *sql.DB
	database string
	store    *checkpoint.MySQL
	view     checkpoint.State
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{src: testenv.DB(t, testenv.Replica1), database: testenv.CreateDatabase(t, testenv.Replica1)}
	schema := testenv.UniqueName(t, "rcbk")
	t.Cleanup(func() { e.src.Exec("DROP DATABASE IF EXISTS `" + schema + "`") })
	e.target = clonetest.Start(t)
	e.dst = e.target.DB(t)
	text := fmt.Sprintf(`cluster: clonetest
master: db1
nodes:
  - {name: db1, dsn: "root@tcp(%s)/"}
  - {name: db2, dsn: "root@tcp(%s)/"}
  - {name: db9, dsn: "root@tcp(%s)/"}
kafka: {brokers: [%q], topic: %s}
source: {include: ['^%s\.']}
sink: {bookkeeping_schema: %s}
`, testenv.Addr(testenv.Master), testenv.Addr(testenv.Replica1), e.target.Addr(), testenv.Addr("kafka"),
		"rc."+e.database, e.database, schema)
	var err error
	if e.cfg, err = config.Parse([]byte(text), os.LookupEnv); err != nil {
		t.Fatal(err)
	}
	e.store = e.cfg.CheckpointStore()
	e.setView(t, checkpoint.State{Offset: 1000, Epoch: 1, TxnSeq: 400, GTIDSet: "0-1-4000", CommitTime: time.Date(2026, 5, 1, 2, 3, 4, 5000, time.UTC)})
	return e
}

// setView writes the source's checkpoint.
func (e *env) setView(t *testing.T, st checkpoint.State) {
	t.Helper()
	st.Topic = e.cfg.Kafka.Topic
	ctx := context.Background()
	if err := e.store.Init(ctx, e.src); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Save(ctx, e.src, st); err != nil {
		t.Fatal(err)
	}
	e.view = st
}

// run clones db2 into db9 with small chunks and batches, so that every
// table takes several of each.
func (e *env) run(ctx context.Context, t *testing.T, opts Options) (*Result, error) {
	t.Helper()
	opts.From, opts.To = "db2", "db9"
	if opts.ChunkRows == 0 {
		opts.ChunkRows = 7
	}
	if opts.BatchBytes == 0 {
		opts.BatchBytes = 1000
	}
	opts.Log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	return Run(ctx, e.cfg, opts)
}

// mustRun is run that fails the test on an error.
func (e *env) mustRun(t *testing.T, opts Options) *Result {
	t.Helper()
	res, err := e.run(context.Background(), t, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// exec runs statements in the test's database on the source.
func (e *env) exec(t *testing.T, stmts ...string) {
	t.Helper()
	conn, err := e.src.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range append([]string{"USE `" + e.database + "`"}, stmts...) {
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%.200s: %v", q, err)
		}
	}
}

// checkEqual compares the test's database on both sides: every value (hex,
// NULL apart from empty) and CHECKSUM TABLE.
func (e *env) checkEqual(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	want, err := workload.Checksum(ctx, e.src, e.database)
	if err != nil {
		t.Fatal(err)
	}
	got, err := workload.Checksum(ctx, e.dst, e.database)
	if err != nil {
		t.Fatal(err)
	}
	if d := workload.Diff(want, got); d != "" || len(want) == 0 {
		t.Fatalf("the copy differs from the source (%d tables): %s", len(want), d)
	}
	for _, tc := range want {
		if s, d := checksumTable(t, e.src, e.database, tc.Table), checksumTable(t, e.dst, e.database, tc.Table); s != d {
			t.Errorf("CHECKSUM TABLE %s: source %d, copy %d", tc.Table, s, d)
		}
	}
}

func checksumTable(t *testing.T, db *sql.DB, database, table string) int64 {
	t.Helper()
	var name string
	var sum sql.NullInt64
	if err := db.QueryRow("CHECKSUM TABLE "+qi(database)+"."+qi(table)).Scan(&name, &sum); err != nil || !sum.Valid {
		t.Fatalf("CHECKSUM TABLE %s.%s: %v", database, table, err)
	}
	return sum.Int64
}

// showCreate is a table's definition on a node.
func showCreate(t *testing.T, db *sql.DB, table string) string {
	t.Helper()
	var name, ddl string
	if err := db.QueryRow("SHOW CREATE TABLE "+table).Scan(&name, &ddl); err != nil {
		t.Fatal(err)
	}
	return ddl
}

// count is how many rows a table of the test's database holds on a node.
func (e *env) count(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM `" + e.database + "`." + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one with %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q lacks %q", err, p)
		}
	}
}
