package benchkit

import (
	"strings"
	"testing"
)

func TestLoadStmt(t *testing.T) {
	ins := Load{Name: "insert", Table: "db.t", Kind: Insert, Rows: 25, Txn: 10}
	if ins.Txns() != 3 {
		t.Fatalf("Txns = %d, want 3", ins.Txns())
	}
	q, args := ins.Stmt(2) // rows 21..25
	if strings.Count(q, "(?,?,?,?,?,?,?,?,?)") != 5 || len(args) != 5*columns || args[0] != 21 {
		t.Fatalf("last insert: %d value lists, %d args, first id %v", strings.Count(q, "(?"), len(args), args[0])
	}
	if !strings.HasPrefix(q, "INSERT INTO db.t (") {
		t.Fatalf("insert names another table: %.40s", q)
	}
	upd := ins
	upd.Kind = Update
	q, args = upd.Stmt(2)
	if !strings.HasPrefix(q, "UPDATE db.t SET") || args[0] != 21 || args[1] != 25 {
		t.Fatalf("last update: %.20s %v", q, args)
	}
}

func TestRowArgsRepeat(t *testing.T) {
	a, b := RowArgs(nil, 7), RowArgs(nil, 7)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("row 7 differs between calls at column %d: %v, %v", i, a[i], b[i])
		}
	}
	if len(a) != columns {
		t.Fatalf("%d values, want %d", len(a), columns)
	}
}
