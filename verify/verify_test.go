package verify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/internal/testenv"
)

// schemaSQL creates tables that exercise the hash and the key walk: a
// single-column key, a three-column key with text and DECIMAL parts, a
// unique key instead of a primary key, binary and FLOAT values, NULLs next
// to empty strings, and a table without any key.
var schemaSQL = []string{
	"CREATE TABLE single (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, name VARCHAR(40) NULL, note TEXT NULL, bin VARBINARY(16) NULL, f FLOAT NULL, d DATETIME(6) NULL, ts TIMESTAMP(3) NULL, bits BIT(10) NULL, e ENUM('a','b','c') NULL, v INT AS (id * 2) VIRTUAL)",
	"CREATE TABLE composite (region VARCHAR(8) NOT NULL, amount DECIMAL(10,2) NOT NULL, seq INT NOT NULL, payload VARCHAR(32) NULL, PRIMARY KEY (region, amount, seq))",
	"CREATE TABLE ukey (code CHAR(6) NOT NULL, val INT NULL, UNIQUE KEY code_u (code))",
	"CREATE TABLE nokey (a INT NULL, b VARCHAR(10) NULL)",
}

func fill(t *testing.T, db *sql.DB, database string, rows int) {
	t.Helper()
	stmts := []string{"USE `" + database + "`"}
	stmts = append(stmts, schemaSQL...)
	stmts = append(stmts,
		fmt.Sprintf(`INSERT INTO single (id, name, note, bin, f, d, ts, bits, e)
			SELECT seq, IF(seq %% 5 = 0, NULL, CONCAT('name#', seq)), IF(seq %% 7 = 0, '', REPEAT('x', seq %% 13)),
			IF(seq %% 3 = 0, NULL, UNHEX(MD5(seq))), seq / 3, '2024-02-29 12:00:00.123456' + INTERVAL seq MINUTE,
			'2024-01-01 00:00:00.5' + INTERVAL seq SECOND, seq %% 1024, ELT(1 + seq %% 3, 'a', 'b', 'c')
			FROM seq_1_to_%d`, rows),
		fmt.Sprintf(`INSERT INTO composite SELECT ELT(1 + seq %% 3, 'eu', 'us', 'asia'), (seq %% 10) + 0.25, seq, IF(seq %% 4 = 0, NULL, CONCAT('p', seq)) FROM seq_1_to_%d`, rows),
		fmt.Sprintf(`INSERT INTO ukey SELECT LPAD(seq, 6, 'k'), IF(seq %% 2 = 0, NULL, seq) FROM seq_1_to_%d`, rows),
		fmt.Sprintf(`INSERT INTO nokey SELECT seq %% 10, IF(seq %% 3 = 0, NULL, 'v') FROM seq_1_to_%d`, rows),
	)
	execConn(t, db, stmts...)
}

