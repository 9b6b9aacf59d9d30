package source

import (
	"bytes"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
)

// progressLog collects a job's progress reports.
type progressLog struct {
	mu   sync.Mutex
	reps []SnapshotProgress
}

func (p *progressLog) add(r SnapshotProgress) {
	p.mu.Lock()
	p.reps = append(p.reps, r)
	p.mu.Unlock()
}

func (p *progressLog) all() []SnapshotProgress {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]SnapshotProgress(nil), p.reps...)
}

// snapshotEvents reads events until the job's end marker of its last table,
// and returns them grouped by transaction.
func snapshotEvents(t *testing.T, c *collector, lastTable string) [][]*pipeline.Event {
	t.Helper()
	var out [][]*pipeline.Event
	for {
		txn := c.txn(t)
		out = append(out, txn)
		ev := txn[0]
		if ev.Kind == pipeline.KindSnapshot && ev.Snapshot == "end" && ev.Table.Database+"."+ev.Table.Name == lastTable {
			return out
		}
	}
}

// matrixTable creates the type matrix table with the five rows of
// TestTypeMatrix.
func matrixTable(t *testing.T, dbName string) {
	t.Helper()
	db := testenv.DBAt(t, testenv.Master, dbName)
	defs := []string{"id INT PRIMARY KEY"}
	for _, c := range typeCols {
		defs = append(defs, "`"+c.name+"` "+c.def)
	}
	testenv.Exec(t, db, "CREATE TABLE tm ("+strings.Join(defs, ", ")+")")
}

// TestSnapshotMatchesBinlog inserts the type matrix's rows, then snapshots
// the table: every snapshot row carries exactly the values, table shape and
// encoding of the binlog insert of the same row.
func TestSnapshotMatchesBinlog(t *testing.T) {
	dbName := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, dbName)
	matrixTable(t, dbName)
	start := Start{GTIDSet: binlogPos(t, db), NextTxnSeq: 10, Epoch: 2}
	c := startReader(t, testConfig(t, dbName), start)
	conn := looseSession(t, db)
	for id, lits := range matrixLiterals() {
		execConn(t, conn, fmt.Sprintf("INSERT INTO tm VALUES (%d, %s)", id+1, strings.Join(lits, ", ")))
	}
	inserts := map[any]*pipeline.Event{}
	for i := 0; i < 5; i++ {
		ev := c.txn(t)[0]
		inserts[ev.After[0]] = ev
	}
	var prog progressLog
	c.r.Snapshot(&SnapshotJob{ID: 7, Tables: []string{dbName + ".tm"}, ChunkRows: 2, Progress: prog.add})
	txns := snapshotEvents(t, c, dbName+".tm")
	checkSnapshotShape(t, txns, 15, []int{2, 2, 1})
	for _, txn := range txns[1 : len(txns)-1] {
		for _, ev := range txn {
			compareWithInsert(t, ev, inserts[ev.After[0]])
		}
	}
	checkProgress(t, prog.all(), []int{2, 2, 1}, `[5]`)
}

// checkSnapshotShape checks a table's snapshot: a start marker with the
// definition, chunks of the given sizes, an end marker, each its own
// transaction from seq on, with the GTID set on every last message.
func checkSnapshotShape(t *testing.T, txns [][]*pipeline.Event, seq uint64, chunks []int) {
	t.Helper()
	if len(txns) != len(chunks)+2 {
		t.Fatalf("%d transactions, want %d (markers and %v)", len(txns), len(chunks)+2, chunks)
	}
	checkMarkers(t, txns[0][0], txns[len(txns)-1][0])
	for i, txn := range txns {
		if i > 0 && i <= len(chunks) && len(txn) != chunks[i-1] {
			t.Errorf("chunk %d has %d rows, want %d", i, len(txn), chunks[i-1])
		}
		checkPositions(t, txn, seq+uint64(i))
	}
}

// checkMarkers checks a table's start and end markers.
func checkMarkers(t *testing.T, first, last *pipeline.Event) {
	t.Helper()
	if first.Kind != pipeline.KindSnapshot || first.Snapshot != "start" || !strings.HasPrefix(first.Statement, "CREATE TABLE") {
		t.Fatalf("first message %s %s %.40q, want a start marker with the definition", first.Kind, first.Snapshot, first.Statement)
	}
	if last.Kind != pipeline.KindSnapshot || last.Snapshot != "end" || last.Statement != "" {
		t.Fatalf("last message %s %s, want an end marker", last.Kind, last.Snapshot)
	}
}

