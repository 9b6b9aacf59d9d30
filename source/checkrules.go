package source

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// checkSetup decides, from what the master said, whether rowcast can replicate
// it. It returns warnings (work, but look) and problems (rowcast refuses to
// start), each naming the variable or privilege, the node and the fix.
func checkSetup(f checkFacts) (warnings []string, problems []error) {
	need := func(name, want, fix string) {
		got, ok := f.Vars[name]
		switch {
		case !ok:
			problems = append(problems, fmt.Errorf("%w: %s does not have the variable %s (rowcast needs %s=%s; MySQL 8.0.1+ or MariaDB 10.5+): %s",
				ErrMasterSetup, f.Addr, name, name, want, fix))
		case !strings.EqualFold(got, want):
			problems = append(problems, fmt.Errorf("%w: %s is %s on %s, rowcast needs %s: %s",
				ErrMasterSetup, name, quoteEmpty(got), f.Addr, want, fix))
		}
	}
	persist := "set it in the server's config file (so it survives a restart) and with SET GLOBAL; sessions opened before keep the old value until they reconnect"
	need("log_bin", "ON", "start the server with log_bin (and a server_id)")
	need("binlog_format", "ROW", "binlog_format=ROW: "+persist)
	need("binlog_row_image", "FULL", "binlog_row_image=FULL: "+persist)
	need("binlog_row_metadata", "FULL", "binlog_row_metadata=FULL (column names, signedness, charsets, primary key in every TABLE_MAP): "+persist)
	if f.Flavor == FlavorMariaDB {
		// MariaDB always writes GTIDs; strict mode is what makes a GTID
		// position mean "everything up to here" in each domain.
		if !strings.EqualFold(f.Vars["gtid_strict_mode"], "ON") {
			warnings = append(warnings, fmt.Sprintf("gtid_strict_mode is %s on %s: without it a GTID position may not cover every earlier transaction of its domain; set gtid_strict_mode=ON",
				quoteEmpty(f.Vars["gtid_strict_mode"]), f.Addr))
		}
		// MariaDB 10.8+ can log an ALTER twice (START ALTER, then COMMIT or
		// ROLLBACK ALTER, told apart only by GTID flags go-mysql does not
		// decode); rowcast would publish both.
		if strings.EqualFold(f.Vars["binlog_alter_two_phase"], "ON") {
			problems = append(problems, fmt.Errorf("%w: binlog_alter_two_phase is ON on %s: rowcast cannot tell START ALTER from COMMIT ALTER; set binlog_alter_two_phase=OFF",
				ErrMasterSetup, f.Addr))
		}
	} else {
		need("gtid_mode", "ON", "gtid_mode=ON with enforce_gtid_consistency=ON (https://dev.mysql.com/doc/refman/8.0/en/replication-mode-change-online-enable-gtids.html)")
		need("enforce_gtid_consistency", "ON", "enforce_gtid_consistency=ON: "+persist)
		if v := f.Vars["binlog_row_value_options"]; v != "" {
			problems = append(problems, fmt.Errorf("%w: binlog_row_value_options is %s on %s: partial JSON updates leave the after image incomplete; set binlog_row_value_options=''",
				ErrMasterSetup, v, f.Addr))
		}
		if strings.EqualFold(f.Vars["binlog_transaction_compression"], "ON") {
			warnings = append(warnings, fmt.Sprintf("binlog_transaction_compression is ON on %s: compressed transactions are decoded, but each is held whole in memory while it is read; set binlog_transaction_compression=OFF to stream large transactions in bounded memory", f.Addr))
		}
	}
	w, p := checkGrants(f)
	return append(warnings, w...), append(problems, p...)
}

func quoteEmpty(s string) string {
	if s == "" {
		return "empty"
	}
	return s
}

// grant is one "GRANT privs ON object TO user" line, privileges upper case.
type grant struct {
	privs  map[string]bool
	object string // "*.*", "`db`.*", "`db`.`table`"
}

var grantRe = regexp.MustCompile(`(?is)^GRANT\s+(.+?)\s+ON\s+(?:TABLE\s+)?(\S+)\s+TO\s`)

// parseGrants reads SHOW GRANTS lines. Lines without ON (role grants, PROXY)
// only set roles.
func parseGrants(lines []string) (grants []grant, roles bool) {
	for _, l := range lines {
		m := grantRe.FindStringSubmatch(l)
		if m == nil {
			if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(l)), "GRANT ") {
				roles = true
			}
			continue
		}
		g := grant{privs: map[string]bool{}, object: m[2]}
		depth, start := 0, 0
		list := m[1] + ","
		for i, c := range list {
			switch c {
			case '(':
				depth++
			case ')':
				depth--
			case ',':
				if depth == 0 {
					p := strings.ToUpper(strings.TrimSpace(list[start:i]))
					if j := strings.IndexByte(p, '('); j > 0 { // column privilege: SELECT (a, b)
						p = strings.TrimSpace(p[:j])
					}
					g.privs[p] = true
					start = i + 1
				}
			}
		}
		grants = append(grants, g)
	}
	return grants, roles
}

func (g grant) has(p string) bool {
	return g.privs[p] || g.privs["ALL PRIVILEGES"] || g.privs["ALL"]
}

// checkGrants names every missing privilege: REPLICATION SLAVE to stream,
// BINLOG MONITOR (MariaDB) or REPLICATION CLIENT (MySQL) to list binlogs, and
// SELECT on the replicated tables so that information_schema describes them.
func checkGrants(f checkFacts) (warnings []string, problems []error) {
	grants, roles := parseGrants(f.Grants)
	global := func(p string) bool {
		for _, g := range grants {
			if g.object == "*.*" && g.has(p) {
				return true
			}
		}
		return false
	}
	roleNote := ""
	if roles {
		roleNote = " (privileges of roles that are not active in the session are not listed by SHOW GRANTS; grant them directly or make the role the default role)"
	}
	missing := func(p, why string) {
		problems = append(problems, fmt.Errorf("%w: %s lacks %s on %s, needed %s: GRANT %s ON *.* TO %s%s",
			ErrPrivilege, f.User, p, f.Addr, why, p, f.User, roleNote))
	}
	if !global("REPLICATION SLAVE") {
		missing("REPLICATION SLAVE", "to stream the binlog (MariaDB refuses the stream with ERROR 1045 Access denied, which looks like a wrong password)")
	}
	switch {
	case f.Flavor == FlavorMariaDB && !global("BINLOG MONITOR") && !global("REPLICATION CLIENT"):
		missing("BINLOG MONITOR", "for SHOW BINARY LOGS and the resume check")
	case f.Flavor != FlavorMariaDB && !global("REPLICATION CLIENT") && !global("SUPER"):
		missing("REPLICATION CLIENT", "for SHOW BINARY LOGS and the resume check")
	}
	if !global("SELECT") {
		var dbs []string
		for _, g := range grants {
			if g.object != "*.*" && g.has("SELECT") {
				dbs = append(dbs, g.object)
			}
		}
		if len(dbs) == 0 {
			missing("SELECT", "so that information_schema describes the replicated tables (column types, MariaDB JSON)")
		} else {
			sort.Strings(dbs)
			warnings = append(warnings, fmt.Sprintf("%s has SELECT only on %s on %s: tables elsewhere are decoded from the binlog alone (no COLUMN_TYPE, MariaDB JSON read as text, INET6/UUID as bytes)",
				f.User, strings.Join(dbs, ", "), f.Addr))
		}
	}
	return warnings, problems
}
