package clickhouse

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// typeCase is a column, a value as the reader holds it (docs/FORMAT.md),
// the ClickHouse type it maps to and the value as ClickHouse prints it (hex
// for bytes).
type typeCase struct {
	sqlType string
	kind    pipeline.ValueKind
	value   any
	chType  string
	want    string
}

var typeCases = []typeCase{
	{"tinyint(4)", pipeline.VInt, int64(-128), "Nullable(Int8)", "-128"},
	{"tinyint(1)", pipeline.VInt, int64(1), "Nullable(Int8)", "1"},
	{"smallint(5) unsigned", pipeline.VUint, uint64(65535), "Nullable(UInt16)", "65535"},
	{"mediumint(9)", pipeline.VInt, int64(-8388608), "Nullable(Int32)", "-8388608"},
	{"int(10) unsigned", pipeline.VUint, uint64(4294967295), "Nullable(UInt32)", "4294967295"},
	{"bigint(20)", pipeline.VInt, int64(math.MinInt64), "Nullable(Int64)", "-9223372036854775808"},
	{"bigint(20) unsigned", pipeline.VUint, uint64(math.MaxUint64), "Nullable(UInt64)", "18446744073709551615"},
	{"decimal(10,4)", pipeline.VDecimal, "-999999.9999", "Nullable(Decimal(10, 4))", "-999999.9999"},
	{"decimal(5,0) unsigned", pipeline.VDecimal, "99999", "Nullable(Decimal(5, 0))", "99999"},
	{"decimal(3,3)", pipeline.VDecimal, "-0.999", "Nullable(Decimal(3, 3))", "-0.999"},
	{"decimal(18,2)", pipeline.VDecimal, "-9999999999999999.99", "Nullable(Decimal(18, 2))", "-9999999999999999.99"},
	{"decimal(38,10)", pipeline.VDecimal, "-9999999999999999999999999999.9999999999", "Nullable(Decimal(38, 10))", "-9999999999999999999999999999.9999999999"},
	{"decimal(65,30)", pipeline.VDecimal, "-99999999999999999999999999999999999.999999999999999999999999999999", "Nullable(String)", "-99999999999999999999999999999999999.999999999999999999999999999999"},
	{"float", pipeline.VFloat, float64(float32(0.1)), "Nullable(Float32)", "0.1"},
	{"double", pipeline.VDouble, 1.7976931348623157e308, "Nullable(Float64)", "1.7976931348623157e308"},
	{"bit(64)", pipeline.VBit, uint64(math.MaxUint64), "Nullable(UInt64)", "18446744073709551615"},
	{"date", pipeline.VDate, "0000-00-00", "Nullable(String)", "0000-00-00"},
	{"date", pipeline.VDate, "9999-12-31", "Nullable(String)", "9999-12-31"},
	{"datetime(6)", pipeline.VDateTime, "1000-01-01 00:00:00.000001", "Nullable(String)", "1000-01-01 00:00:00.000001"},
	{"datetime", pipeline.VDateTime, "0000-00-00 00:00:00", "Nullable(String)", "0000-00-00 00:00:00"},
	{"timestamp", pipeline.VTimestamp, "2038-01-19 03:14:07", "Nullable(DateTime('UTC'))", "2038-01-19 03:14:07"},
	{"timestamp", pipeline.VTimestamp, "0000-00-00 00:00:00", "Nullable(DateTime('UTC'))", "0000-00-00 00:00:00"},
	{"timestamp(6)", pipeline.VTimestamp, "2001-09-09 01:46:40.500000", "Nullable(String)", "2001-09-09 01:46:40.500000"},
	{"time(6)", pipeline.VTime, "-838:59:59.000000", "Nullable(String)", "-838:59:59.000000"},
	{"year(4)", pipeline.VYear, int64(0), "Nullable(UInt16)", "0"},
	{"varchar(100)", pipeline.VString, "😀 4-byte 𝄞 ñ\ttab", "Nullable(String)", "😀 4-byte 𝄞 ñ\ttab"},
	{"varbinary(20)", pipeline.VBytes, []byte{0, 0xff, 0}, "Nullable(String)", "00FF00"},
	{"enum('a','b','ç')", pipeline.VEnum, "ç", "Nullable(String)", "ç"},
	{"set('x','y','z')", pipeline.VSet, "x,y,z", "Nullable(String)", "x,y,z"},
	{"longtext", pipeline.VJSON, `{"a": [1, 2.5, "é", null]}`, "Nullable(String)", `{"a": [1, 2.5, "é", null]}`},
	{"geometry", pipeline.VGeometry, []byte{0xe6, 0x10, 0, 0, 1, 1, 0, 0, 0}, "Nullable(String)", "E61000000101000000"},
	{"inet6", pipeline.VString, "2001:db8::1", "Nullable(String)", "2001:db8::1"},
	{"uuid", pipeline.VString, "6ccd780c-baba-1026-9564-5b8c656024db", "Nullable(String)", "6ccd780c-baba-1026-9564-5b8c656024db"},
	{"int(11)", pipeline.VInt, nil, "Nullable(Int32)", `\N`},
}

