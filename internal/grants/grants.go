// Package grants reads an account's SHOW GRANTS and tells what it lacks for
// a job and what it holds beyond it: rowcast's least-privilege check
// (`rowcast config validate --check-grants`).
package grants

import (
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Grant is one "GRANT privs ON object TO user" line.
type Grant struct {
	Privs map[string]bool // upper case; ALL PRIVILEGES as "ALL PRIVILEGES"
	DB    string          // "*" for *.*; a database name or LIKE pattern
	Table string          // "*" for a database's every table
	Admin bool            // WITH GRANT OPTION
}

var grantOptionRe = regexp.MustCompile(`(?i)\bWITH\s+GRANT\s+OPTION\b`)

var grantRe = regexp.MustCompile(`(?is)^GRANT\s+(.+?)\s+ON\s+(?:TABLE\s+|FUNCTION\s+|PROCEDURE\s+|PACKAGE\s+(?:BODY\s+)?)?(\S+)\s+TO\s`)

// Parse reads SHOW GRANTS lines. Lines without ON (role grants, PROXY) are
// counted in roles.
func Parse(lines []string) (gs []Grant, roles int) {
	for _, l := range lines {
		m := grantRe.FindStringSubmatch(l)
		if m == nil {
			if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(l)), "GRANT ") {
				roles++
			}
			continue
		}
		db, table := splitObject(m[2])
		gs = append(gs, Grant{Privs: privileges(m[1]), DB: db, Table: table, Admin: grantOptionRe.MatchString(l)})
	}
	return gs, roles
}

// splitObject splits `db`.`table` (or *.*) and unquotes both.
func splitObject(obj string) (db, table string) {
	db, table, _ = strings.Cut(obj, ".")
	// A quoted name may hold a dot: cut at the dot after a closing quote.
	if strings.HasPrefix(obj, "`") {
		if i := strings.Index(obj[1:], "`."); i >= 0 {
			db, table = obj[:i+2], obj[i+3:]
		}
	}
	return unquote(db), unquote(table)
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '`' && s[len(s)-1] == '`' {
		return strings.ReplaceAll(s[1:len(s)-1], "``", "`")
	}
	return s
}

// privileges reads a grant's comma-separated privileges, upper case; a
// column privilege, SELECT (a, b), counts as the privilege.
func privileges(list string) map[string]bool {
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
			p := strings.ToUpper(strings.Join(strings.Fields(list[start:i]), " "))
			if j := strings.IndexByte(p, '('); j > 0 {
				p = strings.TrimSpace(p[:j])
			}
			if p == "ALL" {
				p = "ALL PRIVILEGES"
			}
			privs[p] = true
			start = i + 1
		}
	}
	return privs
}

// has reports whether g grants p.
func (g Grant) has(p string) bool {
	return g.Privs[p] || g.Privs["ALL PRIVILEGES"] && p != "GRANT OPTION"
}

// covers reports whether g applies to every table of database db ("*" for
// a global privilege).
func (g Grant) covers(db string) bool {
	if g.Table != "*" {
		return false
	}
	return g.DB == "*" || db != "*" && likeMatch(g.DB, db)
}

// likeMatch matches a database name against a grant's name, which may be a
// LIKE pattern (_ and %, \ escaping).
func likeMatch(pattern, s string) bool {
	return likeRegexp(pattern).MatchString(s)
}

// likeRegexp is the regular expression of a LIKE pattern.
func likeRegexp(pattern string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; {
		case c == '%':
			b.WriteString(".*")
		case c == '_':
			b.WriteString(".")
		case c == '\\' && i+1 < len(pattern):
			i++
			fallthrough
		default:
			b.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
		}
	}
	return regexp.MustCompile(b.String() + "$")
}

// Need is a privilege a job needs on a database ("*" for a global one).
type Need struct {
	Priv string
	DB   string
	Why  string
}

// Object is how a need's database is written in a GRANT.
func (n Need) Object() string { return object(n.DB) }

func object(db string) string {
	if db == "*" {
		return "*.*"
	}
	return "`" + strings.ReplaceAll(db, "`", "``") + "`.*"
}

// Job is what an account does: the privileges it needs, and those it may
// hold without being told it holds too much (global ones, and on the
// databases it works in).
type Job struct {
	Name    string
	Needs   []Need
	Global  []string // privileges it may hold on *.*
	DBs     []string // databases it works in
	DBPrivs []string // privileges it may hold on those
}

