package source

import (
	"regexp"
	"strings"
)

// filter decides which tables and statements are published.
type filter struct {
	include, exclude []*regexp.Regexp
	bookkeeping      string
	versions         string          // the one bookkeeping table published, "" for none
	cache            map[string]bool // "db.table" -> published
}

func newFilter(cfg *Config) (*filter, error) {
	include, err := compileAll(cfg.Include)
	if err != nil {
		return nil, err
	}
	exclude, err := compileAll(cfg.Exclude)
	if err != nil {
		return nil, err
	}
	f := &filter{include: include, exclude: exclude, bookkeeping: cfg.BookkeepingSchema, cache: map[string]bool{}}
	if cfg.PublishVersions {
		f.versions = VersionsTable
	}
	return f, nil
}

// Published is the reader's rule for which tables it publishes (see
// filter.table), for the checks other components make of the same tables.
// The function it returns is not safe for concurrent use.
func Published(cfg Config) (func(db, table string) bool, error) {
	setDefault(&cfg.BookkeepingSchema, "rowcast")
	f, err := newFilter(&cfg)
	if err != nil {
		return nil, err
	}
	return f.table, nil
}

func compileAll(exprs []string) ([]*regexp.Regexp, error) {
	var out []*regexp.Regexp
	for _, s := range exprs {
		re, err := regexp.Compile(s)
		if err != nil {
			return nil, err
		}
		out = append(out, re)
	}
	return out, nil
}

// table reports whether rows of db.table are published. The bookkeeping
// schema and the system schemas (mysql: accounts and their password hashes)
// never are, whatever Include says; Exclude wins over Include; an empty
// Include admits everything. With PublishVersions, the bookkeeping schema's
// versions table is published too.
func (f *filter) table(db, table string) bool {
	if db == f.bookkeeping && f.versions != "" && table == f.versions {
		return true
	}
	if db == f.bookkeeping || systemSchemas[strings.ToLower(db)] {
		return false
	}
	key := db + "." + table
	if ok, hit := f.cache[key]; hit {
		return ok
	}
	ok := (len(f.include) == 0 || anyMatch(f.include, key)) && !anyMatch(f.exclude, key)
	if len(f.cache) > 100000 { // a master with more tables than this churns the cache, no more
		clear(f.cache)
	}
	f.cache[key] = ok
	return ok
}

