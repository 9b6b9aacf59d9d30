package mysql

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/rowcast/rowcast/internal/mysqlerr"
)

// WaitForProcedure is the name of the read-your-writes procedure in the
// bookkeeping schema: `CALL <schema>.wait_for('<gtid>', <timeout s>)`
// returns one row, 0 once a checkpoint row covers the GTID, -1 on timeout.
//
// It is a procedure, not a function: a function's reads share its calling
// statement's InnoDB read view and would never see the sink's next commit;
// each statement of a procedure takes a fresh one. docs/OPERATIONS.md,
// "Read your writes".
const WaitForProcedure = "wait_for"

// gtidCoversProcedure compares two GTID sets (MariaDB: per domain).
const gtidCoversProcedure = "gtid_covers"

// erProcAccessDenied is ER_PROCACCESS_DENIED_ERROR, which go-mysql does not name.
const erProcAccessDenied = 1370

// mariadbCovers sets ok to 1 when every domain of want has a GTID in have
// with at least its sequence number, as MASTER_GTID_WAIT compares them.
const mariadbCovers = `CREATE OR REPLACE PROCEDURE {s}.gtid_covers(IN have TEXT, IN want TEXT, OUT ok INT)
NO SQL
BEGIN
  DECLARE rest TEXT DEFAULT want;
  DECLARE g, h, hg TEXT;
  SET ok = 1;
  WHILE ok = 1 AND rest <> '' DO
    SET g = TRIM(SUBSTRING_INDEX(rest, ',', 1));
    SET rest = IF(LOCATE(',', rest) > 0, SUBSTRING(rest, LOCATE(',', rest) + 1), '');
    IF g <> '' THEN
      SET ok = 0, h = have;
      WHILE ok = 0 AND h <> '' DO
        SET hg = TRIM(SUBSTRING_INDEX(h, ',', 1));
        SET h = IF(LOCATE(',', h) > 0, SUBSTRING(h, LOCATE(',', h) + 1), '');
        IF SUBSTRING_INDEX(hg, '-', 1) = SUBSTRING_INDEX(g, '-', 1)
           AND CAST(SUBSTRING_INDEX(hg, '-', -1) AS UNSIGNED) >= CAST(SUBSTRING_INDEX(g, '-', -1) AS UNSIGNED) THEN
          SET ok = 1;
        END IF;
      END WHILE;
    END IF;
  END WHILE;
END`

// mariadbWaitFor polls the checkpoint rows, each poll a statement of its
// own (a fresh read view), sleeping 1 ms doubling to 10 ms in between.
const mariadbWaitFor = `CREATE OR REPLACE PROCEDURE {s}.wait_for(IN want TEXT, IN timeout DOUBLE)
READS SQL DATA
BEGIN
  DECLARE deadline DATETIME(6) DEFAULT SYSDATE(6) + INTERVAL ROUND(timeout * 1000000) MICROSECOND;
  DECLARE pause DOUBLE DEFAULT 0.001;
  DECLARE found INT DEFAULT 0;
  poll: LOOP
    CALL {s}.wait_for_poll(want, found);
    IF found = 1 THEN SELECT 0 AS wait_for; LEAVE poll; END IF;
    IF SYSDATE(6) >= deadline THEN SELECT -1 AS wait_for; LEAVE poll; END IF;
    DO SLEEP(pause);
    SET pause = LEAST(pause * 2, 0.01);
  END LOOP;
END`

// mariadbPoll sets found to 1 when a checkpoint row covers want.
const mariadbPoll = `CREATE OR REPLACE PROCEDURE {s}.wait_for_poll(IN want TEXT, OUT found INT)
READS SQL DATA
BEGIN
  DECLARE done INT DEFAULT 0;
  DECLARE have TEXT;
  DECLARE cur CURSOR FOR SELECT gtid_set FROM {s}.checkpoint;
  DECLARE CONTINUE HANDLER FOR NOT FOUND SET done = 1;
  SET found = 0;
  OPEN cur;
  read_rows: LOOP
    FETCH cur INTO have;
    IF done = 1 THEN LEAVE read_rows; END IF;
    CALL {s}.gtid_covers(have, want, found);
    IF found = 1 THEN LEAVE read_rows; END IF;
  END LOOP;
  CLOSE cur;
END`

// mysqlPoll does the same with MySQL's GTID_SUBSET.
const mysqlPoll = `CREATE PROCEDURE {s}.wait_for_poll(IN want TEXT, OUT found INT)
READS SQL DATA
SELECT COUNT(*) > 0 INTO found FROM {s}.checkpoint WHERE GTID_SUBSET(want, gtid_set)`

// waitForDDL is the statements that install the procedures on a server of
// the flavor; MySQL has no CREATE OR REPLACE PROCEDURE, so it drops first.
func waitForDDL(schema string, mariadb bool) []string {
	var stmts []string
	if mariadb {
		stmts = []string{mariadbCovers, mariadbPoll, mariadbWaitFor}
	} else {
		waitFor := strings.Replace(mariadbWaitFor, "CREATE OR REPLACE", "CREATE", 1)
		stmts = []string{"DROP PROCEDURE IF EXISTS {s}.wait_for_poll", mysqlPoll,
			"DROP PROCEDURE IF EXISTS {s}.wait_for", waitFor}
	}
	q := quoteIdent(schema)
	for i, s := range stmts {
		stmts[i] = strings.ReplaceAll(s, "{s}", q)
	}
	return stmts
}

// installWaitFor creates the read-your-writes procedures in the bookkeeping
// schema. A user without CREATE ROUTINE gets a warning, not a stopped sink:
// replication does not need them.
func (t *Target) installWaitFor(ctx context.Context) error {
	conn, err := t.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("install wait_for: %w", err)
	}
	defer func() {
		conn.Raw(func(any) error { return driver.ErrBadConn }) // closed, not pooled with its session schema
		conn.Close()
	}()
	// The bookkeeping schema as the session's: a reader of this server's
	// binlog (master-master) files the statements under it and passes them over.
	if _, err := conn.ExecContext(ctx, "USE "+quoteIdent(t.cfg.Schema)); err != nil {
		return fmt.Errorf("install wait_for: %w", err)
	}
	for _, stmt := range waitForDDL(t.cfg.Schema, t.mariadb) {
		_, err := conn.ExecContext(ctx, stmt)
		if mysqlerr.Is(err, gomysql.ER_DBACCESS_DENIED_ERROR, gomysql.ER_SPECIFIC_ACCESS_DENIED_ERROR, erProcAccessDenied) {
			t.log.Warn().Err(err).Str("schema", t.cfg.Schema).
				Msg("read-your-writes procedure wait_for not installed: GRANT CREATE ROUTINE, ALTER ROUTINE ON the bookkeeping schema to the sink's user")
			return nil
		}
		if err != nil {
			return fmt.Errorf("install wait_for: %w", err)
		}
	}
	return nil
}
