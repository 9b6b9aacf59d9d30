package source

import "strings"

// A small SQL lexer: enough to find and replace the string literals of a
// statement without being fooled by quotes inside comments or identifiers.

type tokKind int

const (
	tokSpace  tokKind = iota // white space and comments
	tokWord                  // keyword, name or number
	tokString                // a quoted string, with its introducer (_utf8mb4'x')
	tokIdent                 // a quoted identifier
	tokPunct                 // any other byte
)

type token struct {
	kind  tokKind
	text  string // as written
	value string // tokString: the string's value
}

// is reports whether t is the keyword kw.
func (t token) is(kw string) bool { return t.kind == tokWord && strings.EqualFold(t.text, kw) }

// name is a word, a quoted identifier or a string's value.
func (t token) name() string {
	if t.kind == tokString {
		return t.value
	}
	return unquote(t.text)
}

// lexSQL splits s into tokens whose texts concatenate to s. backslash says
// whether a backslash escapes in strings (not under NO_BACKSLASH_ESCAPES);
// ansiQuotes whether double quotes quote identifiers.
func lexSQL(s string, backslash, ansiQuotes bool) []token {
	var toks []token
	for i := 0; i < len(s); {
		t := nextToken(s[i:], backslash, ansiQuotes)
		i += len(t.text)
		if n := len(toks); t.kind == tokString && n > 0 && toks[n-1].kind == tokWord && strings.HasPrefix(toks[n-1].text, "_") {
			t.text = toks[n-1].text + t.text // a character set introducer: _latin1'x'
			toks = toks[:n-1]
		}
		toks = append(toks, t)
	}
	return toks
}

// nextToken is the token s starts with.
func nextToken(s string, backslash, ansiQuotes bool) token {
	if n := spaceLen(s); n > 0 {
		return token{kind: tokSpace, text: s[:n]}
	}
	switch c := s[0]; {
	case c == '`' || c == '"' && ansiQuotes:
		return token{kind: tokIdent, text: s[:quotedEnd(s, 0)]}
	case c == '\'' || c == '"':
		end := quotedEnd(s, 0)
		if !backslash {
			end = plainQuotedEnd(s)
		}
		return token{kind: tokString, text: s[:end], value: stringValue(s[:end], backslash)}
	case isWordByte(c):
		end := strings.IndexFunc(s, func(r rune) bool { return r < 0x80 && !isWordByte(byte(r)) })
		if end < 0 {
			end = len(s)
		}
		return token{kind: tokWord, text: s[:end]}
	}
	return token{kind: tokPunct, text: s[:1]}
}

// spaceLen is the length of the white space or comment s starts with; 0
// when it starts with neither. An executable comment is no comment.
func spaceLen(s string) int {
	switch {
	case strings.IndexByte(" \t\r\n", s[0]) >= 0:
		return len(s) - len(strings.TrimLeft(s, " \t\r\n"))
	case strings.HasPrefix(s, "/*") && !strings.HasPrefix(s, "/*!") && !strings.HasPrefix(s, "/*M!"):
		return commentEnd(s, "*/")
	case strings.HasPrefix(s, "-- ") || s[0] == '#':
		return commentEnd(s, "\n")
	}
	return 0
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// commentEnd is the index after the comment s starts with, ending at end.
func commentEnd(s, end string) int {
	if i := strings.Index(s[1:], end); i >= 0 {
		return 1 + i + len(end)
	}
	return len(s)
}

// plainQuotedEnd is quotedEnd without backslash escapes.
func plainQuotedEnd(s string) int {
	q := s[0]
	for j := 1; j < len(s); j++ {
		if s[j] != q {
			continue
		}
		if j+1 < len(s) && s[j+1] == q {
			j++
			continue
		}
		return j + 1
	}
	return len(s)
}

// backslashEscapes are the escapes MySQL reads in strings; other escaped
// characters stand for themselves, but \% and \_ keep their backslash.
var backslashEscapes = map[byte]string{'0': "\x00", 'b': "\b", 'n': "\n", 'r': "\r", 't': "\t", 'Z': "\x1a", '%': `\%`, '_': `\_`}

// stringValue is the value of the quoted string lit.
func stringValue(lit string, backslash bool) string {
	q := lit[0]
	body := lit[1:]
	if strings.HasSuffix(body, string(q)) {
		body = body[:len(body)-1]
	}
	var b strings.Builder
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '\\' && backslash && i+1 < len(body):
			i++
			if e, ok := backslashEscapes[body[i]]; ok {
				b.WriteString(e)
			} else {
				b.WriteByte(body[i])
			}
		case c == q && i+1 < len(body) && body[i+1] == q:
			b.WriteByte(q)
			i++
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// significant lists the indexes of the tokens that are not space.
func significant(toks []token) []int {
	var out []int
	for i, t := range toks {
		if t.kind != tokSpace {
			out = append(out, i)
		}
	}
	return out
}
