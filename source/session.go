package source

import (
	"bytes"
	"encoding/binary"
	"time"

	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/rowcast/rowcast/pipeline"
)

// Status variable codes of a QUERY event: MySQL's Query_event
// (libbinlogevents/include/statement_events.h) and MariaDB's
// Query_log_event (sql/log_event.h). Both write them in growing order of
// code, so the parse stops at the first one it does not know, as the
// servers' own readers do.
const (
	qFlags2                       = 0
	qSQLMode                      = 1
	qCatalog                      = 2
	qAutoIncrement                = 3
	qCharset                      = 4
	qTimeZone                     = 5
	qCatalogNZ                    = 6
	qLCTimeNames                  = 7
	qCharsetDatabase              = 8
	qTableMapForUpdate            = 9
	qMasterDataWritten            = 10
	qInvoker                      = 11
	qUpdatedDBNames               = 12
	qMicroseconds                 = 13
	qExplicitDefaultsForTimestamp = 16
	qDDLLoggedWithXID             = 17
	qDefaultCollationForUTF8MB4   = 18
	qSQLRequirePrimaryKey         = 19
	qDefaultTableEncryption       = 20
	qHRNow                        = 128 // MariaDB
	qXID                          = 129 // MariaDB
	qGTIDFlags3                   = 130 // MariaDB
)

// overMaxDBs is Q_UPDATED_DB_NAMES's count when the statement touched more
// databases than it lists (OVER_MAX_DBS_IN_EVENT_MTS): no names follow.
const overMaxDBs = 254

// fixedVarLen is the length of the value of the status variables that have
// a fixed one.
var fixedVarLen = map[byte]int{
	qFlags2: 4, qSQLMode: 8, qAutoIncrement: 4, qCharset: 6, qLCTimeNames: 2, qCharsetDatabase: 2,
	qTableMapForUpdate: 8, qMasterDataWritten: 4, qMicroseconds: 3, qExplicitDefaultsForTimestamp: 1,
	qDDLLoggedWithXID: 8, qDefaultCollationForUTF8MB4: 2, qSQLRequirePrimaryKey: 1, qDefaultTableEncryption: 1,
	qHRNow: 3, qXID: 8, qGTIDFlags3: 1,
}

// sessionOf reads a QUERY event's status variables into the session its
// statement ran under; at is the event's header timestamp. unknown is the
// code the parse stopped at (-1 when it read them all): what follows it is
// not read, since its length is not known.
func sessionOf(vars []byte, at uint32) (s *pipeline.Session, unknown int) {
	s = &pipeline.Session{AutoIncrementIncrement: 1, AutoIncrementOffset: 1}
	var usec uint32
	unknown = readVars(s, &usec, vars)
	s.Timestamp = time.Unix(int64(at), int64(usec)*1000).UTC()
	return s, unknown
}

// readVars reads the status variables vars into s; see sessionOf.
func readVars(s *pipeline.Session, usec *uint32, vars []byte) (unknown int) {
	for len(vars) > 0 {
		code := vars[0]
		n := varLen(code, vars[1:])
		if n < 0 || n > len(vars)-1 {
			return int(code)
		}
		readVar(s, usec, code, vars[1:1+n])
		vars = vars[1+n:]
	}
	return -1
}

// varLen is the length of the value of status variable code at the start
// of b, -1 when code is unknown or b is too short to tell.
func varLen(code byte, b []byte) int {
	if n, ok := fixedVarLen[code]; ok {
		return n
	}
	switch code {
	case qTimeZone, qCatalogNZ:
		return lenPrefixed(b, 0)
	case qCatalog: // 5.0.0-5.0.3 masters: length, name, NUL
		return lenPrefixed(b, 1)
	case qInvoker: // user, then host, each length-prefixed
		user := lenPrefixed(b, 0)
		if user < 0 {
			return -1
		}
		host := lenPrefixed(b[user:], 0)
		if host < 0 {
			return -1
		}
		return user + host
	case qUpdatedDBNames:
		return updatedDBNamesLen(b)
	}
	return -1
}

// lenPrefixed is the length of a one-byte length, the string and extra
// bytes at the start of b; -1 when b is too short.
func lenPrefixed(b []byte, extra int) int {
	if len(b) < 1 {
		return -1
	}
	n := 1 + int(b[0]) + extra
	if n > len(b) {
		return -1
	}
	return n
}

// updatedDBNamesLen is the length of Q_UPDATED_DB_NAMES: a count, then as
// many NUL-terminated names.
func updatedDBNamesLen(b []byte) int {
	if len(b) < 1 {
		return -1
	}
	count, n := int(b[0]), 1
	if count == overMaxDBs {
		return n
	}
	for range count {
		end := bytes.IndexByte(b[n:], 0)
		if end < 0 {
			return -1
		}
		n += end + 1
	}
	return n
}

// readVar keeps the value v of status variable code that the session
// needs; usec takes the statement's microseconds.
func readVar(s *pipeline.Session, usec *uint32, code byte, v []byte) {
	le := binary.LittleEndian
	switch code {
	case qSQLMode:
		s.SQLMode = le.Uint64(v)
	case qAutoIncrement:
		s.AutoIncrementIncrement, s.AutoIncrementOffset = le.Uint16(v), le.Uint16(v[2:])
	case qTimeZone:
		s.TimeZone = string(v[1:])
	case qMicroseconds, qHRNow:
		*usec = uint32(v[0]) | uint32(v[1])<<8 | uint32(v[2])<<16
	case qExplicitDefaultsForTimestamp:
		on := v[0] != 0
		s.ExplicitDefaultsForTimestamp = &on
	default:
		readCharsetVar(s, code, v)
	}
}

// readCharsetVar keeps the collation and locale numbers.
func readCharsetVar(s *pipeline.Session, code byte, v []byte) {
	le := binary.LittleEndian
	switch code {
	case qCharset:
		s.CharsetClient, s.CollationConnection, s.CollationServer = le.Uint16(v), le.Uint16(v[2:]), le.Uint16(v[4:])
	case qLCTimeNames:
		s.LCTimeNames = le.Uint16(v)
	case qCharsetDatabase:
		s.CollationDatabase = le.Uint16(v)
	case qDefaultCollationForUTF8MB4:
		s.DefaultCollationForUTF8MB4 = le.Uint16(v)
	}
}

// session is the session a QUERY event's statement ran under. A status
// variable rowcast does not know ends what is read of them: it is logged,
// once per code, and the statement replays with the settings read before
// it.
func (s *stream) session(h *replication.EventHeader, e *replication.QueryEvent) *pipeline.Session {
	ss, unknown := sessionOf(e.StatusVars, h.Timestamp)
	if unknown >= 0 && !s.unknownVars[unknown] {
		if s.unknownVars == nil {
			s.unknownVars = map[int]bool{}
		}
		s.unknownVars[unknown] = true
		s.log.Warn().Int("code", unknown).Str("file", s.file).
			Msg("a DDL statement's session carries a status variable rowcast does not know: the settings after it are not carried (see docs/FORMAT.md, DDL session)")
	}
	return ss
}
