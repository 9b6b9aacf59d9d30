package mysql

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// allTypesDDL has a column of every type the binary apply encodes.
var allTypesDDL = "CREATE TABLE `t` (" +
	"`id` BIGINT NOT NULL PRIMARY KEY," +
	"`i8` TINYINT NULL, `u8` TINYINT UNSIGNED NULL, `i16` SMALLINT NULL, `u16` SMALLINT UNSIGNED NULL," +
	"`i24` MEDIUMINT NULL, `u24` MEDIUMINT UNSIGNED NULL, `i32` INT NULL, `u32` INT UNSIGNED NULL, `u64` BIGINT UNSIGNED NULL," +
	"`f` FLOAT NULL, `d` DOUBLE NULL," +
	"`dec1` DECIMAL(5,0) NULL, `dec2` DECIMAL(12,2) NULL, `dec3` DECIMAL(30,10) NULL, `dec4` DECIMAL(65,30) NULL, `dec5` DECIMAL(10,10) NULL," +
	"`c` CHAR(10) NULL, `vc` VARCHAR(300) NULL, `c3` VARCHAR(10) CHARACTER SET utf8mb3 NULL," +
	"`bin` BINARY(4) NULL, `vb` VARBINARY(300) NULL," +
	"`tt` TINYTEXT NULL, `tx` TEXT NULL, `mt` MEDIUMTEXT NULL, `lt` LONGTEXT NULL," +
	"`tb` TINYBLOB NULL, `bl` BLOB NULL, `mb` MEDIUMBLOB NULL, `lb` LONGBLOB NULL," +
	"`dt` DATE NULL, `dtm` DATETIME NULL, `dtm3` DATETIME(3) NULL, `dtm6` DATETIME(6) NULL," +
	"`ts0` TIMESTAMP NULL DEFAULT NULL, `ts6` TIMESTAMP(6) NULL DEFAULT NULL," +
	"`tm` TIME NULL, `tm1` TIME(1) NULL, `tm4` TIME(4) NULL, `tm6` TIME(6) NULL," +
	"`y` YEAR NULL, `b1` BIT(1) NULL, `b13` BIT(13) NULL, `b64` BIT(64) NULL," +
	"`e` ENUM('a','b','c''d') NULL, `st` SET('x','y','z') NULL, `j` JSON NULL," +
	"`dtm1` DATETIME(1) NULL, `dtm2` DATETIME(2) NULL, `ts3` TIMESTAMP(3) NULL DEFAULT NULL, `tm2` TIME(2) NULL, `tm5` TIME(5) NULL," +
	"`dec6` DECIMAL(9,0) NULL, `dec7` DECIMAL(18,9) NULL, `dec8` DECIMAL(19,1) NULL, `b8` BIT(8) NULL, `b9` BIT(9) NULL," +
	"`c255` CHAR(255) NULL, `v64` VARCHAR(64) NULL, `vb255` VARBINARY(255) NULL, `vb256` VARBINARY(256) NULL, `bin1` BINARY(1) NULL," +
	"`e300` ENUM(" + enum300 + ") NULL, `s20` SET(" + set20 + ") NULL, `s64` SET(" + set64 + ") NULL," +
	"`nn` INT NOT NULL DEFAULT 0" +
	") DEFAULT CHARSET=utf8mb4"

// members lists n ENUM/SET members m0, m1, ... as SQL.
func members(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "'m%d'", i)
	}
	return b.String()
}

var enum300, set20, set64 = members(300), members(20), members(64)

// allTypesColumns are the events' columns of allTypesDDL.
func allTypesColumns() []pipeline.Column {
	var cols []pipeline.Column
	add := func(kind pipeline.ValueKind, sqlType string, names ...string) {
		for _, n := range names {
			cols = append(cols, pipeline.Column{Name: n, Kind: kind, SQLType: sqlType})
		}
	}
	add(pipeline.VInt, "bigint(20)", "id")
	add(pipeline.VInt, "int", "i8")
	add(pipeline.VUint, "int unsigned", "u8")
	add(pipeline.VInt, "int", "i16")
	add(pipeline.VUint, "int unsigned", "u16")
	add(pipeline.VInt, "int", "i24")
	add(pipeline.VUint, "int unsigned", "u24")
	add(pipeline.VInt, "int", "i32")
	add(pipeline.VUint, "int unsigned", "u32", "u64")
	add(pipeline.VFloat, "float", "f")
	add(pipeline.VDouble, "double", "d")
	add(pipeline.VDecimal, "decimal", "dec1", "dec2", "dec3", "dec4", "dec5")
	add(pipeline.VString, "varchar", "c", "vc", "c3")
	add(pipeline.VBytes, "varbinary", "bin", "vb")
	add(pipeline.VString, "text", "tt", "tx", "mt", "lt")
	add(pipeline.VBytes, "blob", "tb", "bl", "mb", "lb")
	add(pipeline.VDate, "date", "dt")
	add(pipeline.VDateTime, "datetime", "dtm", "dtm3", "dtm6")
	add(pipeline.VTimestamp, "timestamp", "ts0", "ts6")
	add(pipeline.VTime, "time", "tm", "tm1", "tm4", "tm6")
	add(pipeline.VYear, "year(4)", "y")
	add(pipeline.VBit, "bit", "b1", "b13", "b64")
	add(pipeline.VEnum, "enum('a','b','c''d')", "e")
	add(pipeline.VSet, "set('x','y','z')", "st")
	add(pipeline.VJSON, "longtext", "j")
	add(pipeline.VDateTime, "datetime", "dtm1", "dtm2")
	add(pipeline.VTimestamp, "timestamp", "ts3")
	add(pipeline.VTime, "time", "tm2", "tm5")
	add(pipeline.VDecimal, "decimal", "dec6", "dec7", "dec8")
	add(pipeline.VBit, "bit", "b8", "b9")
	add(pipeline.VString, "char", "c255", "v64")
	add(pipeline.VBytes, "varbinary", "vb255", "vb256", "bin1")
	add(pipeline.VEnum, "enum", "e300")
	add(pipeline.VSet, "set", "s20", "s64")
	add(pipeline.VInt, "int(11)", "nn")
	return cols
}

