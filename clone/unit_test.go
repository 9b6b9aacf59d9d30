package clone

import (
	"database/sql/driver"
	"errors"
	"testing"

	"github.com/rowcast/rowcast/checkpoint"
)

func TestHasEmptyMember(t *testing.T) {
	for colType, want := range map[string]bool{
		"enum('a','b')":      false,
		"enum('','a')":       true,
		"enum('a','')":       true,
		"enum('x,''y','z')":  false, // a quote inside a member
		"enum('a''','')":     true,
		"enum('''','b')":     false, // the member is one quote
		"set('a','b')":       false,
		"enum('a','b','c')":  false,
		"enum('(','''','')":  true,
		"enum('it''s','ok')": false,
	} {
		if got := hasEmptyMember(colType); got != want {
			t.Errorf("hasEmptyMember(%s) = %v, want %v", colType, got, want)
		}
	}
}

func TestAppendRow(t *testing.T) {
	cols := []column{{name: "s", kind: kindText}, {name: "n", kind: kindInt}, {name: "y", kind: kindYear},
		{name: "f", kind: kindFloat}, {name: "e", kind: kindEnum}, {name: "e2", kind: kindEnum, emptyMember: true}, {name: "u", kind: kindInt}}
	vals := []driver.Value{[]byte("a\\b\tc\nd\re\x00f\\N"), int64(-5), int64(0), float64(0.1), []byte{}, []byte{}, uint64(18446744073709551615)}
	b, warnings, err := appendRow([]byte("x"), cols, vals)
	want := "xa\\\\b\\tc\\nd\\re\\0f\\\\N\t-5\t0000\t0.1\t\t\t18446744073709551615\n"
	if err != nil || string(b) != want || warnings != 1 {
		t.Fatalf("appendRow = %q, %d warnings, %v; want %q, 1 warning (the ENUM without an empty member)", b, warnings, err, want)
	}
	b, _, _ = appendRow(nil, cols[:3], []driver.Value{nil, []byte{}, int64(2024)})
	if string(b) != "\\N\t\t2024\n" {
		t.Fatalf("NULL, empty, YEAR: %q", b)
	}
	if _, _, err := appendRow(nil, cols[:1], []driver.Value{true}); !errors.Is(err, ErrTable) {
		t.Fatalf("a value of an unknown type: %v", err)
	}
	if b, _ := appendValue(nil, column{kind: kindFloat}, float32(16777216)); string(b) != "1.6777216e+07" {
		t.Fatalf("float32: %q", b)
	}
}

func TestChunkSQL(t *testing.T) {
	d := &tableDef{name: tableName{"d", "t`x"}, cols: []column{{name: "a", kind: kindText, charset: "latin1"},
		{name: "f", kind: kindFloat}, {name: "b", kind: kindInt}, {name: "bit", kind: kindBit}}, key: []int{0, 2}}
	cases := []struct {
		after []string
		want  string
	}{
		{nil, "SELECT `a`,CAST(`f` AS DOUBLE),`b`,CAST(`bit` AS UNSIGNED) FROM `d`.`t``x` FORCE INDEX (PRIMARY) ORDER BY `a`,`b` LIMIT 10"},
		{[]string{"_latin1 X'41'", "7"}, "SELECT `a`,CAST(`f` AS DOUBLE),`b`,CAST(`bit` AS UNSIGNED) FROM `d`.`t``x` FORCE INDEX (PRIMARY) " +
			"WHERE (`a` > _latin1 X'41') OR (`a` = _latin1 X'41' AND `b` > 7) ORDER BY `a`,`b` LIMIT 10"},
	}
	for _, c := range cases {
		if got := d.chunkSQL(c.after, 10); got != c.want {
			t.Errorf("chunkSQL(%v):\n got %s\nwant %s", c.after, got, c.want)
		}
	}
	d.key = nil
	if got := d.chunkSQL(nil, 10); got != "SELECT `a`,CAST(`f` AS DOUBLE),`b`,CAST(`bit` AS UNSIGNED) FROM `d`.`t``x`" {
		t.Errorf("without a key: %s", got)
	}
}

func TestKeyLiteral(t *testing.T) {
	for _, c := range []struct {
		col  column
		v    driver.Value
		want string
	}{
		{column{kind: kindInt}, int64(-3), "-3"},
		{column{kind: kindInt}, uint64(18446744073709551615), "18446744073709551615"},
		{column{kind: kindText, charset: "utf8mb4"}, []byte("é'"), "_utf8mb4 X'c3a927'"},
		{column{kind: kindBinary}, []byte{0, 0xff}, "X'00ff'"},
		{column{kind: kindDecimal}, []byte("-12.50"), "-12.50"},
		{column{kind: kindTemporal}, []byte("2024-01-02 03:04:05.000006"), "'2024-01-02 03:04:05.000006'"},
	} {
		got, err := keyLiteral(c.col, c.v)
		if err != nil || got != c.want {
			t.Errorf("keyLiteral(%v, %v) = %s, %v; want %s", c.col, c.v, got, err, c.want)
		}
	}
	if _, err := keyLiteral(column{name: "x"}, 1.5); !errors.Is(err, ErrTable) {
		t.Errorf("a float key: %v", err)
	}
}

func TestLoadSQL(t *testing.T) {
	d := &tableDef{name: tableName{"d", "t"}, cols: []column{{name: "a", kind: kindText}, {name: "b", kind: kindBit},
		{name: "j", kind: kindJSON}, {name: "ip", kind: kindTyped}}}
	want := " INTO TABLE `d`.`t` CHARACTER SET binary FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' " +
		"(`a`,@v1,@v2,@v3) SET `b`=CAST(@v1 AS UNSIGNED),`j`=CONVERT(@v2 USING utf8mb4),`ip`=CONVERT(@v3 USING utf8mb4)"
	if got := loadSQL(d); got != want {
		t.Errorf("loadSQL:\n got %s\nwant %s", got, want)
	}
}

func TestSelector(t *testing.T) {
	s, err := newSelector([]string{`^shop\.`, `^crm\.users$`}, []string{`\.tmp_`}, "rowcast")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"shop.orders": true, "shop.tmp_x": false, "crm.users": true, "crm.notes": false, "shop.": true, "crm.": false,
		"mysql.user": false, "rowcast.checkpoint": false,
	} {
		if got := s.replicated(name); got != want {
			t.Errorf("replicated(%s) = %v, want %v", name, got, want)
		}
	}
	all, _ := newSelector(nil, nil, "rc")
	if !all.replicated("any.thing") || all.replicated("Performance_Schema.x") || all.replicated("rc.checkpoint") {
		t.Error("an empty include admits every table but the system and bookkeeping schemas")
	}
	if _, err := newSelector([]string{"("}, nil, ""); err == nil {
		t.Error("a bad expression is an error")
	}
}

func TestAddView(t *testing.T) {
	var views []checkpoint.State
	for _, o := range []int64{20, 10, 20, 30, 10} {
		views = addView(views, checkpoint.State{Offset: o})
	}
	if len(views) != 3 || views[0].Offset != 10 || views[1].Offset != 20 || views[2].Offset != 30 {
		t.Fatalf("views %+v", views)
	}
	if floor(views[0]) != 9 {
		t.Fatalf("floor of a view at next offset 10: %d, want 9", floor(views[0]))
	}
}
