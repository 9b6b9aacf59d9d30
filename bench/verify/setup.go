package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"time"

	"golang.org/x/sync/errgroup"
)

// prepare creates (or finds) the table on both sides, waits for the servers
// to settle and notes the table's facts in rep.
func prepare(ctx context.Context, o options, m, r *sql.DB, rep *report) error {
	if err := m.QueryRowContext(ctx, "SELECT VERSION(), @@innodb_buffer_pool_size").Scan(&rep.version, &rep.bufferPool); err != nil {
		return fmt.Errorf("master %s: %w (start the stack: scripts/stack up)", o.master, err)
	}
	t0 := time.Now()
	reused, err := setup(ctx, o, m, r)
	if err != nil {
		return err
	}
	rep.setup, rep.reused = time.Since(t0), reused
	// A fresh table leaves the servers flushing its pages for a while; that
	// CPU would count against the first measurements.
	t0 = time.Now()
	rep.settled = settle(ctx, m, r, 3*time.Minute)
	rep.settle = time.Since(t0)
	m.QueryRowContext(ctx, "SELECT AVG_ROW_LENGTH, DATA_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 't'",
		benchDB).Scan(&rep.avgRow, &rep.dataLen)
	return nil
}

// setup creates the table on both sides at once, the same rows on each,
// outside the binlog, unless --reuse finds it there.
func setup(ctx context.Context, o options, m, r *sql.DB) (reused bool, err error) {
	if o.reuse && reusable(ctx, o, m, r) {
		fmt.Fprintf(os.Stderr, "reusing %s.t of %d rows on both sides\n", benchDB, o.rows)
		return true, nil
	}
	if o.reuse {
		fmt.Fprintf(os.Stderr, "no reusable %s.t of %d rows; creating it\n", benchDB, o.rows)
	}
	fmt.Fprintf(os.Stderr, "creating %s.t with %d rows on %s and %s ...\n", benchDB, o.rows, o.master, o.replica)
	stmts := createStmts(o.rows)
	g, gctx := errgroup.WithContext(ctx)
	for _, db := range []*sql.DB{m, r} {
		g.Go(func() error { return execAll(gctx, db, stmts) })
	}
	return false, g.Wait()
}

// reusable reports whether both sides hold the table of N rows.
func reusable(ctx context.Context, o options, m, r *sql.DB) bool {
	var nm, nr int
	em := m.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+benchDB+".t").Scan(&nm)
	er := r.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+benchDB+".t").Scan(&nr)
	return em == nil && er == nil && nm == o.rows && nr == o.rows
}

// createStmts create the table of rows rows, outside the binlog.
func createStmts(rows int) []string {
	stmts := []string{
		"SET SESSION sql_log_bin = 0",
		"DROP DATABASE IF EXISTS " + benchDB,
		"CREATE DATABASE " + benchDB,
		// About 100 bytes a row: BIGINT key, INT, nullable BIGINT,
		// 32-character text, DATETIME(6), DECIMAL, nullable text.
		"CREATE TABLE " + benchDB + ".t (id BIGINT NOT NULL PRIMARY KEY, a INT NOT NULL, b BIGINT NULL, c VARCHAR(40) NOT NULL, " +
			"d DATETIME(6) NOT NULL, e DECIMAL(12,2) NOT NULL, f VARCHAR(24) NULL) ENGINE=InnoDB",
	}
	const batch = 500_000
	for lo := 1; lo <= rows; lo += batch {
		hi := min(lo+batch-1, rows)
		stmts = append(stmts, fmt.Sprintf("INSERT INTO %s.t SELECT seq, seq * 7 %% 100000, IF(seq %% 10 = 0, NULL, seq * 13), MD5(seq), "+
			"'2024-01-01' + INTERVAL seq SECOND, seq / 100, IF(seq %% 3 = 0, NULL, SUBSTRING(SHA1(seq), 1, 20)) FROM %s.seq_%d_to_%d",
			benchDB, benchDB, lo, hi))
	}
	return append(stmts, "ANALYZE TABLE "+benchDB+".t")
}

// execAll runs statements in order on one connection.
func execAll(ctx context.Context, db *sql.DB, stmts []string) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// drop removes the bench database from both sides, outside the binlog.
func drop(ctx context.Context, m, r *sql.DB) {
	for _, db := range []*sql.DB{m, r} {
		_ = execAll(ctx, db, []string{"SET SESSION sql_log_bin = 0", "DROP DATABASE IF EXISTS " + benchDB})
	}
}

// settle waits until both servers have flushed all but 1% of their buffer
// pool's dirty pages, at most limit; it reports whether they did.
func settle(ctx context.Context, m, r *sql.DB, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for !calm(ctx, m) || !calm(ctx, r) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Second)
	}
	return true
}

// calm reports whether at most 1% of db's buffer pool is dirty.
func calm(ctx context.Context, db *sql.DB) bool {
	var name string
	var dirty, total int64
	db.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'").Scan(&name, &dirty)
	db.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_total'").Scan(&name, &total)
	return dirty*100 <= total
}