var yearCol = slices.IndexFunc(allTypesColumns(), func(c pipeline.Column) bool { return c.Name == "y" })

// valueGen makes random values a master could hold in allTypesDDL's
// columns; with odd set, also values the binary apply leaves to SQL (more
// fractional digits than the column keeps, which SQL rounds).
type valueGen struct {
	r   *rand.Rand
	odd bool
}

func (g valueGen) digitsStr(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + g.r.IntN(10))
	}
	return string(b)
}

func (g valueGen) decimal(prec, scale int) string {
	ip := strings.TrimLeft(g.digitsStr(g.r.IntN(prec-scale+1)), "0")
	if ip == "" {
		ip = "0"
	}
	s := ip
	if scale > 0 {
		n := scale
		if g.r.IntN(4) == 0 {
			n = g.r.IntN(scale + 1) // fewer digits: the SQL path pads, so must we
		}
		if g.odd && g.r.IntN(10) == 0 {
			n = scale + 1
		}
		if n > 0 {
			s += "." + g.digitsStr(n)
		}
	}
	if g.r.IntN(3) == 0 {
		s = "-" + s
	}
	return s
}

func (g valueGen) text(maxChars int, mb4 bool) string {
	alphabet := []rune("abcXYZ 019_'\"\\\t\n\x00é€ж")
	if mb4 {
		alphabet = append(alphabet, '😀', '𝄞')
	}
	n := g.r.IntN(maxChars + 1)
	var b strings.Builder
	for range n {
		b.WriteRune(alphabet[g.r.IntN(len(alphabet))])
	}
	return b.String()
}

func (g valueGen) set(n int) string {
	var parts []string
	for i := range n {
		if g.r.IntN(4) == 0 {
			parts = append(parts, fmt.Sprintf("m%d", i))
		}
	}
	return strings.Join(parts, ",")
}

func (g valueGen) bytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.IntN(256))
	}
	return b
}

func (g valueGen) frac(fsp int) string {
	n := fsp
	if g.odd && g.r.IntN(10) == 0 {
		n = fsp + 1
	}
	if n == 0 || g.r.IntN(4) == 0 {
		return ""
	}
	return "." + g.digitsStr(n)
}

func (g valueGen) date() string {
	if g.r.IntN(20) == 0 {
		return "0000-00-00"
	}
	y := 1000 + g.r.IntN(9000)
	m := 1 + g.r.IntN(12)
	return fmt.Sprintf("%04d-%02d-%02d", y, m, 1+g.r.IntN(daysIn(y, m)))
}

func (g valueGen) clock() string {
	return fmt.Sprintf("%02d:%02d:%02d", g.r.IntN(24), g.r.IntN(60), g.r.IntN(60))
}

func (g valueGen) timestamp(fsp int) string {
	secs := 1 + g.r.Int64N(math.MaxInt32)
	days, rem := secs/86400, secs%86400
	y, m, d := civilFromDays(days)
	s := fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%02d", y, m, d, rem/3600, rem/60%60, rem%60)
	if secs == math.MaxInt32 {
		return s
	}
	return s + g.frac(fsp)
}

func civilFromDays(z int64) (int, int, int) {
	z += 719468
	era := z / 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return int(y), int(m), int(d)
}

func (g valueGen) time(fsp int) string {
	s := fmt.Sprintf("%02d:%02d:%02d", g.r.IntN(839), g.r.IntN(60), g.r.IntN(60)) + g.frac(fsp)
	if s == "838:59:59" || strings.HasPrefix(s, "838:59:59.") {
		s = "838:59:59"
	}
	if g.r.IntN(3) == 0 {
		s = "-" + s
	}
	return s
}

// row returns an image of allTypesColumns with key id.
func (g valueGen) row(id int64) []any {
	r := g.r
	signed := func(bits uint) int64 { return r.Int64N(1<<bits) - 1<<(bits-1) }
	unsigned := func(bits uint) uint64 {
		if bits == 64 {
			return r.Uint64()
		}
		return r.Uint64N(1 << bits)
	}
	f32 := math.Float32frombits(r.Uint32())
	for math.IsNaN(float64(f32)) || math.IsInf(float64(f32), 0) {
		f32 = math.Float32frombits(r.Uint32())
	}
	f64 := math.Float64frombits(r.Uint64())
	for math.IsNaN(f64) || math.IsInf(f64, 0) {
		f64 = math.Float64frombits(r.Uint64())
	}
	enums := []string{"a", "b", "c'd", ""}
	sets := []string{"", "x", "y", "z", "x,y", "x,z", "y,z", "x,y,z"}
	img := []any{id,
		signed(8), unsigned(8), signed(16), unsigned(16), signed(24), unsigned(24), signed(32), unsigned(32), unsigned(64),
		float64(f32), f64,
		g.decimal(5, 0), g.decimal(12, 2), g.decimal(30, 10), g.decimal(65, 30), g.decimal(10, 10),
		strings.TrimRight(g.text(10, true), " "), g.text(300, true), g.text(10, false),
		g.bytes(4), g.bytes(r.IntN(301)),
		g.text(60, true), g.text(400, true), g.text(400, true), g.text(400, true),
		g.bytes(r.IntN(256)), g.bytes(r.IntN(600)), g.bytes(r.IntN(600)), g.bytes(r.IntN(600)),
		g.date(), g.date() + " " + g.clock(), g.date() + " " + g.clock() + g.frac(3), g.date() + " " + g.clock() + g.frac(6),
		g.timestamp(0), g.timestamp(6),
		g.time(0), g.time(1), g.time(4), g.time(6),
		int64(1901 + r.IntN(255)), unsigned(1), unsigned(13), unsigned(64),
		enums[r.IntN(len(enums))], sets[r.IntN(len(sets))], fmt.Sprintf(`{"k": %d, "s": "é\"x"}`, r.IntN(1000)),
		g.date() + " " + g.clock() + g.frac(1), g.date() + " " + g.clock() + g.frac(2), g.timestamp(3), g.time(2), g.time(5),
		g.decimal(9, 0), g.decimal(18, 9), g.decimal(19, 1), unsigned(8), unsigned(9),
		strings.TrimRight(g.text(255, true), " "), g.text(64, true), g.bytes(r.IntN(256)), g.bytes(r.IntN(257)), g.bytes(1),
		fmt.Sprintf("m%d", r.IntN(300)), g.set(20), g.set(64),
		int64(r.IntN(100)),
	}
	if r.IntN(2) == 0 {
		img[yearCol] = int64(0) // YEAR 0000
	}
	for i := 1; i < len(img)-1; i++ {
		if r.IntN(12) == 0 {
			img[i] = nil
		}
	}
	return img
}

