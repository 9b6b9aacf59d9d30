package source

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/pipeline/testenv"
)

// checkTxn asserts the positions of one transaction's messages: one TxnSeq,
// rows 0..n-1, one GTID, and only the last flagged, with the GTID set.
func checkTxn(t *testing.T, evs []*pipeline.Event, seq uint64, epoch uint64) {
	t.Helper()
	for i, ev := range evs {
		want := pipeline.Position{Epoch: epoch, TxnSeq: seq, Row: uint64(i), Last: i == len(evs)-1}
		if ev.Pos != want {
			t.Errorf("message %d at %s, want %s", i, ev.Pos, want)
		}
		if ev.GTID != evs[0].GTID || ev.GTID == "" {
			t.Errorf("message %d GTID %q, first %q", i, ev.GTID, evs[0].GTID)
		}
		if (ev.GTIDSet != "") != want.Last {
			t.Errorf("message %d GTIDSet %q, last=%v", i, ev.GTIDSet, want.Last)
		}
		if ev.Flavor != FlavorMariaDB || ev.ServerID == 0 || ev.CommitTime.IsZero() || ev.File == "" || ev.Offset == 0 {
			t.Errorf("message %d source fields: flavor %q server %d time %v at %s:%d", i, ev.Flavor, ev.ServerID, ev.CommitTime, ev.File, ev.Offset)
		}
	}
}

func TestMultiStatementTransaction(t *testing.T) {
	dbName := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, dbName)
	testenv.Exec(t, db, "CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(10))", "CREATE TABLE b (k BIGINT UNSIGNED, w INT)")
	c := startReader(t, testConfig(t, dbName), Start{GTIDSet: binlogPos(t, db), NextTxnSeq: 7, Epoch: 2})

	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	before := time.Now().Add(-time.Second)
	for _, q := range []string{"BEGIN", "INSERT INTO a VALUES (1, 'x'), (2, 'y')", "INSERT INTO b VALUES (18446744073709551615, -1)",
		"UPDATE a SET v = 'z' WHERE id = 2", "DELETE FROM b", "COMMIT"} {
		if _, err := conn.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var lastGTID, binlogPos string
	if err := conn.QueryRowContext(t.Context(), "SELECT @@last_gtid, @@GLOBAL.gtid_binlog_pos").Scan(&lastGTID, &binlogPos); err != nil {
		t.Fatal(err)
	}
	evs := c.txn(t)
	if len(evs) != 5 {
		t.Fatalf("%d messages, want 5", len(evs))
	}
	checkTxn(t, evs, 7, 2)
	want := []struct {
		table string
		op    pipeline.Op
	}{{"a", pipeline.OpInsert}, {"a", pipeline.OpInsert}, {"b", pipeline.OpInsert}, {"a", pipeline.OpUpdate}, {"b", pipeline.OpDelete}}
	for i, w := range want {
		if evs[i].Table.Name != w.table || evs[i].Table.Database != dbName || evs[i].Op != w.op {
			t.Errorf("message %d is %s.%s %s, want %s %s", i, evs[i].Table.Database, evs[i].Table.Name, evs[i].Op, w.table, w.op)
		}
		if evs[i].CommitTime.Before(before) {
			t.Errorf("commit time %v before the test started", evs[i].CommitTime)
		}
	}
	if evs[3].Before[1] != "y" || evs[3].After[1] != "z" || evs[4].Before[0] != uint64(18446744073709551615) {
		t.Errorf("values: update %v -> %v, delete %v", evs[3].Before, evs[3].After, evs[4].Before)
	}
	if evs[0].GTID != lastGTID {
		t.Errorf("GTID %q, master's @@last_gtid %q", evs[0].GTID, lastGTID)
	}
	// The master has one replication domain, so its executed set right after
	// this commit is exactly this transaction's GTID; @@gtid_binlog_pos equals
	// it unless another test committed in between.
	if got := evs[4].GTIDSet; got != lastGTID {
		t.Errorf("GTIDSet %q, want %q", got, lastGTID)
	}
	if binlogPos != lastGTID {
		t.Logf("gtid_binlog_pos %q moved on by a concurrent commit", binlogPos)
	}
	// The reader records its position after emit returns for the last
	// message, so wait for it; transactions of other tests (filtered out) may
	// move it further, never back.
	deadline := time.Now().Add(5 * time.Second)
	for gtidSeq(t, c.r.Position()) < gtidSeq(t, lastGTID) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if p := c.r.Position(); gtidSeq(t, p) < gtidSeq(t, lastGTID) {
		t.Errorf("Position() %q, want %q or later", p, lastGTID)
	}
	if r := c.r.Resume(); r.NextTxnSeq != 8 || gtidSeq(t, r.GTIDSet) < gtidSeq(t, lastGTID) {
		t.Errorf("Resume() %+v, want NextTxnSeq 8 after %s", r, lastGTID)
	}
}

