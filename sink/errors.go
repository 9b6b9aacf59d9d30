package sink

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/pipeline"
)

// Sentinel errors of the sink package.
var (
	// ErrEndOfInput is returned by Input.Next when there is nothing more to
	// read (a bounded replay, a test). The Worker commits what it holds at a
	// transaction boundary and Run returns nil.
	ErrEndOfInput = errors.New("end of input")
	// ErrRowMissing is returned by a Target when a delete or an update meets
	// no row where the master had one: the replica has diverged. Native MySQL
	// replication stops the same way ("Can't find record", 1032).
	ErrRowMissing = errors.New("row not found on the replica")
	// ErrGap marks a changelog that skips positions: messages are missing.
	ErrGap = errors.New("position gap in the changelog")
	// ErrTxnRolledBack is returned by a Target when the server rolled back
	// the whole target transaction after an error that rolls back only the
	// statement. Nothing of it was committed; it is not retried on its own,
	// since whatever made the server do so would likely do it again.
	ErrTxnRolledBack = errors.New("the replica rolled back the whole transaction")
)

// Class says what the Worker does with an error.
type Class uint8

const (
	// Human errors stop the worker: retrying cannot help, an operator must
	// look (fail closed). Every error not known to be transient is one.
	Human Class = iota + 1
	// Transient errors are retried with backoff from the last checkpoint.
	Transient
)

func (c Class) String() string {
	if c == Transient {
		return "transient"
	}
	return "human"
}

// MySQL and MariaDB server errors that go away by themselves.
var transientCodes = map[uint16]bool{
	1040: true,                                     // too many connections
	1053: true,                                     // server shutdown in progress
	1158: true, 1159: true, 1160: true, 1161: true, // network read/write errors and timeouts
	1205: true, // lock wait timeout
	1213: true, // deadlock
	1317: true, // query interrupted (KILL QUERY)
	1637: true, // too many active concurrent transactions
	1927: true, // MariaDB: connection was killed
	2006: true, // server has gone away
	2013: true, // lost connection during query
	4031: true, // MySQL 8: disconnected for inactivity
}

// advice says what an operator does about a human error, by MySQL error code.
var advice = map[uint16]string{
	1007: "the database already exists on the replica: if the statement's effect is already there, skip this offset",
	1008: "the database does not exist on the replica: if it was dropped already, skip this offset",
	1044: "grant the sink's user the privileges listed in README.md (the local stack's rowcast user has them)",
	1045: "check the sink's DSN user and password",
	1048: "a column is NOT NULL on the replica but nullable on the master: align the replica's definition with SHOW CREATE TABLE on the master",
	1049: "the database does not exist on the replica: create it with the master's definition, or exclude it with source.exclude",
	1050: "the table already exists on the replica: if it matches the master's, skip this offset",
	1051: "the table does not exist on the replica: if it was dropped already, skip this offset",
	1054: "the replica's table lacks a column the master has: compare SHOW CREATE TABLE on both and apply the missing ALTER on the replica",
	1060: "the column already exists on the replica: if the statement's effect is already there, skip this offset",
	1061: "the index already exists on the replica: if the statement's effect is already there, skip this offset",
	1062: "a unique key on the replica rejects a row the master accepted: the replica has diverged (written outside rowcast?) or its keys differ from the master's; compare them, or re-seed the table",
	1064: "the replica cannot parse a statement the master ran (different versions?): apply an equivalent statement by hand, then skip this offset",
	1091: "the column or key does not exist on the replica: if it was dropped already, skip this offset",
	1136: "the replica's table has other columns than the master's: align it with SHOW CREATE TABLE on the master",
	1142: "grant the sink's user the privileges listed in README.md",
	1146: "the table does not exist on the replica: create it with the master's definition (SHOW CREATE TABLE on the master), or exclude it with source.exclude",
	1153: "the batch exceeds max_allowed_packet: raise max_allowed_packet on the replica or lower sink.max_batch_rows",
	1206: "the replica's InnoDB ran out of memory for row locks: raise innodb_buffer_pool_size on the replica (a source transaction is applied as one, so its locks must fit), or lower sink.max_txn_merge",
	1227: "grant the sink's user the privileges listed in README.md",
	1264: "a value is out of range for the replica's column: align the column type with the master's",
	1265: "a value is truncated by the replica's column (ENUM/SET members or length differ?): align the column type with the master's",
	1290: "the replica is read-only for the sink's user: GRANT READ_ONLY ADMIN (MariaDB 10.5.2+) or CONNECTION_ADMIN (MySQL 8) to it, and check super_read_only",
	1292: "a date, time or number is invalid for the replica's column: align the column type and sql_mode with the master's",
	1366: "a value is invalid for the replica's column (type or character set differs?): align the column with the master's",
	1406: "a value is too long for the replica's column: ALTER it to the master's definition",
	1451: "a foreign key blocks the change: the sink runs with foreign_key_checks=0, check the session settings",
	1452: "a foreign key blocks the change: the sink runs with foreign_key_checks=0, check the session settings",
}

