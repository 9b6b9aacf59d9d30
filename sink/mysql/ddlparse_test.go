package mysql

import (
	"reflect"
	"testing"
)

func TestParseDDL(t *testing.T) {
	ren := func(pairs ...string) ddlShape {
		var s ddlShape
		for i := 0; i < len(pairs); i += 4 {
			s.renames = append(s.renames, renamePair{tableRef{pairs[i], pairs[i+1]}, tableRef{pairs[i+2], pairs[i+3]}})
		}
		return s
	}
	obj := func(kind, db, name string) ddlShape { return ddlShape{object: &objectRef{kind, db, name}} }
	for _, c := range []struct {
		stmt string
		want ddlShape
	}{
		{"RENAME TABLE a TO b", ren("d", "a", "d", "b")},
		{"rename tables `a``x` to o.`b`, o.c TO `d` ;", ren("d", "a`x", "o", "b", "o", "c", "d", "d")},
		{"RENAME TABLE IF EXISTS a WAIT 5 TO b", ren("d", "a", "d", "b")},
		{"RENAME TABLE a NOWAIT TO b", ren("d", "a", "d", "b")},
		{"/* c */ RENAME /*!50100 TABLE */ a TO b", ren("d", "a", "d", "b")},
		{"ALTER TABLE a RENAME TO b", ren("d", "a", "d", "b")},
		{"ALTER ONLINE IGNORE TABLE IF EXISTS x.a RENAME AS b", ren("x", "a", "d", "b")},
		{"ALTER TABLE a RENAME b", ren("d", "a", "d", "b")},
		{"ALTER TABLE a RENAME TO b, ADD COLUMN c INT", ddlShape{}},
		{"ALTER TABLE a RENAME COLUMN b TO c", ddlShape{}},
		{"ALTER TABLE a ADD COLUMN c INT", ddlShape{}},
		{"CREATE DEFINER=`root`@`127.0.0.1` TRIGGER trg BEFORE INSERT ON t FOR EACH ROW SET NEW.s = 1", obj("TRIGGER", "d", "trg")},
		{"CREATE DEFINER='trigger'@'%' TRIGGER x.`t r` AFTER DELETE ON t FOR EACH ROW SET @a = 1", obj("TRIGGER", "x", "t r")},
		{"CREATE DEFINER=`root`@`%` PROCEDURE `p`(IN x INT)\nBEGIN\nEND", obj("PROCEDURE", "d", "p")},
		{"create or replace definer = current_user() aggregate function if not exists f() returns int return 1", obj("FUNCTION", "d", "f")},
		{"/*!50003 CREATE*/ /*!50017 DEFINER=`u`@`h`*/ /*!50003 TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET @x=1 */", obj("TRIGGER", "d", "tr")},
		{"CREATE DEFINER='it\\'s'@'%' EVENT e ON SCHEDULE AT '2099-01-01' DO SET @x = 1", obj("EVENT", "d", "e")},
		{"CREATE TABLE trigger_log (id INT)", ddlShape{}},
		{"CREATE DEFINER=`root`@`%` SQL SECURITY DEFINER VIEW v AS SELECT 1", ddlShape{}},
		{"DROP TRIGGER trg", ddlShape{}},
		{"", ddlShape{}},
	} {
		if got := parseDDL(c.stmt, "d"); !reflect.DeepEqual(got, c.want) {
			t.Errorf("parseDDL(%q) = %+v, want %+v", c.stmt, got, c.want)
		}
	}
}

func TestReusesNames(t *testing.T) {
	for stmt, want := range map[string]bool{
		"RENAME TABLE a TO b":                                       false,
		"RENAME TABLE a TO b, c TO d":                               false,
		"RENAME TABLE a TO tmp, b TO a, tmp TO b":                   true,
		"RENAME TABLE a TO b, b TO c":                               true,
		"RENAME TABLE x.a TO y.a, y.b TO x.b":                       false,
		"RENAME TABLE x.a TO y.a, y.a TO x.a":                       true,
		"ALTER TABLE a RENAME TO b":                                 false,
		"CREATE TRIGGER t BEFORE INSERT ON a FOR EACH ROW SET @x=1": false,
	} {
		if got := parseDDL(stmt, "d").reusesNames(); got != want {
			t.Errorf("reusesNames(%q) = %v, want %v", stmt, got, want)
		}
	}
}
