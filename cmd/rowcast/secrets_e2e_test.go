package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
)

// accountSQL runs statements as root on node over one session that keeps
// them out of the node's binlog (a replica's GTID history stays empty).
func accountSQL(t *testing.T, node string, stmts ...string) {
	t.Helper()
	conn, err := testenv.DB(t, node).Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, s := range append([]string{"SET SESSION sql_log_bin = 0"}, stmts...) {
		if _, err := conn.ExecContext(context.Background(), s); err != nil {
			t.Fatalf("%s on %s: %v", s, node, err)
		}
	}
}

// sqlString quotes s as a MariaDB string literal.
func sqlString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}

// TestCheckGrants: an account that lacks what the reader needs, and one
// that holds ALL PRIVILEGES, are both reported, and the command fails. The
// passwords, with " #" and a quote, come from the environment into plain
// and quoted YAML values.
func TestCheckGrants(t *testing.T) {
	database := testenv.UniqueName(t, "rc")
	reader, sinkUser := "rcr_"+database[len(database)-8:], "rcs_"+database[len(database)-8:]
	readerPW, sinkPW := "r #1'x", "s #2\"y"
	for _, node := range []string{testenv.Replica1, testenv.Replica2} {
		accountSQL(t, node, "CREATE DATABASE `"+database+"`", "CREATE TABLE `"+database+"`.t (id INT PRIMARY KEY)",
			fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY %s", reader, sqlString(readerPW)),
			fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY %s", sinkUser, sqlString(sinkPW)),
			fmt.Sprintf("GRANT SELECT ON `%s`.* TO '%s'@'%%'", database, reader),
			fmt.Sprintf("GRANT ALL PRIVILEGES ON *.* TO '%s'@'%%'", sinkUser))
		t.Cleanup(func() {
			accountSQL(t, node, "DROP DATABASE IF EXISTS `"+database+"`",
				"DROP USER IF EXISTS '"+reader+"'@'%'", "DROP USER IF EXISTS '"+sinkUser+"'@'%'")
		})
	}
	t.Setenv("RC_TEST_READER_PW", readerPW)
	t.Setenv("RC_TEST_SINK_PW", sinkPW)
	path := filepath.Join(t.TempDir(), "rowcast.yaml")
	text := fmt.Sprintf(`cluster: grants
master: db2
nodes:
  - name: db2
    dsn: %s:${RC_TEST_SINK_PW}@tcp(%s)/
  - {name: db3, dsn: "%s:${RC_TEST_SINK_PW}@tcp(%s)/"}
kafka: {brokers: [%q]}
source:
  include: ['^%s\.']
  user: %s
  password: ${RC_TEST_READER_PW}
`, sinkUser, testenv.Addr(testenv.Replica1), sinkUser, testenv.Addr(testenv.Replica2), testenv.Addr("kafka"), database, reader)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "config", "validate", "--config", path, "--check-grants")
	if code != 1 || strings.Contains(out, "cannot check") {
		t.Fatalf("exit %d, want 1 (an account lacks privileges), every account checked:\n%s%s", code, out, errs)
	}
	for _, want := range []string{
		"db2: " + reader + "@% (reader):\n  lacks    REPLICATION SLAVE ON *.*",
		"db3: " + reader + "@% (reader):\n  lacks    REPLICATION SLAVE ON *.*",
		"lacks    BINLOG MONITOR ON *.*",
		"db2: " + sinkUser + "@% (sink+admin):\n  too much ALL PRIVILEGES on *.*",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestAccountStatementsReachNoTopic: CREATE USER and GRANT on the master,
// in a replicated database's session, reach neither the topic nor a
// replica; the row written after them does.
func TestAccountStatementsReachNoTopic(t *testing.T) {
	r := startReplication(t, "run")
	user := "rcu_" + r.database[len(r.database)-8:]
	secret := "pw #SECRET-" + user
	master := testenv.DBAt(t, testenv.Master, r.database)
	t.Cleanup(func() { testenv.DB(t, testenv.Master).Exec("DROP USER IF EXISTS '" + user + "'@'127.0.0.1'") })
	testenv.Exec(t, master, "CREATE TABLE t (id INT PRIMARY KEY)",
		fmt.Sprintf("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY %s", user, sqlString(secret)),
		fmt.Sprintf("GRANT SELECT ON `%s`.* TO '%s'@'127.0.0.1'", r.database, user),
		fmt.Sprintf("SET PASSWORD FOR '%s'@'127.0.0.1' = PASSWORD(%s)", user, sqlString(secret+"2")),
		"INSERT INTO t VALUES (1)")
	for _, node := range []string{testenv.Replica1, testenv.Replica2} {
		waitFor(t, 60*time.Second, "the row on "+node, func() bool { return rowsOn(t, node, r.database) == 1 })
		if n := usersNamed(t, testenv.DB(t, node), user); n != 0 {
			t.Errorf("%s has the account %s", node, user)
		}
	}
	for _, ev := range readTopic(t, r.topic) {
		if ev.Kind == pipeline.KindDDL && (strings.Contains(ev.Statement, user) || strings.Contains(ev.Statement, "SECRET")) {
			t.Errorf("the topic holds %q at %s", ev.Statement, ev.Pos)
		}
	}
}

// TestReplicateAccountsPublishesOnlyTheHash: with source.replicate_accounts
// the CREATE USER is published with the password's hash, never the password.
func TestReplicateAccountsPublishesOnlyTheHash(t *testing.T) {
	topic, database := testenv.CreateTopic(t, 1), testenv.UniqueName(t, "rc")
	cfg := clusterConfig{database: database, topic: topic, sourceExtra: "  replicate_accounts: true\n"}.write(t)
	startPublishing(t, "pipeline", cfg, topic)
	replicatedNamed(t, database)
	user := "rcu_" + database[len(database)-8:]
	secret := "pw #SECRET-" + user
	master := testenv.DBAt(t, testenv.Master, database)
	t.Cleanup(func() { testenv.DB(t, testenv.Master).Exec("DROP USER IF EXISTS '" + user + "'@'127.0.0.1'") })
	testenv.Exec(t, master, fmt.Sprintf("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY %s", user, sqlString(secret)))
	var hash string
	if err := master.QueryRow("SELECT PASSWORD(?)", secret).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	var stmt string
	waitFor(t, 60*time.Second, "the CREATE USER in the topic", func() bool {
		for _, ev := range readTopic(t, topic) {
			if ev.Kind == pipeline.KindDDL && strings.Contains(ev.Statement, user) {
				stmt = ev.Statement
				return true
			}
		}
		return false
	})
	if strings.Contains(stmt, "SECRET") || !strings.HasSuffix(stmt, "IDENTIFIED BY PASSWORD '"+hash+"'") {
		t.Errorf("published %q, want the password as its hash %s", stmt, hash)
	}
}

// rowsOn counts the rows of database.t on node; -1 while the table is not
// there.
func rowsOn(t *testing.T, node, database string) int {
	var n int
	if err := testenv.DB(t, node).QueryRow("SELECT COUNT(*) FROM `" + database + "`.t").Scan(&n); err != nil {
		return -1
	}
	return n
}

// usersNamed counts the accounts named user on a node.
func usersNamed(t *testing.T, db *sql.DB, user string) int {
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM mysql.user WHERE User = ?", user).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLeastPrivilegeAccounts: `rowcast run` replicates with the local
// stack's accounts, one per job (the reader's, the sinks'), none of them
// root, and `rowcast status` reads every node with the sinks' account.
func TestLeastPrivilegeAccounts(t *testing.T) {
	topic, database := testenv.CreateTopic(t, 1), testenv.UniqueName(t, "rc")
	path := clusterConfig{database: database, topic: topic, protect: true,
		sourceExtra: "  user: rowcast_reader\n  password: ${ROWCAST_DB_PASSWORD:-rowcast}\n",
		extra:       "failover: {user: rowcast_admin, password: \"${ROWCAST_DB_PASSWORD:-rowcast}\"}\n"}.write(t)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(raw), `dsn: "root@tcp(`, `dsn: "rowcast_sink:${ROWCAST_DB_PASSWORD:-rowcast}@tcp(`)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	startPublishing(t, "run", path, topic)
	replicatedNamed(t, database)
	testenv.Exec(t, testenv.DBAt(t, testenv.Master, database), "CREATE TABLE t (id INT PRIMARY KEY)", "INSERT INTO t VALUES (1), (2)")
	for _, node := range []string{testenv.Replica1, testenv.Replica2} {
		waitFor(t, 60*time.Second, "the rows on "+node, func() bool { return rowsOn(t, node, database) == 2 })
	}
	if code, out, errs := runCLIProcess(t, "status", "--config", path); code != 0 {
		t.Errorf("status with the sinks' account: exit %d\n%s%s", code, out, errs)
	}
}
