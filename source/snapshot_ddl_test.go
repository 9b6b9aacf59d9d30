package source

import (
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
)

// consumer applies the stream to a database of its own on a replica node,
// as a sink would, with the table's definitions from the stream alone: the
// DDL statements, and the start markers (the table replaced by an empty
// one of the marker's definition). A statement the replica refuses fails
// the test: a definition published out of step with the stream shows so.
type consumer struct {
	t    *testing.T
	db   *sql.DB
	name string
}

func newConsumer(t *testing.T) *consumer {
	name := testenv.CreateDatabase(t, testenv.Replica2)
	return &consumer{t: t, db: testenv.DBAt(t, testenv.Replica2, name), name: name}
}

// exec runs statements on one connection, in the consumer's database.
func (c *consumer) exec(stmts ...string) {
	c.t.Helper()
	conn, err := c.db.Conn(c.t.Context())
	if err != nil {
		c.t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range append([]string{"USE " + quoteName(c.name)}, stmts...) {
		if _, err := conn.ExecContext(c.t.Context(), q); err != nil {
			c.t.Fatalf("the consumer cannot apply %q: %v", q, err)
		}
	}
}

// apply applies one event.
func (c *consumer) apply(ev *pipeline.Event) {
	c.t.Helper()
	switch {
	case ev.Kind == pipeline.KindDDL:
		c.exec(ev.Statement)
	case ev.Kind == pipeline.KindSnapshot && ev.Snapshot == "start":
		c.exec("DROP TABLE IF EXISTS "+quoteName(ev.Table.Name), ev.Statement)
	case ev.Kind != pipeline.KindRow:
	case ev.Op == pipeline.OpDelete:
		c.delete(ev.Table, ev.Before)
	default:
		if ev.Before != nil {
			c.delete(ev.Table, ev.Before)
		}
		c.replace(ev.Table, ev.After)
	}
}

func (c *consumer) delete(t *pipeline.Table, img []any) {
	c.t.Helper()
	var where []string
	var args []any
	for _, k := range t.PrimaryKey {
		where = append(where, quoteName(t.Columns[k].Name)+"=?")
		args = append(args, img[k])
	}
	c.execArgs("DELETE FROM "+c.table(t.Name)+" WHERE "+strings.Join(where, " AND "), args)
}

func (c *consumer) replace(t *pipeline.Table, img []any) {
	c.t.Helper()
	names := make([]string, len(t.Columns))
	for i, col := range t.Columns {
		names[i] = quoteName(col.Name)
	}
	marks := strings.TrimSuffix(strings.Repeat("?,", len(img)), ",")
	c.execArgs("REPLACE INTO "+c.table(t.Name)+" ("+strings.Join(names, ",")+") VALUES ("+marks+")", img)
}

func (c *consumer) table(name string) string { return quoteName(c.name) + "." + quoteName(name) }

func (c *consumer) execArgs(q string, args []any) {
	c.t.Helper()
	if _, err := c.db.Exec(q, args...); err != nil {
		c.t.Fatalf("the consumer cannot apply %q: %v", q, err)
	}
}

// applyUntil applies the stream until the end marker of table.
func (c *consumer) applyUntil(col *collector, table string) (chunks int) {
	c.t.Helper()
	for {
		txn := col.txn(c.t)
		for _, ev := range txn {
			c.apply(ev)
		}
		ev := txn[0]
		if ev.Op == pipeline.OpRead {
			chunks++
		}
		if ev.Kind == pipeline.KindSnapshot && ev.Snapshot == "end" && ev.Table.Name == table {
			return chunks
		}
	}
}

// catchUp inserts the row of key -1 on the master and applies the stream
// until it arrives.
func (c *consumer) catchUp(col *collector, master *sql.DB, insert string) {
	c.t.Helper()
	testenv.Exec(c.t, master, insert)
	for {
		ev := col.next(c.t, 30*time.Second)
		c.apply(ev)
		if ev.Kind == pipeline.KindRow && ev.After != nil && ev.After[0] == int64(-1) {
			return
		}
	}
}

// checkEqual compares the consumer's table with the master's: definition
// and rows.
func (c *consumer) checkEqual(master *sql.DB, dbName, table string) {
	c.t.Helper()
	want, err := showCreate(c.t.Context(), master, dbName, table)
	if err != nil {
		c.t.Fatal(err)
	}
	got, err := showCreate(c.t.Context(), c.db, c.name, table)
	if err != nil {
		c.t.Fatal(err)
	}
	if !sameDefinition(got, want) {
		c.t.Fatalf("the consumer's table:\n%s\nthe master's:\n%s", got, want)
	}
	gotRows, wantRows := tableText(c.t, c.db, c.name, table), tableText(c.t, master, dbName, table)
	if !slices.Equal(gotRows, wantRows) {
		c.t.Fatalf("the consumer has %d rows, the master %d; first rows %.5q / %.5q", len(gotRows), len(wantRows), gotRows, wantRows)
	}
}

// tableText reads a table's rows as text, in key order.
func tableText(t *testing.T, db *sql.DB, dbName, table string) []string {
	t.Helper()
	rows, err := db.Query("SELECT * FROM " + quoteName(dbName) + "." + quoteName(table) + " ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(vals))
	}
	return out
}

// TestSnapshotMarkersAtTheirPosition: a job resumed after a crash (start
// markers first, no prepared view) starts while the stream is behind the
// master, whose table got a column since the stream's position. The start
// marker goes out where the stream reaches a view of its own, after the
// ALTER, with the definition there: a consumer that held the table as of
// the stream's position ends with the master's table. Published at once
// with the master's definition, the marker came before the ALTER, which
// the consumer then refused (duplicate column).
func TestSnapshotMarkersAtTheirPosition(t *testing.T) {
	dbName := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, dbName)
	create := []string{"CREATE TABLE b (id BIGINT PRIMARY KEY, v INT)", "INSERT INTO b SELECT seq, seq FROM seq_1_to_30"}
	testenv.Exec(t, db, create...)
	con := newConsumer(t)
	con.exec(create...)
	start := binlogPos(t, db)
	testenv.Exec(t, db, "UPDATE b SET v = 0 WHERE id = 1", "ALTER TABLE b ADD COLUMN z INT DEFAULT 7", "INSERT INTO b VALUES (31, 31, 31)")
	r := NewReader(testConfig(t, dbName), testLogger(t))
	r.Snapshot(&SnapshotJob{ID: 6, Tables: []string{dbName + ".b"}, ChunkRows: 10, MarkFirst: true})
	c := runReader(t, r, Start{GTIDSet: start, NextTxnSeq: 1, Epoch: 1})
	con.applyUntil(c, "b")
	con.catchUp(c, db, "INSERT INTO b (id) VALUES (-1)")
	con.checkEqual(db, dbName, "b")
}