// checkPositions checks the positions of one transaction's messages.
func checkPositions(t *testing.T, txn []*pipeline.Event, seq uint64) {
	t.Helper()
	for r, ev := range txn {
		want := pipeline.Position{Epoch: ev.Pos.Epoch, TxnSeq: seq, Row: uint64(r), Last: r == len(txn)-1}
		if ev.Pos != want || (ev.Pos.Last != (ev.GTIDSet != "")) {
			t.Errorf("transaction %d message %d at %s (gtid set %q), want %s", seq, r, ev.Pos, ev.GTIDSet, want)
		}
	}
}

// compareWithInsert checks that a snapshot row equals the binlog's insert
// of the same row, value by value and byte by byte once encoded.
func compareWithInsert(t *testing.T, snap, ins *pipeline.Event) {
	t.Helper()
	if ins == nil {
		t.Fatalf("snapshot row %v has no insert", snap.After[0])
	}
	if snap.Kind != pipeline.KindRow || snap.Op != pipeline.OpRead || snap.Before != nil || snap.GTID != "" {
		t.Fatalf("snapshot row %s: kind %s op %s gtid %q", snap.Pos, snap.Kind, snap.Op, snap.GTID)
	}
	if !reflect.DeepEqual(snap.Table, ins.Table) {
		t.Fatalf("snapshot table %+v, binlog table %+v", snap.Table, ins.Table)
	}
	compareImage(t, fmt.Sprintf("snapshot row %v", snap.After[0]), snap.After, ins.After)
	as := *ins
	as.After, as.Op = snap.After, pipeline.OpInsert
	codec := &pipeline.Codec{Cluster: "t"}
	want, err := codec.AppendValue(nil, ins)
	if err != nil {
		t.Fatal(err)
	}
	got, err := codec.AppendValue(nil, &as)
	if err != nil {
		t.Fatalf("encode snapshot row %v: %v", snap.After[0], err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("snapshot row %v encodes differently from its insert", snap.After[0])
	}
}

// checkProgress checks the chunk reports and the final one.
func checkProgress(t *testing.T, reps []SnapshotProgress, chunks []int, lastKey string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(reps) < len(chunks)+1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if len(reps) != len(chunks)+1 {
		t.Fatalf("%d progress reports, want %d: %+v", len(reps), len(chunks)+1, reps)
	}
	for i, n := range chunks {
		if reps[i].Rows != n || reps[i].JobID != 7 || reps[i].TableDone != (i == len(chunks)-1) {
			t.Errorf("report %d: %+v, want %d rows", i, reps[i], n)
		}
	}
	if r := reps[len(chunks)-1]; r.LastKey != lastKey {
		t.Errorf("last key %q, want %q", r.LastKey, lastKey)
	}
	if r := reps[len(chunks)]; !r.Done || r.Err != nil {
		t.Errorf("final report %+v, want done without error", r)
	}
}

// replicaModel applies a table's events as a sink in bootstrap mode does:
// a start marker empties the table, row changes and snapshot reads upsert
// or delete by key.
type replicaModel map[int64][]any

func (m replicaModel) apply(ev *pipeline.Event) {
	switch {
	case ev.Kind == pipeline.KindSnapshot && ev.Snapshot == "start":
		clear(m)
	case ev.Kind != pipeline.KindRow:
	case ev.Op == pipeline.OpDelete:
		delete(m, ev.Before[0].(int64))
	default:
		if ev.Before != nil {
			delete(m, ev.Before[0].(int64))
		}
		m[ev.After[0].(int64)] = ev.After
	}
}

// churn updates, inserts and deletes rows of t until ctx ends.
func churn(t *testing.T, db *sql.DB, stop <-chan struct{}) {
	r := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		id := r.IntN(600)
		var err error
		switch i % 3 {
		case 0:
			_, err = db.Exec("UPDATE t SET v = v + 1, pad = ? WHERE id = ?", fmt.Sprint(i), id)
		case 1:
			_, err = db.Exec("REPLACE INTO t VALUES (?, ?, 'new')", id, i)
		default:
			_, err = db.Exec("DELETE FROM t WHERE id = ?", id)
		}
		if err != nil {
			t.Error(err)
			return
		}
	}
}

