package source

import (
	"regexp"
	"strings"
)

// filter decides which tables and statements are published.
type filter struct {
	include, exclude []*regexp.Regexp
	bookkeeping      string
	cache            map[string]bool // "db.table" -> published
}

func newFilter(cfg *Config) (*filter, error) {
	f := &filter{bookkeeping: cfg.BookkeepingSchema, cache: map[string]bool{}}
	for _, s := range cfg.Include {
		re, err := regexp.Compile(s)
		if err != nil {
			return nil, err
		}
		f.include = append(f.include, re)
	}
	for _, s := range cfg.Exclude {
		re, err := regexp.Compile(s)
		if err != nil {
			return nil, err
		}
		f.exclude = append(f.exclude, re)
	}
	return f, nil
}

// table reports whether rows of db.table are published. The bookkeeping schema
// never is; Exclude wins over Include; an empty Include admits everything.
func (f *filter) table(db, table string) bool {
	if db == f.bookkeeping {
		return false
	}
	key := db + "." + table
	if ok, hit := f.cache[key]; hit {
		return ok
	}
	ok := len(f.include) == 0
	for _, re := range f.include {
		if re.MatchString(key) {
			ok = true
			break
		}
	}
	for _, re := range f.exclude {
		if re.MatchString(key) {
			ok = false
			break
		}
	}
	if len(f.cache) > 100000 { // a master with more tables than this churns the cache, no more
		clear(f.cache)
	}
	f.cache[key] = ok
	return ok
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
	for {
		s = strings.TrimLeft(s, " \t\r\n")
		switch {
		case strings.HasPrefix(s, "/*!") || strings.HasPrefix(s, "/*M!"):
			s = strings.TrimLeft(s[strings.Index(s, "!")+1:], "0123456789")
		case strings.HasPrefix(s, "/*"):
			end := strings.Index(s, "*/")
			if end < 0 {
				return ""
			}
			s = s[end+2:]
		case strings.HasPrefix(s, "--") || strings.HasPrefix(s, "#"):
			end := strings.IndexByte(s, '\n')
			if end < 0 {
				return ""
			}
			s = s[end+1:]
		default:
			return s
		}
	}
}

const ident = "(`(?:[^`]|``)+`|[^\\s.,;()`]+)"
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

func unquote(id string) string {
	if len(id) >= 2 && id[0] == '`' && id[len(id)-1] == '`' {
		return strings.ReplaceAll(id[1:len(id)-1], "``", "`")
	}
	return id
}
