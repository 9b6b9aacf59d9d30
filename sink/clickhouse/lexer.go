package clickhouse

import (
	"strings"
)

// A small lexer for the DDL statements the sink maps: identifiers (bare or
// in backticks), string literals, numbers and punctuation; comments are
// dropped, MySQL's executable comments (/*!50100 ... */) are read as code.

type tokKind uint8

const (
	tWord   tokKind = iota + 1 // a bare word: keyword or identifier
	tIdent                     // a `quoted` identifier
	tString                    // a 'string' or "string"
	tPunct                     // ( ) , . ; = and anything else
)

type token struct {
	kind tokKind
	text string // words as written; quoted forms unquoted
}

// is reports a bare word equal to kw (upper case).
func (t token) is(kw string) bool { return t.kind == tWord && strings.EqualFold(t.text, kw) }

func (t token) punct(p string) bool { return t.kind == tPunct && t.text == p }

// tokenize splits a statement into tokens.
func tokenize(s string) []token {
	var out []token
	for i := 0; i < len(s); {
		n, tok := nextToken(s[i:])
		if tok.kind != 0 {
			out = append(out, tok)
		}
		i += max(n, 1)
	}
	return out
}

// nextToken reads one token at the start of s and returns its length; a
// zero kind for space and comments.
func nextToken(s string) (int, token) {
	if n := skipLen(s); n > 0 {
		return n, token{}
	}
	switch c := s[0]; {
	case c == '`':
		n, text := quoted(s, '`')
		return n, token{tIdent, text}
	case c == '\'' || c == '"':
		n, text := quoted(s, c)
		return n, token{tString, text}
	case isWordByte(c):
		n := 1
		for n < len(s) && isWordByte(s[n]) {
			n++
		}
		return n, token{tWord, s[:n]}
	}
	return 1, token{tPunct, s[:1]}
}

// skipLen is the length of the space or comment at the start of s, 0 when
// there is none. An executable comment's markers are skipped, its content
// is read.
func skipLen(s string) int {
	switch {
	case s[0] == ' ' || s[0] == '\t' || s[0] == '\n' || s[0] == '\r':
		return 1
	case strings.HasPrefix(s, "/*!"):
		return 3 + len(s[3:]) - len(strings.TrimLeft(s[3:], "0123456789"))
	case strings.HasPrefix(s, "*/"):
		return 2
	case strings.HasPrefix(s, "/*"):
		return commentEnd(s, "*/")
	case s[0] == '#' || strings.HasPrefix(s, "-- "):
		return commentEnd(s, "\n")
	}
	return 0
}

func commentEnd(s, end string) int {
	if i := strings.Index(s, end); i >= 0 {
		return i + len(end)
	}
	return len(s)
}

// quoted reads a quoted token: doubled quotes and backslash escapes (in
// strings) are undone.
func quoted(s string, q byte) (int, string) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch {
		case s[i] == q && i+1 < len(s) && s[i+1] == q:
			b.WriteByte(q)
			i++
		case s[i] == q:
			return i + 1, b.String()
		case s[i] == '\\' && q != '`' && i+1 < len(s):
			b.WriteByte(s[i+1])
			i++
		default:
			b.WriteByte(s[i])
		}
	}
	return len(s), b.String()
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// cursor walks a token list.
type cursor struct {
	toks []token
	i    int
}

func (c *cursor) done() bool { return c.i >= len(c.toks) }

func (c *cursor) peek() token {
	if c.done() {
		return token{}
	}
	return c.toks[c.i]
}

func (c *cursor) next() token {
	t := c.peek()
	c.i++
	return t
}

// accept consumes the words kws if they come next, all of them.
func (c *cursor) accept(kws ...string) bool {
	for j, kw := range kws {
		if c.i+j >= len(c.toks) || !c.toks[c.i+j].is(kw) {
			return false
		}
	}
	c.i += len(kws)
	return true
}

// name reads an identifier.
func (c *cursor) name() (string, bool) {
	t := c.peek()
	if t.kind != tWord && t.kind != tIdent {
		return "", false
	}
	c.i++
	return t.text, true
}

// tableName reads [db.]table; db defaults to def.
func (c *cursor) tableName(def string) (tableRef, bool) {
	a, ok := c.name()
	if !ok {
		return tableRef{}, false
	}
	if c.peek().punct(".") {
		c.i++
		b, ok := c.name()
		return tableRef{a, b}, ok
	}
	return tableRef{def, a}, true
}

// group reads a parenthesised group and returns its tokens, without the
// outer parentheses.
func (c *cursor) group() ([]token, bool) {
	if !c.peek().punct("(") {
		return nil, false
	}
	start, depth := c.i+1, 0
	for ; c.i < len(c.toks); c.i++ {
		switch {
		case c.toks[c.i].punct("("):
			depth++
		case c.toks[c.i].punct(")"):
			depth--
			if depth == 0 {
				c.i++
				return c.toks[start : c.i-1], true
			}
		}
	}
	return nil, false
}

// splitTop splits tokens at the commas outside parentheses.
func splitTop(toks []token) [][]token {
	var out [][]token
	depth, start := 0, 0
	for i, t := range toks {
		switch {
		case t.punct("("):
			depth++
		case t.punct(")"):
			depth--
		case t.punct(",") && depth == 0:
			out = append(out, toks[start:i])
			start = i + 1
		}
	}
	return append(out, toks[start:])
}

type tableRef struct{ db, name string }
