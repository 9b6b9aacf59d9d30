package pipeline

import (
	"math"
	"strconv"
	"time"
)

// Session is what the master's session held when a DDL statement ran that
// changes what the statement means: the binlog's QUERY event records it in
// its status variables, and a MySQL replica's SQL thread sets it around the
// statement; rowcast's sinks do the same. Values are the server's own
// numbers (a collation id, a locale number, the sql_mode bit set), as
// mysqlbinlog prints them. docs/FORMAT.md, "DDL session".
type Session struct {
	// SQLMode is @@sql_mode as the server's bit set.
	SQLMode uint64
	// TimeZone is @@time_zone, recorded only when the statement used the
	// time zone; "" otherwise.
	TimeZone string
	// CharsetClient, CollationConnection and CollationServer are the
	// collation ids of @@character_set_client, @@collation_connection and
	// @@collation_server; 0 when not recorded.
	CharsetClient, CollationConnection, CollationServer uint16
	// CollationDatabase is the collation id of @@collation_database when it
	// differed from the default database's; 0 otherwise.
	CollationDatabase uint16
	// LCTimeNames is @@lc_time_names as the server's locale number (0 is
	// en_US).
	LCTimeNames uint16
	// AutoIncrementIncrement and AutoIncrementOffset are
	// @@auto_increment_increment and @@auto_increment_offset (1 unless
	// recorded otherwise): they number the rows of a column an ALTER adds.
	AutoIncrementIncrement, AutoIncrementOffset uint16
	// ExplicitDefaultsForTimestamp is @@explicit_defaults_for_timestamp,
	// nil when not recorded (MariaDB never records it).
	ExplicitDefaultsForTimestamp *bool
	// DefaultCollationForUTF8MB4 is MySQL 8's
	// @@default_collation_for_utf8mb4, 0 when not recorded.
	DefaultCollationForUTF8MB4 uint16
	// Timestamp is the statement's start, as NOW() saw it: the event's
	// time in seconds, with the microseconds when the statement used them.
	Timestamp time.Time
}

// session writes rowcast.ddl.session.
func (w *msgWriter) session(b []byte, s *Session) []byte {
	b = append(b, `,"session":{"sql_mode":`...)
	b = strconv.AppendUint(b, s.SQLMode, 10)
	b = w.member(b, `,"time_zone":`, s.TimeZone, "session time zone")
	b = appendUint16(b, `,"character_set_client":`, s.CharsetClient)
	b = appendUint16(b, `,"collation_connection":`, s.CollationConnection)
	b = appendUint16(b, `,"collation_server":`, s.CollationServer)
	b = appendUint16(b, `,"collation_database":`, s.CollationDatabase)
	b = append(b, `,"lc_time_names":`...)
	b = strconv.AppendUint(b, uint64(s.LCTimeNames), 10)
	b = append(b, `,"auto_increment_increment":`...)
	b = strconv.AppendUint(b, uint64(max(s.AutoIncrementIncrement, 1)), 10)
	b = append(b, `,"auto_increment_offset":`...)
	b = strconv.AppendUint(b, uint64(max(s.AutoIncrementOffset, 1)), 10)
	if v := s.ExplicitDefaultsForTimestamp; v != nil {
		b = strconv.AppendBool(append(b, `,"explicit_defaults_for_timestamp":`...), *v)
	}
	b = appendUint16(b, `,"default_collation_for_utf8mb4":`, s.DefaultCollationForUTF8MB4)
	b = append(b, `,"timestamp_us":`...)
	b = strconv.AppendInt(b, timestampMicros(s.Timestamp), 10)
	return append(b, '}')
}

// appendUint16 appends the member name and v, unless v is 0 (not
// recorded).
func appendUint16(b []byte, name string, v uint16) []byte {
	if v == 0 {
		return b
	}
	return strconv.AppendUint(append(b, name...), uint64(v), 10)
}

func timestampMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// decodeSession reads a "session" object.
func decodeSession(s *jsonScanner) (*Session, error) {
	ss := &Session{AutoIncrementIncrement: 1, AutoIncrementOffset: 1}
	l := s.object(nil)
	for s.more(&l) {
		l.fail(sessionMember(s, ss, l.name))
	}
	if l.err != nil {
		return nil, prefixErr("session", l.err)
	}
	return ss, nil
}

func sessionMember(s *jsonScanner, ss *Session, k []byte) error {
	if p := sessionUint16(ss, string(k)); p != nil {
		v, err := s.uint(math.MaxUint16)
		*p = uint16(v)
		return err
	}
	var err error
	switch string(k) {
	case "sql_mode":
		ss.SQLMode, err = s.uint(math.MaxUint64)
	case "time_zone":
		ss.TimeZone, err = s.str()
	case "explicit_defaults_for_timestamp":
		var v bool
		v, err = s.bool()
		ss.ExplicitDefaultsForTimestamp = &v
	case "timestamp_us":
		var us int64
		if us, err = s.int64("timestamp_us"); us != 0 {
			ss.Timestamp = time.UnixMicro(us).UTC()
		}
	default:
		err = s.skip(1)
	}
	return err
}

// sessionUint16 is the field of ss that member k holds, when it is a
// 16-bit number.
func sessionUint16(ss *Session, k string) *uint16 {
	switch k {
	case "character_set_client":
		return &ss.CharsetClient
	case "collation_connection":
		return &ss.CollationConnection
	case "collation_server":
		return &ss.CollationServer
	case "collation_database":
		return &ss.CollationDatabase
	case "lc_time_names":
		return &ss.LCTimeNames
	case "auto_increment_increment":
		return &ss.AutoIncrementIncrement
	case "auto_increment_offset":
		return &ss.AutoIncrementOffset
	case "default_collation_for_utf8mb4":
		return &ss.DefaultCollationForUTF8MB4
	}
	return nil
}
