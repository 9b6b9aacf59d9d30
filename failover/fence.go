package failover

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/internal/mysqlerr"
)

// Fence modes: what happens to the old master's open write transactions.
const (
	FenceKill = "kill" // KILL their connections at once
	FenceWait = "wait" // wait for them to end, up to a timeout
)

// server is a connection to one mysql node with what promotion needs to
// know about it.
type server struct {
	*node
	mariadb bool
}

func connect(ctx context.Context, n config.Node, timeout time.Duration, rec recorder) (*server, error) {
	nd, err := openNode(ctx, n, timeout, rec)
	if err != nil {
		return nil, err
	}
	var version string
	if err := nd.ex().QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		nd.close()
		return nil, fmt.Errorf("node %s: %w", n.Name, err)
	}
	return &server{node: nd, mariadb: strings.Contains(version, "MariaDB")}, nil
}

func (s *server) flavor() string {
	if s.mariadb {
		return "mariadb"
	}
	return "mysql"
}

// gtidSet is the server's executed GTID set: MariaDB @@gtid_binlog_pos,
// MySQL @@gtid_executed. The reader starts a new master from it.
func (s *server) gtidSet(ctx context.Context) (string, error) {
	q := "SELECT @@GLOBAL.gtid_executed"
	if s.mariadb {
		q = "SELECT @@GLOBAL.gtid_binlog_pos"
	}
	var set string
	if err := s.ex().QueryRowContext(ctx, q).Scan(&set); err != nil {
		return "", fmt.Errorf("read the GTID set of %s: %w", s.name, err)
	}
	return strings.ReplaceAll(set, "\n", ""), nil
}

func (s *server) serverID(ctx context.Context) (uint32, error) {
	var id uint32
	err := s.ex().QueryRowContext(ctx, "SELECT @@server_id").Scan(&id)
	return id, err
}

// readOnly is the server's read_only (and MySQL's super_read_only).
type readOnly struct{ ro, super bool }

func (s *server) readOnly(ctx context.Context) (readOnly, error) {
	var r readOnly
	if s.mariadb {
		err := s.ex().QueryRowContext(ctx, "SELECT @@GLOBAL.read_only").Scan(&r.ro)
		return r, err
	}
	err := s.ex().QueryRowContext(ctx, "SELECT @@GLOBAL.read_only, @@GLOBAL.super_read_only").Scan(&r.ro, &r.super)
	return r, err
}

// setReadOnly sets read_only; on MySQL super_read_only too, which also
// stops users with CONNECTION_ADMIN or SUPER. MariaDB has no such switch:
// users with READ_ONLY ADMIN still write through read_only (see Fence).
func (s *server) setReadOnly(ctx context.Context, r readOnly) error {
	var stmts []string
	switch {
	case s.mariadb:
		stmts = []string{fmt.Sprintf("SET GLOBAL read_only=%s", onOff(r.ro))}
	case r.super:
		stmts = []string{"SET GLOBAL super_read_only=ON"} // implies read_only
	default:
		stmts = []string{"SET GLOBAL super_read_only=OFF", fmt.Sprintf("SET GLOBAL read_only=%s", onOff(r.ro))}
	}
	for _, q := range stmts {
		if _, err := s.ex().ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s on %s: %w", q, s.name, err)
		}
	}
	return nil
}

// setReadOnlyWithin turns read_only (MySQL: super_read_only) on, in a
// session whose lock_wait_timeout is timeout (at least 1s).
func (s *server) setReadOnlyWithin(ctx context.Context, timeout time.Duration) error {
	secs := max(int(timeout.Seconds()), 1)
	q := "SET GLOBAL read_only=ON"
	if !s.mariadb {
		q = "SET GLOBAL super_read_only=ON"
	}
	return s.session(ctx, func(ex execer) error {
		if _, err := ex.ExecContext(ctx, fmt.Sprintf("SET SESSION lock_wait_timeout=%d", secs)); err != nil {
			return err
		}
		_, err := ex.ExecContext(ctx, q)
		if mysqlerr.Is(err, gomysql.ER_LOCK_WAIT_TIMEOUT) {
			return fmt.Errorf("%s on %s waited more than %ds for running statements (it waits like FLUSH TABLES WITH READ LOCK: a long query blocks it, and so does a write waiting for a row lock that an open transaction holds; --fence kill breaks the latter): %w", q, s.name, secs, err)
		}
		if err != nil {
			return fmt.Errorf("%s on %s: %w", q, s.name, err)
		}
		return nil
	})
}