// execConn runs stmts in order on one connection of db (a session's
// settings hold for the statements after them).
func execConn(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	conn := sessionConn(t, db)
	defer conn.Close()
	for _, s := range stmts {
		if _, err := conn.ExecContext(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// sessionConn takes a connection of db, for the caller to close.
func sessionConn(t *testing.T, db *sql.DB) *sql.Conn {
	t.Helper()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// sides makes one empty database on db1 and db2.
func sides(t *testing.T) (database string, master, replica *sql.DB) {
	t.Helper()
	database = testenv.CreateDatabase(t, testenv.Master, testenv.Replica1)
	return database, testenv.DB(t, testenv.Master), testenv.DB(t, testenv.Replica1)
}

// pair makes one database with the same tables and rows on db1 and db2.
func pair(t *testing.T, rows int) (database string, master, replica *sql.DB) {
	t.Helper()
	database, master, replica = sides(t)
	fill(t, master, database, rows)
	fill(t, replica, database, rows)
	return database, master, replica
}

func baseConfig(database string) Config {
	return Config{
		MasterName: "db1", ReplicaName: "db2",
		MasterDSN:  testenv.RootDSN(testenv.Master, ""),
		ReplicaDSN: testenv.RootDSN(testenv.Replica1, ""),
		Filter:     Filter{Include: []string{"^" + database + `\.`}},
		ChunkRows:  7,
		Parallel:   3,
	}
}

func run(t *testing.T, cfg Config) *Report {
	t.Helper()
	v, rep := runOpen(t, cfg)
	v.Close()
	return rep
}

// runOpen is run that leaves the Verifier open, for the caller to close.
func runOpen(t *testing.T, cfg Config) (*Verifier, *Report) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	v, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := v.Run(ctx)
	if err != nil {
		v.Close()
		t.Fatal(err)
	}
	return v, rep
}

func table(t *testing.T, rep *Report, name string) TableReport {
	t.Helper()
	for _, tr := range rep.Tables {
		if strings.HasSuffix(tr.Table, "."+name) {
			return tr
		}
	}
	t.Fatalf("no table %s in the report", name)
	return TableReport{}
}

func report(rep *Report) string {
	var b strings.Builder
	rep.WriteText(&b, false)
	return b.String()
}

func TestIdenticalTablesAreEqual(t *testing.T) {
	database, _, _ := pair(t, 100)
	rep := run(t, baseConfig(database))
	if !rep.Equal() || rep.Errors() != 0 {
		t.Fatalf("identical tables reported different:\n%s", report(rep))
	}
	if !rep.Static {
		t.Errorf("a replica without a checkpoint must be compared statically")
	}
	want := map[string]struct {
		rows   int64
		chunks int
		key    string
	}{
		"single":    {100, 15, "id"}, // 14 chunks of 7 rows and the open-ended last one
		"composite": {100, 15, "region,amount,seq"},
		"ukey":      {100, 15, "code"},
		"nokey":     {100, 1, ""},
	}
	for name, w := range want {
		tr := table(t, rep, name)
		if tr.Rows != w.rows || tr.Chunks != w.chunks || strings.Join(tr.Key, ",") != w.key {
			t.Errorf("%s: rows %d chunks %d key %v; want %d, %d, %s", name, tr.Rows, tr.Chunks, tr.Key, w.rows, w.chunks, w.key)
		}
	}
	if n := table(t, rep, "nokey").Note; !strings.Contains(n, "no primary key: compared as a whole") {
		t.Errorf("nokey note = %q", n)
	}
}

// saveCheckpoint gives db2 a checkpoint for topic in a schema of its own, as
// if a sink had applied everything the master has (far ahead of any GTID).
func saveCheckpoint(t *testing.T, replica *sql.DB, gtid string) (schema, topic string) {
	t.Helper()
	schema = testenv.UniqueName(t, "rcbk")
	topic = "verify-test"
	store := checkpoint.NewMySQL(schema)
	ctx := context.Background()
	if err := store.Init(ctx, replica); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { replica.Exec("DROP DATABASE IF EXISTS `" + schema + "`") })
	st := checkpoint.State{Topic: topic, Offset: 42, Epoch: 1, TxnSeq: 41, GTIDSet: gtid,
		CommitTime: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), UpdatedAt: time.Date(2024, 1, 2, 3, 4, 6, 0, time.UTC)}
	if err := store.Save(ctx, replica, st); err != nil {
		t.Fatal(err)
	}
	return schema, topic
}

// followed gives the replica a checkpoint at gtid (saveCheckpoint) and
// returns the configuration that verifies database with it.
func followed(t *testing.T, database string, replica *sql.DB, gtid string) Config {
	t.Helper()
	schema, topic := saveCheckpoint(t, replica, gtid)
	cfg := baseConfig(database)
	cfg.Filter.Bookkeeping, cfg.Topic = schema, topic
	return cfg
}

func checkpointRow(t *testing.T, db *sql.DB, schema string) string {
	t.Helper()
	var s string
	if err := db.QueryRow("SELECT CONCAT_WS('|', topic, partition_id, next_offset, epoch, txn_seq, max_txn_seq, gtid_set, commit_time, ddl_pending, updated_at) FROM `" + schema + "`.checkpoint").Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFindsAndRepairsDifferences changes rows behind rowcast's back on the
// replica: a changed value, NULL turned into ”, a missing row, an extra
// row, in tables with one- and three-column keys. Verify names each by key
// and kind with both sides' values; --repair rewrites them and verifies
// again; the sink's checkpoint row is left exactly as it was.
func TestFindsAndRepairsDifferences(t *testing.T) {
	database, _, replica := pair(t, 60)
	cfg := followed(t, database, replica, "0-1-999999999999")
	schema := cfg.Filter.Bookkeeping
	before := checkpointRow(t, replica, schema)
	testenv.Exec(t, replica,
		"UPDATE `"+database+"`.single SET name = 'tampered' WHERE id = 17",
		"UPDATE `"+database+"`.single SET name = '' WHERE id = 25", // was NULL
		"DELETE FROM `"+database+"`.single WHERE id = 33",
		"INSERT INTO `"+database+"`.single (id, name) VALUES (1000, 'stray')",
		"UPDATE `"+database+"`.composite SET payload = NULL WHERE region = 'us' AND amount = 1.25 AND seq = 31",
		"UPDATE `"+database+"`.single SET f = f + 0.000001 WHERE id = 40", // below FLOAT's printed precision
	)
	rep := run(t, cfg)
	if rep.Static {
		t.Fatalf("a replica with a checkpoint must be verified with waits: %s", rep.Note)
	}
	checkTampered(t, rep)

	cfg.Repair = true
	rep = run(t, cfg)
	if !rep.Equal() {
		t.Fatalf("repair left differences:\n%s", report(rep))
	}
	if tr := table(t, rep, "single"); tr.Repaired != 5 || tr.Remaining == nil || *tr.Remaining != 0 {
		t.Fatalf("single after repair: repaired %d remaining %v\n%s", tr.Repaired, tr.Remaining, report(rep))
	}
	cfg.Repair = false
	if rep = run(t, cfg); !rep.Equal() {
		t.Fatalf("a verify after the repair still differs:\n%s", report(rep))
	}
	if after := checkpointRow(t, replica, schema); after != before {
		t.Fatalf("the repair changed the checkpoint row:\nbefore %s\nafter  %s", before, after)
	}
}

// checkTampered checks that the report names each difference
// TestFindsAndRepairsDifferences made, by key and kind, with both sides'
// values.
func checkTampered(t *testing.T, rep *Report) {
	t.Helper()
	single := table(t, rep, "single")
	got := map[string]string{}
	for _, d := range single.Diffs {
		got[d.KeyString()] = d.Kind
	}
	want := map[string]string{"id=17": Changed, "id=25": Changed, "id=33": Missing, "id=1000": Extra, "id=40": Changed}
	if single.Differences != len(want) || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("single: %d differences %v; want %v\n%s", single.Differences, got, want, report(rep))
	}
	if i := slices.IndexFunc(single.Diffs, func(d Diff) bool { return d.KeyString() == "id=25" }); i >= 0 {
		if v := field(single.Diffs[i].Master, "name"); v != "NULL" {
			t.Errorf("id=25 master name = %s, want NULL", v)
		}
		if v := field(single.Diffs[i].Replica, "name"); v != `""` {
			t.Errorf("id=25 replica name = %s, want \"\"", v)
		}
	}
	comp := table(t, rep, "composite")
	if comp.Differences != 1 || comp.Diffs[0].KeyString() != `region="us", amount=1.25, seq=31` {
		t.Fatalf("composite: %+v\n%s", comp.Diffs, report(rep))
	}
	if rep.Equal() || table(t, rep, "ukey").Differences != 0 || table(t, rep, "nokey").Differences != 0 {
		t.Fatalf("verdict wrong:\n%s", report(rep))
	}
}

func field(fs []Field, col string) string {
	for _, f := range fs {
		if f.Column == col {
			if f.Value == nil {
				return "NULL"
			}
			return *f.Value
		}
	}
	return "?"
}

func TestNoKeyTableDifference(t *testing.T) {
	database, _, replica := pair(t, 30)
	testenv.Exec(t, replica, "UPDATE `"+database+"`.nokey SET b = '' WHERE b IS NULL LIMIT 1")
	cfg := baseConfig(database)
	cfg.Filter.Tables = []string{database + ".nokey"}
	cfg.Repair = true
	rep := run(t, cfg)
	tr := table(t, rep, "nokey")
	if tr.Differences != 1 || tr.Repaired != 0 || rep.Equal() || !strings.Contains(tr.Note, "cannot be located or repaired") {
		t.Fatalf("nokey: %+v", tr)
	}
}

// TestBehindReplicaIsAnError: a difference on a replica whose checkpoint
// never reaches the master's position can be neither confirmed nor
// dismissed; verify says so instead of guessing.
func TestBehindReplicaIsAnError(t *testing.T) {
	database, _, replica := pair(t, 20)
	cfg := followed(t, database, replica, "0-1-1")
	testenv.Exec(t, replica, "UPDATE `"+database+"`.single SET name = 'x' WHERE id = 3")
	cfg.WaitTimeout = 500 * time.Millisecond
	rep := run(t, cfg)
	single := table(t, rep, "single")
	if !strings.Contains(single.Error, ErrBehind.Error()) || !strings.Contains(single.Error, "--no-wait") {
		t.Fatalf("single: error %q", single.Error)
	}
	if tr := table(t, rep, "ukey"); tr.Error != "" || tr.Differences != 0 {
		t.Fatalf("an equal table needs no wait: %+v", tr)
	}
	cfg.NoWait = true
	rep = run(t, cfg)
	if single = table(t, rep, "single"); single.Differences != 1 || single.Diffs[0].KeyString() != "id=3" {
		t.Fatalf("--no-wait: %+v", single)
	}
}

func TestMissingTable(t *testing.T) {
	database, _, replica := pair(t, 5)
	testenv.Exec(t, replica, "DROP TABLE `"+database+"`.ukey")
	rep := run(t, baseConfig(database))
	if tr := table(t, rep, "ukey"); tr.Differences != 1 || !strings.Contains(tr.Note, "missing on replica db2") {
		t.Fatalf("ukey: %+v", tr)
	}
}

func TestNamedTables(t *testing.T) {
	database, _, _ := pair(t, 5)
	cfg := baseConfig(database)
	cfg.Filter.Tables = []string{database + ".nope"}
	v, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "no such base table") {
		t.Fatalf("err = %v", err)
	}
	cfg.Filter.Tables = []string{database + ".ukey"}
	cfg.Filter.Exclude = []string{`\.ukey$`}
	v2, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	if _, err := v2.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "not replicated") {
		t.Fatalf("err = %v", err)
	}
}