func anyMatch(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

// ddl reports whether a DDL statement run in session schema is published. See
// Config.Exclude for how the statement is matched.
func (f *filter) ddl(schema, stmt string) bool {
	db, table := ddlTarget(schema, stmt)
	return f.table(db, table)
}

// Statement classes of a QUERY event.
type stmtClass int

const (
	stmtDDL stmtClass = iota
	stmtBegin
	stmtCommit
	stmtRollback
	stmtRollbackTo
	stmtSavepoint
	stmtXA
	stmtDML // statement-based DML: cannot be replicated from a ROW pipeline
)

// classify says what a QUERY event's statement is, by its first keyword.
func classify(stmt string) stmtClass {
	s := skipComments(stmt)
	kw := strings.ToUpper(firstWord(s))
	switch kw {
	case "BEGIN":
		return stmtBegin
	case "COMMIT":
		return stmtCommit
	case "ROLLBACK":
		if strings.EqualFold(firstWord(strings.TrimSpace(s[len(kw):])), "TO") {
			return stmtRollbackTo
		}
		return stmtRollback
	case "SAVEPOINT":
		return stmtSavepoint
	case "XA":
		return stmtXA
	case "INSERT", "UPDATE", "DELETE", "REPLACE", "LOAD", "CALL", "DO", "SELECT", "WITH", "HANDLER":
		return stmtDML
	}
	return stmtDDL
}

func firstWord(s string) string {
	end := strings.IndexFunc(s, func(r rune) bool {
		return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	})
	if end < 0 {
		return s
	}
	return s[:end]
}

// skipComments drops leading white space and comments. The marker of an
// executable comment ("/*!50100 " or "/*M!100100 ") is dropped but its content
// kept, since the server executed it.
func skipComments(s string) string {
	for more := true; more; {
		s, more = skipComment(strings.TrimLeft(s, " \t\r\n"))
	}
	return s
}

// skipComment drops the comment s starts with, if any, and reports whether
// there was one; an unterminated comment leaves nothing.
func skipComment(s string) (string, bool) {
	switch {
	case strings.HasPrefix(s, "/*!") || strings.HasPrefix(s, "/*M!"):
		return strings.TrimLeft(s[strings.Index(s, "!")+1:], "0123456789"), true
	case strings.HasPrefix(s, "/*"):
		return cutAfter(s, "*/")
	case strings.HasPrefix(s, "--") || strings.HasPrefix(s, "#"):
		return cutAfter(s, "\n")
	}
	return s, false
}

// cutAfter returns what follows the first end in s, or "" and false when there
// is none.
func cutAfter(s, end string) (string, bool) {
	i := strings.Index(s, end)
	if i < 0 {
		return "", false
	}
	return s[i+len(end):], true
}

const ident = "(`(?:[^`]|``)+`|\"(?:[^\"]|\"\")+\"|[^\\s.,;()`\"]+)"
const name = ident + `(?:\s*\.\s*` + ident + `)?`

var (
	ddlTableRes = []*regexp.Regexp{
		regexp.MustCompile(`(?is)^CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMPORARY\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?` + name),
		regexp.MustCompile(`(?is)^ALTER\s+(?:ONLINE\s+)?(?:IGNORE\s+)?TABLE\s+(?:IF\s+EXISTS\s+)?` + name),
		regexp.MustCompile(`(?is)^DROP\s+(?:TEMPORARY\s+)?TABLES?\s+(?:IF\s+EXISTS\s+)?(?:/\*.*?\*/\s*)?` + name),
		regexp.MustCompile(`(?is)^TRUNCATE\s+(?:TABLE\s+)?` + name),
		regexp.MustCompile(`(?is)^RENAME\s+TABLES?\s+(?:IF\s+EXISTS\s+)?` + name),
		regexp.MustCompile(`(?is)^CREATE\s+(?:OR\s+REPLACE\s+)?(?:ONLINE\s+)?(?:UNIQUE\s+|FULLTEXT\s+|SPATIAL\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?\S+\s+(?:USING\s+\w+\s+)?ON\s+` + name),
		regexp.MustCompile(`(?is)^DROP\s+(?:ONLINE\s+)?INDEX\s+(?:IF\s+EXISTS\s+)?\S+\s+ON\s+` + name),
	}
	ddlSchemaRe = regexp.MustCompile(`(?is)^(?:CREATE|DROP|ALTER)\s+(?:DATABASE|SCHEMA)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?` + ident)
)

// ddlTarget finds the database and table a DDL statement works on. table is
// "" for statements on a database or on no table; db defaults to the session
// schema.
func ddlTarget(schema, stmt string) (db, table string) {
	s := skipComments(stmt)
	for _, re := range ddlTableRes {
		if m := re.FindStringSubmatch(s); m != nil {
			if m[2] == "" {
				return schema, unquote(m[1])
			}
			return unquote(m[1]), unquote(m[2])
		}
	}
	if m := ddlSchemaRe.FindStringSubmatch(s); m != nil {
		return unquote(m[1]), ""
	}
	return schema, ""
}

// unquote removes an identifier's quotes: backticks, or double quotes,
// which the server took for quotes only under ANSI_QUOTES (otherwise the
// statement would not be in the binlog).
func unquote(id string) string {
	for _, q := range []string{"`", `"`} {
		if len(id) >= 2 && id[:1] == q && id[len(id)-1:] == q {
			return strings.ReplaceAll(id[1:len(id)-1], q+q, q)
		}
	}
	return id
}
