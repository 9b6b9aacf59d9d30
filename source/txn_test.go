package source

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
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
		if !hasSourceFields(ev) {
			t.Errorf("message %d source fields: flavor %q server %d time %v at %s:%d", i, ev.Flavor, ev.ServerID, ev.CommitTime, ev.File, ev.Offset)
		}
	}
}

// hasSourceFields reports whether ev says where it comes from: a MariaDB
// master, its server id, the commit time and the binlog position.
func hasSourceFields(ev *pipeline.Event) bool {
	return ev.Flavor == FlavorMariaDB && ev.ServerID != 0 && !ev.CommitTime.IsZero() && ev.File != "" && ev.Offset != 0
}

// execConnAll runs qs on conn in turn.
func execConnAll(t *testing.T, conn *sql.Conn, qs ...string) {
	t.Helper()
	for _, q := range qs {
		execConn(t, conn, q)
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
	execConnAll(t, conn, "BEGIN", "INSERT INTO a VALUES (1, 'x'), (2, 'y')", "INSERT INTO b VALUES (18446744073709551615, -1)",
		"UPDATE a SET v = 'z' WHERE id = 2", "DELETE FROM b", "COMMIT")
	var lastGTID, binlogPos string
	if err := conn.QueryRowContext(t.Context(), "SELECT @@last_gtid, @@GLOBAL.gtid_binlog_pos").Scan(&lastGTID, &binlogPos); err != nil {
		t.Fatal(err)
	}
	evs := c.txn(t)
	if len(evs) != 5 {
		t.Fatalf("%d messages, want 5", len(evs))
	}
	checkTxn(t, evs, 7, 2)
	checkRowChanges(t, evs, dbName, before, []rowChange{{"a", pipeline.OpInsert}, {"a", pipeline.OpInsert},
		{"b", pipeline.OpInsert}, {"a", pipeline.OpUpdate}, {"b", pipeline.OpDelete}})
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
	checkPositionReaches(t, c.r, lastGTID, 8)
}

// rowChange is the table and the operation of a row message.
type rowChange struct {
	table string
	op    pipeline.Op
}

// checkRowChanges checks the table (in dbName) and the operation of each
// row message, and that none was committed before the test began.
func checkRowChanges(t *testing.T, evs []*pipeline.Event, dbName string, began time.Time, want []rowChange) {
	t.Helper()
	for i, w := range want {
		ev := evs[i]
		if (rowChange{ev.Table.Name, ev.Op}) != w || ev.Table.Database != dbName {
			t.Errorf("message %d is %s.%s %s, want %s %s", i, ev.Table.Database, ev.Table.Name, ev.Op, w.table, w.op)
		}
		if ev.CommitTime.Before(began) {
			t.Errorf("commit time %v before the test started", ev.CommitTime)
		}
	}
}

// checkPositionReaches waits for the reader to record the position after
// the transaction gtid (it does after emit returns for the last message),
// then checks Position and Resume: transactions of other tests (filtered
// out) may move it further, never back.
func checkPositionReaches(t *testing.T, r *Reader, gtid string, nextSeq uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for gtidSeq(t, r.Position()) < gtidSeq(t, gtid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if p := r.Position(); gtidSeq(t, p) < gtidSeq(t, gtid) {
		t.Errorf("Position() %q, want %q or later", p, gtid)
	}
	if res := r.Resume(); res.NextTxnSeq != nextSeq || gtidSeq(t, res.GTIDSet) < gtidSeq(t, gtid) {
		t.Errorf("Resume() %+v, want NextTxnSeq %d after %s", res, nextSeq, gtid)
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
	if a := alter[0]; !isDDL(a, "ALTER TABLE t ADD") || a.Database != dbName {
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
		if !isDDL(ddl[0], prefix) {
			t.Errorf("DDL %d: %s %q, want prefix %q", i, ddl[0].Kind, ddl[0].Statement, prefix)
		}
	}
	checkCreateSelect(t, c, db, 8)
}

// checkCreateSelect checks that CREATE TABLE ... SELECT is one transaction,
// seq: the DDL, then its rows.
func checkCreateSelect(t *testing.T, c *collector, db *sql.DB, seq uint64) {
	t.Helper()
	testenv.Exec(t, db, "CREATE TABLE src (id INT PRIMARY KEY) ENGINE=InnoDB", "INSERT INTO src VALUES (1), (2)",
		"CREATE TABLE copy ENGINE=InnoDB AS SELECT id FROM src")
	c.txn(t)
	c.txn(t)
	ctas := c.txn(t)
	checkTxn(t, ctas, seq, 0)
	if len(ctas) != 3 || !isDDL(ctas[0], "CREATE TABLE `copy`") || ctas[1].Table.Name != "copy" || ctas[2].After[0] != int64(2) {
		for _, ev := range ctas {
			t.Logf("%s %s %q %v", ev.Pos, ev.Kind, ev.Statement, ev.After)
		}
		t.Errorf("CREATE ... SELECT as %d messages", len(ctas))
	}
}

// isDDL reports whether ev is a DDL message whose statement starts with
// prefix.
func isDDL(ev *pipeline.Event, prefix string) bool {
	return ev.Kind == pipeline.KindDDL && strings.HasPrefix(ev.Statement, prefix)
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

// resumeAfter runs a reader from start until stop (see runUntil) and checks
// that it delivered n messages and resumes at stop's transaction.
func resumeAfter(t *testing.T, what string, cfg Config, start Start, stop pipeline.Position, n int) (Start, []*pipeline.Event) {
	t.Helper()
	r, got := runUntil(t, cfg, start, stop)
	res := r.Resume()
	if res.NextTxnSeq != stop.TxnSeq || len(got) != n {
		t.Fatalf("%s: Resume %+v, %d messages", what, res, len(got))
	}
	return res, got
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
	res, got1 := resumeAfter(t, "after stop", cfg, start, pipeline.Position{TxnSeq: 1004}, 12)
	if res.GTIDSet != got1[11].GTIDSet {
		t.Fatalf("Resume().GTIDSet %q, last emitted %q", res.GTIDSet, got1[11].GTIDSet)
	}
	// Stop in the middle of the 7th transaction (after its first row).
	res2, got2 := resumeAfter(t, "after mid-transaction stop", cfg, res, pipeline.Position{TxnSeq: 1006, Row: 1}, 7)
	cut := got2[6]
	// Run to the end.
	_, got3 := resumeAfter(t, "rest", cfg, res2, pipeline.Position{TxnSeq: 1010}, 12)
	if again := got3[0]; again.Pos != cut.Pos || again.GTID != cut.GTID || again.After[0] != cut.After[0] {
		t.Errorf("re-read transaction starts %s %s %v, cut one %s %s %v", got3[0].Pos, got3[0].GTID, got3[0].After, cut.Pos, cut.GTID, cut.After)
	}
	checkThreeRowTxns(t, append(append(got1, got2[:6]...), got3...))
}

// checkThreeRowTxns checks that all are transactions of three rows (i, i/3)
// each, numbered from 1000 in epoch 1.
func checkThreeRowTxns(t *testing.T, all []*pipeline.Event) {
	t.Helper()
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
	checkRowBeforeAlter(t, c.txn(t)[0])
	if ddl := c.txn(t)[0]; ddl.Kind != pipeline.KindDDL {
		t.Errorf("want the ALTER, got %s", ddl.Kind)
	}
	cur := c.txn(t)[0]
	cols := cur.Table.Columns
	if len(cols) != 3 || cols[1].SQLType != "varchar(20)" || cols[2].Name != "w" || cur.After[1] != "text" || cur.After[2] != int64(5) {
		t.Errorf("new row columns %+v values %v", cols, cur.After)
	}
}

// checkRowBeforeAlter checks the row written before the ALTER: its columns
// are the TABLE_MAP's of then.
func checkRowBeforeAlter(t *testing.T, old *pipeline.Event) {
	t.Helper()
	cols := old.Table.Columns
	if len(cols) != 3 || cols[1] != (pipeline.Column{Name: "v", Kind: pipeline.VUint, SQLType: "int unsigned"}) ||
		cols[2] != (pipeline.Column{Name: "gone", Kind: pipeline.VString, SQLType: "varchar(5)"}) {
		t.Errorf("old row columns %+v", cols)
	}
	if old.After[1] != uint64(4294967295) || old.After[2] != "x" {
		t.Errorf("old row %v", old.After)
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
	execConnAll(t, conn, "BEGIN", "INSERT INTO i VALUES (1)", "INSERT INTO m VALUES (1)", "ROLLBACK", "INSERT INTO i VALUES (2)")
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
