package mysql

import (
	"strings"
)

// What ddl.go needs to know of a DDL statement to tell, after a restart,
// whether it already ran: the tables a RENAME moves, or the trigger,
// routine or event a CREATE makes. Only the head of the statement is read,
// by a small lexer that knows identifiers, strings, comments and
// executable comments; anything else is a statement of no known shape.

// ddlShape is what parseDDL found.
type ddlShape struct {
	renames []renamePair // RENAME TABLE, or ALTER TABLE ... RENAME alone
	object  *objectRef   // CREATE TRIGGER, PROCEDURE, FUNCTION or EVENT
}

type tableRef struct{ db, name string }

func (r tableRef) String() string { return quoteIdent(r.db) + "." + quoteIdent(r.name) }

type renamePair struct{ from, to tableRef }

// objectRef is a trigger, procedure, function or event: kind is the
// statement's keyword, upper case.
type objectRef struct {
	kind, db, name string
}

func (o *objectRef) String() string {
	return o.kind + " " + quoteIdent(o.db) + "." + quoteIdent(o.name)
}

// reusesNames reports a rename whose target is also a source (a swap
// through a temporary name, or a chain): run again, it does not fail, it
// moves the tables back or further.
func (s ddlShape) reusesNames() bool {
	from := map[tableRef]bool{}
	for _, p := range s.renames {
		from[p.from] = true
	}
	for _, p := range s.renames {
		if from[p.to] {
			return true
		}
	}
	return false
}

// parseDDL reads the shape of stmt, run in database db.
func parseDDL(stmt, db string) ddlShape {
	l := &lexer{s: stmt}
	switch l.keyword() {
	case "RENAME":
		return ddlShape{renames: l.renameTables(db)}
	case "ALTER":
		return ddlShape{renames: l.alterRename(db)}
	case "CREATE":
		return ddlShape{object: l.createObject(db)}
	}
	return ddlShape{}
}

// renameTables reads the rest of RENAME TABLE[S] [IF EXISTS] a [WAIT n |
// NOWAIT] TO b [, c TO d ...].
func (l *lexer) renameTables(db string) []renamePair {
	if kw := l.keyword(); kw != "TABLE" && kw != "TABLES" {
		return nil
	}
	l.optional("IF", "EXISTS")
	var pairs []renamePair
	for {
		from, ok := l.tableName(db)
		if !ok {
			return nil
		}
		l.lockWait()
		if l.keyword() != "TO" {
			return nil
		}
		to, ok := l.tableName(db)
		if !ok {
			return nil
		}
		pairs = append(pairs, renamePair{from, to})
		switch l.next() {
		case ",":
			continue
		case ";", "":
			return pairs
		}
		return nil
	}
}

// alterRename reads the rest of ALTER [ONLINE] [IGNORE] TABLE [IF EXISTS]
// a [WAIT n | NOWAIT] RENAME [TO | AS] b, with no other clause.
func (l *lexer) alterRename(db string) []renamePair {
	l.optional("ONLINE")
	l.optional("IGNORE")
	if l.keyword() != "TABLE" {
		return nil
	}
	l.optional("IF", "EXISTS")
	from, ok := l.tableName(db)
	if !ok {
		return nil
	}
	l.lockWait()
	if l.keyword() != "RENAME" {
		return nil
	}
	if !l.optional("TO") {
		l.optional("AS")
	}
	to, ok := l.tableName(db)
	if !ok {
		return nil
	}
	if end := l.next(); end != ";" && end != "" {
		return nil
	}
	return []renamePair{{from, to}}
}

// createObject reads the head of CREATE [OR REPLACE] [DEFINER = ...]
// [AGGREGATE] TRIGGER|PROCEDURE|FUNCTION|EVENT [IF NOT EXISTS] name.
func (l *lexer) createObject(db string) *objectRef {
	for range 16 { // the clauses before the kind are short
		tok, kind := l.token()
		kw := strings.ToUpper(tok)
		switch {
		case kind == tokEnd || kind == tokWord && isOtherKind(kw):
			return nil
		case kind == tokWord && isObjectKind(kw):
			return l.objectName(kw, db)
		}
	}
	return nil
}

// objectName reads [IF NOT EXISTS] [db.]name of an object of kind.
func (l *lexer) objectName(kind, db string) *objectRef {
	l.optional("IF", "NOT", "EXISTS")
	name, ok := l.tableName(db)
	if !ok {
		return nil
	}
	return &objectRef{kind: kind, db: name.db, name: name.name}
}

func isObjectKind(kw string) bool {
	return kw == "TRIGGER" || kw == "PROCEDURE" || kw == "FUNCTION" || kw == "EVENT"
}