func TestHashChoice(t *testing.T) {
	if !mariaDBAtLeast("10.11.19-MariaDB-0+deb12u1-log", 10, 8) || mariaDBAtLeast("10.6.1-MariaDB", 10, 8) || mariaDBAtLeast("8.4.0", 10, 8) {
		t.Fatal("mariaDBAtLeast")
	}
	database, _, replica := pair(t, 10)
	testenv.Exec(t, replica, "UPDATE `"+database+"`.ukey SET val = 7 WHERE code = 'kkkkk4'")
	cfg := baseConfig(database)
	for _, h := range []string{"", HashCRC, HashMD5} {
		cfg.Hash = h
		rep := run(t, cfg)
		want := h
		if h == "" {
			want = HashCRC32 // the default on MariaDB 10.8 and later
		}
		if rep.Hash != want || !onlyDiffers(t, rep, "ukey", 1) {
			t.Fatalf("hash %q:\n%s", h, report(rep))
		}
	}
	cfg.Hash = "sha3"
	if _, err := New(context.Background(), cfg); !errors.Is(err, ErrConfig) {
		t.Fatalf("err = %v", err)
	}
}

// onlyDiffers reports whether name has n differences and the other tables
// of schemaSQL none.
func onlyDiffers(t *testing.T, rep *Report, name string, n int) bool {
	t.Helper()
	for _, other := range []string{"single", "composite", "ukey", "nokey"} {
		want := 0
		if other == name {
			want = n
		}
		if table(t, rep, other).Differences != want {
			return false
		}
	}
	return true
}

