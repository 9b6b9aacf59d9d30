package mysql

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/rowcast/rowcast/pipeline"
)

// A DDL statement runs on the replica under the session it ran under on the
// master (pipeline.Session), as a replica's SQL thread runs it: the
// sql_mode, time zone, character sets and timestamp change what it means (a
// TIMESTAMP default, the rows an ADD COLUMN ... DEFAULT CURRENT_TIMESTAMP(6)
// fills, double-quoted names under ANSI_QUOTES). The values are the
// server's numbers, as mysqlbinlog writes them. docs/DESIGN.md, "DDL on a
// MySQL target".

// sessionVar is one session variable set around a DDL statement.
type sessionVar struct {
	name  string
	value any
}

// ddlSession is the variables a DDL event's session sets on this replica,
// nil for an event without one.
func (t *Target) ddlSession(s *pipeline.Session) []sessionVar {
	if s == nil {
		return nil
	}
	vars := []sessionVar{
		{"sql_mode", s.SQLMode},
		{"lc_time_names", s.LCTimeNames},
		{"auto_increment_increment", max(s.AutoIncrementIncrement, 1)},
		{"auto_increment_offset", max(s.AutoIncrementOffset, 1)},
	}
	vars = appendCollation(vars, "character_set_client", s.CharsetClient)
	vars = appendCollation(vars, "collation_connection", s.CollationConnection)
	vars = appendCollation(vars, "collation_server", s.CollationServer)
	vars = appendCollation(vars, "collation_database", s.CollationDatabase)
	if s.TimeZone != "" {
		vars = append(vars, sessionVar{"time_zone", s.TimeZone})
	}
	if s.ExplicitDefaultsForTimestamp != nil {
		vars = append(vars, sessionVar{"explicit_defaults_for_timestamp", *s.ExplicitDefaultsForTimestamp})
	}
	if s.DefaultCollationForUTF8MB4 != 0 && !t.mariadb { // MySQL 8 only; MariaDB has no such variable
		vars = append(vars, sessionVar{"default_collation_for_utf8mb4", s.DefaultCollationForUTF8MB4})
	}
	return vars
}

// appendCollation adds a collation id, unless 0 (not recorded).
func appendCollation(vars []sessionVar, name string, id uint16) []sessionVar {
	if id == 0 {
		return vars
	}
	return append(vars, sessionVar{name, id})
}

// enterSession sets vars and the statement's timestamp on the apply
// connection, and returns the statement that sets back what the session
// held before. Nothing is set for an event without a session.
func (t *Target) enterSession(ctx context.Context, ev *pipeline.Event) (restore string, args []any, err error) {
	vars := t.ddlSession(ev.Session)
	if len(vars) == 0 {
		return "", nil, nil
	}
	if restore, args, err = t.saveSession(ctx, vars); err != nil {
		return "", nil, fmt.Errorf("read the session before DDL: %w", err)
	}
	set, setArgs := setSession(vars, ev.Session)
	if _, err := t.ex.ExecContext(ctx, set, setArgs...); err != nil {
		return "", nil, fmt.Errorf("set the master's session for DDL at %s on the replica (%s): %w; the replica must know every value "+
			"(a named time_zone needs the time zone tables; MySQL needs SESSION_VARIABLES_ADMIN for some of them): fix the replica, or apply the statement by hand and skip this offset",
			ev.Pos, sessionText(vars), err)
	}
	return restore, args, nil
}

// saveSession reads the current values of vars and returns the statement
// that sets them back, timestamp included.
func (t *Target) saveSession(ctx context.Context, vars []sessionVar) (string, []any, error) {
	sel := make([]string, len(vars))
	for i, v := range vars {
		sel[i] = "@@session." + v.name
	}
	vals := make([]any, len(vars))
	ptrs := make([]any, len(vars))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := t.ex.QueryRowContext(ctx, "SELECT "+strings.Join(sel, ", ")).Scan(ptrs...); err != nil {
		return "", nil, err
	}
	set := make([]string, len(vars), len(vars)+1)
	for i, v := range vars {
		set[i], vals[i] = v.name+"=?", savedValue(vals[i])
	}
	return "SET SESSION " + strings.Join(append(set, "timestamp=DEFAULT"), ", "), vals, nil
}

// savedValue is a value read from @@session as SET takes it back: a number
// for a numeric variable (the server refuses a string there), else text.
func savedValue(v any) any {
	b, ok := v.([]byte)
	if !ok {
		return v
	}
	if n, err := strconv.ParseInt(string(b), 10, 64); err == nil {
		return n
	}
	return string(b)
}

// setSession is the statement that sets vars and the statement's
// timestamp.
func setSession(vars []sessionVar, s *pipeline.Session) (string, []any) {
	set := make([]string, len(vars), len(vars)+1)
	args := make([]any, len(vars))
	for i, v := range vars {
		set[i], args[i] = v.name+"=?", v.value
	}
	if !s.Timestamp.IsZero() {
		// A decimal literal keeps the microseconds exact (a float would
		// round them, a string is refused); it is made of two integers.
		us := s.Timestamp.UnixMicro()
		set = append(set, "timestamp="+strconv.FormatInt(us/1e6, 10)+"."+fmt.Sprintf("%06d", us%1e6))
	}
	return "SET SESSION " + strings.Join(set, ", "), args
}

// sessionText names vars and their values for an error message.
func sessionText(vars []sessionVar) string {
	parts := make([]string, len(vars))
	for i, v := range vars {
		parts[i] = fmt.Sprintf("%s=%v", v.name, v.value)
	}
	return strings.Join(parts, ", ")
}

// leaveSession sets back what enterSession changed. When that fails the
// connection is dropped, so that the next statement cannot run under the
// master's settings.
func (t *Target) leaveSession(ctx context.Context, restore string, args []any) error {
	if restore == "" {
		return nil
	}
	if _, err := t.ex.ExecContext(ctx, restore, args...); err != nil {
		t.dropConn()
		return fmt.Errorf("set the sink's session back after DDL: %w", err)
	}
	return nil
}