// TestSnapshotPositioned snapshots a table in small chunks while it is
// written: applied in stream order, the chunks and the row changes leave
// exactly the master's rows, which holds only when each chunk is emitted
// at the point of the stream whose state it read.
func TestSnapshotPositioned(t *testing.T) {
	dbName := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, dbName)
	testenv.Exec(t, db, "CREATE TABLE t (id BIGINT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(20))",
		"INSERT INTO t SELECT seq, 0, 'x' FROM seq_0_to_499")
	c := startReader(t, testConfig(t, dbName), Start{GTIDSet: binlogPos(t, db), NextTxnSeq: 1, Epoch: 1})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() { defer wg.Done(); churn(t, db, stop) }()
	}
	c.r.Snapshot(&SnapshotJob{ID: 1, Tables: []string{dbName + ".t"}, ChunkRows: 40})
	model := replicaModel{}
	chunks := 0
	for _, txn := range snapshotEvents(t, c, dbName+".t") {
		for _, ev := range txn {
			model.apply(ev)
		}
		if txn[0].Op == pipeline.OpRead {
			chunks++
		}
	}
	close(stop)
	wg.Wait()
	testenv.Exec(t, db, "INSERT INTO t VALUES (-1, 0, 'end')")
	for {
		ev := c.txn(t)[0]
		model.apply(ev)
		if ev.After != nil && ev.After[0] == int64(-1) {
			break
		}
	}
	want := readModel(t, db)
	if !reflect.DeepEqual(model, want) {
		t.Fatalf("after the snapshot and the stream: %d rows, the master has %d; the first difference: %s", len(model), len(want), firstDiff(model, want))
	}
	if chunks < 5 {
		t.Errorf("%d chunks; the test needs several interleaved with the writes", chunks)
	}
	t.Logf("%d chunks interleaved with the writes; %d rows equal", chunks, len(want))
}

// readModel reads t as the reader would emit it.
func readModel(t *testing.T, db *sql.DB) replicaModel {
	t.Helper()
	rows, err := db.Query("SELECT id, v, pad FROM t")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := replicaModel{}
	for rows.Next() {
		var id, v int64
		var pad sql.NullString
		if err := rows.Scan(&id, &v, &pad); err != nil {
			t.Fatal(err)
		}
		row := []any{id, v, nil}
		if pad.Valid {
			row[2] = pad.String
		}
		out[id] = row
	}
	return out
}

func firstDiff(got, want replicaModel) string {
	for id, w := range want {
		if g := got[id]; !reflect.DeepEqual(g, w) {
			return fmt.Sprintf("id %d: %v, master %v", id, g, w)
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			return fmt.Sprintf("id %d: %v, not on the master", id, g)
		}
	}
	return "none"
}

