// Package redact cuts SQL text before it can show a value: statements in
// errors, logs and /healthz keep their shape (the verb and the object) and
// lose everything from the first literal on, since a literal may be a
// password (CREATE USER ... IDENTIFIED BY '...') or a row value.
package redact

import (
	"regexp"
	"strings"
)

// maxSQL bounds a cut statement: the object it works on is near the start.
const maxSQL = 200

// Cut marks where SQL was cut.
const Cut = "…"

// SQL returns stmt up to its first literal (a quoted string, a number, a
// hexadecimal or bit value), at most maxSQL bytes, with Cut appended when
// anything was left out. Backquoted identifiers are kept whole; a double
// quote counts as a literal even where ANSI_QUOTES makes it an identifier.
func SQL(stmt string) string {
	end := literalStart(stmt)
	if end > maxSQL {
		end = maxSQL
	}
	if end >= len(stmt) {
		return stmt
	}
	return strings.TrimRight(stmt[:end], " \t\r\n") + Cut
}

// literalStart is the index of stmt's first literal, len(stmt) when it has
// none.
func literalStart(stmt string) int {
	for i := 0; i < len(stmt); i++ {
		c := stmt[i]
		switch {
		case c == '`':
			i = identEnd(stmt, i)
		case c == '\'' || c == '"':
			return prefixStart(stmt, i)
		case isDigit(c) && (i == 0 || !isIdentByte(stmt[i-1])):
			return i
		}
	}
	return len(stmt)
}

// prefixStart moves the start of a quoted literal back over its prefix: a
// character set introducer (_utf8mb4'x') or X'..', B'..', N'..'.
func prefixStart(stmt string, quote int) int {
	i := quote
	for i > 0 && isIdentByte(stmt[i-1]) {
		i--
	}
	word := stmt[i:quote]
	if strings.HasPrefix(word, "_") || strings.EqualFold(word, "x") || strings.EqualFold(word, "b") || strings.EqualFold(word, "n") {
		return i
	}
	return quote
}

// identEnd is the index of the backquote that closes the identifier opened
// at stmt[i], doubled backquotes included; the last index when unclosed.
func identEnd(stmt string, i int) int {
	for j := i + 1; j < len(stmt); j++ {
		if stmt[j] != '`' {
			continue
		}
		if j+1 < len(stmt) && stmt[j+1] == '`' {
			j++
			continue
		}
		return j
	}
	return len(stmt) - 1
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isIdentByte(c byte) bool {
	return c == '_' || c == '$' || isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// Server messages that quote SQL or row values: a syntax error's excerpt of
// the statement, as in `near 'IDENTIFIED BY 'pw' x' at line 1`, the key of a
// duplicate entry, a value a column refused.
var (
	nearRe  = regexp.MustCompile(`(?s)near '(.*)' at line (\d+)`)
	entryRe = regexp.MustCompile(`(?s)entry '(.*)' for key`)
	valueRe = regexp.MustCompile(`(?s)value: '.*?'( for column|$)`)
)

// Message cuts the statement excerpts and values a server error message
// quotes.
func Message(msg string) string {
	msg = nearRe.ReplaceAllStringFunc(msg, func(m string) string {
		sub := nearRe.FindStringSubmatch(m)
		return "near '" + SQL(sub[1]) + "' at line " + sub[2]
	})
	msg = entryRe.ReplaceAllString(msg, "entry '"+Cut+"' for key")
	return valueRe.ReplaceAllString(msg, "value: '"+Cut+"'$1")
}

// Err returns err with Message applied to its text; errors.Is, errors.As and
// error codes still see the original. nil stays nil.
func Err(err error) error {
	if err == nil {
		return nil
	}
	if msg := err.Error(); Message(msg) != msg {
		return &redacted{err: err}
	}
	return err
}

type redacted struct{ err error }

func (r *redacted) Error() string { return Message(r.err.Error()) }
func (r *redacted) Unwrap() error { return r.err }