func TestDDLInOrder(t *testing.T) {
	dbName := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, dbName)
	testenv.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY)")
	c := startReader(t, testConfig(t, dbName), Start{GTIDSet: binlogPos(t, db), NextTxnSeq: 1})
	testenv.Exec(t, db,
		"INSERT INTO t VALUES (1)",
		"ALTER TABLE t ADD COLUMN note JSON",
		`INSERT INTO t VALUES (2, '{"a": 1}')`,
	)
	ins := c.txn(t)
	checkTxn(t, ins, 1, 0)
	if len(ins[0].Table.Columns) != 1 {
		t.Errorf("first insert sees %d columns", len(ins[0].Table.Columns))
	}
	alter := c.txn(t)
	checkTxn(t, alter, 2, 0)
	if a := alter[0]; a.Kind != pipeline.KindDDL || a.Database != dbName || !strings.HasPrefix(a.Statement, "ALTER TABLE t ADD") {
		t.Errorf("ALTER message: %s db %q %q", a.Kind, a.Database, a.Statement)
	}
	ins2 := c.txn(t)
	checkTxn(t, ins2, 3, 0)
	cols := ins2[0].Table.Columns
	if len(cols) != 2 || cols[1].Name != "note" || cols[1].Kind != pipeline.VJSON || ins2[0].After[1] != `{"a": 1}` {
		t.Errorf("insert after ALTER: columns %+v after %v", cols, ins2[0].After)
	}
	testenv.Exec(t, db, "TRUNCATE TABLE t", "DROP TABLE t")
	for i, prefix := range []string{"TRUNCATE TABLE t", "DROP TABLE `t`"} {
		ddl := c.txn(t)
		checkTxn(t, ddl, uint64(4+i), 0)
		if !strings.HasPrefix(ddl[0].Statement, prefix) || ddl[0].Kind != pipeline.KindDDL {
			t.Errorf("DDL %d: %s %q, want prefix %q", i, ddl[0].Kind, ddl[0].Statement, prefix)
		}
	}
	// CREATE TABLE ... SELECT is one transaction: the DDL, then its rows.
	testenv.Exec(t, db, "CREATE TABLE src (id INT PRIMARY KEY) ENGINE=InnoDB", "INSERT INTO src VALUES (1), (2)",
		"CREATE TABLE copy ENGINE=InnoDB AS SELECT id FROM src")
	c.txn(t)
	c.txn(t)
	ctas := c.txn(t)
	checkTxn(t, ctas, 8, 0)
	if len(ctas) != 3 || ctas[0].Kind != pipeline.KindDDL || !strings.HasPrefix(ctas[0].Statement, "CREATE TABLE `copy`") ||
		ctas[1].Table.Name != "copy" || ctas[2].After[0] != int64(2) {
		for _, ev := range ctas {
			t.Logf("%s %s %q %v", ev.Pos, ev.Kind, ev.Statement, ev.After)
		}
		t.Errorf("CREATE ... SELECT as %d messages", len(ctas))
	}
}

func TestFilters(t *testing.T) {
	dbName := testenv.CreateDatabase(t, testenv.Master)
	book := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, dbName)
	testenv.Exec(t, db, "CREATE TABLE a (id INT PRIMARY KEY)", "CREATE TABLE b (id INT PRIMARY KEY)",
		"CREATE TABLE skip_me (id INT PRIMARY KEY)", "CREATE TABLE `"+book+"`.ck (id INT PRIMARY KEY)")
	cfg := testConfig(t, dbName)
	cfg.Include = append(cfg.Include, "^"+regexp.QuoteMeta(book)+`\.`)
	cfg.Exclude = []string{`\.skip_me$`}
	cfg.BookkeepingSchema = book
	c := startReader(t, cfg, Start{GTIDSet: binlogPos(t, db), NextTxnSeq: 10})
	testenv.Exec(t, db,
		"INSERT INTO a VALUES (1)",             // seq 10
		"INSERT INTO skip_me VALUES (1)",       // excluded: no seq
		"INSERT INTO `"+book+"`.ck VALUES (1)", // bookkeeping: no seq
		"ALTER TABLE skip_me ADD COLUMN x INT", // DDL of an excluded table: no seq
		"ALTER TABLE `"+book+"`.ck ADD COLUMN x INT",
		"BEGIN", "INSERT INTO skip_me VALUES (2, 0)", "INSERT INTO b VALUES (2)", "COMMIT", // seq 11, one row
		"INSERT INTO b VALUES (3)", // seq 12
	)
	var last string
	if err := db.QueryRow("SELECT @@last_gtid").Scan(&last); err != nil {
		t.Fatal(err)
	}
	first := c.txn(t)
	checkTxn(t, first, 10, 0)
	mixed := c.txn(t)
	checkTxn(t, mixed, 11, 0)
	if len(mixed) != 1 || mixed[0].Table.Name != "b" {
		t.Errorf("mixed transaction published %d messages, first on %s", len(mixed), mixed[0].Table.Name)
	}
	third := c.txn(t)
	checkTxn(t, third, 12, 0)
	// Filtered transactions took no TxnSeq, but their GTIDs are in the set.
	if third[0].GTIDSet != last {
		t.Errorf("GTIDSet %q, want %q", third[0].GTIDSet, last)
	}
	c.quiet(t, 300*time.Millisecond)
}