// TestSnapshotPrepared runs an initial snapshot: one read view for three
// tables (with a primary key, with none, with only a unique NOT NULL key),
// its start markers first, then every row, all before the first binlog
// event after the view; each table's shape is the binlog's.
func TestSnapshotPrepared(t *testing.T) {
	dbName := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, dbName)
	testenv.Exec(t, db, "CREATE TABLE a (id INT PRIMARY KEY, s VARCHAR(10))", "INSERT INTO a SELECT seq, 'a' FROM seq_1_to_25",
		"CREATE TABLE n (x INT, y TEXT)", "INSERT INTO n VALUES (1,'x'),(1,'x'),(2,NULL),(3,''),(4,'d'),(5,'e'),(6,'f')",
		"CREATE TABLE u (w INT, u INT NOT NULL, UNIQUE KEY (u))", "INSERT INTO u SELECT seq, seq FROM seq_1_to_5")
	cfg := testConfig(t, dbName)
	r := NewReader(cfg, testLogger(t))
	tables := []string{dbName + ".a", dbName + ".n", dbName + ".u"}
	job := &SnapshotJob{ID: 2, Tables: tables, ChunkRows: 10, MarkFirst: true}
	set, err := r.PrepareSnapshot(t.Context(), job)
	if err != nil {
		t.Fatal(err)
	}
	r.Snapshot(job)
	testenv.Exec(t, db, "INSERT INTO a VALUES (100, 'after')", "INSERT INTO u VALUES (100, 100)")
	c := runReader(t, r, Start{GTIDSet: set, NextTxnSeq: 1, Epoch: 1})
	var kinds []string
	shapes := map[string]*pipeline.Table{}
	for _, txn := range snapshotEvents(t, c, dbName+".u") {
		ev := txn[0]
		what := ev.Snapshot
		if ev.Kind == pipeline.KindRow {
			what = ev.Op.String()
		}
		kinds = append(kinds, fmt.Sprintf("%s:%s%d", ev.Table.Name, what, len(txn)))
		shapes[ev.Table.Name] = ev.Table
	}
	want := "a:start1 n:start1 u:start1 a:r10 a:r10 a:r5 a:end1 n:r7 n:end1 u:r5 u:end1"
	if got := strings.Join(kinds, " "); got != want {
		t.Fatalf("snapshot transactions\n%s\nwant\n%s", got, want)
	}
	for _, name := range []string{"a", "u"} {
		ev := c.txn(t)[0]
		if ev.Op != pipeline.OpInsert || ev.Table.Name != name || !reflect.DeepEqual(ev.Table, shapes[name]) {
			t.Errorf("after the snapshot: %s %s of %s (%+v), want the insert into %s with the snapshot's shape %+v", ev.Kind, ev.Op, ev.Table.Name, ev.Table, name, shapes[name])
		}
	}
	if len(shapes["n"].PrimaryKey) != 0 || !reflect.DeepEqual(shapes["u"].PrimaryKey, []int{1}) {
		t.Errorf("keys: n %v, u %v; want none and [1]", shapes["n"].PrimaryKey, shapes["u"].PrimaryKey)
	}
}

// TestSnapshotResumeAndThrottle resumes a job after a key, without a start
// marker, at most 50 rows a second in chunks of 50.
func TestSnapshotResumeAndThrottle(t *testing.T) {
	dbName := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, dbName)
	testenv.Exec(t, db, "CREATE TABLE k (a VARCHAR(10), b DECIMAL(30,2), c VARBINARY(4), v INT, PRIMARY KEY (a, b, c))",
		"INSERT INTO k SELECT IF(seq < 60, 'x', 'y'), seq / 7, UNHEX(HEX(seq % 3)), seq FROM seq_1_to_200")
	c := startReader(t, testConfig(t, dbName), Start{GTIDSet: binlogPos(t, db), NextTxnSeq: 1, Epoch: 1})
	after := `["x","5.57","Mg=="]` // seq 39: b = 5.57, c = '2'
	began := time.Now()
	c.r.Snapshot(&SnapshotJob{ID: 3, Tables: []string{dbName + ".k"}, After: after, ChunkRows: 1000, Throttle: 50})
	got := throttledRows(t, snapshotEvents(t, c, dbName+".k"), 50)
	var want int
	if err := db.QueryRow("SELECT COUNT(*) FROM k WHERE (a, b, c) > ('x', 5.57, '2')").Scan(&want); err != nil {
		t.Fatal(err)
	}
	if len(got) != want || got[39] {
		t.Errorf("%d rows after the key (row 39 included: %v), want %d", len(got), got[39], want)
	}
	if took := time.Since(began); took < time.Duration(want/50-1)*time.Second {
		t.Errorf("%d rows in %v under a throttle of 50/s", want, took)
	}
}