// Classify sorts an error into Transient or Human. This is the only place
// that decides what is retried; anything unknown is Human (fail closed).
func Classify(err error) Class {
	if err == nil || errors.Is(err, ErrTxnRolledBack) {
		return Human
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		if transientCodes[me.Number] {
			return Transient
		}
		return Human
	}
	var te transientError
	var ne net.Error
	switch {
	case errors.As(err, &te):
		return Transient
	case errors.Is(err, pipeline.ErrMalformed), errors.Is(err, pipeline.ErrUnsupported),
		errors.Is(err, ErrRowMissing), errors.Is(err, ErrGap), errors.Is(err, context.Canceled):
		return Human
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, mysql.ErrInvalidConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, context.DeadlineExceeded):
		return Transient
	case errors.As(err, &ne):
		return Transient // timeouts, refused dials, resets: the replica or network is down for now
	}
	return Human
}

// Advice says how an operator fixes a human error, or "" when there is no
// specific advice.
func Advice(err error) string {
	var me *mysql.MySQLError
	switch {
	case errors.Is(err, ErrTxnRolledBack):
		return "nothing of the transaction was committed: restart the worker to retry it from the checkpoint; if it recurs, keep the log for a bug report and revoke BINLOG REPLAY (SUPER before MariaDB 10.5.2) from the sink's user, so that rows go as SQL"
	case errors.As(err, &me):
		return advice[me.Number]
	case errors.Is(err, pipeline.ErrMalformed):
		return "find what wrote this message (another producer? a newer rowcast?); to go on without it, skip its offset explicitly (it is recorded)"
	case errors.Is(err, ErrRowMissing):
		return "the replica has diverged from the master (written outside rowcast, or seeded at another position): re-seed the table or the replica"
	case errors.Is(err, ErrGap):
		return "messages are missing from the topic (deleted by retention? written by another producer?): re-seed the replica from the master"
	case errors.Is(err, pipeline.ErrUnsupported):
		return "rowcast cannot apply this faithfully: apply it by hand, then skip its offset"
	}
	return ""
}

type transientError struct{ err error }

func (e transientError) Error() string { return e.err.Error() }
func (e transientError) Unwrap() error { return e.err }

// MarkTransient marks err as transient, for targets whose client library
// reports retryable errors in its own way.
func MarkTransient(err error) error {
	if err == nil {
		return nil
	}
	return transientError{err}
}

// ApplyError is an error of one message: it names the offset, the position,
// the object (db.table, or a DDL's database) and, for human errors, the fix.
type ApplyError struct {
	Offset int64
	Pos    *pipeline.Position // nil when the message could not be decoded
	Object string
	Err    error
}

func (e *ApplyError) Error() string {
	s := fmt.Sprintf("offset %d", e.Offset)
	if e.Pos != nil {
		s += " (" + e.Pos.String() + ")"
	}
	if e.Object != "" {
		s += " " + e.Object
	}
	s += ": " + e.Err.Error()
	if Classify(e.Err) == Human {
		if a := Advice(e.Err); a != "" {
			s += "; fix: " + a
		}
	}
	return s
}

func (e *ApplyError) Unwrap() error { return e.Err }

// errorKind labels an error for the errors-by-kind metric.
func errorKind(err error) string {
	switch {
	case Classify(err) == Transient:
		return "transient"
	case errors.Is(err, pipeline.ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrGap):
		return "gap"
	case errors.Is(err, ErrRowMissing):
		return "row_missing"
	}
	return "target"
}