// churnNamed updates, inserts and deletes rows of t (id, v, pad) by column
// name, so that columns may be added meanwhile, until stop.
func churnNamed(t *testing.T, db *sql.DB, stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		id := (i * 7919) % 600
		var err error
		switch i % 3 {
		case 0:
			_, err = db.Exec("UPDATE t SET v = v + 1, pad = ? WHERE id = ?", fmt.Sprint(i), id)
		case 1:
			_, err = db.Exec("REPLACE INTO t (id, v, pad) VALUES (?, ?, 'new')", id, i)
		default:
			_, err = db.Exec("DELETE FROM t WHERE id = ?", id)
		}
		if err != nil {
			t.Error(err)
			return
		}
	}
}

// ddlRun is a snapshot of t under writes, with an ALTER fired in a chunk's
// read view before the chunk reads anything.
type ddlRun struct {
	t      *testing.T
	dbName string
	db     *sql.DB
	r      *Reader
	fired  atomic.Int32
	stop   chan struct{}
	wg     sync.WaitGroup
}

// newDDLRun creates t with 500 rows (after start, when start is set) and a
// reader whose nth table read in a view first runs alter.
func newDDLRun(t *testing.T, nth int32, alter string) *ddlRun {
	d := &ddlRun{t: t, dbName: testenv.CreateDatabase(t, testenv.Master), stop: make(chan struct{})}
	d.db = testenv.DBAt(t, testenv.Master, d.dbName)
	d.r = NewReader(testConfig(t, d.dbName), testLogger(t))
	var reads atomic.Int32
	d.r.snaps.beforeRead = func(string) {
		if reads.Add(1) == nth {
			// The view has no lock on t yet: the ALTER does not wait for it.
			testenv.Exec(t, d.db, "SET STATEMENT lock_wait_timeout=10 FOR "+alter)
			d.fired.Add(1)
		}
	}
	return d
}

