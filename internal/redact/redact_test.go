package redact

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
)

func TestSQL(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"CREATE USER 'bob'@'%' IDENTIFIED BY 'pw'", "CREATE USER…"},
		{"ALTER TABLE `t1` ADD COLUMN c2 INT DEFAULT 7", "ALTER TABLE `t1` ADD COLUMN c2 INT DEFAULT…"},
		{"CREATE TABLE `a'b`.t (id int)", "CREATE TABLE `a'b`.t (id int)"},
		{"CREATE TABLE `a``1` (x varchar(10))", "CREATE TABLE `a``1` (x varchar(…"},
		{"INSERT INTO t VALUES (_utf8mb4'secret')", "INSERT INTO t VALUES (…"},
		{"UPDATE t SET b = X'ff'", "UPDATE t SET b =…"},
		{`SET PASSWORD = PASSWORD("x")`, "SET PASSWORD = PASSWORD(…"},
		{"DROP TABLE t2", "DROP TABLE t2"},
		{"", ""},
	} {
		if got := SQL(c.in); got != c.want {
			t.Errorf("SQL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := SQL("DROP TABLE " + strings.Repeat("x", 300)); len(got) != maxSQL+len(Cut) {
		t.Errorf("a long statement is cut to %d bytes, want %d", len(got), maxSQL+len(Cut))
	}
}

func TestErrCutsTheServersExcerpt(t *testing.T) {
	server := &mysql.MySQLError{Number: 1064, Message: "You have an error in your SQL syntax; check the manual that corresponds " +
		"to your MariaDB server version for the right syntax to use near 'IDENTIFIED BY 'hunter2' x' at line 1"}
	err := Err(fmt.Errorf("DDL: %w", server))
	if strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "near 'IDENTIFIED BY…' at line 1") {
		t.Errorf("error text %q", err)
	}
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1064 {
		t.Errorf("the server's error is no longer reachable: %v", err)
	}
	plain := errors.New("no excerpt")
	if Err(plain) != plain || Err(nil) != nil {
		t.Error("an error without an excerpt is not returned as it is")
	}
}

func TestMessageCutsValues(t *testing.T) {
	for in, want := range map[string]string{
		"Duplicate entry 'alice@example.com' for key 'email'":             "Duplicate entry '…' for key 'email'",
		"Incorrect integer value: 'a'b' for column `db`.`t`.`n` at row 1": "Incorrect integer value: '…' for column `db`.`t`.`n` at row 1",
		"Truncated incorrect DOUBLE value: '12x'":                         "Truncated incorrect DOUBLE value: '…'",
	} {
		if got := Message(in); got != want {
			t.Errorf("Message(%q) = %q, want %q", in, got, want)
		}
	}
}