func TestNonTransactionalEngine(t *testing.T) {
	dbName := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, dbName)
	testenv.Exec(t, db, "CREATE TABLE m (id INT PRIMARY KEY, v TEXT) ENGINE=MyISAM", "CREATE TABLE r (id INT PRIMARY KEY) ENGINE=Aria")
	c := startReader(t, testConfig(t, dbName), Start{GTIDSet: binlogPos(t, db)})
	testenv.Exec(t, db, "INSERT INTO m VALUES (1, 'a'), (2, 'b')", "INSERT INTO r VALUES (1)", "UPDATE m SET v = 'c'")
	for i, n := range []int{2, 1, 2} {
		evs := c.txn(t)
		if len(evs) != n {
			t.Fatalf("transaction %d has %d messages, want %d", i, len(evs), n)
		}
		checkTxn(t, evs, uint64(i), 0)
	}
}

var errStop = errors.New("stop here")

// runUntil runs a reader whose emit refuses the first message at or after
// stopAt (that message is not delivered), and returns what was delivered.
func runUntil(t *testing.T, cfg Config, start Start, stopAt pipeline.Position) (*Reader, []*pipeline.Event) {
	t.Helper()
	r := NewReader(cfg, testLogger(t))
	var got []*pipeline.Event
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	err := r.Run(ctx, start, func(ctx context.Context, ev *pipeline.Event) error {
		if !ev.Pos.Less(stopAt) {
			return errStop
		}
		got = append(got, ev)
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Run: %v, want errStop", err)
	}
	return r, got
}

// TestResume stops a reader after some transactions, mid-transaction too, and
// restarts it from Resume(): the union is every transaction exactly once, and
// a transaction cut short comes again whole under the same positions.
func TestResume(t *testing.T) {
	dbName := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, dbName)
	testenv.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY, txn INT)")
	start := Start{GTIDSet: binlogPos(t, db), NextTxnSeq: 1000, Epoch: 1}
	for i := range 11 { // the 11th makes the last reader stop
		testenv.Exec(t, db, fmt.Sprintf("INSERT INTO t VALUES (%d, %d), (%d, %d), (%d, %d)", 3*i, i, 3*i+1, i, 3*i+2, i))
	}
	cfg := testConfig(t, dbName)

	// Stop at the first message of the 5th transaction: 4 complete.
	r1, got1 := runUntil(t, cfg, start, pipeline.Position{TxnSeq: 1004})
	res := r1.Resume()
	if res.NextTxnSeq != 1004 || len(got1) != 12 {
		t.Fatalf("after stop: Resume %+v, %d messages", res, len(got1))
	}
	if res.GTIDSet != got1[11].GTIDSet {
		t.Fatalf("Resume().GTIDSet %q, last emitted %q", res.GTIDSet, got1[11].GTIDSet)
	}
	// Stop in the middle of the 7th transaction (after its first row).
	r2, got2 := runUntil(t, cfg, res, pipeline.Position{TxnSeq: 1006, Row: 1})
	res2 := r2.Resume()
	if res2.NextTxnSeq != 1006 || len(got2) != 7 {
		t.Fatalf("after mid-transaction stop: Resume %+v, %d messages", res2, len(got2))
	}
	cut := got2[6]
	// Run to the end.
	r3, got3 := runUntil(t, cfg, res2, pipeline.Position{TxnSeq: 1010})
	if len(got3) != 12 || r3.Resume().NextTxnSeq != 1010 {
		t.Fatalf("rest: %d messages, Resume %+v", len(got3), r3.Resume())
	}
	if got3[0].Pos != cut.Pos || got3[0].GTID != cut.GTID || got3[0].After[0] != cut.After[0] {
		t.Errorf("re-read transaction starts %s %s %v, cut one %s %s %v", got3[0].Pos, got3[0].GTID, got3[0].After, cut.Pos, cut.GTID, cut.After)
	}
	all := append(append(got1, got2[:6]...), got3...)
	for i, ev := range all {
		want := pipeline.Position{Epoch: 1, TxnSeq: 1000 + uint64(i/3), Row: uint64(i % 3), Last: i%3 == 2}
		if ev.Pos != want || ev.After[0] != int64(i) || ev.After[1] != int64(i/3) {
			t.Errorf("message %d: %s %v, want %s id %d", i, ev.Pos, ev.After, want, i)
		}
	}
}

