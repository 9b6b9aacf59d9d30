package sink

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/rowcast/rowcast/pipeline"
)

// A DDL message is applied only when it is a schema statement (a table,
// view, index, trigger, routine, event, sequence or database created,
// altered, dropped, renamed or truncated) of an object the source's filters
// replicate. Anything else (a GRANT, CREATE USER, a database nobody
// replicates, an arbitrary statement) stops the worker, unless
// WorkerConfig.AllowDDL names its kind. docs/DESIGN.md, "The topic is a
// trust boundary".

const (
	ddlIdent = "(`(?:[^`]|``)+`|\"(?:[^\"]|\"\")+\"|[^\\s.,;()`\"]+)"
	ddlName  = ddlIdent + `(?:\s*\.\s*` + ddlIdent + `)?`
)

var (
	// ddlSchemaRe reads CREATE, ALTER, DROP and RENAME of an object: the
	// modifiers MariaDB and MySQL allow before the object's kind, the kind,
	// and the object's (qualified) name.
	ddlSchemaRe = regexp.MustCompile(`(?is)^(CREATE|ALTER|DROP|RENAME)\s+(?:OR\s+REPLACE\s+)?` +
		`(?:(?:TEMPORARY|ONLINE|OFFLINE|IGNORE|UNIQUE|FULLTEXT|SPATIAL|AGGREGATE)\s+|ALGORITHM\s*=\s*\w+\s+|` +
		`DEFINER\s*=\s*\S+\s+|SQL\s+SECURITY\s+\w+\s+)*` +
		`(TABLES?|INDEX|VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT|SEQUENCE|DATABASE|SCHEMA)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?` + ddlName)
	ddlTruncateRe = regexp.MustCompile(`(?is)^TRUNCATE\s+(?:TABLE\s+)?` + ddlName)
	// ddlMaintRe reads table maintenance that the binlog carries (ANALYZE,
	// OPTIMIZE, REPAIR TABLE): statements about tables, like DDL.
	ddlMaintRe = regexp.MustCompile(`(?is)^(ANALYZE|OPTIMIZE|REPAIR)\s+(?:NO_WRITE_TO_BINLOG\s+|LOCAL\s+)?TABLES?\s+` + ddlName)
	// ddlOnRe reads the table of CREATE/DROP INDEX ... ON t.
	ddlOnRe   = regexp.MustCompile(`(?is)^\S+\s+(?:USING\s+\w+\s+)?ON\s+` + ddlName)
	ddlWordRe = regexp.MustCompile(`^[A-Za-z_]+`)
	// ddlSetStatementRe is MariaDB's per-statement settings prefix.
	ddlSetStatementRe = regexp.MustCompile(`(?is)^SET\s+STATEMENT\s+.*?\s+FOR\s+`)
)

// ddlObject is what a DDL statement is about.
type ddlObject struct {
	kind      string // "CREATE TABLE", "GRANT", ...: what sink.allow_ddl names
	db, table string // table "" for statements not about one table
	schema    bool   // a schema statement of a kind rowcast replicates
}

// DDLTable is "db.table" of a DDL statement about one table (CREATE, ALTER,
// DROP, RENAME, TRUNCATE TABLE, CREATE/DROP INDEX ... ON), run in database
// db; ok is false for any other statement.
func DDLTable(db, stmt string) (table string, ok bool) {
	o := parseDDLObject(db, stmt)
	if o.table == "" {
		return "", false
	}
	return o.db + "." + o.table, true
}

// parseDDLObject reads stmt, run in database db.
func parseDDLObject(db, stmt string) ddlObject {
	s := skipDDLComments(stmt)
	if m := ddlSetStatementRe.FindStringIndex(s); m != nil {
		s = s[m[1]:]
	}
	if m := ddlTruncateRe.FindStringSubmatch(s); m != nil {
		o := ddlObject{kind: "TRUNCATE TABLE", schema: true}
		o.db, o.table = qualified(db, m[1], m[2])
		return o
	}
	if m := ddlMaintRe.FindStringSubmatch(s); m != nil {
		o := ddlObject{kind: strings.ToUpper(m[1]) + " TABLE", schema: true}
		o.db, o.table = qualified(db, m[2], m[3])
		return o
	}
	m := ddlSchemaRe.FindStringSubmatchIndex(s)
	if m == nil {
		return ddlObject{kind: leadingWords(s), db: db}
	}
	return schemaObject(db, s, m)
}

