package workload

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
)

func TestBankKeepsTotalAndChecksumDetectsChange(t *testing.T) {
	name := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DB(t, testenv.Master)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := &Bank{DB: db, Database: name, Accounts: 50, Initial: 1000}
	if err := b.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	before := checksum(ctx, t, db, name)
	if err := b.Run(ctx, 4, 300); err != nil {
		t.Fatal(err)
	}
	if got := b.Transfers.Load(); got < 300 {
		t.Fatalf("%d transfers, want >= 300", got)
	}
	if sum, n, err := Total(ctx, db, name); err != nil || sum != 50*1000 || n != 50 {
		t.Fatalf("total %d over %d accounts (%v), want 50000 over 50", sum, n, err)
	}
	after := checksum(ctx, t, db, name)
	if len(after) != 1 || after[0].Table != "accounts" || after[0].Rows != 50 {
		t.Fatalf("checksum %+v", after)
	}
	if Diff(before, after) == "" {
		t.Fatal("300 transfers did not change the checksum")
	}
	if d := Diff(after, checksum(ctx, t, db, name)); d != "" {
		t.Fatalf("checksum not stable: %s", d)
	}
	checkNullDiffersFromEmpty(ctx, t, db, name)
}

// checkNullDiffersFromEmpty: NULL and the empty string must hash differently.
func checkNullDiffersFromEmpty(ctx context.Context, t *testing.T, db *sql.DB, name string) {
	t.Helper()
	testenv.Exec(t, db, "CREATE TABLE `"+name+"`.n (id INT PRIMARY KEY, v VARCHAR(3) NULL)", "INSERT INTO `"+name+"`.n VALUES (1, NULL)")
	c1, _ := Checksum(ctx, db, name)
	testenv.Exec(t, db, "UPDATE `"+name+"`.n SET v = ''")
	c2, _ := Checksum(ctx, db, name)
	if Diff(c1, c2) == "" {
		t.Fatal("NULL and '' hash the same")
	}
}

func checksum(ctx context.Context, t *testing.T, db *sql.DB, name string) []TableChecksum {
	t.Helper()
	cs, err := Checksum(ctx, db, name)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}
