package source

import (
	"crypto/sha1"
	"encoding/hex"
	"regexp"
	"strings"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/internal/redact"
	"github.com/rowcast/rowcast/pipeline"
)

// Account and privilege statements (CREATE/ALTER/DROP/RENAME USER, GRANT,
// REVOKE, SET PASSWORD, roles) may carry a password in clear: MariaDB logs
// them as they were typed. They are not published unless
// Config.ReplicateAccounts; then a clear-text password is replaced by its
// mysql_native_password hash, and a statement whose password cannot be
// hashed that way is not published either.

var accountStmtRe = regexp.MustCompile(`(?is)^(?:CREATE\s+(?:OR\s+REPLACE\s+)?(?:USER|ROLE)|(?:ALTER|DROP|RENAME)\s+USER|DROP\s+ROLE|` +
	`GRANT|REVOKE|SET\s+(?:PASSWORD|DEFAULT\s+ROLE))\b`)

// isAccountStatement reports whether stmt manages accounts, roles or
// privileges.
func isAccountStatement(stmt string) bool {
	return accountStmtRe.MatchString(skipComments(stmt))
}

// accountStatement is the form in which an account statement is published,
// and whether it is.
func (s *stream) accountStatement(stmt string, session *pipeline.Session, offset uint32) (string, bool) {
	if s.skipping {
		return stmt, false
	}
	if !s.accounts {
		s.withhold(stmt, offset).Msg("account statement not published (source.replicate_accounts is off)")
		return "", false
	}
	var sqlMode uint64
	if session != nil {
		sqlMode = session.SQLMode
	}
	if out, ok := hashPasswords(stmt, sqlMode); ok {
		return out, true
	}
	s.withhold(stmt, offset).Msg("account statement not published: its password cannot be hashed as mysql_native_password " +
		"(another authentication plugin, OLD_PASSWORD or REPLACE); run it on the replicas by hand")
	return "", false
}

// withhold counts an account statement that is not published and starts
// its log line, the statement cut before its first literal.
func (s *stream) withhold(stmt string, offset uint32) *zerolog.Event {
	if s.onWithheld != nil {
		s.onWithheld()
	}
	return s.log.Info().Str("gtid", s.gtid).Str("file", s.file).Uint32("offset", offset).Str("statement", redact.SQL(stmt))
}

// nativePasswordHash is mysql_native_password's hash of pw, as PASSWORD()
// returns it: "*" and the upper-case hex of SHA1(SHA1(pw)); "" for "".
func nativePasswordHash(pw string) string {
	if pw == "" {
		return ""
	}
	first := sha1.Sum([]byte(pw))
	second := sha1.Sum(first[:])
	return "*" + strings.ToUpper(hex.EncodeToString(second[:]))
}

// sqlMode bits the lexer needs (the server's MODE_* values).
const (
	modeANSIQuotes         = 1 << 2
	modeNoBackslashEscapes = 1 << 20
)

// hashPasswords rewrites the clear-text passwords of an account statement
// to their mysql_native_password hash: IDENTIFIED BY 'pw' becomes
// IDENTIFIED BY PASSWORD '*…', PASSWORD('pw') (SET PASSWORD, USING) becomes
// '*…', IDENTIFIED WITH mysql_native_password BY 'pw' becomes ... AS '*…'.
// ok is false when a password remains that cannot be hashed so (another
// authentication plugin, OLD_PASSWORD, a REPLACE clause).
func hashPasswords(stmt string, sqlMode uint64) (out string, ok bool) {
	toks := lexSQL(stmt, sqlMode&modeNoBackslashEscapes == 0, sqlMode&modeANSIQuotes != 0)
	r := rewriter{toks: toks, sig: significant(toks), ok: true}
	for i := 0; i < len(r.sig) && r.ok; i++ {
		i = r.step(i)
	}
	if !r.ok {
		return "", false
	}
	var b strings.Builder
	for _, t := range r.toks {
		b.WriteString(t.text)
	}
	return b.String(), true
}

// rewriter walks the significant tokens of one account statement.
type rewriter struct {
	toks   []token
	sig    []int  // indexes of toks that are not space or comments
	plugin string // the authentication plugin of the current auth option
	ok     bool
}

// tok is the i-th significant token; a space token past the end.
func (r *rewriter) tok(i int) token {
	if i < 0 || i >= len(r.sig) {
		return token{kind: tokSpace}
	}
	return r.toks[r.sig[i]]
}

// set replaces the i-th significant token's text.
func (r *rewriter) set(i int, text string) { r.toks[r.sig[i]].text = text }

// step handles the significant token i and returns the last index it used.
func (r *rewriter) step(i int) int {
	t := r.tok(i)
	switch {
	case t.kind == tokPunct && t.text == ",", t.is("OR"):
		r.plugin = "" // the next user, or the next authentication option
	case t.is("IDENTIFIED"):
		return r.identified(i)
	case t.is("PASSWORD") && r.tok(i+1).text == "(":
		return r.passwordCall(i)
	case t.is("OLD_PASSWORD"), t.is("REPLACE") && r.tok(i+1).kind == tokString:
		r.ok = false
	}
	return i
}

// identified handles IDENTIFIED BY 'pw', IDENTIFIED BY PASSWORD 'hash' and
// IDENTIFIED {VIA|WITH} plugin [BY 'pw' | USING|AS ...].
func (r *rewriter) identified(i int) int {
	next := r.tok(i + 1)
	switch {
	case next.is("BY"):
		return r.identifiedBy(i + 1)
	case next.is("VIA"), next.is("WITH"):
		r.plugin = strings.ToLower(r.tok(i + 2).name())
		if r.tok(i + 3).is("BY") { // MySQL: IDENTIFIED WITH plugin BY 'pw'
			return r.pluginBy(i + 3)
		}
		return i + 2
	}
	return i
}

// identifiedBy rewrites the literal after BY (at by) to PASSWORD '<hash>'.
func (r *rewriter) identifiedBy(by int) int {
	lit := r.tok(by + 1)
	if lit.kind != tokString {
		return by // BY PASSWORD 'hash', MySQL's BY RANDOM PASSWORD
	}
	if r.tok(by+2).kind == tokString { // 'a' 'b' is one string: 'ab'
		r.ok = false
		return by + 1
	}
	r.set(by+1, "PASSWORD '"+nativePasswordHash(lit.value)+"'")
	return by + 1
}

// pluginBy rewrites MySQL's "WITH mysql_native_password BY 'pw'" to
// "AS '<hash>'"; any other plugin's clear-text password cannot be hashed.
func (r *rewriter) pluginBy(by int) int {
	lit := r.tok(by + 1)
	if lit.kind != tokString || r.plugin != "mysql_native_password" || r.tok(by+2).kind == tokString {
		r.ok = false
		return by + 1
	}
	r.set(by, "AS")
	r.set(by+1, "'"+nativePasswordHash(lit.value)+"'")
	return by + 1
}

// passwordCall rewrites PASSWORD('pw') at i to '<hash>', for
// mysql_native_password or no plugin named (SET PASSWORD).
func (r *rewriter) passwordCall(i int) int {
	lit, closing := r.tok(i+2), r.tok(i+3)
	if lit.kind != tokString || closing.text != ")" || (r.plugin != "" && r.plugin != "mysql_native_password") {
		r.ok = false
		return i
	}
	r.set(i, "'"+nativePasswordHash(lit.value)+"'")
	for j := i + 1; j <= i+3; j++ {
		r.set(j, "")
	}
	return i + 3
}