func onOff(b bool) string {
	if b {
		return "ON"
	}
	return "OFF"
}

// writer is an open transaction that has changed rows.
type writer struct {
	id   int64
	user string
	rows int64
	age  time.Duration
	gone bool // its connection is no longer in the process list
}

func (w writer) String() string {
	return fmt.Sprintf("connection %d (user %s, %d rows, open %v)", w.id, w.user, w.rows, w.age.Round(time.Millisecond))
}

// openWritersSQL lists the transactions of other sessions that changed rows.
const openWritersSQL = `SELECT t.trx_mysql_thread_id, IFNULL(p.USER, ''), t.trx_rows_modified,
		TIMESTAMPDIFF(MICROSECOND, t.trx_started, NOW(6)), p.ID IS NULL
		FROM information_schema.INNODB_TRX t LEFT JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id
		WHERE t.trx_rows_modified > 0 AND t.trx_mysql_thread_id <> CONNECTION_ID()`

// openWriters lists the transactions of other sessions that changed rows.
// known is false when the server does not let us see them (no PROCESS
// privilege).
func (s *server) openWriters(ctx context.Context) (ws []writer, known bool, err error) {
	rows, err := s.ex().QueryContext(ctx, openWritersSQL)
	if mysqlerr.Is(err, gomysql.ER_SPECIFIC_ACCESS_DENIED_ERROR, gomysql.ER_TABLEACCESS_DENIED_ERROR) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("list open transactions on %s: %w", s.name, err)
	}
	ws, err = scanWriters(rows)
	return ws, true, err
}

// scanWriters reads the rows of openWritersSQL or lockHoldersSQL.
func scanWriters(rows *sql.Rows) ([]writer, error) {
	defer rows.Close()
	var ws []writer
	for rows.Next() {
		var w writer
		var us int64
		if err := rows.Scan(&w.id, &w.user, &w.rows, &us, &w.gone); err != nil {
			return ws, err
		}
		w.age = time.Duration(us) * time.Microsecond
		ws = append(ws, w)
	}
	return ws, rows.Err()
}

// fenceResult says what fencing did.
type fenceResult struct {
	before  readOnly
	killed  int
	waited  time.Duration
	visible bool
}

// fence makes the old master refuse writes: read_only=ON (and MySQL's
// super_read_only), then the open write transactions are killed or waited
// for. A transaction of a user without READ_ONLY ADMIN (MariaDB) or SUPER
// (MySQL) cannot commit once read_only is on (ER_OPTION_PREVENTS_STATEMENT),
// so what remains in the binlog is final, except for users who may write
// through read_only: on MariaDB nothing stops those, so they must not write
// during a promotion.
func (s *server) fence(ctx context.Context, mode string, timeout time.Duration) (fenceResult, error) {
	var fr fenceResult
	var err error
	if fr.before, err = s.readOnly(ctx); err != nil {
		return fr, fmt.Errorf("read read_only on %s: %w", s.name, err)
	}
	killed := map[int64]bool{}
	if err := s.raiseReadOnly(ctx, mode, timeout, killed, &fr); err != nil {
		return fr, err
	}
	err = s.endWriters(ctx, mode, timeout, killed, &fr)
	return fr, err
}

// killAfter is how long, in kill mode, the fence lets SET GLOBAL read_only
// wait before it kills the open write transactions it may be waiting for.
const killAfter = 200 * time.Millisecond

// raiseReadOnly sets read_only. SET GLOBAL read_only takes the global read
// lock like FLUSH TABLES WITH READ LOCK: it waits for running statements,
// and writes queue behind it meanwhile. A statement waiting for a row lock
// held by an idle transaction never ends on its own, and the lock's owner
// cannot release it while its next statement queues behind the SET: a
// deadlock between the server's metadata locks and InnoDB's row locks that
// neither detects. In kill mode the open write transactions are killed
// while the SET waits (they would be killed right after it anyway), which
// breaks it; in wait mode lock_wait_timeout ends the wait with advice.
func (s *server) raiseReadOnly(ctx context.Context, mode string, timeout time.Duration, killed map[int64]bool, fr *fenceResult) error {
	if mode != FenceKill {
		return s.setReadOnlyWithin(ctx, timeout)
	}
	done := make(chan error, 1)
	go func() { done <- s.setReadOnlyWithin(ctx, timeout) }()
	var killErr error
	listed := false
	for {
		select {
		case err := <-done:
			if listed { // INNODB_TRX is refreshed only once unread for 100ms: endWriters must see it fresh
				err = errors.Join(err, sleep(ctx, pollEvery(FenceWait)))
			}
			return errors.Join(err, killErr)
		case <-time.After(killAfter):
		}
		if killErr == nil {
			listed, killErr = true, s.killWriters(ctx, killed, fr)
		}
	}
}