func (d *ddlRun) create() {
	testenv.Exec(d.t, d.db, "CREATE TABLE t (id BIGINT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(20))",
		"INSERT INTO t SELECT seq, 0, 'x' FROM seq_0_to_499")
}

// churn starts two writers.
func (d *ddlRun) churn() {
	for range 2 {
		d.wg.Add(1)
		go func() { defer d.wg.Done(); churnNamed(d.t, d.db, d.stop) }()
	}
}

// finish applies the stream to a consumer until the snapshot's end, stops
// the writers, catches up and compares with the master.
func (d *ddlRun) finish(c *collector) {
	con := newConsumer(d.t)
	chunks := con.applyUntil(c, "t")
	close(d.stop)
	d.wg.Wait()
	con.catchUp(c, d.db, "INSERT INTO t (id, v) VALUES (-1, 0)")
	con.checkEqual(d.db, d.dbName, "t")
	if d.fired.Load() != 1 {
		d.t.Fatalf("the ALTER ran %d times in a view, want once", d.fired.Load())
	}
	d.t.Logf("%d chunks; the consumer equals the master", chunks)
}

// TestSnapshotDDLInChunkView fires an instant ALTER in a chunk's read view
// before its read, while the table is written: the chunk is read again in
// a new view, after the ALTER in the stream, and a consumer applying the
// stream from an empty database (the table's CREATE, its rows, the ALTER,
// the snapshot) ends with the master's columns and rows. Online, the ALTER
// comes in the third chunk's view; in an initial snapshot's one view,
// after the start markers, before the first chunk.
func TestSnapshotDDLInChunkView(t *testing.T) {
	alters := []string{"ALTER TABLE t ADD COLUMN z INT NOT NULL DEFAULT 5", "ALTER TABLE t DROP COLUMN pad, ADD COLUMN pad VARCHAR(30) DEFAULT 'p'"}
	for _, alter := range alters {
		t.Run("online "+alter[14:17], func(t *testing.T) {
			d := newDDLRun(t, 3, alter)
			start := binlogPos(t, d.db)
			d.create()
			c := runReader(t, d.r, Start{GTIDSet: start, NextTxnSeq: 1, Epoch: 1})
			d.churn()
			d.r.Snapshot(&SnapshotJob{ID: 7, Tables: []string{d.dbName + ".t"}, ChunkRows: 40})
			d.finish(c)
		})
	}
	t.Run("initial", func(t *testing.T) {
		d := newDDLRun(t, 1, alters[0])
		d.create()
		job := &SnapshotJob{ID: 8, Tables: []string{d.dbName + ".t"}, ChunkRows: 40, MarkFirst: true}
		set, err := d.r.PrepareSnapshot(t.Context(), job)
		if err != nil {
			t.Fatal(err)
		}
		d.r.Snapshot(job)
		d.churn()
		d.finish(runReader(t, d.r, Start{GTIDSet: set, NextTxnSeq: 1, Epoch: 1}))
	})
}