// schemaObject is the object of a statement ddlSchemaRe matched (m, its
// submatch indexes).
func schemaObject(db, s string, m []int) ddlObject {
	verb, kind := strings.ToUpper(s[m[2]:m[3]]), strings.TrimSuffix(strings.ToUpper(s[m[4]:m[5]]), "S")
	if kind == "SCHEMA" {
		kind = "DATABASE" // one kind for sink.allow_ddl
	}
	o := ddlObject{kind: verb + " " + kind, schema: true}
	first, second := s[m[6]:m[7]], ""
	if m[8] >= 0 {
		second = s[m[8]:m[9]]
	}
	switch kind {
	case "DATABASE":
		o.db = unquoteDDL(first)
	case "TABLE":
		o.db, o.table = qualified(db, first, second)
	case "INDEX":
		o.db, o.table = db, ""
		if on := ddlOnRe.FindStringSubmatch(s[m[6]:]); on != nil {
			o.db, o.table = qualified(db, on[1], on[2])
		}
	default: // views, triggers, routines, events, sequences: by database
		o.db, _ = qualified(db, first, second)
	}
	return o
}

// qualified is the database and name of a name that may be db.name.
func qualified(db, first, second string) (string, string) {
	if second == "" {
		return db, unquoteDDL(first)
	}
	return unquoteDDL(first), unquoteDDL(second)
}

func unquoteDDL(id string) string {
	for _, q := range []string{"`", `"`} {
		if len(id) >= 2 && id[:1] == q && id[len(id)-1:] == q {
			return strings.ReplaceAll(id[1:len(id)-1], q+q, q)
		}
	}
	return id
}

// leadingWords is the kind of a statement that is not a schema statement:
// its first keyword, and the second after CREATE, ALTER, DROP or RENAME
// (CREATE USER, DROP ROLE).
func leadingWords(s string) string {
	first := strings.ToUpper(ddlWordRe.FindString(s))
	switch first {
	case "CREATE", "ALTER", "DROP", "RENAME":
		rest := strings.TrimLeft(s[len(first):], " \t\r\n")
		if second := ddlWordRe.FindString(rest); second != "" {
			return first + " " + strings.ToUpper(second)
		}
	}
	return first
}

// skipDDLComments drops leading white space and comments; an executable
// comment's marker is dropped and its content kept, as the server ran it.
func skipDDLComments(s string) string {
	for {
		s = strings.TrimLeft(s, " \t\r\n")
		switch {
		case strings.HasPrefix(s, "/*!") || strings.HasPrefix(s, "/*M!"):
			s = strings.TrimLeft(s[strings.Index(s, "!")+1:], "0123456789")
		case strings.HasPrefix(s, "/*"):
			s = afterDDL(s, "*/")
		case strings.HasPrefix(s, "--") || strings.HasPrefix(s, "#"):
			s = afterDDL(s, "\n")
		default:
			return s
		}
	}
}

func afterDDL(s, end string) string {
	if i := strings.Index(s, end); i >= 0 {
		return s[i+len(end):]
	}
	return ""
}

// ddlFilter is the worker's view of the source's filters and the operator's
// allow list.
type ddlFilter struct {
	include, exclude []*regexp.Regexp
	allow            map[string]bool // kinds, upper case; "*" allows every statement
}

func newDDLFilter(c *WorkerConfig) (*ddlFilter, error) {
	f := &ddlFilter{allow: map[string]bool{}}
	var err error
	if f.include, err = compileDDLRes("include", c.DDLInclude); err != nil {
		return nil, err
	}
	if f.exclude, err = compileDDLRes("exclude", c.DDLExclude); err != nil {
		return nil, err
	}
	for _, k := range c.AllowDDL {
		f.allow[strings.Join(strings.Fields(strings.ToUpper(k)), " ")] = true
	}
	return f, nil
}

func compileDDLRes(what string, exprs []string) ([]*regexp.Regexp, error) {
	out := make([]*regexp.Regexp, 0, len(exprs))
	for _, e := range exprs {
		re, err := regexp.Compile(e)
		if err != nil {
			return nil, fmt.Errorf("sink worker: DDL %s %q: %w", what, e, err)
		}
		out = append(out, re)
	}
	return out, nil
}

// replicated reports whether the source's filters admit db.table ("db."
// for statements not about one table), as the reader matches them.
func (f *ddlFilter) replicated(db, table string) bool {
	key := db + "." + table
	return (len(f.include) == 0 || matchAny(f.include, key)) && !matchAny(f.exclude, key)
}

func matchAny(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

// check returns why ev may not be applied, "" when it may.
func (f *ddlFilter) check(ev *pipeline.Event) string {
	o := parseDDLObject(ev.Database, ev.Statement)
	if f.allow["*"] || f.allow[o.kind] {
		return ""
	}
	switch {
	case !o.schema:
		return fmt.Sprintf("a %s statement is not a schema statement of a replicated object", o.kind)
	case !f.replicated(o.db, o.table):
		return fmt.Sprintf("%s of %s, which the source's include/exclude filters do not replicate", o.kind, objectName(o))
	}
	return ""
}

func objectName(o ddlObject) string {
	if o.table == "" {
		return "database " + o.db
	}
	return o.db + "." + o.table
}