// TestRowTextIsInjective stores pairs of rows that a naive concatenation
// would hash alike (a separator inside a value, NULL against ” or against a
// shifted value) on the master and the replica: each pair is a difference.
func TestRowTextIsInjective(t *testing.T) {
	database, master, replica := sides(t)
	create := "CREATE TABLE `" + database + "`.tricky (id INT PRIMARY KEY, a VARCHAR(10) NULL, b VARCHAR(10) NULL, n INT NULL, m INT NULL, bin VARBINARY(4) NULL)"
	testenv.Exec(t, master, create)
	testenv.Exec(t, replica, create)
	ins := "INSERT INTO `" + database + "`.tricky VALUES "
	testenv.Exec(t, master, ins+"(1,'x#','y',1,1,NULL),(2,NULL,'5',1,1,NULL),(3,'',NULL,1,1,NULL),(4,'N',NULL,1,1,NULL),(5,'a','b',NULL,12,NULL),(6,'a','b',1,1,''),(7,'a','b',1,1,'x')")
	testenv.Exec(t, replica, ins+"(1,'x','#y',1,1,NULL),(2,'5',NULL,1,1,NULL),(3,NULL,'',1,1,NULL),(4,NULL,'N',1,1,NULL),(5,'a','b',12,NULL,NULL),(6,'a','b',1,1,NULL),(7,'a','b',1,1,'X')")
	// The last text column goes at the end of the text without a length or
	// a NULL marker (Table.canonical): NULL, '' and a shifted value differ.
	create = "CREATE TABLE `" + database + "`.tail (id INT PRIMARY KEY, s VARCHAR(10) NULL, n INT NULL)"
	testenv.Exec(t, master, create, "INSERT INTO `"+database+"`.tail VALUES (1,'',NULL),(2,'5',NULL),(3,'N',NULL),(4,'#1',NULL),(5,'x',1)")
	testenv.Exec(t, replica, create, "INSERT INTO `"+database+"`.tail VALUES (1,NULL,NULL),(2,NULL,5),(3,NULL,NULL),(4,'1',NULL),(5,'x',1)")
	rep := run(t, baseConfig(database))
	if tr := table(t, rep, "tricky"); tr.Differences != 7 {
		t.Fatalf("tricky: %d differences, want 7:\n%s", tr.Differences, report(rep))
	}
	if tr := table(t, rep, "tail"); tr.Differences != 4 {
		t.Fatalf("tail: %d differences, want 4:\n%s", tr.Differences, report(rep))
	}
}