// killWriters kills the open write transactions, and those whose locks
// others wait for (a SELECT ... FOR UPDATE changes no row but blocks the
// same), not killed yet.
func (s *server) killWriters(ctx context.Context, killed map[int64]bool, fr *fenceResult) error {
	ws, _, err := s.openWriters(ctx)
	if err != nil {
		return err
	}
	ws = append(ws, s.lockHolders(ctx)...)
	return s.kill(ctx, alive(ws, killed), killed, fr)
}

// lockHoldersSQL lists the transactions of other sessions that hold a row
// lock another transaction waits for (MariaDB and MySQL 5.7; MySQL 8 has
// no INNODB_LOCK_WAITS: the list is then empty).
const lockHoldersSQL = `SELECT DISTINCT b.trx_mysql_thread_id, IFNULL(p.USER, ''), b.trx_rows_modified,
		TIMESTAMPDIFF(MICROSECOND, b.trx_started, NOW(6)), p.ID IS NULL
		FROM information_schema.INNODB_LOCK_WAITS w JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id
		LEFT JOIN information_schema.PROCESSLIST p ON p.ID = b.trx_mysql_thread_id
		WHERE b.trx_mysql_thread_id <> CONNECTION_ID()`

// lockHolders lists the transactions others wait for; none when the server
// cannot tell.
func (s *server) lockHolders(ctx context.Context) []writer {
	rows, err := s.ex().QueryContext(ctx, lockHoldersSQL)
	if err != nil {
		return nil
	}
	ws, _ := scanWriters(rows)
	return ws
}

// endWriters kills (FenceKill) or waits for the open write transactions
// until none is left, or fails after timeout. killed holds the connections
// killed already.
func (s *server) endWriters(ctx context.Context, mode string, timeout time.Duration, killed map[int64]bool, fr *fenceResult) error {
	start := time.Now()
	for {
		ws, known, err := s.openWriters(ctx)
		if err != nil {
			return err
		}
		fr.visible = known
		if ws = alive(ws, killed); len(ws) == 0 {
			fr.waited = time.Since(start)
			return nil
		}
		if mode == FenceKill {
			if err := s.kill(ctx, ws, killed, fr); err != nil {
				return err
			}
		}
		if time.Since(start) > timeout {
			return s.writersLeft(mode, ws, timeout)
		}
		if err := sleep(ctx, pollEvery(mode)); err != nil {
			return err
		}
	}
}

// pollEvery is how often the fence lists the open write transactions.
// InnoDB refreshes information_schema.INNODB_TRX only once it has not been
// read for 100ms, so waiting for writers to end polls slower than that, or
// it would never see them end. A killed writer is seen gone through the
// process list, which is live.
func pollEvery(mode string) time.Duration {
	if mode == FenceWait {
		return 150 * time.Millisecond
	}
	return 20 * time.Millisecond
}

// alive drops the killed transactions whose connection is gone: they can
// never commit (InnoDB rolls them back on its own).
func alive(ws []writer, killed map[int64]bool) []writer {
	live := ws[:0]
	for _, w := range ws {
		if !killed[w.id] || !w.gone {
			live = append(live, w)
		}
	}
	return live
}

// kill kills the connections of the writers not killed yet.
func (s *server) kill(ctx context.Context, ws []writer, killed map[int64]bool, fr *fenceResult) error {
	for _, w := range ws {
		if killed[w.id] {
			continue // rolling back
		}
		if _, err := s.ex().ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", w.id)); err != nil && !mysqlerr.Is(err, gomysql.ER_NO_SUCH_THREAD) {
			return fmt.Errorf("KILL CONNECTION %d (user %s, %d rows changed) on %s: %w", w.id, w.user, w.rows, s.name, err)
		}
		killed[w.id] = true
		fr.killed++
	}
	return nil
}

// writersLeft is the error of a fence that timed out with writers left.
func (s *server) writersLeft(mode string, ws []writer, timeout time.Duration) error {
	list := make([]string, len(ws))
	for i, w := range ws {
		list[i] = w.String()
	}
	if mode == FenceKill {
		return fmt.Errorf("killed write transactions on %s still there after %v: %s", s.name, timeout, strings.Join(list, ", "))
	}
	return fmt.Errorf("write transactions still open on %s after %v: %s; retry with --fence kill to kill them", s.name, timeout, strings.Join(list, ", "))
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