// TestSnapshotDefinitionChange changes a table between a chunk's read view
// and its read: an instant ALTER (which InnoDB lets the old view read in
// the new shape) and a rebuilding one (ER_TABLE_DEF_CHANGED) both make the
// chunk fail in a way the job retries; a new view then reads the new shape.
func TestSnapshotDefinitionChange(t *testing.T) {
	dbName := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, dbName)
	testenv.Exec(t, db, "CREATE TABLE d (id INT PRIMARY KEY, v INT)", "INSERT INTO d VALUES (1, 1)")
	r := NewReader(testConfig(t, dbName), testLogger(t))
	r.snaps.flavor = FlavorMariaDB
	name := dbName + ".d"
	j := newJobRun(&SnapshotJob{Tables: []string{name}}, r.snaps)
	defer j.close()
	for _, alter := range []string{"ALTER TABLE d ADD COLUMN z INT", "ALTER TABLE d ADD INDEX (v)"} {
		if err := j.open(t.Context()); err != nil {
			t.Fatal(err)
		}
		testenv.Exec(t, db, alter)
		_, err := j.viewTable(t.Context(), name)
		if err == nil || permanent(err) {
			t.Fatalf("after %s: %v, want an error to retry", alter, err)
		}
		t.Logf("%s: %v", alter, err)
		j.closeView()
	}
	if err := j.open(t.Context()); err != nil {
		t.Fatal(err)
	}
	tab, err := j.viewTable(t.Context(), name)
	if err != nil || len(tab.table.Columns) != 3 {
		t.Fatalf("in a new view: %v, %+v", err, tab)
	}
}

// TestSnapshotCheckTables refuses what a snapshot cannot copy, naming each
// table, and lists the included tables.
func TestSnapshotCheckTables(t *testing.T) {
	dbName := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, dbName)
	testenv.Exec(t, db, "CREATE TABLE t1 (id INT PRIMARY KEY)", "CREATE TABLE t2 (x INT)", "CREATE VIEW v AS SELECT * FROM t1")
	cfg := testConfig(t, dbName)
	cfg.Exclude = []string{`\.t2$`}
	r := NewReader(cfg, testLogger(t))
	got, err := r.IncludedTables(t.Context())
	if err != nil || strings.Join(got, ",") != dbName+".t1" {
		t.Fatalf("included tables %v (%v), want only t1", got, err)
	}
	if err := r.CheckTables(t.Context(), []string{dbName + ".t1"}); err != nil {
		t.Fatal(err)
	}
	err = r.CheckTables(t.Context(), []string{dbName + ".t2", dbName + ".v", dbName + ".nope", "mysql.user", "plain"})
	for _, want := range []string{".t2 is not in the scope", ".v: no such base table", ".nope: no such base table", "mysql.user is a system table", `"plain" is not db.table`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

// throttledRows checks a resumed, throttled table's transactions and
// returns the v column of its rows.
func throttledRows(t *testing.T, txns [][]*pipeline.Event, throttle int) map[int64]bool {
	t.Helper()
	got := map[int64]bool{}
	for _, txn := range txns {
		if txn[0].Kind == pipeline.KindSnapshot && txn[0].Snapshot == "start" {
			t.Fatal("a resumed table got a start marker")
		}
		if txn[0].Op == pipeline.OpRead && len(txn) > throttle {
			t.Errorf("a chunk of %d rows under a throttle of %d/s", len(txn), throttle)
		}
		for _, ev := range txn {
			if ev.Op == pipeline.OpRead {
				got[ev.After[3].(int64)] = true
			}
		}
	}
	return got
}

// TestSnapshotMarkFirstWithoutKey resumes a job whose tables get their
// start markers at once: a table without a key gets its start marker again
// right before its rows, which sinks insert, read in a later view.
func TestSnapshotMarkFirstWithoutKey(t *testing.T) {
	dbName := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, dbName)
	testenv.Exec(t, db, "CREATE TABLE n (x INT)", "INSERT INTO n VALUES (1), (1), (2)",
		"CREATE TABLE k (id INT PRIMARY KEY)", "INSERT INTO k VALUES (1), (2)")
	c := startReader(t, testConfig(t, dbName), Start{GTIDSet: binlogPos(t, db), NextTxnSeq: 1, Epoch: 1})
	c.r.Snapshot(&SnapshotJob{ID: 5, Tables: []string{dbName + ".n", dbName + ".k"}, MarkFirst: true})
	var got []string
	for _, txn := range snapshotEvents(t, c, dbName+".k") {
		ev := txn[0]
		what := ev.Snapshot
		if ev.Kind == pipeline.KindRow {
			what = ev.Op.String()
		}
		got = append(got, fmt.Sprintf("%s:%s%d", ev.Table.Name, what, len(txn)))
	}
	if want := "n:start1 k:start1 n:start1 n:r3 n:end1 k:r2 k:end1"; strings.Join(got, " ") != want {
		t.Fatalf("transactions\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
}
