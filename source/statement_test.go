package source

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
)

func TestDMLTargets(t *testing.T) {
	for _, c := range []struct {
		stmt string
		want string // db.table, ...; "?" when they cannot be told
	}{
		{"REPLACE /*shop.orders:1/4*/ INTO `percona`.`checksums` (db, tbl) SELECT 'shop', 'orders' FROM `shop`.`orders` /*x*/", "percona.checksums"},
		{"INSERT IGNORE INTO t (a) VALUES (1)", "app.t"},
		{"insert low_priority t(a) select * from other.u", "app.t"},
		{"UPDATE `percona`.`checksums` SET chunk_time = '0.1', master_crc = 'x' WHERE db = 'shop'", "percona.checksums"},
		{"UPDATE a AS x JOIN other.b y ON x.id = y.id SET x.v = y.v", "app.a, other.b"},
		{"UPDATE a, b SET a.v = b.v WHERE a.id = b.id", "app.a, app.b"},
		{"DELETE FROM percona.checksums WHERE db = 'shop' AND tbl = 'orders'", "percona.checksums"},
		{"DELETE QUICK FROM t", "app.t"},
		{"DELETE x FROM other.t AS x JOIN u ON x.id = u.id WHERE u.k = 1", "app.x, other.t, app.u"},
		{"DELETE FROM a, b USING a JOIN b ON a.id = b.id", "app.a, app.b, app.a, app.b"},
		{`INSERT INTO "q" VALUES (1)`, "app.q"},
		{"LOAD DATA INFILE 'f' REPLACE INTO TABLE s.t", "s.t"},
		{"UPDATE t JOIN (SELECT 1) d ON d.x = t.x SET t.v = 1", "?"},
		{"CALL p()", "?"},
		{"SELECT f()", "?"},
	} {
		targets, ok := dmlTargets("app", c.stmt)
		got := "?"
		if ok {
			got = targetNames(targets)
		}
		if got != c.want {
			t.Errorf("dmlTargets(%q) = %s, want %s", c.stmt, got, c.want)
		}
	}
}

// TestStatementDML: a statement-based DML that writes only tables that are
// not published is passed over (pt-table-checksum's checksums table); one
// that writes a published table stops the reader, naming the GTID and
// --skip-gtid; a reader started with SkipGTID leaves that transaction out,
// once, and records it.
func TestStatementDML(t *testing.T) {
	dbName := testenv.CreateDatabase(t, testenv.Master)
	other := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, dbName)
	testenv.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY, v INT)", "CREATE TABLE `"+other+"`.checksums (id INT PRIMARY KEY, n INT)")
	start := Start{GTIDSet: binlogPos(t, db), NextTxnSeq: 1}
	bad := statementBasedWrites(t, db, dbName, other)
	c := startReader(t, testConfig(t, dbName), start)
	err := c.wait(t, 30*time.Second)
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "--skip-gtid "+bad) || !strings.Contains(err.Error(), dbName+".t") {
		t.Fatalf("Run: %v, want a statement-based DML error naming %s and --skip-gtid %s", err, dbName+".t", bad)
	}

	cfg := testConfig(t, dbName)
	cfg.SkipGTID = bad
	assertSkips(t, startReader(t, cfg, start), bad)
}

// statementBasedWrites writes in STATEMENT format: to other's checksums
// table as pt-table-checksum does, then a row of dbName.t, whose GTID it
// returns; then a row in ROW format.
func statementBasedWrites(t *testing.T, db *sql.DB, dbName, other string) (bad string) {
	t.Helper()
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	execConnAll(t, conn, "SET SESSION binlog_format=STATEMENT",
		fmt.Sprintf("REPLACE /*%s.t:1/1*/ INTO `%s`.checksums (id, n) SELECT 1, COUNT(*) FROM t", dbName, other),
		fmt.Sprintf("UPDATE `%s`.checksums SET n = 2", other),
		"INSERT INTO t VALUES (1, 1)")
	if err := conn.QueryRowContext(t.Context(), "SELECT @@last_gtid").Scan(&bad); err != nil {
		t.Fatal(err)
	}
	execConnAll(t, conn, "SET SESSION binlog_format=ROW", "INSERT INTO t VALUES (2, 2)")
	return bad
}

// assertSkips checks that c's reader leaves bad out: its skip record
// first, then the next transaction, numbered as the first.
func assertSkips(t *testing.T, c *collector, bad string) {
	t.Helper()
	rec := c.next(t, 30*time.Second)
	if rec.Kind != pipeline.KindHeartbeat || rec.Skip == nil || rec.Skip.GTID != bad || !rec.Pos.Last || rec.Pos.TxnSeq != 0 {
		t.Fatalf("want the skip record of %s first, got %s %s %+v", bad, rec.Kind, rec.Pos, rec.Skip)
	}
	if row := c.txn(t)[0]; row.Kind != pipeline.KindRow || row.After[0] != int64(2) || row.Pos.TxnSeq != 1 {
		t.Fatalf("after the skip: %s %s %v", row.Kind, row.Pos, row.After)
	}
}

// wait waits for Run to end by itself and returns its error.
func (c *collector) wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	for {
		select {
		case ev := <-c.ch:
			t.Logf("event before the end: %s %s", ev.Pos, ev.Kind)
		case err := <-c.done:
			c.ended, c.err = true, err
			return err
		case <-time.After(timeout):
			t.Fatalf("Run did not end within %v", timeout)
		}
	}
}