// TestRowHashOneText holds MariaDB to what HashCRC relies on: the row text
// assigned to a user variable in the first CRC is what the second reads,
// whatever the variable held before, in a chunk's sum as in a row's hash.
func TestRowHashOneText(t *testing.T) {
	database, master, _ := pair(t, 40)
	ctx := context.Background()
	for _, name := range []string{"single", "composite"} {
		tb, err := describe(ctx, master, database, name)
		if err != nil {
			t.Fatal(err)
		}
		n, got, rowGot, want, rowWant := hashesOfStaleVariable(t, master, tb)
		if n != 40 || got != want || rowGot != rowWant {
			t.Fatalf("%s: sum %d %s, min row hash %s; want 40 %s %s", name, n, got, rowGot, want, rowWant)
		}
	}
}

// hashesOfStaleVariable computes HashCRC's sum of tb and its least row
// hash on a connection whose user variable holds a stale text, and the same
// with the row text written twice instead of once.
func hashesOfStaleVariable(t *testing.T, db *sql.DB, tb *Table) (n int64, sum, minRow, wantSum, wantMinRow string) {
	t.Helper()
	ctx := context.Background()
	conn := sessionConn(t, db)
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET @rowcast_verify_row = 'stale'"); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRowContext(ctx, tb.wholeSQL(HashCRC, true, false)).Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	c := tb.canonical()
	twice := "(CAST(CRC32(" + c + ") AS UNSIGNED) << 32 | CRC32C(" + c + "))"
	if err := conn.QueryRowContext(ctx, "SELECT CAST(SUM("+twice+") AS CHAR), MIN("+twice+") FROM "+tb.quoted()).Scan(&wantSum, &wantMinRow); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT MIN("+tb.rowHash(HashCRC)+") FROM "+tb.quoted()).Scan(&minRow); err != nil {
		t.Fatal(err)
	}
	return n, sum, minRow, wantSum, wantMinRow
}

// TestRepairEnumErrorValue: a master not in strict mode stores a value that
// is no member of an ENUM as the error value, an empty string; repairing
// such rows on a replica in strict mode must write that value, not fail
// (error 1265).
func TestRepairEnumErrorValue(t *testing.T) {
	database, master, replica := sides(t)
	create := "CREATE TABLE `" + database + "`.en (id INT NOT NULL PRIMARY KEY, e ENUM('a','b') NOT NULL, n INT NULL)"
	testenv.Exec(t, master, create)
	testenv.Exec(t, replica, create, "INSERT INTO `"+database+"`.en VALUES (2, 'a', 2), (3, 'b', 3), (4, 'b', 4)")
	execConn(t, master, "SET SESSION sql_mode = ''", "INSERT INTO `"+database+"`.en VALUES (1, 'zzz', 1), (2, 'a', 2), (3, 'nope', 3), (4, 'b', 40)")
	cfg := baseConfig(database)
	cfg.Repair = true
	v, rep := runOpen(t, cfg)
	defer v.Close()
	tr := table(t, rep, "en")
	if !rep.Equal() || tr.Repaired != 3 || tr.Error != "" {
		t.Fatalf("en: repaired %d, error %q\n%s", tr.Repaired, tr.Error, report(rep))
	}
	var got string
	if err := replica.QueryRow("SELECT GROUP_CONCAT(id, ':', e + 0, ':', n ORDER BY id) FROM `" + database + "`.en").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "1:0:1,2:1:2,3:0:3,4:2:40" {
		t.Fatalf("replica rows (id:ENUM index:n) %s", got)
	}
	checkStrictConns(t, v.replica)
}

// checkStrictConns checks that every connection of db is strict: it takes
// all the idle ones (and a few more) at once.
func checkStrictConns(t *testing.T, db *sql.DB) {
	t.Helper()
	ctx := context.Background()
	for i := range 8 {
		c := sessionConn(t, db)
		defer c.Close()
		var mode string
		if err := c.QueryRowContext(ctx, "SELECT @@SESSION.sql_mode").Scan(&mode); err != nil || !strings.Contains(mode, "STRICT_ALL_TABLES") {
			t.Fatalf("replica connection %d: sql_mode %q %v", i, mode, err)
		}
	}
}
