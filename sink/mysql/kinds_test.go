package mysql

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// kindsTable has a column of every MariaDB type family rowcast carries.
const kindsTable = "CREATE TABLE `kinds` (`id` INT NOT NULL PRIMARY KEY, " +
	"`i8` TINYINT NULL, `i64` BIGINT NULL, `u64` BIGINT UNSIGNED NULL, `f` FLOAT NULL, `d` DOUBLE NULL, " +
	"`num` DECIMAL(30,10) NULL, `s` VARCHAR(50) NULL, `txt` TEXT NULL, `bin` VARBINARY(20) NULL, `blb` LONGBLOB NULL, " +
	"`dt` DATE NULL, `dtm` DATETIME(6) NULL, `ts` TIMESTAMP(6) NULL, `tm` TIME(6) NULL, `y` YEAR NULL, " +
	"`b64` BIT(64) NULL, `b5` BIT(5) NULL, `e` ENUM('a','b','c') NULL, `st` SET('x','y','z') NULL, " +
	"`j` JSON NULL, `g` GEOMETRY NULL, `ch` CHAR(3) NULL) ENGINE=InnoDB"

var kindsColumns = []pipeline.Column{
	{Name: "id", Kind: pipeline.VInt}, {Name: "i8", Kind: pipeline.VInt}, {Name: "i64", Kind: pipeline.VInt},
	{Name: "u64", Kind: pipeline.VUint}, {Name: "f", Kind: pipeline.VFloat}, {Name: "d", Kind: pipeline.VDouble},
	{Name: "num", Kind: pipeline.VDecimal, SQLType: "decimal(30,10)"}, {Name: "s", Kind: pipeline.VString},
	{Name: "txt", Kind: pipeline.VString}, {Name: "bin", Kind: pipeline.VBytes}, {Name: "blb", Kind: pipeline.VBytes},
	{Name: "dt", Kind: pipeline.VDate}, {Name: "dtm", Kind: pipeline.VDateTime}, {Name: "ts", Kind: pipeline.VTimestamp},
	{Name: "tm", Kind: pipeline.VTime}, {Name: "y", Kind: pipeline.VYear}, {Name: "b64", Kind: pipeline.VBit},
	{Name: "b5", Kind: pipeline.VBit}, {Name: "e", Kind: pipeline.VEnum}, {Name: "st", Kind: pipeline.VSet},
	{Name: "j", Kind: pipeline.VJSON}, {Name: "g", Kind: pipeline.VGeometry}, {Name: "ch", Kind: pipeline.VString},
}

// point is a POINT in MySQL's internal geometry form: a 4-byte
// little-endian SRID followed by the WKB.
func point(srid uint32, x, y float64) []byte {
	b := binary.LittleEndian.AppendUint32(nil, srid)
	b = append(b, 1)                           // little-endian WKB
	b = binary.LittleEndian.AppendUint32(b, 1) // wkbPoint
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(y))
}

