package sink

import (
	"testing"

	"github.com/rowcast/rowcast/pipeline"
)

// TestDDLCheck: schema statements of replicated objects pass; statements of
// other kinds, and schema statements of databases or tables the source's
// filters leave out, are refused unless sink.allow_ddl names their kind.
func TestDDLCheck(t *testing.T) {
	f, err := newDDLFilter(&WorkerConfig{DDLInclude: []string{`^shop\.`}, DDLExclude: []string{`\.tmp_`}})
	if err != nil {
		t.Fatal(err)
	}
	allowed, err := newDDLFilter(&WorkerConfig{DDLInclude: []string{`^shop\.`}, AllowDDL: []string{"create  database", "GRANT"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		db, stmt   string
		ok, withOK bool // by f, by allowed
	}{
		{"shop", "CREATE TABLE t (id int primary key)", true, true},
		{"shop", "/*!40101 ALTER TABLE `t` ADD c int */", true, true},
		{"other", "ALTER TABLE shop.t ADD c int", true, true},
		{"shop", "ALTER TABLE other.t ADD c int", false, false},
		{"shop", "CREATE TABLE tmp_x (id int)", false, true},
		{"shop", "CREATE TABLE shop.tmp_x (id int)", false, true},
		{"shop", "DROP TABLE IF EXISTS `a`, `b`", true, true},
		{"shop", "RENAME TABLE a TO b", true, true},
		{"shop", "TRUNCATE t", true, true},
		{"shop", "CREATE UNIQUE INDEX i ON t (c)", true, true},
		{"shop", "DROP INDEX i ON other.t", false, false},
		{"shop", "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW v AS SELECT 1", true, true},
		{"shop", "CREATE DEFINER=`root`@`%` TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.c = 1", true, true},
		{"shop", "CREATE DEFINER=`root`@`%` PROCEDURE p() BEGIN END", true, true},
		{"shop", "CREATE DATABASE shop", true, true},
		{"", "CREATE DATABASE x", false, true},
		{"shop", "DROP DATABASE `x`", false, false},
		{"shop", "GRANT ALL ON *.* TO 'x'@'%'", false, true},
		{"shop", "CREATE USER 'x'@'%' IDENTIFIED BY 'pw'", false, false},
		{"shop", "SET GLOBAL read_only=0", false, false},
		{"shop", "INSTALL SONAME 'x'", false, false},
		{"shop", "ANALYZE TABLE t", true, true},
		{"shop", "OPTIMIZE NO_WRITE_TO_BINLOG TABLE other.t", false, false},
		{"", "CREATE SCHEMA x", false, true},
		{"shop", "FLUSH TABLES", false, false},
		{"shop", "SET STATEMENT lock_wait_timeout=10 FOR ALTER TABLE t ADD d INT", true, true},
		{"shop", "SET STATEMENT lock_wait_timeout=10 FOR GRANT ALL ON *.* TO x", false, true},
	} {
		ev := &pipeline.Event{Kind: pipeline.KindDDL, Database: c.db, Statement: c.stmt}
		if why := f.check(ev); (why == "") != c.ok {
			t.Errorf("%q in %s: refused %q, want ok %v", c.stmt, c.db, why, c.ok)
		}
		if why := allowed.check(ev); (why == "") != c.withOK {
			t.Errorf("allow_ddl: %q in %s: refused %q, want ok %v", c.stmt, c.db, why, c.withOK)
		}
	}
	all, _ := newDDLFilter(&WorkerConfig{AllowDDL: []string{"*"}})
	if why := all.check(&pipeline.Event{Statement: "GRANT x"}); why != "" {
		t.Errorf("allow_ddl *: %s", why)
	}
}