// TestOldEventsAfterSchemaChange reads rows written before an ALTER only after
// the ALTER ran: the TABLE_MAP event, not today's information_schema, says
// what the old rows hold.
func TestOldEventsAfterSchemaChange(t *testing.T) {
	dbName := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, dbName)
	testenv.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY, v INT UNSIGNED, gone VARCHAR(5))")
	start := Start{GTIDSet: binlogPos(t, db)}
	testenv.Exec(t, db,
		"INSERT INTO t VALUES (1, 4294967295, 'x')",
		"ALTER TABLE t MODIFY v VARCHAR(20), DROP COLUMN gone, ADD COLUMN w INT",
		"INSERT INTO t VALUES (2, 'text', 5)",
	)
	c := startReader(t, testConfig(t, dbName), start)
	old := c.txn(t)[0]
	cols := old.Table.Columns
	if len(cols) != 3 || cols[1].Name != "v" || cols[1].Kind != pipeline.VUint || cols[1].SQLType != "int unsigned" ||
		cols[2].Name != "gone" || cols[2].Kind != pipeline.VString || cols[2].SQLType != "varchar(5)" {
		t.Errorf("old row columns %+v", cols)
	}
	if old.After[1] != uint64(4294967295) || old.After[2] != "x" {
		t.Errorf("old row %v", old.After)
	}
	if ddl := c.txn(t)[0]; ddl.Kind != pipeline.KindDDL {
		t.Errorf("want the ALTER, got %s", ddl.Kind)
	}
	cur := c.txn(t)[0]
	cols = cur.Table.Columns
	if len(cols) != 3 || cols[1].SQLType != "varchar(20)" || cols[2].Name != "w" || cur.After[1] != "text" || cur.After[2] != int64(5) {
		t.Errorf("new row columns %+v values %v", cols, cur.After)
	}
}

// TestRollbackWithNonTransactionalChange: MariaDB logs the MyISAM part of a
// rolled-back transaction as its own transaction (the master keeps it) and
// the InnoDB part not at all.
func TestRollbackWithNonTransactionalChange(t *testing.T) {
	dbName := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, dbName)
	testenv.Exec(t, db, "CREATE TABLE i (id INT PRIMARY KEY) ENGINE=InnoDB", "CREATE TABLE m (id INT PRIMARY KEY) ENGINE=MyISAM")
	c := startReader(t, testConfig(t, dbName), Start{GTIDSet: binlogPos(t, db)})
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{"BEGIN", "INSERT INTO i VALUES (1)", "INSERT INTO m VALUES (1)", "ROLLBACK", "INSERT INTO i VALUES (2)"} {
		if _, err := conn.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for i, want := range []string{"m", "i"} {
		evs := c.txn(t)
		checkTxn(t, evs, uint64(i), 0)
		if len(evs) != 1 || evs[0].Table.Name != want || evs[0].After[0] != int64(i+1) {
			t.Errorf("transaction %d: %d messages, %s %v", i, len(evs), evs[0].Table.Name, evs[0].After)
		}
	}
}

// gtidSeq is the sequence number of a single-domain MariaDB GTID set
// "d-s-n" (0 for an empty set).
func gtidSeq(t *testing.T, set string) uint64 {
	t.Helper()
	if set == "" {
		return 0
	}
	var d, srv, n uint64
	if _, err := fmt.Sscanf(set, "%d-%d-%d", &d, &srv, &n); err != nil || strings.Contains(set, ",") {
		t.Fatalf("GTID set %q is not a single-domain MariaDB set", set)
	}
	return n
}
