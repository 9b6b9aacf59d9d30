package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/rowcast/rowcast/clone/clonetest"
	"github.com/rowcast/rowcast/internal/mysqlerr"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// roServer is a MariaDB server of the test's own, so that read_only
// changes nobody else's tests: a plain application user (no READ_ONLY
// ADMIN) that writes to shop, and a sink user without READ_ONLY ADMIN.
type roServer struct {
	srv  *clonetest.Server
	root *sql.DB
	app  *sql.DB
}

func newROServer(t *testing.T) *roServer {
	t.Helper()
	s := &roServer{srv: clonetest.Start(t)}
	s.root = s.srv.DB(t)
	testenv.Exec(t, s.root,
		"CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'pw'",
		"GRANT SELECT, INSERT ON `shop`.* TO 'app'@'127.0.0.1'",
		"CREATE USER 'weak'@'127.0.0.1' IDENTIFIED BY 'pw'",
		"GRANT ALL ON `shop`.* TO 'weak'@'127.0.0.1'",
		"GRANT ALL ON `rcbk_weak`.* TO 'weak'@'127.0.0.1'")
	s.app = openDB(t, "app:pw@tcp("+s.srv.Addr()+")/")
	return s
}

func (s *roServer) readOnly(t *testing.T) bool {
	t.Helper()
	var ro bool
	if err := s.root.QueryRow("SELECT @@global.read_only").Scan(&ro); err != nil {
		t.Fatal(err)
	}
	return ro
}

func (s *roServer) setReadOnly(t *testing.T, on bool) {
	t.Helper()
	testenv.Exec(t, s.root, fmt.Sprintf("SET GLOBAL read_only=%v", on))
}

// appWrite is a write of the application user.
func (s *roServer) appWrite(id int) error {
	_, err := s.app.Exec("INSERT INTO shop.t VALUES (?, 'app')", id)
	return err
}

