package verify

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/internal/mysqlerr"
)

func testTable() *Table {
	t := &Table{Schema: "shop", Name: "orders", keyName: "PRIMARY"}
	for _, c := range []column{
		{Name: "region", DataType: "varchar", Type: "varchar(8)", Charset: "utf8mb4"},
		{Name: "amount", DataType: "decimal", Type: "decimal(10,2) unsigned"},
		{Name: "id", DataType: "bigint", Type: "bigint(20) unsigned"},
		{Name: "note", DataType: "text", Type: "text", Nullable: true, Charset: "utf16"},
		{Name: "ratio", DataType: "float", Type: "float", Nullable: true},
	} {
		c.kind = kindOf(c.DataType, c.Type)
		t.cols = append(t.cols, c)
	}
	t.key = []int{0, 1, 2}
	return t
}

func TestRangeSQL(t *testing.T) {
	tb := testTable()
	where, args, err := tb.rangeWhere(keyVals{[]byte("eu"), []byte("1.25"), []byte("18446744073709551615")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := " WHERE `region` >= ? AND (`region` > ? OR (`region` = ? AND (`amount` > CAST(? AS DECIMAL(10,2)) OR (`amount` = CAST(? AS DECIMAL(10,2)) AND `id` > ?))))"
	if where != want {
		t.Fatalf("where\n%s\nwant\n%s", where, want)
	}
	if len(args) != 6 || args[0] != "eu" || args[3] != "1.25" || args[5] != uint64(18446744073709551615) {
		t.Fatalf("args %#v", args)
	}
	q, _, err := tb.boundSQL(nil, 5000)
	if err != nil || q != "SELECT `region`,`amount`,`id` FROM `shop`.`orders` FORCE INDEX (`PRIMARY`) ORDER BY `region`,`amount`,`id` LIMIT 4999,1" {
		t.Fatalf("bound: %s %v", q, err)
	}
	if _, _, err := tb.rangeWhere(nil, keyVals{[]byte("eu"), []byte("1"), []byte("x")}); err == nil || !strings.Contains(err.Error(), "column id") {
		t.Fatalf("a bad integer must name the column: %v", err)
	}
}

func TestCanonical(t *testing.T) {
	tb := testTable()
	got := tb.canonical()
	// note, the last text column, goes at the end without a length or a
	// NULL marker.
	want := "CONCAT_WS('#',LENGTH(`region`),`region`,`amount`,`id`,IFNULL(CAST(`ratio` AS DOUBLE),'N'),`note`)"
	if got != want {
		t.Fatalf("canonical\n%s\nwant\n%s", got, want)
	}
	if d := decimalType("decimal(12,2) unsigned zerofill"); d != "DECIMAL(12,2)" {
		t.Fatalf("decimalType = %s", d)
	}
}

func TestThrottle(t *testing.T) {
	if newThrottle(0, 100) != nil {
		t.Fatal("rate 0 must not limit")
	}
	th := newThrottle(1000, 100) // burst: one chunk of 100 rows
	start := time.Now()
	for range 6 {
		if err := th.take(context.Background(), 100); err != nil {
			t.Fatal(err)
		}
	}
	// 600 rows at 1000 rows/s, the first 100 from the full bucket.
	if d := time.Since(start); d < 450*time.Millisecond || d > 1500*time.Millisecond {
		t.Fatalf("600 rows at 1000 rows/s took %v, want about 500ms", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := th.take(ctx, 1000); err == nil {
		t.Fatal("take must end with its context")
	}
}

func TestTransient(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&mysql.MySQLError{Number: mysqlerr.CrServerLost}, true},
		{fmt.Errorf("hash x: %w", &mysql.MySQLError{Number: gomysql.ER_LOCK_DEADLOCK}), true},
		{fmt.Errorf("hash x: %w", mysql.ErrInvalidConn), true},
		{&mysql.MySQLError{Number: gomysql.ER_NO_SUCH_TABLE}, false},
		{ErrBehind, false},
	} {
		if got := transient(c.err); got != c.want {
			t.Errorf("transient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
