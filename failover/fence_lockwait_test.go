package failover

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
)

// TestDisruptiveFenceBreaksLockWait: an idle transaction holds a row lock
// and a second writer waits for it. SET GLOBAL read_only then waits for the
// second writer's statement, which waits for the first, which can never
// release its lock: wait mode gives up after its timeout with advice, kill
// mode kills the writers while the SET waits and fences at once. It runs in
// the serial phase: kill mode kills every open write transaction on db2.
func TestDisruptiveFenceBreaksLockWait(t *testing.T) {
	if os.Getenv("ROWCAST_DISRUPTIVE") != "1" {
		t.Skip("kills every write transaction on db2: scripts/test runs it in its serial phase (ROWCAST_DISRUPTIVE=1)")
	}
	// The lock's holder changed the row, or only locked it (it is then no
	// writer, but blocks the same).
	for _, hold := range []string{"UPDATE %s SET v = v + 1 WHERE id = 1", "SELECT v FROM %s WHERE id = 1 FOR UPDATE"} {
		t.Run(strings.Fields(hold)[0], func(t *testing.T) { fenceThroughLockWait(t, hold) })
	}
}

func fenceThroughLockWait(t *testing.T, hold string) {
	ctx := context.Background()
	srv := recordedServer(t, "db2", &stmtLog{})
	keepWritable(t, "db2")
	lw := lockWaitOn(t, "db2", hold)

	start := time.Now()
	_, err := srv.fence(ctx, FenceWait, time.Second)
	if err == nil || !strings.Contains(err.Error(), "--fence kill") {
		t.Fatalf("wait mode with a writer stuck behind a row lock: %v, want a lock_wait_timeout error that advises --fence kill", err)
	}
	t.Logf("wait mode gave up after %s: %v", time.Since(start).Round(time.Millisecond), err)
	restoreWritable(t, "db2")

	start = time.Now()
	fr, err := srv.fence(ctx, FenceKill, 10*time.Second)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kill mode fenced in %s, %d killed", took.Round(time.Millisecond), fr.killed)
	if took > 3*time.Second || fr.killed == 0 {
		t.Fatalf("kill mode took %s and killed %d transactions, want the lock's holder killed within 3s", took, fr.killed)
	}
	if !readOnlyOf(t, "db2") {
		t.Fatal("db2 is not read-only after the fence")
	}
	<-lw.blocked // it ran once the holder was killed, or was killed itself
	if _, err := lw.waiter.ExecContext(ctx, "COMMIT"); err == nil {
		t.Fatal("the waiting writer committed after the fence")
	}
	restoreWritable(t, "db2")
	var v int
	if err := testenv.DB(t, "db2").QueryRow("SELECT v FROM `" + lw.database + "`.t WHERE id = 1").Scan(&v); err != nil || v != 0 {
		t.Fatalf("row after the fence: v=%d (%v), want 0: neither writer may commit", v, err)
	}
}

// lockWait is a transaction waiting for a row lock that another, idle,
// transaction holds.
type lockWait struct {
	database string
	waiter   *sql.Conn
	blocked  <-chan error // the waiting UPDATE's outcome
}

// lockWaitOn leaves, on node, a transaction that ran hold (a statement
// that locks row 1 of the table %s names) and another connection's UPDATE
// waiting for that lock.
func lockWaitOn(t *testing.T, node, hold string) lockWait {
	t.Helper()
	ctx := context.Background()
	db := testenv.DB(t, node)
	name := testenv.CreateDatabase(t, node)
	testenv.Exec(t, db, "CREATE TABLE `"+name+"`.t (id INT NOT NULL PRIMARY KEY, v INT NOT NULL)")
	testenv.Exec(t, db, "INSERT INTO `"+name+"`.t VALUES (1, 0)")
	update := "UPDATE `" + name + "`.t SET v = v + 1 WHERE id = 1"
	holder := ownConn(t, db)
	for _, q := range []string{"BEGIN", fmt.Sprintf(hold, "`"+name+"`.t")} {
		if _, err := holder.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	waiter := ownConn(t, db)
	var id int64
	if err := waiter.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() {
		_, err := waiter.ExecContext(ctx, "BEGIN")
		if err == nil {
			_, err = waiter.ExecContext(ctx, update)
		}
		blocked <- err
	}()
	waitFor(t, "the second UPDATE to wait for the row lock", func() bool {
		var n int
		err := db.QueryRow("SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = ? AND trx_state = 'LOCK WAIT'", id).Scan(&n)
		return err == nil && n == 1
	})
	return lockWait{database: name, waiter: waiter, blocked: blocked}
}

func ownConn(t *testing.T, db *sql.DB) *sql.Conn {
	t.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
