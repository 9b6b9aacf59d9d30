package main

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// native is MariaDB's own replication into a fresh replica with the same
// settings as the sink's target: CHANGE MASTER ... MASTER_USE_GTID=slave_pos
// from the GTID position before the workloads, serial (slave_parallel_threads
// = 0). The IO thread fetches each workload into the relay log while it is
// written; the SQL thread alone is timed, so that it applies from a ready
// source, as the sink applies from a ready topic.
type native struct {
	s      *server
	master *server
}

func (n *native) setup(ctx context.Context, start string) error {
	return execAll(ctx, n.s.root,
		"SET GLOBAL gtid_slave_pos = '"+start+"'",
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='root', MASTER_PASSWORD='', "+
			"MASTER_USE_GTID=slave_pos, MASTER_HEARTBEAT_PERIOD=1", n.master.port),
		"START SLAVE IO_THREAD")
}

// slaveStatus reads SHOW SLAVE STATUS into a map.
func slaveStatus(ctx context.Context, db *sql.DB) (map[string]string, error) {
	rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	if !rows.Next() {
		return out, rows.Err()
	}
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	for i, c := range cols {
		out[c] = string(vals[i])
	}
	return out, rows.Err()
}

// waitFetched waits until the IO thread has the span in the relay log.
func (n *native) waitFetched(ctx context.Context, sp span, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		st, err := slaveStatus(ctx, n.s.root)
		if err != nil {
			return err
		}
		if e := st["Last_IO_Error"]; e != "" {
			return fmt.Errorf("native replica IO thread: %s", e)
		}
		if containsGTIDs(st["Gtid_IO_Pos"], sp.end) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("native replica IO thread at %q after %v, want %s", st["Gtid_IO_Pos"], limit, sp.End)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// apply times the SQL thread from START SLAVE SQL_THREAD until
// @@gtid_slave_pos holds the span's end.
func (n *native) apply(ctx context.Context, b *bench, sp span) (result, error) {
	res := result{Workload: sp.Name, Side: sideNative, Rows: sp.Rows, Txns: sp.Txns()}
	poll, err := n.s.root.Conn(ctx)
	if err != nil {
		return res, err
	}
	defer poll.Close()
	st0, err := n.s.status(ctx)
	if err != nil {
		return res, err
	}
	meter := b.cpuMeter(n.s)
	cpu0 := meter.Now()
	t0 := time.Now()
	if _, err := n.s.root.ExecContext(ctx, "START SLAVE SQL_THREAD"); err != nil {
		return res, err
	}
	if err := n.waitApplied(ctx, poll, sp, b.o.timeout); err != nil {
		return res, err
	}
	res.Took = time.Since(t0)
	res.CPU = meter.Now().Since(cpu0)
	st1, err := n.s.status(ctx)
	if err != nil {
		return res, err
	}
	res.Server = statusDelta(st0, st1)
	_, err = n.s.root.ExecContext(ctx, "STOP SLAVE SQL_THREAD")
	return res, err
}

// waitApplied polls @@gtid_slave_pos every 2 ms until it holds the span's
// end, and the SQL thread's error twice a second.
func (n *native) waitApplied(ctx context.Context, poll *sql.Conn, sp span, limit time.Duration) error {
	t0 := time.Now()
	lastCheck := t0
	for {
		var pos string
		if err := poll.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_slave_pos").Scan(&pos); err != nil {
			return err
		}
		if containsGTIDs(pos, sp.end) {
			return nil
		}
		if time.Since(lastCheck) > 500*time.Millisecond {
			lastCheck = time.Now()
			if err := n.sqlThreadOK(ctx); err != nil {
				return err
			}
			if time.Since(t0) > limit {
				return fmt.Errorf("native replica at %s after %v, want %s", pos, limit, sp.End)
			}
		}
		if err := sleep(ctx, 2*time.Millisecond); err != nil {
			return err
		}
	}
}

// sqlThreadOK returns the SQL thread's last error.
func (n *native) sqlThreadOK(ctx context.Context) error {
	st, err := slaveStatus(ctx, n.s.root)
	if err != nil {
		return err
	}
	if e := st["Last_SQL_Error"]; e != "" {
		return fmt.Errorf("native replica SQL thread: %s", e)
	}
	return nil
}

func (n *native) stop(ctx context.Context) error {
	_, err := n.s.root.ExecContext(ctx, "STOP SLAVE")
	return err
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