// Merge is the job of one account that does both a and b.
func Merge(a, b Job) Job {
	return Job{Name: a.Name + "+" + b.Name, Needs: append(slices.Clip(a.Needs), b.Needs...),
		Global: union(a.Global, b.Global), DBs: union(a.DBs, b.DBs), DBPrivs: union(a.DBPrivs, b.DBPrivs)}
}

func union(a, b []string) []string {
	out := slices.Concat(a, b)
	sort.Strings(out)
	return slices.Compact(out)
}

// Report is what an account lacks for its job and holds beyond it.
type Report struct {
	Lacks  []Need
	Excess []string // each with why it is too much
	Roles  int      // role grants: their privileges are not checked
}

// Check compares an account's SHOW GRANTS with its job.
func Check(lines []string, job Job) Report {
	gs, roles := Parse(lines)
	r := Report{Roles: roles}
	for _, n := range job.Needs {
		if !holds(gs, n) {
			r.Lacks = append(r.Lacks, n)
		}
	}
	for _, g := range gs {
		r.Excess = append(r.Excess, excess(g, job)...)
	}
	return r
}

// holds reports whether the grants give n.
func holds(gs []Grant, n Need) bool {
	return slices.ContainsFunc(gs, func(g Grant) bool { return g.covers(n.DB) && g.has(n.Priv) })
}

// systemDBs hold the accounts and the server's state.
var systemDBs = []string{"mysql", "sys", "performance_schema", "information_schema"}

// excess lists what grant g gives beyond the job, one line per reason.
func excess(g Grant, job Job) []string {
	var out []string
	on := g.object()
	if g.Admin {
		out = append(out, "GRANT OPTION on "+on+": rowcast never grants")
	}
	if g.Privs["ALL PRIVILEGES"] {
		return append(out, "ALL PRIVILEGES on "+on+": grant the privileges listed in docs/SECURITY.md instead")
	}
	allowed := allowedOn(g, job)
	var reasons []string
	byReason := map[string][]string{}
	for _, p := range sortedKeys(g.Privs) {
		why := tooMuch(p, g, allowed)
		if why != "" && byReason[why] == nil {
			reasons = append(reasons, why)
		}
		if why != "" {
			byReason[why] = append(byReason[why], p)
		}
	}
	for _, why := range reasons {
		out = append(out, strings.Join(byReason[why], ", ")+" on "+on+": "+why)
	}
	return out
}

// object is where g applies, as a GRANT writes it.
func (g Grant) object() string {
	if g.Table == "*" {
		return object(g.DB)
	}
	return strings.TrimSuffix(object(g.DB), "*") + "`" + g.Table + "`"
}

// allowedOn is what the job may hold where g applies.
func allowedOn(g Grant, job Job) []string {
	if g.DB == "*" {
		return job.Global
	}
	if slices.ContainsFunc(job.DBs, func(db string) bool { return likeMatch(g.DB, db) }) {
		return job.DBPrivs
	}
	return nil
}

// tooMuch says why privilege p of grant g is too much, "" when it is not.
func tooMuch(p string, g Grant, allowed []string) string {
	switch {
	case p == "USAGE":
		return ""
	case p == "SUPER":
		return "SUPER overrides read_only and more; grant READ_ONLY ADMIN, CONNECTION ADMIN... instead"
	case writesSystem(p, g):
		return "includes writing the mysql schema (accounts, password hashes); grant them on the replicated databases and the bookkeeping schema only"
	case p == "SELECT" && g.DB == "*":
		return "includes reading mysql.global_priv (password hashes); grant SELECT on the replicated databases"
	case !slices.Contains(allowed, p):
		return "not needed by this account's job"
	}
	return ""
}

// writesSystem reports whether p of g changes the system schemas' tables.
func writesSystem(p string, g Grant) bool {
	return dataPriv[p] && (g.DB == "*" || slices.Contains(systemDBs, strings.ToLower(g.DB)))
}

// dataPriv are the privileges that change tables or their definitions.
var dataPriv = map[string]bool{"INSERT": true, "UPDATE": true, "DELETE": true, "CREATE": true, "DROP": true, "ALTER": true,
	"INDEX": true, "REFERENCES": true, "TRIGGER": true, "CREATE VIEW": true, "CREATE ROUTINE": true, "ALTER ROUTINE": true,
	"EVENT": true, "EXECUTE": true, "LOCK TABLES": true, "CREATE TEMPORARY TABLES": true, "DELETE HISTORY": true}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
