package failover

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/pipeline/config"
)

// Fence modes: what happens to the old master's open write transactions.
const (
	FenceKill = "kill" // KILL their connections at once
	FenceWait = "wait" // wait for them to end, up to a timeout
)

// server is a connection to one mysql node with what promotion needs to
// know about it.
type server struct {
	name    string
	db      *sql.DB
	mariadb bool
}

func connect(ctx context.Context, n config.Node, timeout time.Duration) (*server, error) {
	db, err := openNode(ctx, n, timeout)
	if err != nil {
		return nil, err
	}
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		db.Close()
		return nil, fmt.Errorf("node %s: %w", n.Name, err)
	}
	return &server{name: n.Name, db: db, mariadb: strings.Contains(version, "MariaDB")}, nil
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
	if err := s.db.QueryRowContext(ctx, q).Scan(&set); err != nil {
		return "", fmt.Errorf("read the GTID set of %s: %w", s.name, err)
	}
	return strings.ReplaceAll(set, "\n", ""), nil
}

func (s *server) serverID(ctx context.Context) (uint32, error) {
	var id uint32
	err := s.db.QueryRowContext(ctx, "SELECT @@server_id").Scan(&id)
	return id, err
}

// readOnly is the server's read_only (and MySQL's super_read_only).
type readOnly struct{ ro, super bool }

func (s *server) readOnly(ctx context.Context) (readOnly, error) {
	var r readOnly
	if s.mariadb {
		err := s.db.QueryRowContext(ctx, "SELECT @@GLOBAL.read_only").Scan(&r.ro)
		return r, err
	}
	err := s.db.QueryRowContext(ctx, "SELECT @@GLOBAL.read_only, @@GLOBAL.super_read_only").Scan(&r.ro, &r.super)
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
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s on %s: %w", q, s.name, err)
		}
	}
	return nil
}

// setReadOnlyWithin is setReadOnly on a session whose lock_wait_timeout
// is timeout (at least 1s).
func (s *server) setReadOnlyWithin(ctx context.Context, r readOnly, timeout time.Duration) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	secs := max(int(timeout.Seconds()), 1)
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("SET SESSION lock_wait_timeout=%d", secs)); err != nil {
		return err
	}
	q := "SET GLOBAL read_only=ON"
	if !s.mariadb {
		q = "SET GLOBAL super_read_only=ON"
	}
	if _, err := conn.ExecContext(ctx, q); err != nil {
		if isCode(err, 1205) {
			return fmt.Errorf("%s on %s waited more than %ds for running statements (on MariaDB it waits like FLUSH TABLES, a long query blocks it): %w", q, s.name, secs, err)
		}
		return fmt.Errorf("%s on %s: %w", q, s.name, err)
	}
	return nil
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

// openWriters lists the transactions of other sessions that changed rows.
// known is false when the server does not let us see them (no PROCESS
// privilege).
func (s *server) openWriters(ctx context.Context) (ws []writer, known bool, err error) {
	rows, err := s.db.QueryContext(ctx, `SELECT t.trx_mysql_thread_id, IFNULL(p.USER, ''), t.trx_rows_modified,
		TIMESTAMPDIFF(MICROSECOND, t.trx_started, NOW(6)), p.ID IS NULL
		FROM information_schema.INNODB_TRX t LEFT JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id
		WHERE t.trx_rows_modified > 0 AND t.trx_mysql_thread_id <> CONNECTION_ID()`)
	var me *mysql.MySQLError
	if errors.As(err, &me) && (me.Number == 1227 || me.Number == 1142) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("list open transactions on %s: %w", s.name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var w writer
		var us int64
		if err := rows.Scan(&w.id, &w.user, &w.rows, &us, &w.gone); err != nil {
			return nil, false, err
		}
		w.age = time.Duration(us) * time.Microsecond
		ws = append(ws, w)
	}
	return ws, true, rows.Err()
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
// (MySQL) cannot commit once read_only is on (error 1290), so what remains
// in the binlog is final, except for users who may write through read_only:
// on MariaDB nothing stops those, so they must not write during a promotion.
func (s *server) fence(ctx context.Context, mode string, timeout time.Duration) (fenceResult, error) {
	var fr fenceResult
	var err error
	if fr.before, err = s.readOnly(ctx); err != nil {
		return fr, fmt.Errorf("read read_only on %s: %w", s.name, err)
	}
	// SET GLOBAL read_only takes the global read lock and, on MariaDB,
	// flushes the table cache like FLUSH TABLES WITH READ LOCK: it waits
	// for running statements (a long SELECT too), and writes queue behind
	// it meanwhile. lock_wait_timeout bounds that wait.
	if err := s.setReadOnlyWithin(ctx, readOnly{ro: true, super: !s.mariadb}, timeout); err != nil {
		return fr, err
	}
	start := time.Now()
	killed := map[int64]bool{}
	for {
		ws, known, err := s.openWriters(ctx)
		if err != nil {
			return fr, err
		}
		fr.visible = known
		// A killed transaction whose connection is gone can never commit
		// (InnoDB rolls it back on its own).
		live := ws[:0]
		for _, w := range ws {
			if !(killed[w.id] && w.gone) {
				live = append(live, w)
			}
		}
		ws = live
		if len(ws) == 0 {
			fr.waited = time.Since(start)
			return fr, nil
		}
		if mode == FenceKill {
			for _, w := range ws {
				if killed[w.id] {
					continue // rolling back
				}
				if _, err := s.db.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", w.id)); err != nil && !isCode(err, 1094) {
					return fr, fmt.Errorf("KILL CONNECTION %d (user %s, %d rows changed) on %s: %w", w.id, w.user, w.rows, s.name, err)
				}
				killed[w.id] = true
				fr.killed++
			}
			if time.Since(start) > timeout {
				var list []string
				for _, w := range ws {
					list = append(list, fmt.Sprintf("connection %d (user %s, %d rows, open %v)", w.id, w.user, w.rows, w.age.Round(time.Millisecond)))
				}
				return fr, fmt.Errorf("killed write transactions on %s still there after %v: %s", s.name, timeout, strings.Join(list, ", "))
			}
		} else if time.Since(start) > timeout {
			var list []string
			for _, w := range ws {
				list = append(list, fmt.Sprintf("connection %d (user %s, %d rows, open %v)", w.id, w.user, w.rows, w.age.Round(time.Millisecond)))
			}
			return fr, fmt.Errorf("write transactions still open on %s after %v: %s; retry with --fence kill to kill them", s.name, timeout, strings.Join(list, ", "))
		}
		select {
		case <-ctx.Done():
			return fr, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func isCode(err error, code uint16) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == code
}
