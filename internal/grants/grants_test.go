package grants

import (
	"strings"
	"testing"
)

var readerJob = Job{Name: "reader",
	Needs:  []Need{{Priv: "REPLICATION SLAVE", DB: "*"}, {Priv: "BINLOG MONITOR", DB: "*"}, {Priv: "SELECT", DB: "shop"}},
	Global: []string{"REPLICATION SLAVE", "BINLOG MONITOR"}, DBs: []string{"shop"}, DBPrivs: []string{"SELECT"}}

func TestCheck(t *testing.T) {
	for _, c := range []struct {
		name   string
		lines  []string
		lacks  string
		excess []string
	}{
		{"least", []string{
			"GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `r`@`%` IDENTIFIED BY PASSWORD '*00'",
			"GRANT SELECT ON `shop`.* TO `r`@`%`"}, "", nil},
		{"pattern", []string{
			"GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `r`@`%`",
			"GRANT SELECT (a, b), SELECT ON `s_o%`.* TO `r`@`%`"}, "", nil},
		{"lacking", []string{"GRANT SELECT ON `other`.* TO `r`@`%`"}, "REPLICATION SLAVE *,BINLOG MONITOR *,SELECT shop",
			[]string{"SELECT on `other`.*: not needed"}},
		{"too much", []string{"GRANT ALL PRIVILEGES ON *.* TO `r`@`%` WITH GRANT OPTION",
			"GRANT INSERT ON `mysql`.* TO `r`@`%`", "GRANT SUPER ON *.* TO `r`@`%`"}, "",
			[]string{"GRANT OPTION on *.*", "ALL PRIVILEGES on *.*", "INSERT on `mysql`.*: includes writing the mysql schema", "SUPER on *.*"}},
		{"wide select", []string{"GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `r`@`%`"}, "",
			[]string{"SELECT on *.*: includes reading mysql.global_priv"}},
	} {
		r := Check(c.lines, readerJob)
		var lacks []string
		for _, n := range r.Lacks {
			lacks = append(lacks, n.Priv+" "+n.DB)
		}
		if got := strings.Join(lacks, ","); got != c.lacks {
			t.Errorf("%s: lacks %q, want %q", c.name, got, c.lacks)
		}
		if len(r.Excess) != len(c.excess) {
			t.Errorf("%s: too much %q, want %q", c.name, r.Excess, c.excess)
			continue
		}
		for i, w := range c.excess {
			if !strings.HasPrefix(r.Excess[i], w) {
				t.Errorf("%s: too much[%d] %q, want %q...", c.name, i, r.Excess[i], w)
			}
		}
	}
}

func TestParseRolesAndObjects(t *testing.T) {
	gs, roles := Parse([]string{"GRANT `app_role` TO `u`@`%`", "GRANT SELECT ON `a.b`.`t` TO `u`@`%`", "GRANT USAGE ON *.* TO `u`@`%`"})
	if roles != 1 || len(gs) != 2 || gs[0].DB != "a.b" || gs[0].Table != "t" || gs[1].DB != "*" {
		t.Fatalf("roles %d grants %+v", roles, gs)
	}
}

func TestMerge(t *testing.T) {
	j := Merge(readerJob, Job{Name: "sink", Needs: []Need{{Priv: "INSERT", DB: "shop"}}, DBs: []string{"shop", "rowcast"}, DBPrivs: []string{"INSERT"}})
	if j.Name != "reader+sink" || len(j.Needs) != 4 || strings.Join(j.DBs, ",") != "rowcast,shop" || strings.Join(j.DBPrivs, ",") != "INSERT,SELECT" {
		t.Fatalf("merged %+v", j)
	}
}

func TestLikeMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, db string
		want        bool
	}{{"shop", "shop", true}, {"shop", "shops", false}, {"sh%", "shop", true}, {"s_op", "shop", true},
		{`sh\_p`, "sh_p", true}, {`sh\_p`, "shop", false}, {"a.b", "axb", false}} {
		if got := likeMatch(c.pattern, c.db); got != c.want {
			t.Errorf("likeMatch(%q, %q) = %v", c.pattern, c.db, got)
		}
	}
}
