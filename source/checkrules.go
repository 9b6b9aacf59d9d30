package source

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// checkSetup decides, from what the master said, whether rowcast can replicate
// it. It returns warnings (work, but look) and problems (rowcast refuses to
// start), each naming the variable or privilege, the node and the fix.
func checkSetup(f checkFacts) (warnings []string, problems []error) {
	c := findings{f: f}
	persist := "set it in the server's config file (so it survives a restart) and with SET GLOBAL; sessions opened before keep the old value until they reconnect"
	c.need("log_bin", "ON", "start the server with log_bin (and a server_id)")
	c.need("binlog_format", "ROW", "binlog_format=ROW: "+persist)
	c.need("binlog_row_image", "FULL", "binlog_row_image=FULL: "+persist)
	c.need("binlog_row_metadata", "FULL", "binlog_row_metadata=FULL (column names, signedness, charsets, primary key in every TABLE_MAP): "+persist)
	if f.Flavor == FlavorMariaDB {
		c.checkMariaDB()
	} else {
		c.checkMySQL(persist)
	}
	c.checkGrants()
	return c.warnings, c.problems
}

// findings collects what checkSetup finds.
type findings struct {
	f        checkFacts
	warnings []string
	problems []error
}

func (c *findings) warn(format string, args ...any) {
	c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
}

func (c *findings) problem(err error) { c.problems = append(c.problems, err) }

// need requires the variable name to be want.
func (c *findings) need(name, want, fix string) {
	got, ok := c.f.Vars[name]
	switch {
	case !ok:
		c.problem(fmt.Errorf("%w: %s does not have the variable %s (rowcast needs %s=%s; MySQL 8.0.1+ or MariaDB 10.5+): %s",
			ErrMasterSetup, c.f.Addr, name, name, want, fix))
	case !strings.EqualFold(got, want):
		c.problem(fmt.Errorf("%w: %s is %s on %s, rowcast needs %s: %s",
			ErrMasterSetup, name, quoteEmpty(got), c.f.Addr, want, fix))
	}
}

func (c *findings) checkMariaDB() {
	vars, addr := c.f.Vars, c.f.Addr
	// MariaDB always writes GTIDs; strict mode is what makes a GTID
	// position mean "everything up to here" in each domain.
	if !strings.EqualFold(vars["gtid_strict_mode"], "ON") {
		c.warn("gtid_strict_mode is %s on %s: without it a GTID position may not cover every earlier transaction of its domain; set gtid_strict_mode=ON",
			quoteEmpty(vars["gtid_strict_mode"]), addr)
	}
	// MariaDB 10.8+ can log an ALTER twice (START ALTER, then COMMIT or
	// ROLLBACK ALTER, told apart only by GTID flags go-mysql does not
	// decode); rowcast would publish both.
	if strings.EqualFold(vars["binlog_alter_two_phase"], "ON") {
		c.problem(fmt.Errorf("%w: binlog_alter_two_phase is ON on %s: rowcast cannot tell START ALTER from COMMIT ALTER; set binlog_alter_two_phase=OFF",
			ErrMasterSetup, addr))
	}
}

func (c *findings) checkMySQL(persist string) {
	vars, addr := c.f.Vars, c.f.Addr
	c.need("gtid_mode", "ON", "gtid_mode=ON with enforce_gtid_consistency=ON (https://dev.mysql.com/doc/refman/8.0/en/replication-mode-change-online-enable-gtids.html)")
	c.need("enforce_gtid_consistency", "ON", "enforce_gtid_consistency=ON: "+persist)
	if v := vars["binlog_row_value_options"]; v != "" {
		c.problem(fmt.Errorf("%w: binlog_row_value_options is %s on %s: partial JSON updates leave the after image incomplete; set binlog_row_value_options=''",
			ErrMasterSetup, v, addr))
	}
	if strings.EqualFold(vars["binlog_transaction_compression"], "ON") {
		c.warn("binlog_transaction_compression is ON on %s: compressed transactions are decoded, but each is held whole in memory while it is read; set binlog_transaction_compression=OFF to stream large transactions in bounded memory", addr)
	}
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
			roles = roles || strings.HasPrefix(strings.ToUpper(strings.TrimSpace(l)), "GRANT ")
			continue
		}
		grants = append(grants, grant{privs: parsePrivileges(m[1]), object: m[2]})
	}
	return grants, roles
}

// parsePrivileges reads a grant's comma-separated privileges, upper case;
// a column privilege, SELECT (a, b), counts as the privilege.
func parsePrivileges(list string) map[string]bool {
	privs := map[string]bool{}
	depth, start := 0, 0
	list += ","
	for i, c := range list {
		switch {
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == ',' && depth == 0:
			p := strings.ToUpper(strings.TrimSpace(list[start:i]))
			if j := strings.IndexByte(p, '('); j > 0 {
				p = strings.TrimSpace(p[:j])
			}
			privs[p] = true
			start = i + 1
		}
	}
	return privs
}

func (g grant) has(p string) bool {
	return g.privs[p] || g.privs["ALL PRIVILEGES"] || g.privs["ALL"]
}

// grants are a user's grants.
type grants []grant

// global reports whether p is granted on *.*.
func (gs grants) global(p string) bool {
	return slices.ContainsFunc(gs, func(g grant) bool { return g.object == "*.*" && g.has(p) })
}

// checkGrants names every missing privilege: REPLICATION SLAVE to stream,
// BINLOG MONITOR (MariaDB) or REPLICATION CLIENT (MySQL) to list binlogs, and
// SELECT on the replicated tables so that information_schema describes them.
func (c *findings) checkGrants() {
	f := c.f
	list, roles := parseGrants(f.Grants)
	gs := grants(list)
	roleNote := ""
	if roles {
		roleNote = " (privileges of roles that are not active in the session are not listed by SHOW GRANTS; grant them directly or make the role the default role)"
	}
	missing := func(p, why string) {
		c.problem(fmt.Errorf("%w: %s lacks %s on %s, needed %s: GRANT %s ON *.* TO %s%s",
			ErrPrivilege, f.User, p, f.Addr, why, p, f.User, roleNote))
	}
	if !gs.global("REPLICATION SLAVE") {
		missing("REPLICATION SLAVE", "to stream the binlog (MariaDB refuses the stream with ERROR 1045 Access denied, which looks like a wrong password)")
	}
	switch {
	case f.Flavor == FlavorMariaDB && !gs.global("BINLOG MONITOR") && !gs.global("REPLICATION CLIENT"):
		missing("BINLOG MONITOR", "for SHOW BINARY LOGS and the resume check")
	case f.Flavor != FlavorMariaDB && !gs.global("REPLICATION CLIENT") && !gs.global("SUPER"):
		missing("REPLICATION CLIENT", "for SHOW BINARY LOGS and the resume check")
	}
	if gs.global("SELECT") {
		return
	}
	if dbs := gs.selectOnly(); len(dbs) > 0 {
		c.warn("%s has SELECT only on %s on %s: tables elsewhere are decoded from the binlog alone (no COLUMN_TYPE, MariaDB JSON read as text, INET6/UUID as bytes)",
			f.User, strings.Join(dbs, ", "), f.Addr)
		return
	}
	missing("SELECT", "so that information_schema describes the replicated tables (column types, MariaDB JSON)")
}

// selectOnly lists, sorted, the objects other than *.* SELECT is granted on.
func (gs grants) selectOnly() []string {
	var dbs []string
	for _, g := range gs {
		if g.object != "*.*" && g.has("SELECT") {
			dbs = append(dbs, g.object)
		}
	}
	sort.Strings(dbs)
	return dbs
}
