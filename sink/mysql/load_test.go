package mysql

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/internal/mysqlerr"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// TestLoadDataKinds applies batches of every value kind, with the bytes that
// LOAD DATA treats specially, through LOAD DATA ... REPLACE (inserts, then
// updates of the same rows) and through INSERT ... ON DUPLICATE KEY UPDATE
// (NoLoadData) into two databases: both must hold the same rows, and those
// must be the values sent.
func TestLoadDataKinds(t *testing.T) {
	blob := make([]byte, 70000)
	rand.Read(blob)
	var results [][]string
	for _, noLoad := range []bool{false, true} {
		r := newReplica(t, testenv.Replica1)
		r.Setup(t, kindsTable)
		s := kindsScript(r.db, blob)
		tgt := r.target(t, func(c *Config) { c.NoLoadData = noLoad })
		// A commit per transaction: the updates meet committed rows.
		rec, err := runRecorded(t, tgt, s.Msgs, sink.WorkerConfig{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		loads := countPrefix(rec.get(), "LOAD DATA")
		if want := map[bool]int{false: 2, true: 0}[noLoad]; loads != want {
			t.Fatalf("NoLoadData %v: %d LOAD DATA statements, want %d", noLoad, loads, want)
		}
		results = append(results, r.Rows(t, "kinds"))
		if !noLoad {
			// The values themselves, as TestValueKinds reads them.
			checkKinds(t, r, s)
		}
	}
	sameRows(t, "LOAD DATA", "INSERT", results[0], results[1])
}

// kindsSpecial are strings that LOAD DATA's text must escape, or could
// mistake for something else.
var kindsSpecial = []string{"tab\there", "new\nline", "cr\rlf\r\n", `back\slash`, `\N`, "NULL", `\`, "\x00nul\x00",
	"end\\", "\\t literal", "héllo 😀 'quoted' \"dq\"", "", " lead and trail "}

// kindsScript inserts loadMinRows+8 rows of kindsColumns in one
// transaction and updates them all in a second.
func kindsScript(db string, blob []byte) *sinktest.Script {
	s := sinktest.NewScript(db)
	s.Table("kinds", kindsColumns, 0)
	rows := int64(loadMinRows + 8)
	for id := int64(1); id <= rows; id++ {
		s.Insert("kinds", kindsRow(id, false, blob)...)
	}
	s.Commit()
	for id := int64(1); id <= rows; id++ {
		s.Update("kinds", []any{id}, kindsRow(id, true, blob)...)
	}
	s.Commit()
	return s
}

// kindsRow is row id of kindsColumns, its strings changed when upd.
func kindsRow(id int64, upd bool, blob []byte) []any {
	str := kindsSpecial[int(id)%len(kindsSpecial)]
	if upd {
		str = "u" + str
	}
	bin := []byte{0, '\t', '\n', '\\', 'N', 0xff, byte(id)}
	v := []any{id, int64(id%256 - 128), int64(math.MinInt64 + id), uint64(math.MaxUint64 - uint64(id)),
		float64(float32(id) * 0.25), math.MaxFloat64 / float64(id), "-12345678901234567890.0123456789",
		str, strings.Repeat(str, 3), bin, blob[:int(id)*1000], "0000-00-00", "2024-02-29 23:59:59.123456",
		"2038-01-19 03:14:07.999999", "-838:59:59.000000", int64(1901 + id), uint64(math.MaxUint64) >> (id % 64),
		uint64(id % 32), "c", "x,z", `{"a": [1, 2.5, "x\ty"], "s": "` + strings.ReplaceAll(str, "\\", "\\\\") + `"}`,
		point(4326, float64(id), -2), "ab"}
	if strings.ContainsAny(str, "\x00\t\n\r\"") {
		v[20] = `{"a": 1}` // JSON text must stay valid JSON
	}
	if id%7 == 0 { // NULLs in every column but the key
		for i := 1; i < len(v); i++ {
			v[i] = nil
		}
	}
	return v
}

// checkKinds compares every column of the replica's rows with the script's
// last images.
func checkKinds(t *testing.T, r *replica, s *sinktest.Script) {
	t.Helper()
	want := map[int64][]any{}
	for _, m := range s.Msgs {
		if ev := m.Event; ev.Kind == pipeline.KindRow {
			want[ev.After[0].(int64)] = ev.After
		}
	}
	rows := kindsRows(t, r, "")
	for _, got := range rows {
		compareKinds(t, string(got[0]), want[int64(atoiT(t, string(got[0])))], got)
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d", len(rows), len(want))
	}
}

func atoiT(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("not a number: %q", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// TestLoadDataStrict: a value the replica cannot hold stops a LOAD DATA
// batch as it stops an INSERT (strict mode; LOCAL does not turn the error
// into a warning with REPLACE), the worker narrows to the exact message,
// and nothing of the transaction is committed.
func TestLoadDataStrict(t *testing.T) {
	r := newReplica(t, testenv.Replica1)
	r.Setup(t, "CREATE TABLE `t` (`id` BIGINT NOT NULL PRIMARY KEY, `v` VARCHAR(10) NULL, `n` TINYINT NULL)")
	s := strictScript(r.db)
	// First transaction: offsets 1.. (0 is the epoch record).
	tgt := r.target(t)
	rec := record(tgt)
	_, err := sinktest.RunWorker(context.Background(), t, tgt, sinktest.NewInput(s.Msgs), sink.WorkerConfig{}, nil)
	var ae *sink.ApplyError
	if !errors.As(err, &ae) || ae.Offset != int64(loadMinRows+3) || !strings.Contains(err.Error(), "1406") {
		t.Fatalf("error %v, want data too long at offset %d", err, loadMinRows+3)
	}
	if countPrefix(rec.get(), "LOAD DATA") == 0 {
		t.Fatal("the batch did not go through LOAD DATA")
	}
	if n := r.Count(t, "t"); n != 0 {
		t.Fatalf("%d rows committed of the failed transaction", n)
	}

	// An out-of-range number in the second transaction (the first one fixed
	// on the replica by widening the column).
	r.Setup(t, "ALTER TABLE `t` MODIFY `v` VARCHAR(20) NULL")
	in := sinktest.NewInput(s.Msgs)
	in.Live = true // the first transaction commits before the second fails
	_, err = sinktest.RunWorker(context.Background(), t, r.target(t), in, sink.WorkerConfig{}, nil)
	want := int64(1 + 2*loadMinRows + loadMinRows + 3 - 1)
	if !errors.As(err, &ae) || ae.Offset != want || !strings.Contains(err.Error(), "1264") {
		t.Fatalf("error %v, want out of range at offset %d", err, want)
	}
	if n := r.Count(t, "t"); n != 2*loadMinRows {
		t.Fatalf("%d rows, want the first transaction's %d", n, 2*loadMinRows)
	}
}

// strictScript: two transactions of 2*loadMinRows rows, the first with a
// string too long for its column, the second with a number out of range.
func strictScript(db string) *sinktest.Script {
	s := sinktest.NewScript(db)
	s.Table("t", []pipeline.Column{{Name: "id", Kind: pipeline.VInt}, {Name: "v", Kind: pipeline.VString},
		{Name: "n", Kind: pipeline.VInt}}, 0)
	for _, bad := range []string{"long", "range"} {
		base := map[string]int64{"long": 0, "range": 1000}[bad]
		for i := int64(1); i <= 2*loadMinRows; i++ {
			v, n := "ok", int64(1)
			switch {
			case i != loadMinRows+3:
			case bad == "long":
				v = strings.Repeat("x", 11)
			default:
				n = 1000
			}
			s.Insert("t", base+i, v, n)
		}
		s.Commit()
	}
	return s
}

// TestLoadDataOnlyPlainTables: a table with another unique key, a trigger,
// or a foreign key pointing at it keeps INSERT ... ON DUPLICATE KEY UPDATE
// (REPLACE would delete and re-insert there); a DDL that adds a unique key
// is noticed.
func TestLoadDataOnlyPlainTables(t *testing.T) {
	r := newReplica(t, testenv.Replica1)
	r.Setup(t,
		"CREATE TABLE `plain` (`id` BIGINT NOT NULL PRIMARY KEY, `v` VARCHAR(10) NULL)",
		"CREATE TABLE `uniq` (`id` BIGINT NOT NULL PRIMARY KEY, `v` VARCHAR(10) NULL, UNIQUE KEY (`v`))",
		"CREATE TABLE `trig` (`id` BIGINT NOT NULL PRIMARY KEY, `v` VARCHAR(10) NULL)",
		"CREATE TABLE `audit` (`n` INT NOT NULL)",
		"CREATE TRIGGER `trig_d` AFTER DELETE ON `trig` FOR EACH ROW INSERT INTO `audit` VALUES (1)",
		"CREATE TABLE `parent` (`id` BIGINT NOT NULL PRIMARY KEY, `v` VARCHAR(10) NULL)",
		"CREATE TABLE `child` (`id` BIGINT NOT NULL PRIMARY KEY, `p` BIGINT NULL, FOREIGN KEY (`p`) REFERENCES `parent` (`id`) ON DELETE CASCADE)",
		"INSERT INTO `parent` VALUES (1, 'p')", "INSERT INTO `child` VALUES (1, 1)")
	tables := []string{"plain", "uniq", "trig", "parent"}
	s := plainTablesScript(r.db, tables)
	tgt := r.target(t, sqlOnly)
	rec := record(tgt)
	if _, err := sinktest.RunWorker(context.Background(), t, tgt, sinktest.NewInput(s.Msgs), sink.WorkerConfig{}, nil); err != nil {
		t.Fatal(err)
	}
	got := upsertStatements(rec.get(), r.db, tables)
	want := []string{"plain LOAD", "uniq INSERT", "trig INSERT", "parent INSERT", "plain INSERT"}
	if !slices.Equal(got, want) {
		t.Fatalf("statements %v, want %v", got, want)
	}
	for _, name := range tables {
		if n := r.Count(t, name); n != loadMinRows {
			t.Errorf("%s: %d rows, want %d", name, n, loadMinRows)
		}
	}
	if n := r.Count(t, "child"); n != 1 {
		t.Errorf("child rows %d: the parent's upsert must not cascade", n)
	}
	if n := r.Count(t, "audit"); n != 0 {
		t.Errorf("audit rows %d: the upsert fired a delete trigger", n)
	}
}

// plainTablesScript upserts loadMinRows rows into each of tables, then adds
// a unique key to plain and updates its rows.
func plainTablesScript(db string, tables []string) *sinktest.Script {
	cols := []pipeline.Column{{Name: "id", Kind: pipeline.VInt}, {Name: "v", Kind: pipeline.VString}}
	s := sinktest.NewScript(db)
	for _, name := range tables {
		s.Table(name, cols, 0)
		for i := int64(1); i <= loadMinRows; i++ {
			s.Insert(name, i, name+string(rune('a'+i%26))+string(rune('a'+i/26)))
		}
		s.Commit()
	}
	s.DDL("ALTER TABLE `plain` ADD UNIQUE KEY (`v`)")
	for i := int64(1); i <= loadMinRows; i++ {
		s.Update("plain", []any{i}, i, "x"+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	s.Commit()
	return s
}

// upsertStatements lists the upserts of stmts into tables as "table LOAD"
// or "table INSERT", in order.
func upsertStatements(stmts []string, db string, tables []string) []string {
	var got []string
	for _, st := range stmts {
		for _, name := range tables {
			if strings.HasPrefix(st, "LOAD DATA") && strings.Contains(st, "`.`"+name+"` ") ||
				strings.HasPrefix(st, "INSERT INTO `"+db+"`.`"+name+"` ") {
				got = append(got, name+" "+strings.Fields(st)[0])
			}
		}
	}
	return got
}