// allTypesScript is a random history of inserts, updates (some moving the
// key) and deletes on allTypesDDL's table.
func allTypesScript(db string, seed uint64, odd bool) *sinktest.Script {
	g := valueGen{r: rand.New(rand.NewPCG(seed, 1)), odd: odd}
	s := sinktest.NewScript(db)
	s.Table("t", allTypesColumns(), 0)
	var ids []int64
	next := int64(1)
	for range 60 {
		n := 1 + g.r.IntN(12)
		for range n {
			switch op := g.r.IntN(10); {
			case op < 5 || len(ids) == 0:
				s.Insert("t", g.row(next)...)
				ids = append(ids, next)
				next++
			case op < 8:
				i := g.r.IntN(len(ids))
				img := g.row(ids[i])
				if g.r.IntN(5) == 0 { // key change
					img[0] = next
					next++
				}
				s.Update("t", []any{ids[i]}, img...)
				ids[i] = img[0].(int64)
			default:
				i := g.r.IntN(len(ids))
				s.Delete("t", ids[i])
				ids = slices.Delete(ids, i, i+1)
			}
		}
		s.Commit()
	}
	return s
}

// runRecorded runs a worker over msgs into tgt until the input ends, and
// returns what tgt sent; rec, if not nil, collects it across runs.
func runRecorded(t *testing.T, tgt *Target, msgs []sink.Message, cfg sink.WorkerConfig, rec *recorder) (*recorder, error) {
	t.Helper()
	if rec == nil {
		rec = &recorder{}
	}
	tgt.wrap = rec.wrap
	in := sinktest.NewInput(msgs)
	in.Live = true
	_, err := sinktest.RunWorker(context.Background(), t, tgt, in, cfg, nil)
	return rec, err
}

