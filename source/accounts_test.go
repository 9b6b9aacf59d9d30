package source

import (
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
)

func TestIsAccountStatement(t *testing.T) {
	for stmt, want := range map[string]bool{
		"CREATE USER 'a'@'%' IDENTIFIED BY 'x'":         true,
		"create or replace user a":                      true,
		"/* x */ ALTER USER a IDENTIFIED BY 'x'":        true,
		"DROP USER IF EXISTS a":                         true,
		"RENAME USER a TO b":                            true,
		"GRANT SELECT ON db.* TO a":                     true,
		"REVOKE ALL PRIVILEGES, GRANT OPTION FROM a":    true,
		"SET PASSWORD FOR a = PASSWORD('x')":            true,
		"CREATE ROLE r":                                 true,
		"DROP ROLE r":                                   true,
		"SET DEFAULT ROLE r FOR a":                      true,
		"CREATE TABLE user (id INT)":                    false,
		"ALTER TABLE grants ADD COLUMN password INT":    false,
		"CREATE DATABASE users":                         false,
		"DROP TABLE `user`":                             false,
		"CREATE TABLE granted (id INT) COMMENT 'GRANT'": false,
	} {
		if got := isAccountStatement(stmt); got != want {
			t.Errorf("isAccountStatement(%q) = %v, want %v", stmt, got, want)
		}
	}
}

func TestHashPasswords(t *testing.T) {
	hx := nativePasswordHash("x")
	for _, c := range []struct{ in, want string }{
		{"CREATE USER 'a'@'%' IDENTIFIED BY 'x'", "CREATE USER 'a'@'%' IDENTIFIED BY PASSWORD '" + hx + "'"},
		{"ALTER USER a identified by \"x\" ACCOUNT LOCK", "ALTER USER a identified by PASSWORD '" + hx + "' ACCOUNT LOCK"},
		{"GRANT SELECT ON *.* TO a IDENTIFIED BY 'x', b IDENTIFIED BY PASSWORD '*00'", "GRANT SELECT ON *.* TO a IDENTIFIED BY PASSWORD '" + hx + "', b IDENTIFIED BY PASSWORD '*00'"},
		{"SET PASSWORD FOR a = PASSWORD('x')", "SET PASSWORD FOR a = '" + hx + "'"},
		{"CREATE USER a IDENTIFIED VIA mysql_native_password USING PASSWORD('x') OR unix_socket", "CREATE USER a IDENTIFIED VIA mysql_native_password USING '" + hx + "' OR unix_socket"},
		{"CREATE USER a IDENTIFIED WITH mysql_native_password BY 'x'", "CREATE USER a IDENTIFIED WITH mysql_native_password AS '" + hx + "'"},
		{`CREATE USER a IDENTIFIED BY 'it''s \' # -- x'`, "CREATE USER a IDENTIFIED BY PASSWORD '" + nativePasswordHash(`it's ' # -- x`) + "'"},
		{"CREATE USER /* IDENTIFIED BY 'c' */ a IDENTIFIED BY _utf8mb4'x'", "CREATE USER /* IDENTIFIED BY 'c' */ a IDENTIFIED BY PASSWORD '" + hx + "'"},
		{"CREATE USER a IDENTIFIED BY ''", "CREATE USER a IDENTIFIED BY PASSWORD ''"},
		{"DROP USER 'a'@'%'", "DROP USER 'a'@'%'"},
	} {
		got, ok := hashPasswords(c.in, 0)
		if !ok || got != c.want {
			t.Errorf("hashPasswords(%q) = %q, %v\n want %q", c.in, got, ok, c.want)
		}
	}
	for _, in := range []string{
		"CREATE USER a IDENTIFIED VIA ed25519 USING PASSWORD('x')",
		"SET PASSWORD = OLD_PASSWORD('x')",
		"ALTER USER a IDENTIFIED BY 'x' 'y'",
		"CREATE USER a IDENTIFIED WITH caching_sha2_password BY 'x'",
		"ALTER USER a IDENTIFIED BY 'new' REPLACE 'old'",
	} {
		if got, ok := hashPasswords(in, 0); ok {
			t.Errorf("hashPasswords(%q) = %q: a password it cannot hash passed", in, got)
		}
	}
}

