package mysql

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/pipeline/testenv"
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
	if werr == nil || !isCode(werr, 1290) {
		t.Fatalf("a plain user's write to the protected replica: %v, want error 1290", werr)
	}
	sinktest.CompareRows(t, "t", r.Rows(t, "t"), []string{"1|by sink"})
}