// TestTypeValues applies a row of every kind through the worker and reads
// each value back from ClickHouse as it prints it, with the column's type.
func TestTypeValues(t *testing.T) {
	r := newReplica(t, Config{})
	s := sinktest.NewScript(r.db)
	cols := []pipeline.Column{{Name: "id", Kind: pipeline.VInt, SQLType: "int(11)"}}
	row := []any{int64(1)}
	for i, c := range typeCases {
		cols = append(cols, pipeline.Column{Name: fmt.Sprintf("c%d", i), Kind: c.kind, SQLType: c.sqlType})
		row = append(row, c.value)
	}
	s.Table("types", cols, 0)
	s.Insert("types", row...)
	s.Commit()
	if _, err := sinktest.RunWorker(context.Background(), t, r.target(t), sinktest.NewInput(s.Msgs), sink.WorkerConfig{}, nil); err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for _, row := range r.query(t, "SELECT name, type FROM system.columns WHERE database = "+quoteString(r.db)+" AND table = 'types'") {
		types[row[0]] = row[1]
	}
	var exprs []string
	for i, c := range typeCases {
		name := fmt.Sprintf("c%d", i)
		if _, ok := c.value.([]byte); ok {
			exprs = append(exprs, "hex("+name+")")
		} else {
			exprs = append(exprs, name)
		}
	}
	got := r.query(t, "SELECT "+strings.Join(exprs, ", ")+" FROM "+qualified(r.db, "types")+" FINAL")
	if len(got) != 1 {
		t.Fatalf("%d rows, want 1", len(got))
	}
	for i, c := range typeCases {
		if ty := types[fmt.Sprintf("c%d", i)]; ty != c.chType {
			t.Errorf("%s: ClickHouse type %s, want %s", c.sqlType, ty, c.chType)
		}
		if got[0][i] != c.want {
			t.Errorf("%s: ClickHouse holds %q, want %q", c.sqlType, got[0][i], c.want)
		}
	}
}

func TestDecimalOutOfRange(t *testing.T) {
	ct, _ := mapColumn(pipeline.Column{Name: "d", Kind: pipeline.VDecimal, SQLType: "decimal(4,2)"}, false)
	col := newColumn(ct)
	if err := col.add("99.999"); err == nil {
		t.Error("a DECIMAL with more fraction digits than the column's scale was taken")
	}
	if err := col.add("12.34"); err != nil {
		t.Error(err)
	}
}

func TestParseNullableTSV(t *testing.T) {
	rows := parseNullableTSV("1\t\\N\ta\\tb\\\\N\n")
	if len(rows) != 1 || *rows[0][0] != "1" || rows[0][1] != nil || *rows[0][2] != "a\tb\\N" {
		t.Fatalf("parseNullableTSV: %d rows", len(rows))
	}
	if parseNullableTSV("") != nil {
		t.Fatal("empty output is no rows")
	}
}