// isOtherKind reports the keywords of CREATE statements that make no
// trigger, routine or event.
func isOtherKind(kw string) bool {
	switch kw {
	case "TABLE", "VIEW", "INDEX", "DATABASE", "SCHEMA", "USER", "ROLE", "SEQUENCE", "SERVER", "PACKAGE", "TABLESPACE":
		return true
	}
	return false
}

// lexer reads tokens of a SQL statement.
type lexer struct {
	s   string
	pos int
}

// tokKind is what a token is.
type tokKind uint8

const (
	tokEnd    tokKind = iota // no more tokens
	tokWord                  // a keyword or an unquoted identifier
	tokIdent                 // an identifier quoted with backticks, unquoted
	tokString                // a string literal, unquoted
	tokPunct                 // any other character
)

// next returns the next token's text ("" at the end).
func (l *lexer) next() string {
	tok, _ := l.token()
	return tok
}

// keyword returns the next token upper case when it is a word, "" when it
// is anything else.
func (l *lexer) keyword() string {
	tok, kind := l.token()
	if kind != tokWord {
		return ""
	}
	return strings.ToUpper(tok)
}

// optional consumes the keywords words if they come next, in order, and
// reports whether they did; otherwise it consumes nothing.
func (l *lexer) optional(words ...string) bool {
	mark := l.pos
	for _, w := range words {
		if l.keyword() != w {
			l.pos = mark
			return false
		}
	}
	return true
}

// lockWait consumes MariaDB's WAIT n or NOWAIT.
func (l *lexer) lockWait() {
	if l.optional("NOWAIT") {
		return
	}
	mark := l.pos
	if l.keyword() == "WAIT" {
		l.next()
		return
	}
	l.pos = mark
}

// tableName reads [db.]name.
func (l *lexer) tableName(db string) (tableRef, bool) {
	name, ok := l.identifier()
	if !ok {
		return tableRef{}, false
	}
	mark := l.pos
	if l.next() != "." {
		l.pos = mark
		return tableRef{db: db, name: name}, true
	}
	table, ok := l.identifier()
	return tableRef{db: name, name: table}, ok
}

// identifier reads a quoted or plain identifier.
func (l *lexer) identifier() (string, bool) {
	tok, kind := l.token()
	return tok, kind == tokIdent || kind == tokWord
}

// token returns the next token and its kind.
func (l *lexer) token() (string, tokKind) {
	l.skipSpace()
	if l.pos >= len(l.s) {
		return "", tokEnd
	}
	c := l.s[l.pos]
	switch {
	case c == '`':
		return l.quoted('`'), tokIdent
	case c == '\'' || c == '"':
		return l.quoted(c), tokString
	case isWordByte(c):
		start := l.pos
		for l.pos < len(l.s) && isWordByte(l.s[l.pos]) {
			l.pos++
		}
		return l.s[start:l.pos], tokWord
	}
	l.pos++
	return l.s[l.pos-1 : l.pos], tokPunct
}

// quoted reads a token quoted with q, a doubled q standing for itself (and
// in a string, a character after a backslash).
func (l *lexer) quoted(q byte) string {
	var b strings.Builder
	for l.pos++; l.pos < len(l.s); {
		c := l.s[l.pos]
		l.pos++
		switch {
		case c == '\\' && q != '`' && l.pos < len(l.s):
			c = l.s[l.pos]
			l.pos++
		case c == q && l.pos < len(l.s) && l.s[l.pos] == q:
			l.pos++
		case c == q:
			return b.String()
		}
		b.WriteByte(c)
	}
	return b.String()
}

// skipSpace skips white space, comments, and the markers of executable
// comments (/*!50003 ... */, /*M!100100 ... */), whose text the server runs.
func (l *lexer) skipSpace() {
	for l.pos < len(l.s) {
		n := skipLen(l.s[l.pos:])
		if n == 0 {
			return
		}
		l.pos += n
	}
}

// skipLen is the length of the white space, comment or executable comment
// marker that s starts with, 0 when none.
func skipLen(s string) int {
	switch {
	case strings.IndexByte(" \t\r\n", s[0]) >= 0:
		return 1
	case strings.HasPrefix(s, "/*!"), strings.HasPrefix(s, "/*M!"):
		n := strings.IndexByte(s, '!') + 1
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		return n
	case strings.HasPrefix(s, "*/"): // the end of an executable comment
		return 2
	case strings.HasPrefix(s, "/*"):
		return skipTo(s, "*/")
	case strings.HasPrefix(s, "-- "), s[0] == '#':
		return skipTo(s, "\n")
	}
	return 0
}

// skipTo is the length of s up to and including the first end, or all of s.
func skipTo(s, end string) int {
	if i := strings.Index(s, end); i >= 0 {
		return i + len(end)
	}
	return len(s)
}

// isWordByte reports a byte of an unquoted identifier or keyword (any
// byte of a multi-byte UTF-8 character included).
func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}