func TestHashPasswordsReadsTheSessionsQuoting(t *testing.T) {
	in := `CREATE USER a IDENTIFIED BY 'x\'`
	got, ok := hashPasswords(in, modeNoBackslashEscapes)
	if want := "CREATE USER a IDENTIFIED BY PASSWORD '" + nativePasswordHash(`x\`) + "'"; !ok || got != want {
		t.Errorf("under NO_BACKSLASH_ESCAPES: %q, %v, want %q", got, ok, want)
	}
}

func TestSystemSchemasAreNeverPublished(t *testing.T) {
	f, err := newFilter(&Config{Include: []string{".*"}, BookkeepingSchema: "rowcast"})
	if err != nil {
		t.Fatal(err)
	}
	for _, db := range []string{"mysql", "MySQL", "performance_schema", "sys", "information_schema", "rowcast"} {
		if f.table(db, "user") || f.ddl(db, "CREATE TABLE x (id INT)") {
			t.Errorf("%s is published", db)
		}
	}
	if !f.table("app", "user") {
		t.Error("app.user is not published")
	}
}

// createUser creates a user on the master, in the binlog, and drops it when
// the test ends; it returns the user's name.
func createUser(t *testing.T, password string) string {
	t.Helper()
	root := testenv.DB(t, testenv.Master)
	user := testenv.UniqueName(t, "u")[:30]
	testenv.Exec(t, root, fmt.Sprintf("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY '%s'", user, password))
	t.Cleanup(func() { root.Exec("DROP USER IF EXISTS '" + user + "'@'127.0.0.1'") })
	return user
}

func TestAccountStatementsAreWithheld(t *testing.T) {
	dbName := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, dbName)
	testenv.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY)")
	sys := "rowcast_" + strings.ReplaceAll(dbName, "rc_", "")[:20]
	root := testenv.DB(t, testenv.Master)
	testenv.Exec(t, root, "CREATE TABLE mysql."+sys+" (id INT PRIMARY KEY)")
	t.Cleanup(func() { root.Exec("DROP TABLE IF EXISTS mysql." + sys) })
	cfg := testConfig(t, dbName)
	cfg.Include = append(cfg.Include, `^mysql\.`)
	var hooked atomic.Int32
	cfg.OnWithheld = func() { hooked.Add(1) }
	r := NewReader(cfg, testLogger(t))
	c := runReader(t, r, Start{GTIDSet: binlogPos(t, db), NextTxnSeq: 1})

	user := createUser(t, "pw # secret")
	testenv.Exec(t, db, "GRANT SELECT ON `"+dbName+"`.* TO '"+user+"'@'127.0.0.1'",
		"INSERT INTO mysql."+sys+" VALUES (1)", "INSERT INTO t VALUES (1)")
	first := c.txn(t)
	if ev := first[0]; ev.Table == nil || ev.Table.Name != "t" {
		t.Fatalf("first message published: %s %q", ev.Kind, ev.Statement)
	}
	if got := r.AccountStatementsWithheld(); got != 2 || hooked.Load() != 2 {
		t.Errorf("%d account statements withheld (%d through OnWithheld), want 2 (CREATE USER, GRANT)", got, hooked.Load())
	}
	c.quiet(t, 300*time.Millisecond)
}

func TestReplicateAccountsPublishesTheHash(t *testing.T) {
	dbName := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, dbName)
	cfg := testConfig(t, dbName)
	cfg.ReplicateAccounts = true
	c := startReader(t, cfg, Start{GTIDSet: binlogPos(t, db), NextTxnSeq: 1})
	user := createUser(t, "pw # secret")
	ddl := c.txn(t)
	stmt := ddl[0].Statement
	var hash string
	if err := db.QueryRow("SELECT PASSWORD('pw # secret')").Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if !isDDL(ddl[0], "CREATE USER '"+user+"'") || strings.Contains(stmt, "secret") ||
		!regexp.MustCompile(`IDENTIFIED BY PASSWORD '\`+hash+`'$`).MatchString(stmt) {
		t.Errorf("published %q, want the server's hash %s", stmt, hash)
	}
}
