package mysql

import (
	"context"
	"fmt"
	"strings"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/internal/mysqlerr"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// TestProtect makes db3 read-only for a short moment: a user without
// READ_ONLY ADMIN cannot write and cannot run a protecting sink (the error
// names the privilege), while the rowcast sink still applies. read_only is
// restored at once, and again by t.Cleanup.
func TestProtect(t *testing.T) {
	node := testenv.Replica2
	root := testenv.DB(t, node)
	restore := func() {
		if _, err := root.Exec("SET GLOBAL read_only=OFF"); err != nil {
			t.Errorf("restore read_only: %v", err)
		}
	}
	t.Cleanup(restore)
	r := newReplica(t, node)
	r.Setup(t, "CREATE TABLE `t` (`id` BIGINT NOT NULL PRIMARY KEY, `v` VARCHAR(10) NULL)")
	user := testenv.UniqueName(t, "u") // under the 80-character limit of MariaDB user names
	testenv.Exec(t, root,
		fmt.Sprintf("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY 'pw'", user),
		fmt.Sprintf("GRANT SELECT, INSERT ON `%s`.* TO '%s'@'127.0.0.1'", r.db, user),
		fmt.Sprintf("GRANT ALL ON `%s`.* TO '%s'@'127.0.0.1'", r.schema, user))
	t.Cleanup(func() { root.Exec(fmt.Sprintf("DROP USER IF EXISTS '%s'@'127.0.0.1'", user)) })
	ctx := context.Background()

	plain, err := New(Config{DSN: userDSN(node, user, "pw"), Schema: r.schema, Topic: sinktest.Topic, Protect: true}, sinktest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = plain.Open(ctx)
	plain.Close()
	if err == nil || !strings.Contains(err.Error(), "GRANT READ_ONLY ADMIN") {
		t.Fatalf("a protecting sink without READ_ONLY ADMIN: %v", err)
	}

	s := sinktest.NewScript(r.db)
	s.Table("t", []pipeline.Column{{Name: "id", Kind: pipeline.VInt}, {Name: "v", Kind: pipeline.VString}}, 0)
	s.Insert("t", int64(1), "by sink")
	s.Commit()
	tgt := r.target(t, func(c *Config) { c.Protect = true })
	_, err = sinktest.RunWorker(ctx, t, tgt, sinktest.NewInput(s.Msgs), sink.WorkerConfig{}, nil)
	var ro int
	root.QueryRow("SELECT @@global.read_only").Scan(&ro)
	plainDB := openDB(t, userDSN(node, user, "pw"))
	_, werr := plainDB.Exec("INSERT INTO `" + r.db + "`.`t` VALUES (2, 'by user')")
	restore()
	if err != nil {
		t.Fatalf("the rowcast sink could not apply to its protected replica: %v", err)
	}
	if ro != 1 {
		t.Fatalf("read_only=%d after Open with Protect", ro)
	}
	if werr == nil || !mysqlerr.Is(werr, gomysql.ER_OPTION_PREVENTS_STATEMENT) {
		t.Fatalf("a plain user's write to the protected replica: %v, want error 1290", werr)
	}
	sinktest.CompareRows(t, "t", r.Rows(t, "t"), []string{"1|by sink"})
}

// TestProtectAgain: read_only turned OFF behind a protecting sink (a
// restart without read_only in my.cnf, or SET GLOBAL) is set ON again at
// the next connect and, between connects, at a commit once readOnlyRefresh
// has passed; ReadOnlyState follows it.
func TestProtectAgain(t *testing.T) {
	node := testenv.Replica2
	root := testenv.DB(t, node)
	t.Cleanup(func() { root.Exec("SET GLOBAL read_only=OFF") })
	r := newReplica(t, node)
	ctx := context.Background()
	readOnly := func() bool {
		var on bool
		if err := root.QueryRow("SELECT @@global.read_only").Scan(&on); err != nil {
			t.Fatal(err)
		}
		return on
	}
	tgt := r.target(t, func(c *Config) { c.Protect = true })
	t.Cleanup(func() { tgt.Close() })
	if _, known := tgt.ReadOnlyState(); known {
		t.Fatal("ReadOnlyState known before the first connect")
	}
	if _, _, err := tgt.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if on, known := tgt.ReadOnlyState(); !on || !known || !readOnly() {
		t.Fatalf("after the first connect: state %v/%v, server %v", on, known, readOnly())
	}

	testenv.Exec(t, root, "SET GLOBAL read_only=OFF")
	if _, _, err := tgt.Open(ctx); err != nil { // a reconnect
		t.Fatal(err)
	}
	if !readOnly() {
		t.Fatal("a reconnect left the replica writable")
	}

	testenv.Exec(t, root, "SET GLOBAL read_only=OFF")
	tgt.protectChecked = tgt.protectChecked.Add(-readOnlyRefresh)
	tgt.keepProtected(ctx)
	if on, _ := tgt.ReadOnlyState(); !on || !readOnly() {
		t.Fatalf("a commit after readOnlyRefresh left the replica writable (state %v)", on)
	}
}

// TestProtectLeavesPromotedNode: a protecting sink that finds its replica
// writable leaves it so while a promotion holds its lease on the node, and
// when the epoch index names the node the master (its sink has not read the
// epoch record yet); for another master it sets read_only again.
func TestProtectLeavesPromotedNode(t *testing.T) {
	node := testenv.Replica2
	root := testenv.DB(t, node)
	t.Cleanup(func() { root.Exec("SET GLOBAL read_only=OFF") })
	r := newReplica(t, node)
	ctx := context.Background()
	tgt := r.target(t, func(c *Config) { c.Protect, c.Node = true, "db3" })
	t.Cleanup(func() { tgt.Close() })
	if _, _, err := tgt.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.NewMySQL(r.schema).InitPromotion(ctx, root); err != nil {
		t.Fatal(err)
	}
	lease := fmt.Sprintf("INSERT INTO `%s`.`%s` (topic, holder, expires_at, from_offset, acquired_at) VALUES (?, 'promote@test', NOW(6) + INTERVAL 1 MINUTE, 0, NOW(6))",
		r.schema, checkpoint.LeaseTable)
	testenv.Exec(t, root, strings.Replace(lease, "?", "'"+sinktest.Topic+"'", 1))
	readOnlyAfterCheck := func() bool {
		testenv.Exec(t, root, "SET GLOBAL read_only=OFF")
		tgt.protectChecked = tgt.protectChecked.Add(-readOnlyRefresh)
		tgt.keepProtected(ctx)
		var on bool
		if err := root.QueryRow("SELECT @@global.read_only").Scan(&on); err != nil {
			t.Fatal(err)
		}
		return on
	}
	if readOnlyAfterCheck() {
		t.Fatal("read_only set again while a promotion holds its lease on the node")
	}
	testenv.Exec(t, root, fmt.Sprintf("DELETE FROM `%s`.`%s`", r.schema, checkpoint.LeaseTable))
	epoch := func(n int, master string) {
		testenv.Exec(t, root, fmt.Sprintf("INSERT INTO `%s`.`%s` (topic, epoch, master, record_offset, start_gtid_set, flavor, txn_seq, promoted_by, promoted_at) "+
			"VALUES ('%s', %d, '%s', 0, '', 'mariadb', 0, 'test', NOW(6))", r.schema, checkpoint.EpochsTable, sinktest.Topic, n, master))
	}
	epoch(2, "db3")
	if readOnlyAfterCheck() {
		t.Fatal("read_only set again on the node the epoch index names the master")
	}
	epoch(3, "db2")
	if !readOnlyAfterCheck() {
		t.Fatal("read_only not set again on a replica of another master")
	}
}
