package verify

import (
	"strings"
	"testing"
)

func TestKeyCond(t *testing.T) {
	cols := []string{"`a`", "`b`"}
	lit := func(i int) string { return []string{"1", "'x'"}[i] }
	if got, want := keyCond(cols, true, lit), "(`a` > 1 OR `a` = 1 AND `b` > 'x')"; got != want {
		t.Errorf("after: %s, want %s", got, want)
	}
	if got, want := keyCond(cols, false, lit), "(`a` < 1 OR `a` = 1 AND `b` <= 'x')"; got != want {
		t.Errorf("up to: %s, want %s", got, want)
	}
	m := &chTable{keyMaster: cols}
	where, args := m.masterRange([]any{int64(1), "x"}, []any{int64(2), "y"})
	if strings.Count(where, "?") != len(args) || len(args) != 6 {
		t.Errorf("placeholders of %s: %d args", where, len(args))
	}
}

func TestCHLiteral(t *testing.T) {
	m := &chTable{}
	for _, c := range []struct {
		v    any
		want string
	}{{int64(-5), "-5"}, {uint64(18446744073709551615), "18446744073709551615"}, {[]byte{0, 'a'}, `'\x00\x61'`}, {"2024-01-01 00:00:00", "'2024-01-01 00:00:00'"}, {`a'\`, `'a\'\\'`}} {
		if got := m.chLiteral(0, c.v); got != c.want {
			t.Errorf("chLiteral(%v) = %s, want %s", c.v, got, c.want)
		}
	}
}

func TestNormalFloatAndHash(t *testing.T) {
	if got := normalFloat("0.10000000149011612", 32); got != "0.1" {
		t.Errorf("FLOAT widened to DOUBLE: %s, want 0.1", got)
	}
	if got := normalFloat("1e+300", 64); got != "1e+300" {
		t.Errorf("DOUBLE: %s", got)
	}
	tbl := &Table{Schema: "d", Name: "t", cols: []column{{Name: "id", DataType: "int", kind: kindInt}, {Name: "s", DataType: "varchar", kind: kindText, Nullable: true}}, key: []int{0}}
	m := newCHTable(tbl)
	str := func(s string) *string { return &s }
	null := m.canonical([]*string{str("1"), nil})
	empty := m.canonical([]*string{str("1"), str("")})
	if null.hash == empty.hash || null.key != empty.key {
		t.Fatalf("NULL and '' must hash apart under one key: %+v %+v", null, empty)
	}
}

func TestCHWalkable(t *testing.T) {
	ok := &Table{Schema: "d", Name: "t", cols: []column{{Name: "id", DataType: "bigint", kind: kindUint}, {Name: "b", DataType: "varbinary", kind: kindBinary}}, key: []int{0, 1}}
	if err := chWalkable(ok); err != nil {
		t.Fatal(err)
	}
	text := &Table{Schema: "d", Name: "t", cols: []column{{Name: "code", DataType: "varchar", Type: "varchar(8)", kind: kindText}}, key: []int{0}}
	if err := chWalkable(text); err == nil || !strings.Contains(err.Error(), "key column code (varchar(8)) does not sort in ClickHouse as on the master") {
		t.Fatalf("a text key: %v", err)
	}
	if err := chWalkable(&Table{Schema: "d", Name: "t"}); err == nil || !strings.Contains(err.Error(), "no primary key") {
		t.Fatalf("no key: %v", err)
	}
}