// run applies snapshotScript("shop") as user through a new Target on the
// bookkeeping schema, and runs during(just before the end marker).
func (s *roServer) run(t *testing.T, user, schema string, during func()) (*recorder, error) {
	t.Helper()
	script, _ := snapshotScript("shop")
	tgt, err := New(Config{DSN: user + "@tcp(" + s.srv.Addr() + ")/", Schema: schema, Topic: sinktest.Topic}, sinktest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	rec := record(tgt)
	in := sinktest.NewInput(script.Msgs)
	in.Live = true
	end := in.Len - 1
	in.Hook = func(o int64) {
		if o == end && during != nil {
			during()
			during = nil
		}
	}
	_, err = sinktest.RunWorker(context.Background(), t, tgt, in, sink.WorkerConfig{}, nil)
	return rec, err
}

// TestReadOnlyWhileBootstrapping: with protect off, a replica is read-only
// while a snapshot loads a table: a plain user cannot write, the sink can;
// after the end marker read_only is OFF again, as it was, and the plain
// user writes. A replica that was read-only before stays so; a sink whose
// user cannot set read_only stops before it recreates the table.
func TestReadOnlyWhileBootstrapping(t *testing.T) {
	s := newROServer(t)
	t.Run("held", func(t *testing.T) {
		var during error
		var ro bool
		rec, err := s.run(t, "root", "rcbk_held", func() { ro, during = s.readOnly(t), s.appWrite(100) })
		if err != nil {
			t.Fatal(err)
		}
		if !ro || !mysqlerr.Is(during, gomysql.ER_OPTION_PREVENTS_STATEMENT) {
			t.Fatalf("while bootstrapping: read_only %v, the application's write: %v; want ON and error 1290", ro, during)
		}
		if s.readOnly(t) {
			t.Fatal("read_only is still ON after the snapshot")
		}
		if err := s.appWrite(101); err != nil {
			t.Fatalf("after the snapshot the application cannot write: %v", err)
		}
		checkHoldStatements(t, rec.get(), "rcbk_held")
	})
	t.Run("was on", func(t *testing.T) {
		s.setReadOnly(t, true)
		defer s.setReadOnly(t, false)
		if _, err := s.run(t, "root", "rcbk_on", nil); err != nil {
			t.Fatal(err)
		}
		if !s.readOnly(t) {
			t.Fatal("a replica read-only before its snapshot is writable after it")
		}
	})
	t.Run("without privilege", func(t *testing.T) {
		_, err := s.run(t, "weak:pw", "rcbk_weak", nil)
		if err == nil || !strings.Contains(err.Error(), "GRANT READ_ONLY ADMIN") {
			t.Fatalf("a sink that cannot set read_only: %v; want a stop that names READ_ONLY ADMIN", err)
		}
		if s.readOnly(t) {
			t.Fatal("read_only is ON after the refused hold")
		}
	})
}

// checkHoldStatements checks the read-only statements of a snapshot on a
// replica that was writable: read at connect (protect.go), held before the
// table is recreated, put back after the commit that ends the bootstrap.
func checkHoldStatements(t *testing.T, got []string, schema string) {
	t.Helper()
	var ro []string
	for _, q := range got {
		if readOnlyStatement(q) || strings.HasPrefix(q, "DROP TABLE") || strings.HasPrefix(q, "DELETE FROM") {
			ro = append(ro, q)
		}
	}
	want := []string{
		"SELECT @@global.read_only, VERSION()",
		"SELECT @@global.read_only, VERSION()",
		"SET STATEMENT lock_wait_timeout=30 FOR SET GLOBAL read_only=ON",
		"UPDATE `" + schema + "`.`checkpoint` SET `next_offset`=`next_offset` WHERE 1=0",
		"DROP TABLE IF EXISTS `shop`.`t`",
		"DELETE FROM `" + schema + "`.`bootstrap` WHERE `topic`=? AND `db`=? AND `tbl`=?",
		"SELECT @@global.read_only, VERSION()",
		"SET GLOBAL read_only=OFF",
	}
	if !slices.Equal(ro, want) {
		t.Fatalf("read-only statements:\n%s\nwant:\n%s", strings.Join(ro, "\n"), strings.Join(want, "\n"))
	}
}

// readOnlyStatement reports the statements of holding read_only.
func readOnlyStatement(q string) bool {
	return strings.Contains(q, "read_only") || strings.HasSuffix(q, "SET `next_offset`=`next_offset` WHERE 1=0")
}

// TestReadOnlyAfterRestart: a sink that starts while tables bootstrap and
// finds read_only ON takes it for its own (an earlier run set it): OFF once
// the tables are loaded.
func TestReadOnlyAfterRestart(t *testing.T) {
	s := newROServer(t)
	script, _ := snapshotScript("shop")
	tgt, err := New(Config{DSN: s.srv.DSN(), Schema: "rcbk", Topic: sinktest.Topic}, sinktest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	first := sinktest.NewInput(script.Msgs[:len(script.Msgs)-1]) // all but the end marker
	first.Live = true
	if _, err := sinktest.RunWorker(context.Background(), t, tgt, first, sink.WorkerConfig{}, nil); err != nil {
		t.Fatal(err)
	}
	if !s.readOnly(t) || s.appWrite(100) == nil {
		t.Fatal("the replica is writable while a table bootstraps")
	}
	tgt, _ = New(Config{DSN: s.srv.DSN(), Schema: "rcbk", Topic: sinktest.Topic}, sinktest.Logger(t))
	rest := sinktest.NewInput(script.Msgs)
	rest.Live = true
	if _, err := sinktest.RunWorker(context.Background(), t, tgt, rest, sink.WorkerConfig{}, nil); err != nil {
		t.Fatal(err)
	}
	if s.readOnly(t) {
		t.Fatal("read_only is still ON after the restarted sink loaded the table")
	}
}