// noLocalInfile answers every LOAD DATA as a replica whose local_infile was
// turned off after Open.
type noLocalInfile struct{ recorder }

func (n *noLocalInfile) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if strings.HasPrefix(q, "LOAD DATA") {
		n.add(q)
		return nil, &mysql.MySQLError{Number: mysqlerr.ErLoadInfileCapability, Message: "The used command is not allowed because the MariaDB server or client has disabled the local infile capability"}
	}
	return n.recorder.ExecContext(ctx, q, args...)
}

// TestLoadDataRefused: a replica that refuses LOAD DATA LOCAL after Open
// gets the batch as an INSERT, and every later one.
func TestLoadDataRefused(t *testing.T) {
	r := newReplica(t, testenv.Replica1)
	r.Setup(t, "CREATE TABLE `t` (`id` BIGINT NOT NULL PRIMARY KEY, `v` VARCHAR(10) NULL)")
	s := sinktest.NewScript(r.db)
	s.Table("t", []pipeline.Column{{Name: "id", Kind: pipeline.VInt}, {Name: "v", Kind: pipeline.VString}}, 0)
	for txn := int64(0); txn < 2; txn++ {
		for i := int64(1); i <= loadMinRows; i++ {
			s.Insert("t", txn*100+i, "v")
		}
		s.Commit()
	}
	tgt := r.target(t, sqlOnly)
	rec := &noLocalInfile{}
	tgt.wrap = func(e execer) execer { rec.execer = e; return rec }
	in := sinktest.NewInput(s.Msgs)
	in.Live = true
	if _, err := sinktest.RunWorker(context.Background(), t, tgt, in, sink.WorkerConfig{}, nil); err != nil {
		t.Fatal(err)
	}
	inserts := countPrefix(rec.get(), "INSERT INTO "+q(r.db, "t"))
	if loads := countPrefix(rec.get(), "LOAD DATA"); loads != 1 || inserts != 2 {
		t.Fatalf("%d LOAD DATA and %d INSERT statements, want 1 refused LOAD DATA, then INSERTs only", loads, inserts)
	}
	if n := r.Count(t, "t"); n != 2*loadMinRows {
		t.Fatalf("%d rows, want %d", n, 2*loadMinRows)
	}
}
