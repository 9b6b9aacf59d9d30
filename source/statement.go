package source

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/rowcast/rowcast/pipeline"
)

// A statement-based DML (a session with binlog_format=STATEMENT, as
// pt-table-checksum sets on purpose) cannot be replicated from a ROW
// pipeline. One that writes only tables that are not published is passed
// over with a log line; any other stops the reader. Which tables it writes
// is read from the statement conservatively: when the statement's shape is
// not one of the known ones, it counts as writing a published table.

var (
	insertTargetRe = regexp.MustCompile(`(?is)^(?:INSERT|REPLACE)\s+(?:(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE)\s+)*(?:INTO\s+)?` + name)
	loadTargetRe   = regexp.MustCompile(`(?is)^LOAD\s+(?:DATA|XML)\b.*?\bINTO\s+TABLE\s+` + name)
	updateRefsRe   = regexp.MustCompile(`(?is)^UPDATE\s+(?:(?:LOW_PRIORITY|IGNORE)\s+)*(.*?)\bSET\b`)
	deleteRefsRe   = regexp.MustCompile(`(?is)^DELETE\s+(?:(?:LOW_PRIORITY|QUICK|IGNORE)\s+)*(.*?)(?:\bWHERE\b|\bORDER\s+BY\b|\bLIMIT\b|\bRETURNING\b|$)`)
	// refNameRe finds the table names of a list of table references: the
	// first, and those after a comma, FROM, USING or JOIN.
	// (The keywords come first: at the start, FROM is no table name.)
	refNameRe = regexp.MustCompile(`(?is)(?:\bFROM\b|\bUSING\b|\bJOIN\b|^|,)\s*` + name)
)

// dmlTargets returns the tables a statement-based DML run in schema may
// write, as [db, table] pairs; ok is false when they cannot be told.
func dmlTargets(schema, stmt string) (targets [][2]string, ok bool) {
	s := strings.TrimSpace(stripComments(stmt))
	for _, re := range []*regexp.Regexp{insertTargetRe, loadTargetRe} {
		if m := re.FindStringSubmatch(s); m != nil {
			return [][2]string{qualify(schema, m[1], m[2])}, true
		}
	}
	for _, re := range []*regexp.Regexp{updateRefsRe, deleteRefsRe} {
		if m := re.FindStringSubmatch(s); m != nil {
			return refTargets(schema, m[1])
		}
	}
	return nil, false
}

// refTargets is every table named in a list of table references (the
// tables a multi-table UPDATE or DELETE may write, aliases included). A
// parenthesis (a derived table, a nested join, a condition) means the list
// is not understood.
func refTargets(schema, refs string) ([][2]string, bool) {
	if strings.ContainsAny(refs, "()") {
		return nil, false
	}
	var out [][2]string
	for _, m := range refNameRe.FindAllStringSubmatch(refs, -1) {
		out = append(out, qualify(schema, m[1], m[2]))
	}
	return out, len(out) > 0
}

// qualify is [db, table] of a name matched as (first, second): a qualified
// name, or a table of schema.
func qualify(schema, first, second string) [2]string {
	if second == "" {
		return [2]string{schema, unquote(first)}
	}
	return [2]string{unquote(first), unquote(second)}
}

// stripComments removes every comment of a statement, outside quotes; an
// executable comment's marker goes, its content stays. pt-table-checksum,
// for one, writes "REPLACE /*db.tbl:1/4*/ INTO ...".
func stripComments(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		switch {
		case s[i] == '\'' || s[i] == '"' || s[i] == '`':
			end := quotedEnd(s, i)
			b.WriteString(s[i:end])
			i = end
		case strings.HasPrefix(s[i:], "/*!") || strings.HasPrefix(s[i:], "/*M!"):
			rest := strings.TrimLeft(s[i+strings.Index(s[i:], "!")+1:], "0123456789")
			body, after, _ := strings.Cut(rest, "*/")
			b.WriteString(" " + body + " ")
			i = len(s) - len(after)
		case strings.HasPrefix(s[i:], "/*"):
			_, after, _ := strings.Cut(s[i+2:], "*/")
			b.WriteByte(' ')
			i = len(s) - len(after)
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String()
}

// quotedEnd is the index after the quoted text that starts at s[i],
// doubled quotes and backslash escapes included.
func quotedEnd(s string, i int) int {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q && j+1 < len(s) && s[j+1] == q:
			j++
		case s[j] == q:
			return j + 1
		}
	}
	return len(s)
}