// TestValueKinds writes every value kind at its edges through the target
// and reads it back with SQL.
func TestValueKinds(t *testing.T) {
	r := newReplica(t, testenv.Replica1)
	r.Setup(t, kindsTable)
	blob := make([]byte, 1<<20)
	rand.Read(blob)
	row1 := []any{int64(1), int64(-128), int64(math.MinInt64), uint64(math.MaxUint64), float64(float32(1.1)),
		math.MaxFloat64, "-12345678901234567890.0123456789", "héllo 😀 'quoted' \\ back", strings.Repeat("t", 65535),
		[]byte{0, 1, 2, 0xff, '\'', '\\'}, blob, "0000-00-00", "0000-00-00 00:00:00.000000", "2038-01-19 03:14:07.999999",
		"-838:59:59.000000", int64(2155), uint64(math.MaxUint64), uint64(31), "c", "x,z", `{"a": [1, 2.5, "x"], "b": null}`,
		point(4326, 1, 2), "ab"}
	row2 := make([]any, len(kindsColumns))
	row2[0] = int64(2)
	row3 := []any{int64(3), int64(127), int64(math.MaxInt64), uint64(0), float64(float32(-3.4e38)), -0.5,
		"0.0000000001", "", "", []byte{}, []byte{}, "2024-02-29", "2024-02-29 23:59:59.123456", "1970-01-01 00:00:01.000000",
		"12:34:56.000001", int64(1901), uint64(0), uint64(0), "a", "", "[]", point(0, -1.5, 1e-300), ""}
	row3b := append([]any(nil), row3...)
	row3b[7], row3b[18], row3b[19] = "updated", "b", "x,y,z"

	s := sinktest.NewScript(r.db)
	s.Table("kinds", kindsColumns, 0)
	s.Insert("kinds", row1...)
	s.Insert("kinds", row2...)
	s.Insert("kinds", row3...)
	s.Commit()
	s.Update("kinds", []any{int64(3)}, row3b...)
	s.Commit()
	if _, err := sinktest.RunWorker(context.Background(), t, r.target(t), sinktest.NewInput(s.Msgs), sink.WorkerConfig{}, nil); err != nil {
		t.Fatal(err)
	}

	want := map[int64][]any{1: row1, 2: row2, 3: row3b}
	for _, got := range kindsRows(t, r, ",ST_AsText(`g`),ST_SRID(`g`)") {
		id, _ := strconv.ParseInt(string(got[0]), 10, 64)
		exp := want[id]
		delete(want, id)
		compareKinds(t, string(got[0]), exp, got)
		if id == 1 && (string(got[len(got)-2]) != "POINT(1 2)" || string(got[len(got)-1]) != "4326") {
			t.Errorf("row 1 geometry: %s SRID %s", got[len(got)-2], got[len(got)-1])
		}
	}
	if len(want) != 0 {
		t.Fatalf("rows missing: %v", want)
	}
}

// kindsRows reads the kinds table in id order: every column of
// kindsColumns as MariaDB returns it (BIT as a number), then the extra
// columns.
func kindsRows(t *testing.T, r *replica, extra string) [][][]byte {
	t.Helper()
	rows, err := r.root.Query("SELECT `id`,`i8`,`i64`,`u64`,`f`,`d`,`num`,`s`,`txt`,`bin`,`blb`,`dt`,`dtm`,`ts`,`tm`,`y`," +
		"`b64`+0,`b5`+0,`e`,`st`,`j`,`g`,`ch`" + extra + " FROM `kinds` ORDER BY `id`")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][][]byte
	for rows.Next() {
		got := make([][]byte, len(cols))
		ptrs := make([]any, len(got))
		for i := range got {
			ptrs[i] = &got[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, got)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// compareKinds compares the values sent in row id with those read back.
func compareKinds(t *testing.T, id string, sent []any, got [][]byte) {
	t.Helper()
	for i, c := range kindsColumns {
		if msg := compareValue(c, sent[i], got[i]); msg != "" {
			t.Errorf("row %s column %s (%s): %s", id, c.Name, c.Kind, msg)
		}
	}
}

// compareValue compares a sent value with the text MariaDB returns for it.
func compareValue(c pipeline.Column, sent any, got sql.RawBytes) string {
	if sent == nil || got == nil {
		if (sent == nil) != (got == nil) {
			return "NULL mismatch: sent " + sinktest.Format(sent) + ", got " + string(got)
		}
		return ""
	}
	switch c.Kind {
	case pipeline.VFloat, pipeline.VDouble:
		if sameFloat(c.Kind, sent.(float64), got) {
			return ""
		}
	case pipeline.VBytes, pipeline.VGeometry:
		return compareBytes(sent.([]byte), got)
	default:
		if sinktest.Format(sent) == string(got) {
			return ""
		}
	}
	s := sinktest.Format(sent)
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return "sent " + s + ", got " + string(got[:min(len(got), 80)])
}

// sameFloat reports whether got is the text of sent, a FLOAT or DOUBLE.
func sameFloat(kind pipeline.ValueKind, sent float64, got sql.RawBytes) bool {
	f, err := strconv.ParseFloat(string(got), 64)
	if err != nil {
		return false
	}
	if kind == pipeline.VFloat {
		return float32(f) == float32(sent)
	}
	return f == sent
}

// compareBytes compares binary values, "" when equal.
func compareBytes(sent []byte, got sql.RawBytes) string {
	if bytes.Equal(got, sent) {
		return ""
	}
	if len(got) > 64 {
		got = got[:64]
	}
	return "sent " + hex.EncodeToString(sent[:min(64, len(sent))]) + ", got " + hex.EncodeToString(got)
}
