package config

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/internal/grants"
)

// GrantCheck is what one account rowcast uses on one node lacks for its
// jobs and holds beyond them.
type GrantCheck struct {
	Node    string
	Account string // user@host as the server sees it, or the configured user
	Jobs    string // reader, sink, admin, joined with + when one account does several
	Report  grants.Report
	Err     error // the account could not connect or read its grants
}

// Lacking reports whether the account cannot do its jobs.
func (g GrantCheck) Lacking() bool { return g.Err != nil || len(g.Report.Lacks) > 0 }

// account is one set of credentials rowcast uses on a node, and its jobs.
type account struct {
	node   Node
	user   string
	jobs   []string
	grants []string
	tables []string // "db.table" the account can see
	mysql  bool     // the node is MySQL, not MariaDB
	err    error
}

// CheckGrants connects to every mysql node as each account the config
// gives rowcast there (the reader's, the sinks' in the DSN, failover's) and
// compares its grants with what its jobs need: docs/SECURITY.md, Accounts.
func (c *Config) CheckGrants(ctx context.Context) []GrantCheck {
	var out []GrantCheck
	for _, n := range c.Nodes {
		if n.Kind != KindMySQL {
			continue
		}
		out = append(out, c.checkNode(ctx, n)...)
	}
	return out
}

// checkNode checks the accounts of one node.
func (c *Config) checkNode(ctx context.Context, n Node) []GrantCheck {
	accts := c.accountsOf(n)
	var tables []string
	for _, a := range accts {
		a.read(ctx)
		tables = append(tables, a.tables...)
	}
	dbs := c.replicatedDBs(tables)
	out := make([]GrantCheck, 0, len(accts))
	for _, a := range accts {
		gc := GrantCheck{Node: n.Name, Account: a.user, Jobs: strings.Join(a.jobs, "+"), Err: a.err}
		if a.err == nil {
			job := c.jobOf(a.jobs, n.Name, dbs)
			if a.mysql {
				job = mysqlJob(job)
			}
			gc.Report = grants.Check(a.grants, job)
		}
		out = append(out, gc)
	}
	return out
}

// accountsOf lists the accounts rowcast uses on n, one per user name.
func (c *Config) accountsOf(n Node) []*account {
	var accts []*account
	add := func(job string, node Node) {
		mc, err := node.MySQLConfig()
		if err != nil {
			accts = append(accts, &account{node: node, user: "?", jobs: []string{job}, err: err})
			return
		}
		for _, a := range accts {
			if a.user == mc.User {
				a.jobs = append(a.jobs, job)
				return
			}
		}
		accts = append(accts, &account{node: node, user: mc.User, jobs: []string{job}})
	}
	if sc, err := c.SourceConfig(n.Name); err == nil {
		add("reader", withAccount(n, sc.User, sc.Password))
	}
	add("sink", n)
	admin, _ := c.AdminNode(n.Name)
	add("admin", admin)
	return accts
}

// withAccount is n with user and password in its DSN.
func withAccount(n Node, user, password string) Node {
	mc, err := mysql.ParseDSN(n.DSN)
	if err != nil {
		return n
	}
	mc.User, mc.Passwd = user, password
	n.DSN = mc.FormatDSN()
	return n
}

// read connects as the account and reads its grants and the tables it sees.
func (a *account) read(ctx context.Context) {
	db, err := a.node.Open(ctx, 5*time.Second)
	if err != nil {
		a.err = err
		return
	}
	defer db.Close()
	var who, version string
	if err := db.QueryRowContext(ctx, "SELECT CURRENT_USER(), VERSION()").Scan(&who, &version); err == nil {
		a.user, a.mysql = who, !strings.Contains(version, "MariaDB")
	}
	if a.grants, err = column(ctx, db, "SHOW GRANTS"); err != nil {
		a.err = fmt.Errorf("SHOW GRANTS: %w", err)
		return
	}
	a.tables, a.err = column(ctx, db, "SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.TABLES "+
		"WHERE TABLE_SCHEMA NOT IN ('mysql', 'sys', 'performance_schema', 'information_schema')")
}

// column is the first column of a query's rows.
func column(ctx context.Context, db *sql.DB, q string) ([]string, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// replicatedDBs are the databases holding a table that source.include and
// exclude publish, sorted, the bookkeeping schema aside.
func (c *Config) replicatedDBs(tables []string) []string {
	include, exclude := compileAll(c.Source.Include), compileAll(c.Source.Exclude)
	var dbs []string
	for _, t := range tables {
		db, _, _ := strings.Cut(t, ".")
		if db == c.Sink.BookkeepingSchema || (len(include) > 0 && !anyMatch(include, t)) || anyMatch(exclude, t) {
			continue
		}
		dbs = append(dbs, db)
	}
	sort.Strings(dbs)
	return slices.Compact(dbs)
}

func compileAll(exprs []string) []*regexp.Regexp {
	var out []*regexp.Regexp
	for _, e := range exprs {
		if re, err := regexp.Compile(e); err == nil {
			out = append(out, re)
		}
	}
	return out
}

func anyMatch(res []*regexp.Regexp, s string) bool {
	return slices.ContainsFunc(res, func(re *regexp.Regexp) bool { return re.MatchString(s) })
}

// jobOf is the job of an account that does jobs on node, whose replicated
// databases are dbs.
func (c *Config) jobOf(jobs []string, node string, dbs []string) grants.Job {
	var job grants.Job
	for i, name := range jobs {
		j := c.job(name, node, dbs)
		if i == 0 {
			job = j
			continue
		}
		job = grants.Merge(job, j)
	}
	return job
}