// statementDML passes over a statement-based DML that writes no published
// table, and refuses any other.
func (s *stream) statementDML(schema, stmt string, offset uint32) error {
	if s.skipping {
		return nil
	}
	targets, ok := dmlTargets(schema, stmt)
	if ok && !s.anyPublished(targets) {
		s.log.Info().Str("gtid", s.gtid).Str("file", s.file).Uint32("offset", offset).Str("tables", targetNames(targets)).
			Msg("statement-based DML on tables that are not replicated: passed over")
		return nil
	}
	what := "tables it writes cannot be told from the statement"
	if ok {
		what = "it writes " + targetNames(targets)
	}
	return fmt.Errorf("%w: statement-based DML at %s (the session used binlog_format STATEMENT or MIXED; %s): "+
		"set binlog_format=ROW globally and in every session, then re-seed the affected tables; "+
		"to go past this one transaction, run `rowcast pipeline --skip-gtid %s` once (replicas then miss its changes: re-seed the tables it wrote)",
		ErrUnsupported, s.at(offset), what, s.gtid)
}

// statementLoad refuses a statement-based LOAD DATA, unless in a
// transaction skipped on request.
func (s *stream) statementLoad(offset uint32) error {
	if s.skipping {
		return nil
	}
	return fmt.Errorf("%w: statement-based LOAD DATA at %s: set binlog_format=ROW for every session on the master; "+
		"to go past this one transaction, run `rowcast pipeline --skip-gtid %s` once", ErrUnsupported, s.at(offset), s.gtid)
}

// anyPublished reports whether one of targets is a published table.
func (s *stream) anyPublished(targets [][2]string) bool {
	for _, t := range targets {
		if s.filter.table(t[0], t[1]) {
			return true
		}
	}
	return false
}

// targetNames lists targets as db.table.
func targetNames(targets [][2]string) string {
	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = t[0] + "." + t[1]
	}
	return strings.Join(names, ", ")
}

// skipReason is the reason a SkipRecord gives for --skip-gtid.
const skipReason = "operator: rowcast pipeline --skip-gtid"

// recordSkip ends a transaction the operator asked to leave out: a
// heartbeat carrying a SkipRecord says so in the topic, at the GTID set
// after it. The skip happens once.
func (s *stream) recordSkip(ctx context.Context, set string) error {
	s.skipping, s.skipGTID = false, ""
	if s.onSkipped != nil {
		s.onSkipped()
	}
	s.log.Warn().Str("gtid", s.gtid).Str("gtid_set", set).Str("file", s.file).
		Msg("skipped the transaction as asked (--skip-gtid): replicas do not get its changes")
	ev := &pipeline.Event{Kind: pipeline.KindHeartbeat, Flavor: s.flavor, ServerID: s.serverID, CommitTime: s.commitTime,
		File: s.file, GTIDSet: set, Pos: pipeline.Position{Epoch: s.epoch, TxnSeq: s.seq - 1, Last: true},
		Skip: &pipeline.SkipRecord{GTID: s.gtid, Reason: skipReason}}
	if err := s.emit(ctx, ev); err != nil {
		return fmt.Errorf("emit the record of skipped transaction %s: %w", s.gtid, err)
	}
	return nil
}

// oneGTIDRe matches one GTID of each flavor; gtidExample shows one.
var (
	oneGTIDRe = map[string]*regexp.Regexp{
		FlavorMariaDB: regexp.MustCompile(`^\d+-\d+-\d+$`),
		FlavorMySQL:   regexp.MustCompile(`^[0-9A-Fa-f-]{36}(?::[A-Za-z_]\w*)?:\d+$`),
	}
	gtidExample = map[string]string{FlavorMariaDB: "0-1-1042", FlavorMySQL: "3e11fa47-71ca-11e1-9e33-c80aa9429562:23"}
)

// skipGTID is Config.SkipGTID as the stream spells GTIDs, "" when there is
// nothing to skip after start.
func (r *Reader) skipGTID(flavor string, start mysql.GTIDSet) (string, error) {
	g := r.cfg.SkipGTID
	if g == "" {
		return "", nil
	}
	one, err := mysql.ParseGTIDSet(flavor, g)
	if err != nil || !oneGTIDRe[flavor].MatchString(g) {
		return "", fmt.Errorf("%w: SkipGTID %q is not one %s GTID (e.g. %s)", ErrConfig, g, flavor, gtidExample[flavor])
	}
	if start.Contain(one) {
		r.log.Warn().Str("gtid", g).Str("gtid_set", start.String()).
			Msg("--skip-gtid: the transaction is already before the resume point; nothing to skip")
		return "", nil
	}
	return one.String(), nil
}