// runOK is runRecorded of a run that must succeed.
func runOK(t *testing.T, tgt *Target, msgs []sink.Message) *recorder {
	t.Helper()
	rec, err := runRecorded(t, tgt, msgs, sink.WorkerConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// binRowsPrefix starts a BINLOG statement of row events (a TABLE_MAP
// first), not the format description.
const binRowsPrefix = "BINLOG 'AAAAABM"

func countPrefix(stmts []string, prefix string) int {
	n := 0
	for _, s := range stmts {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

// TestBinaryApplyMatchesSQL applies the same random history of every
// column type through row events and through SQL, on the replica, and
// compares the tables as the server reads them back.
func TestBinaryApplyMatchesSQL(t *testing.T) {
	defer func(n int) { binLatin1Rows = n }(binLatin1Rows)
	binLatin1Rows = 1 // every batch in latin1, and back to utf8mb4 for SQL
	for _, c := range []struct {
		odd  bool
		seed uint64
	}{{false, 7}, {false, 8}, {false, 9}, {true, 7}} {
		odd, seed := c.odd, c.seed
		t.Run(fmt.Sprintf("fallback=%v/seed=%d", odd, seed), func(t *testing.T) {
			rb := newReplica(t, testenv.Replica1)
			rs := newReplica(t, testenv.Replica1)
			rb.Setup(t, allTypesDDL)
			rs.Setup(t, allTypesDDL)

			tb := rb.target(t)
			rec, err := runRecorded(t, tb, allTypesScript(rb.db, seed, odd).Msgs, sink.WorkerConfig{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := runRecorded(t, rs.target(t, sqlOnly), allTypesScript(rs.db, seed, odd).Msgs, sink.WorkerConfig{}, nil); err != nil {
				t.Fatal(err)
			}

			stmts := rec.get()
			binlogs := countPrefix(stmts, binRowsPrefix)
			sqlRows := countPrefix(stmts, "INSERT INTO "+q(rb.db, "t")) + countPrefix(stmts, "DELETE FROM "+q(rb.db, "t"))
			t.Logf("%d BINLOG statements, %d SQL row statements", binlogs, sqlRows)
			if binlogs < map[bool]int{false: 60, true: 10}[odd] {
				t.Fatalf("only %d BINLOG statements: the binary apply was not used", binlogs)
			}
			if !odd && sqlRows > 0 {
				t.Errorf("%d row statements went as SQL, want none", sqlRows)
			}
			if odd && sqlRows == 0 {
				t.Errorf("no row went as SQL, though some values have more digits than their columns")
			}
			got, want := rb.Rows(t, "t"), rs.Rows(t, "t")
			if len(want) < 50 {
				t.Fatalf("only %d rows: the history is too short", len(want))
			}
			sameRows(t, "binary apply", "SQL", got, want)
		})
	}
}

// TestBinaryApplyConflicts: rows the replica does not hold as the events
// expect get the SQL path's semantics, and the session is left as the SQL
// statements after it need it.
func TestBinaryApplyConflicts(t *testing.T) {
	r := newReplica(t, testenv.Replica1)
	r.Setup(t, "CREATE TABLE `t` (`id` BIGINT NOT NULL PRIMARY KEY, `v` VARCHAR(10) NULL, `n` INT NOT NULL)",
		"INSERT INTO `t` VALUES (1, 'stale', 0), (9, 'extra', 0)")
	s := conflictScript(r.db)

	// Run the first transaction, drop row 3 behind the sink's back, run the rest.
	msgs := s.Msgs
	cut := slices.IndexFunc(msgs, func(m sink.Message) bool { return m.Event.Kind == pipeline.KindRow && m.Event.Op == pipeline.OpUpdate })
	rec, err := runRecorded(t, r.target(t), msgs[:cut], sink.WorkerConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Exec(t, r.root, "DELETE FROM `t` WHERE `id` = 3")
	if _, err := runRecorded(t, r.target(t), msgs, sink.WorkerConfig{}, rec); err != nil {
		t.Fatal(err)
	}
	want := []string{"1|one|1", "20|twenty|20", "3|THREE|33", "4|four|4", "9|extra|0"}
	if got := r.Rows(t, "t"); !slices.Equal(got, want) {
		t.Fatalf("rows %q, want %q", got, want)
	}
	stmts := rec.get()
	if countPrefix(stmts, binRowsPrefix) < 3 {
		t.Fatalf("the binary apply was not used: %q", stmts)
	}
	if countPrefix(stmts, "INSERT INTO "+q(r.db, "t")) < 2 {
		t.Fatalf("the duplicate insert and the missing row were not re-sent as upserts: %q", stmts)
	}
	checkSessionAfterBinlog(t, r, s.Msgs[len(s.Msgs)-1].Event.Table, len(want))

	// A delete of a row the replica does not have stops the worker, as the
	// SQL path does.
	s.Delete("t", int64(1))
	s.Commit()
	testenv.Exec(t, r.root, "DELETE FROM `t` WHERE `id` = 1")
	if _, err := runRecorded(t, r.target(t), s.Msgs, sink.WorkerConfig{}, nil); !errors.Is(err, sink.ErrRowMissing) {
		t.Fatalf("delete of a missing row: %v, want ErrRowMissing", err)
	}
}

// conflictScript inserts a row the replica holds already, then updates a
// row the replica will have lost and moves another to a new key.
func conflictScript(db string) *sinktest.Script {
	cols := []pipeline.Column{{Name: "id", Kind: pipeline.VInt}, {Name: "v", Kind: pipeline.VString}, {Name: "n", Kind: pipeline.VInt}}
	s := sinktest.NewScript(db)
	s.Table("t", cols, 0)
	s.Insert("t", int64(1), "one", int64(1)) // already there: upserted
	s.Insert("t", int64(2), "two", int64(2))
	s.Insert("t", int64(3), "three", int64(3))
	s.Commit()
	// The replica loses row 3: the update re-creates it, as an upsert does.
	s.Insert("t", int64(4), "four", int64(4))
	s.Update("t", []any{int64(3)}, int64(3), "THREE", int64(33))
	s.Update("t", []any{int64(2)}, int64(20), "twenty", int64(20)) // key change
	s.Commit()
	return s
}

// checkSessionAfterBinlog checks the session after BINLOG statements: still
// binlogging, strict and checking unique keys; foreign keys unchecked as the
// sink always runs. A row written in a transaction then rolled back leaves
// rows rows in the table.
func checkSessionAfterBinlog(t *testing.T, r *replica, tbl *pipeline.Table, rows int) {
	t.Helper()
	ctx := context.Background()
	tgt := r.open(t)
	defer tgt.Close() // the next worker on the replica takes the worker lock
	if err := tgt.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	ev := &pipeline.Event{Kind: pipeline.KindRow, Table: tbl, Op: pipeline.OpInsert,
		Pos: pipeline.Position{Epoch: 1, TxnSeq: 100}, After: []any{int64(5), "five", int64(5)}}
	if err := tgt.ApplyRows(ctx, []*pipeline.Event{ev}); err != nil {
		t.Fatal(err)
	}
	var logBin, unique, fk, n int
	var mode string
	if err := tgt.ex.QueryRowContext(ctx, "SELECT @@sql_log_bin, @@unique_checks, @@foreign_key_checks, @@sql_mode, "+
		"(SELECT COUNT(*) FROM "+q(r.db, "t")+" WHERE `id`=5)").Scan(&logBin, &unique, &fk, &mode, &n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("row 5 not written in the transaction")
	}
	if logBin != 1 || unique != 1 || fk != 0 || !strings.Contains(mode, "STRICT_ALL_TABLES") {
		t.Errorf("session after BINLOG: sql_log_bin=%d unique_checks=%d foreign_key_checks=%d sql_mode=%s", logBin, unique, fk, mode)
	}
	if err := tgt.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.Count(t, "t"); got != rows {
		t.Errorf("after ROLLBACK: %d rows, want %d", got, rows)
	}
}

// TestBinaryApplyTables: tables the binary apply does not write (no
// primary key, a latin1 column, a trigger, a column the replica lacks) are
// written as SQL, correctly.
func TestBinaryApplyTables(t *testing.T) {
	r := newReplica(t, testenv.Replica1)
	r.Setup(t,
		"CREATE TABLE `nokey` (`id` BIGINT NOT NULL, `v` VARCHAR(10) NULL)",
		"CREATE TABLE `wider` (`id` BIGINT NOT NULL PRIMARY KEY, `v` VARCHAR(10) NULL, `extra` INT NULL)",
		"CREATE TABLE `latin` (`id` BIGINT NOT NULL PRIMARY KEY, `v` VARCHAR(10) CHARACTER SET latin1 NULL)",
		"CREATE TABLE `trig` (`id` BIGINT NOT NULL PRIMARY KEY, `v` VARCHAR(10) NULL)",
		"CREATE TABLE `audit` (`n` INT NOT NULL)",
		"CREATE TRIGGER `trig_i` AFTER INSERT ON `trig` FOR EACH ROW INSERT INTO `audit` VALUES (NEW.id)",
		"CREATE TABLE `plain` (`id` BIGINT NOT NULL PRIMARY KEY, `v` VARCHAR(10) NULL)")
	cols := []pipeline.Column{{Name: "id", Kind: pipeline.VInt}, {Name: "v", Kind: pipeline.VString}}
	s := sinktest.NewScript(r.db)
	s.Table("nokey", cols)
	s.Insert("nokey", int64(1), "é1")
	for _, name := range []string{"wider", "latin", "trig", "plain"} {
		s.Table(name, cols, 0)
		s.Insert(name, int64(1), "é1")
		s.Insert(name, int64(2), "x2")
	}
	s.Commit()
	rec := runOK(t, r.target(t), s.Msgs)
	for _, name := range []string{"latin", "trig", "plain"} {
		if got := r.Rows(t, name); !slices.Equal(got, []string{"1|é1", "2|x2"}) {
			t.Errorf("%s: %q", name, got)
		}
	}
	if got := r.Rows(t, "nokey"); !slices.Equal(got, []string{"1|é1"}) {
		t.Errorf("nokey: %q", got)
	}
	if got := r.Rows(t, "wider"); !slices.Equal(got, []string{"1|é1|NULL", "2|x2|NULL"}) {
		t.Errorf("wider: %q", got)
	}
	if got := r.Rows(t, "audit"); !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("the trigger did not fire for each row: %q", got)
	}
	stmts := rec.get()
	if n := countPrefix(stmts, binRowsPrefix); n != 1 {
		t.Errorf("%d BINLOG statements, want 1 (table plain)", n)
	}
	for _, name := range []string{"nokey", "wider", "latin", "trig"} {
		if countPrefix(stmts, "INSERT INTO "+q(r.db, name)) != 1 {
			t.Errorf("table %s was not written as SQL: %q", name, stmts)
		}
	}
}

// TestBinaryApplyWithoutPrivilege: a sink user without BINLOG REPLAY
// applies every row as SQL. It has READ_ONLY ADMIN, as sinks do: another
// test's bootstrap may hold the shared replica read-only meanwhile.
func TestBinaryApplyWithoutPrivilege(t *testing.T) {
	r := newReplica(t, testenv.Replica1)
	r.Setup(t, "CREATE TABLE `t` (`id` BIGINT NOT NULL PRIMARY KEY, `v` VARCHAR(10) NULL)")
	user := testenv.UniqueName(t, "rcnobin")
	r.Setup(t, "CREATE USER '"+user+"'@'127.0.0.1' IDENTIFIED BY 'pw'",
		"GRANT ALL ON "+quoteIdent(r.db)+".* TO '"+user+"'@'127.0.0.1'",
		"GRANT ALL ON "+quoteIdent(r.schema)+".* TO '"+user+"'@'127.0.0.1'",
		"GRANT READ_ONLY ADMIN ON *.* TO '"+user+"'@'127.0.0.1'")
	t.Cleanup(func() { r.root.Exec("DROP USER IF EXISTS '" + user + "'@'127.0.0.1'") })
	s := sinktest.NewScript(r.db)
	s.Table("t", []pipeline.Column{{Name: "id", Kind: pipeline.VInt}, {Name: "v", Kind: pipeline.VString}}, 0)
	s.Insert("t", int64(1), "a")
	s.Insert("t", int64(2), "b")
	s.Commit()
	rec := runOK(t, r.target(t, func(c *Config) { c.DSN = userDSN(r.node, user, "pw") }), s.Msgs)
	if got := r.Rows(t, "t"); !slices.Equal(got, []string{"1|a", "2|b"}) {
		t.Fatalf("rows %q", got)
	}
	stmts := rec.get()
	if countPrefix(stmts, "BINLOG ") != 1 || countPrefix(stmts, binRowsPrefix) != 0 || countPrefix(stmts, "INSERT INTO "+q(r.db, "t")) != 1 {
		t.Fatalf("want one refused format description and the rows as SQL: %q", stmts)
	}
}

// TestBinaryApplyChunks: a batch goes as several statements, one in flight
// while the next is encoded; a statement refused in the middle leaves the
// ones before it applied and the rest to SQL, in order.
func TestBinaryApplyChunks(t *testing.T) {
	r := newReplica(t, testenv.Replica1)
	r.Setup(t, "CREATE TABLE `t` (`id` BIGINT NOT NULL PRIMARY KEY, `v` VARCHAR(20) NULL, `n` INT NOT NULL)",
		"INSERT INTO `t` VALUES (700, 'stale', -1)")
	cols := []pipeline.Column{{Name: "id", Kind: pipeline.VInt}, {Name: "v", Kind: pipeline.VString}, {Name: "n", Kind: pipeline.VInt}}
	s := sinktest.NewScript(r.db)
	s.Table("t", cols, 0)
	const rows = 3*binChunkRows - 100
	for i := int64(1); i <= rows; i++ {
		s.Insert("t", i, fmt.Sprintf("v%d", i), i)
	}
	s.Commit()
	for i := int64(1); i <= rows; i += 2 {
		s.Update("t", []any{i}, i, fmt.Sprintf("u%d", i), -i)
	}
	s.Commit()
	tgt := r.target(t)
	rec, err := runRecorded(t, tgt, s.Msgs, sink.WorkerConfig{MaxBatchRows: rows}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Rows(t, "t"), chunksWant(rows); !slices.Equal(got, want) {
		t.Fatalf("%d rows, want %d; first: %q", len(got), len(want), got[:min(3, len(got))])
	}
	stmts := rec.get()
	// inserts: chunk 1 applied, chunk 2 refused (row 700), the rest as SQL;
	// updates (700 rows): 2 chunks.
	if n := countPrefix(stmts, binRowsPrefix); n != 4 {
		t.Errorf("%d BINLOG statements of rows, want 4", n)
	}
	if countPrefix(stmts, "SET character_set_client=latin1") != 2 || countPrefix(stmts, "SET character_set_client=utf8mb4") != 2 {
		t.Errorf("character_set_client not set and restored once per batch: %d, %d",
			countPrefix(stmts, "SET character_set_client=latin1"), countPrefix(stmts, "SET character_set_client=utf8mb4"))
	}
}

// chunksWant is the table of TestBinaryApplyChunks after its two
// transactions: odd rows updated.
func chunksWant(rows int64) []string {
	var want []string
	for i := int64(1); i <= rows; i++ {
		if i%2 == 1 {
			want = append(want, fmt.Sprintf("%d|u%d|%d", i, i, -i))
		} else {
			want = append(want, fmt.Sprintf("%d|v%d|%d", i, i, i))
		}
	}
	slices.Sort(want)
	return want
}

// rowsEventImages decodes the BINLOG statements of row events in stmts and
// returns, for each rows event of an update or delete, its table and the
// columns of its before image.
func rowsEventImages(t testing.TB, stmts []string) (tables []string, before [][]int) {
	t.Helper()
	for _, s := range stmts {
		if !strings.HasPrefix(s, binRowsPrefix) {
			continue
		}
		ev := decodeBinlog(t, s)
		table := ""
		for len(ev) >= eventHeaderBytes {
			typ, size := ev[4], int(binary.LittleEndian.Uint32(ev[9:]))
			if size < eventHeaderBytes || size > len(ev) {
				t.Fatalf("event of type %d has size %d of %d bytes left", typ, size, len(ev))
			}
			body := ev[eventHeaderBytes:size]
			switch typ {
			case evTableMap:
				db := body[9 : 9+int(body[8])]
				name := body[8+len(db)+3:]
				table = string(name[:bytes.IndexByte(name, 0)])
			case evUpdateRowsV1, evDeleteRowsV1:
				tables, before = append(tables, table), append(before, beforeColumns(body))
			}
			ev = ev[size:]
		}
	}
	return tables, before
}

// beforeColumns lists the columns of the before image of a rows event's
// body (the tests' tables have under 251 columns).
func beforeColumns(body []byte) []int {
	var cols []int
	for i := range int(body[8]) {
		if body[9+i/8]&(1<<(i%8)) != 0 {
			cols = append(cols, i)
		}
	}
	return cols
}

// TestBinaryApplyKeyImages: the before images of updates and deletes carry
// only the primary key when the replica's is the events' (here a two-column
// key, not in column order), and are full when it is not.
func TestBinaryApplyKeyImages(t *testing.T) {
	r := newReplica(t, testenv.Replica1)
	r.Setup(t,
		"CREATE TABLE `ck` (`a` INT NOT NULL, `v` VARCHAR(20) NULL, `b` BIGINT NOT NULL, `w` INT NULL, PRIMARY KEY (`b`, `a`))",
		"CREATE TABLE `other` (`id` BIGINT NOT NULL, `u` INT NOT NULL PRIMARY KEY, `v` VARCHAR(10) NULL)")
	s := keyImagesScript(r.db)
	rec := runOK(t, r.target(t), s.Msgs)
	for _, name := range []string{"ck", "other"} {
		got := r.Rows(t, name)
		slices.Sort(got)
		if want := s.Expected(name); !slices.Equal(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", name, got, want)
		}
	}
	stmts := rec.get()
	for _, name := range []string{"ck", "other"} {
		if n := countPrefix(stmts, "INSERT INTO "+q(r.db, name)) + countPrefix(stmts, "DELETE FROM "+q(r.db, name)); n > 0 {
			t.Errorf("%d statements of %s went as SQL, want none", n, name)
		}
	}
	checkBeforeImages(t, stmts, map[string][]int{"ck": {0, 2}, "other": {0, 1, 2}})
}

// keyImagesScript: ck's primary key is (b, a), the events' too; other's is
// u on the replica, id in the events. Inserts, updates (one moving a key),
// deletes.
func keyImagesScript(db string) *sinktest.Script {
	s := sinktest.NewScript(db)
	s.Table("ck", []pipeline.Column{{Name: "a", Kind: pipeline.VInt}, {Name: "v", Kind: pipeline.VString},
		{Name: "b", Kind: pipeline.VInt}, {Name: "w", Kind: pipeline.VInt}}, 2, 0)
	s.Table("other", []pipeline.Column{{Name: "id", Kind: pipeline.VInt}, {Name: "u", Kind: pipeline.VInt},
		{Name: "v", Kind: pipeline.VString}}, 0)
	for i := range int64(20) {
		s.Insert("ck", i%3, fmt.Sprintf("v%d", i), i, nil)
		s.Insert("other", i, 100+i, fmt.Sprintf("o%d", i))
	}
	s.Commit()
	for i := range int64(10) {
		s.Update("ck", []any{i, i % 3}, i%3, fmt.Sprintf("changed%d", i), i, i*7)
		s.Update("other", []any{i}, i, 200+i, nil)
	}
	s.Update("ck", []any{int64(10), int64(1)}, int64(5), "moved", int64(110), nil) // key change
	s.Update("other", []any{int64(10)}, int64(110), int64(300), "moved")
	for i := range int64(4) {
		s.Delete("ck", 15+i, (15+i)%3)
		s.Delete("other", 15+i)
	}
	s.Commit()
	return s
}

// checkBeforeImages checks the before-image columns of every update and
// delete rows event in stmts against want, by table, and that each table
// had at least two.
func checkBeforeImages(t *testing.T, stmts []string, want map[string][]int) {
	t.Helper()
	tables, before := rowsEventImages(t, stmts)
	seen := map[string]int{}
	for i, name := range tables {
		seen[name]++
		if !slices.Equal(before[i], want[name]) {
			t.Errorf("a rows event of %s has before-image columns %v, want %v", name, before[i], want[name])
		}
	}
	if seen["ck"] < 2 || seen["other"] < 2 {
		t.Errorf("update and delete events per table: %v, want 2 each", seen)
	}
}

// TestBinaryApplyEngines: row events go only to InnoDB base tables. A
// system-versioned table has row_start/row_end columns that
// information_schema.COLUMNS does not list (row events would write no
// history); a MyISAM table cannot roll back a failed statement alone (the
// rows before the failing one would be applied twice).
func TestBinaryApplyEngines(t *testing.T) {
	rs, _, err := runEngines(t, sqlOnly)
	if err != nil {
		t.Fatalf("SQL path: %v", err)
	}
	rb, stmts, err := runEngines(t)
	if err != nil {
		t.Fatalf("binary apply: %v", err)
	}
	if n := countPrefix(stmts, binRowsPrefix); n != 0 {
		t.Errorf("%d BINLOG statements, want none: %q", n, stmts)
	}
	if got, want := svHistory(t, rb), svHistory(t, rs); !slices.Equal(got, want) || len(want) != 2 {
		t.Errorf("sv history (id|v|row_start set|current): got %q, want %q (two versions)", got, want)
	}
	if got, want := rb.Rows(t, "my"), rs.Rows(t, "my"); !slices.Equal(got, want) || !slices.Equal(want, []string{"10|10", "3|33"}) {
		t.Errorf("my: got %q, want %q", got, want)
	}
}

// runEngines applies a history to sv (system-versioned) and my (MyISAM,
// allowed), with row 3 of my deleted behind the sink's back before the
// second transaction, which moves key 1 to 10 and then updates row 3.
func runEngines(t *testing.T, mods ...func(*Config)) (*replica, []string, error) {
	mods = append(mods, allowNonTransactional)
	cols := []pipeline.Column{{Name: "id", Kind: pipeline.VInt}, {Name: "v", Kind: pipeline.VInt}}
	r := newReplica(t, testenv.Replica1)
	r.Setup(t, "CREATE TABLE `sv` (`id` BIGINT NOT NULL PRIMARY KEY, `v` BIGINT NULL) WITH SYSTEM VERSIONING",
		"CREATE TABLE `my` (`id` BIGINT NOT NULL PRIMARY KEY, `v` BIGINT NULL) ENGINE=MyISAM")
	s := sinktest.NewScript(r.db)
	s.Table("sv", cols, 0)
	s.Table("my", cols, 0)
	s.Insert("sv", int64(1), int64(1))
	s.Insert("my", int64(1), int64(1))
	s.Insert("my", int64(3), int64(3))
	s.Commit()
	cut := len(s.Msgs)
	s.Update("sv", []any{int64(1)}, int64(1), int64(2))
	s.Update("my", []any{int64(1)}, int64(10), int64(10))
	s.Update("my", []any{int64(3)}, int64(3), int64(33))
	s.Commit()
	rec := runOK(t, r.target(t, mods...), s.Msgs[:cut])
	testenv.Exec(t, r.root, "DELETE FROM "+q(r.db, "my")+" WHERE `id` = 3")
	_, err := runRecorded(t, r.target(t, mods...), s.Msgs, sink.WorkerConfig{}, rec)
	return r, rec.get(), err
}

// svHistory lists every version of sv's rows.
func svHistory(t *testing.T, r *replica) []string {
	t.Helper()
	return queryStrings(t, r.root, "SELECT CONCAT_WS('|', id, v, row_start > '1970-01-01 00:00:01', row_end = '2038-01-19 03:14:07.999999') "+
		"FROM "+q(r.db, "sv")+" FOR SYSTEM_TIME ALL ORDER BY row_end, id")
}

// TestBinaryApplyInvalidDates: a day its month does not have (stored by a
// master running ALLOW_INVALID_DATES) goes as SQL, which refuses it in the
// replica's strict mode, as before row events; a valid one goes as a row
// event.
func TestBinaryApplyInvalidDates(t *testing.T) {
	cols := []pipeline.Column{{Name: "id", Kind: pipeline.VInt}, {Name: "d", Kind: pipeline.VDate}, {Name: "dt", Kind: pipeline.VDateTime}}
	for _, c := range []struct {
		d, dt string
		ok    bool
	}{
		{"2021-02-30", "2021-03-01 12:00:00", false},
		{"2021-03-01", "2021-04-31 12:00:00", false},
		{"2023-02-29", "2021-03-01 12:00:00", false},
		{"0000-02-29", "2021-03-01 12:00:00", false},
		{"2021-03-01", "0000-02-29 08:00:00", false},
		{"2024-02-29", "2024-04-30 23:59:59", true},
		{"0004-02-29", "0000-02-28 00:00:01", true},
		{"0000-00-00", "2024-00-00 00:00:00", true},
	} {
		t.Run(c.d+"/"+c.dt, func(t *testing.T) {
			r := newReplica(t, testenv.Replica1)
			r.Setup(t, "CREATE TABLE `t` (`id` BIGINT NOT NULL PRIMARY KEY, `d` DATE NULL, `dt` DATETIME NULL)")
			s := sinktest.NewScript(r.db)
			s.Table("t", cols, 0)
			s.Insert("t", int64(1), c.d, c.dt)
			s.Commit()
			rec, err := runRecorded(t, r.target(t), s.Msgs, sink.WorkerConfig{}, nil)
			binlogs := countPrefix(rec.get(), binRowsPrefix)
			if c.ok {
				if err != nil || binlogs != 1 {
					t.Fatalf("err %v, %d BINLOG statements; want it applied as one", err, binlogs)
				}
				if got := r.Rows(t, "t"); !slices.Equal(got, []string{"1|" + c.d + "|" + c.dt}) {
					t.Fatalf("stored %q", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "1292") || binlogs != 0 {
				t.Fatalf("err %v, %d BINLOG statements; want SQL's error 1292 and no row event", err, binlogs)
			}
		})
	}
}

// TestBinaryApplyTransactionGone: a refused row-event statement goes on as
// SQL only while the transaction it was in is still open on the server.
func TestBinaryApplyTransactionGone(t *testing.T) {
	r := newReplica(t, testenv.Replica1)
	r.Setup(t, "CREATE TABLE `t` (`id` BIGINT NOT NULL PRIMARY KEY, `v` BIGINT NULL)")
	tbl := &pipeline.Table{Database: r.db, Name: "t", PrimaryKey: []int{0},
		Columns: []pipeline.Column{{Name: "id", Kind: pipeline.VInt}, {Name: "v", Kind: pipeline.VInt}}}
	tgt, bt := r.binTable(t, tbl)
	ctx := context.Background()
	missing := &mysql.MySQLError{Number: gomysql.ER_KEY_NOT_FOUND, Message: "Can't find record"}
	if _, err := tgt.ex.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if ok, err := tgt.binResult(ctx, bt, missing); ok || err != nil {
		t.Fatalf("in a transaction: ok %v, err %v; want the SQL path (false, nil)", ok, err)
	}
	checkPassedOn(t, tgt, bt)
	if _, err := tgt.ex.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	checkRolledBack(t, tgt, bt, missing)
	// A connection lost before the check took the transaction with it: the
	// worker retries, whatever the refused statement's error was.
	testenv.Exec(t, r.root, fmt.Sprintf("KILL %d", tgt.connID))
	ok, err := tgt.binResult(ctx, bt, missing)
	if ok || err == nil || sink.Classify(err) != sink.Transient {
		t.Fatalf("connection lost: ok %v, err %v (class %v); want a transient error", ok, err, sink.Classify(err))
	}
}

// checkRolledBack: a refused statement after the transaction was rolled
// back is a human error with its own advice.
func checkRolledBack(t *testing.T, tgt *Target, bt *binTable, refused error) {
	t.Helper()
	ok, err := tgt.binResult(context.Background(), bt, refused)
	if ok || !errors.Is(err, sink.ErrTxnRolledBack) || !errors.Is(err, refused) {
		t.Fatalf("after the transaction was rolled back: ok %v, err %v; want the error and ErrTxnRolledBack", ok, err)
	}
	if sink.Classify(err) != sink.Human || !strings.Contains(sink.Advice(err), "restart the worker") {
		t.Fatalf("class %v, advice %q; want a human error with its own advice, not 1032's", sink.Classify(err), sink.Advice(err))
	}
}

// checkPassedOn: these go to the worker as they are, even while the
// transaction is open: the worker retries from the checkpoint (a deadlock,
// a lock wait timeout) or stops with advice (a full lock table, which rolled
// all of it back; a statement over max_allowed_packet, which closed the
// connection).
func checkPassedOn(t *testing.T, tgt *Target, bt *binTable) {
	t.Helper()
	for _, code := range []uint16{gomysql.ER_LOCK_DEADLOCK, gomysql.ER_LOCK_WAIT_TIMEOUT, gomysql.ER_LOCK_TABLE_FULL, gomysql.ER_NET_PACKET_TOO_LARGE} {
		in := &mysql.MySQLError{Number: code}
		if ok, err := tgt.binResult(context.Background(), bt, in); ok || err != in {
			t.Fatalf("error %d in a transaction: ok %v, err %v; want the error itself", code, ok, err)
		}
	}
}

// TestBinaryApplyStatementSize: a statement's row event stays within the
// size limit; the row that would pass it starts the next statement.
func TestBinaryApplyStatementSize(t *testing.T) {
	defer func(n int64) { binMaxEvent = n }(binMaxEvent)
	binMaxEvent = 1000
	r := newReplica(t, testenv.Replica1)
	r.Setup(t, "CREATE TABLE `t` (`id` BIGINT NOT NULL PRIMARY KEY, `v` VARCHAR(300) NULL)")
	s := sinktest.NewScript(r.db)
	s.Table("t", []pipeline.Column{{Name: "id", Kind: pipeline.VInt}, {Name: "v", Kind: pipeline.VString}}, 0)
	for i := range int64(40) {
		s.Insert("t", i, strings.Repeat("x", 50+int(i)*5))
	}
	s.Commit()
	rec := runOK(t, r.target(t), s.Msgs)
	if got, want := r.Rows(t, "t"), s.Expected("t"); len(got) != 40 || !slices.Equal(sortedCopy(got), want) {
		t.Fatalf("rows %q, want %q", got, want)
	}
	n := 0
	for _, st := range rec.get() {
		if !strings.HasPrefix(st, binRowsPrefix) {
			continue
		}
		n++
		ev := decodeBinlog(t, st)
		mapSize := int(binary.LittleEndian.Uint32(ev[9:]))
		if rows := len(ev) - mapSize; int64(rows) > binMaxEvent {
			t.Errorf("a rows event of %d bytes, over the limit of %d", rows, binMaxEvent)
		}
	}
	if n < 6 { // ~6,400 bytes of rows
		t.Errorf("%d BINLOG statements, want the rows cut into at least 6", n)
	}
}

// decodeBinlog returns the events of a BINLOG statement.
func decodeBinlog(t testing.TB, stmt string) []byte {
	t.Helper()
	ev, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(strings.TrimPrefix(stmt, "BINLOG '"), "'"))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
