package main

import (
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
)

// TestOneSinkPerReplica starts a second `rowcast sink` for a replica whose
// worker runs: it exits non-zero naming the session that holds the
// replica's worker lock, and `rowcast replay` refuses the replica the same
// way. A keyless table then gets each insert once, and its updates and
// deletes of rows that only a byte tells apart ('a', 'A', 'a ') leave the
// replica equal to the master byte for byte.
func TestOneSinkPerReplica(t *testing.T) {
	r := startReplication(t, "pipeline")
	master := testenv.DB(t, testenv.Master)
	testenv.Exec(t, master, "CREATE TABLE `"+r.database+"`.`nk` (`s` VARCHAR(10) COLLATE utf8mb4_general_ci NULL, "+
		"`b` VARCHAR(10) COLLATE utf8mb4_bin NULL, `n` INT NULL) ENGINE=InnoDB")
	first := startRowcast(t, "sink", "--config", r.cfg, "--replica", "db2")
	replica := testenv.DB(t, testenv.Replica1)
	waitFor(t, time.Minute, "the keyless table on db2", func() bool {
		var n int
		replica.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=? AND TABLE_NAME='nk'", r.database).Scan(&n)
		return n == 1
	})

	second := startRowcast(t, "sink", "--config", r.cfg, "--replica", "db2")
	checkRefused(t, second)
	out, err := rowcastOut(t, "replay", "--config", r.cfg, "--replica", "db2", "--from-offset", "0")
	if err == nil || !strings.Contains(out, "sink worker is running") || !strings.Contains(out, "holds the worker lock") {
		t.Fatalf("replay beside a running sink worker: %v\n%s", err, out)
	}

	nk := "`" + r.database + "`.`nk`"
	testenv.Exec(t, master,
		"INSERT INTO "+nk+" VALUES ('a','a',1), ('A','A',1), ('a ','a ',1), ('x','x',1), ('x','x',1)",
		"UPDATE "+nk+" SET `n`=2 WHERE BINARY `s`='A'",
		"DELETE FROM "+nk+" WHERE BINARY `s`='a '",
		"UPDATE "+nk+" SET `s`='c' WHERE BINARY `b`='a'",
		"INSERT INTO "+nk+" VALUES ('a ','a ',3)",
		"DELETE FROM "+nk+" WHERE BINARY `b`='a ' LIMIT 1")
	want := hexRows(t, master, nk)
	waitFor(t, time.Minute, "db2's keyless table to equal the master's", func() bool {
		return slices.Equal(hexRows(t, replica, nk), want)
	})
	first.stop(t)
	r.proc.stop(t)
}

// checkRefused waits for a second sink worker to exit with code 1, naming
// the session that holds the worker lock and how to stop it.
func checkRefused(t *testing.T, p *proc) {
	t.Helper()
	select {
	case err := <-p.done:
		out := p.out.String()
		if err == nil || p.cmd.ProcessState.ExitCode() != 1 {
			t.Fatalf("second sink worker: %v, want exit code 1\n%s", err, out)
		}
		for _, want := range []string{"holds the worker lock", "connection ", "of root@", "stop that worker", "KILL "} {
			if !strings.Contains(out, want) {
				t.Fatalf("second sink worker's error does not say %q:\n%s", want, out)
			}
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("a second sink worker for db2 still runs after 30s:\n%s", p.out)
	}
}

// hexRows lists table's rows byte for byte.
func hexRows(t *testing.T, db *sql.DB, table string) []string {
	t.Helper()
	rows, err := db.Query("SELECT CONCAT_WS('|', HEX(`s`), HEX(`b`), `n`) FROM " + table + " ORDER BY 1")
	if err != nil {
		return []string{fmt.Sprint(err)}
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		rows.Scan(&s)
		out = append(out, s)
	}
	return out
}
