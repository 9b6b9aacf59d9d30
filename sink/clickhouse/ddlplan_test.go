package clickhouse

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// planString renders actions for comparison: kind:db.table[->db.to][ col type].
func planString(acts []action) string {
	var out []string
	for _, a := range acts {
		s := fmt.Sprintf("%d:%s.%s", a.kind, a.table.db, a.table.name)
		if a.to.name != "" {
			s += "->" + a.to.db + "." + a.to.name
		}
		if a.col.Name != "" {
			s = strings.TrimSpace(s + " " + a.col.Name + " " + a.col.SQLType)
		}
		if a.def != nil {
			s += fmt.Sprintf(" cols=%d pk=%v", len(a.def.Columns), a.def.PrimaryKey)
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}

func TestDDLPlan(t *testing.T) {
	for _, c := range []struct{ stmt, want string }{
		{"CREATE TABLE `t` (`id` BIGINT NOT NULL PRIMARY KEY, `a` VARCHAR(32)) ENGINE=InnoDB", "1:d.t cols=2 pk=[0]"},
		{"CREATE TABLE IF NOT EXISTS x.t (a INT, b DECIMAL(12,2) UNSIGNED, PRIMARY KEY (b, a), KEY k (a))", "1:x.t cols=2 pk=[1 0]"},
		{"CREATE TABLE /*!32312 IF NOT EXISTS*/ t (id INT AUTO_INCREMENT, -- the key\n CONSTRAINT pk PRIMARY KEY (id))", "1:d.t cols=1 pk=[0]"},
		{"CREATE TABLE t LIKE u", "1:d.t"},
		{"CREATE OR REPLACE TABLE t (id INT PRIMARY KEY)", "4:d.t; 1:d.t cols=1 pk=[0]"},
		{"CREATE TEMPORARY TABLE t (id INT)", ""},
		{"CREATE DATABASE IF NOT EXISTS shop", "2:shop."},
		{"DROP DATABASE shop", "3:shop."},
		{"DROP TABLE IF EXISTS a, `b`.`c` RESTRICT", "4:d.a; 4:b.c"},
		{"TRUNCATE TABLE t", "5:d.t"},
		{"TRUNCATE x.t", "5:x.t"},
		{"RENAME TABLE a TO b, x.c TO y.d", "6:d.a->d.b; 6:x.c->y.d"},
		{"ALTER TABLE t ADD COLUMN n VARCHAR(20) NULL AFTER a, ADD INDEX i (n)", "7:d.t n varchar(20)"},
		{"ALTER TABLE t ADD n2 INT UNSIGNED DEFAULT 0, DROP COLUMN IF EXISTS o, DROP KEY k", "7:d.t n2 int unsigned; 8:d.t o"},
		{"ALTER TABLE t MODIFY COLUMN n BIGINT NOT NULL, CHANGE m m DATETIME(6)", "9:d.t n bigint; 9:d.t m datetime(6)"},
		{"ALTER TABLE t RENAME TO u", "6:d.t->d.u"},
		{"ALTER TABLE t ENGINE=InnoDB, COMMENT 'x', ALGORITHM=INPLACE, LOCK=NONE", ""},
		{"CREATE UNIQUE INDEX i ON t (a)", ""},
		{"CREATE DEFINER=`root`@`localhost` TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1", ""},
		{"DROP VIEW v", ""},
		{"GRANT SELECT ON *.* TO u", ""},
	} {
		acts, err := ddlPlan(c.stmt, "d")
		if err != nil {
			t.Errorf("%s: %v", c.stmt, err)
			continue
		}
		if got := planString(acts); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.stmt, got, c.want)
		}
	}
}

func TestDDLPlanRefuses(t *testing.T) {
	for _, stmt := range []string{
		"ALTER TABLE t RENAME COLUMN a TO b",
		"ALTER TABLE t CHANGE a b INT",
		"ALTER TABLE t ADD PRIMARY KEY (a)",
		"ALTER TABLE t DROP PRIMARY KEY",
		"ALTER TABLE t ADD COLUMN (a INT, b INT)",
		"ALTER TABLE t ADD COLUMN v VECTOR(3)",
		"CREATE SOMETHING t",
		"DELETE FROM t",
	} {
		if _, err := ddlPlan(stmt, "d"); err == nil {
			t.Errorf("%s: mapped, want a refusal", stmt)
		} else if !errors.Is(err, errNotMapped) && !strings.Contains(err.Error(), "type") {
			t.Errorf("%s: %v", stmt, err)
		}
	}
}
