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

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/internal/mysqlerr"
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
	// ErrConflict is returned by a Target on a master of a master-master
	// set when another master's row change does not apply to the row as
	// that master saw it: both changed the row concurrently.
	ErrConflict = errors.New("master-master conflict")
	// ErrUnknownDomain marks a transaction in a master's topic whose GTID
	// domain is no master's: it was written while the master's
	// @@gtid_domain_id was wrong (a restart without it in my.cnf).
	ErrUnknownDomain = errors.New("master-master: a transaction of a GTID domain that is no master's")
	// ErrGap marks a changelog that skips positions: messages are missing.
	ErrGap = errors.New("position gap in the changelog")
	// ErrTxnRolledBack is returned by a Target when the server rolled back
	// the whole target transaction after an error that rolls back only the
	// statement. Nothing of it was committed; it is not retried on its own,
	// since whatever made the server do so would likely do it again.
	ErrTxnRolledBack = errors.New("the replica rolled back the whole transaction")
	// ErrDDLRefused marks a DDL message that is not a schema statement of a
	// replicated object (WorkerConfig.AllowDDL): it is not applied.
	ErrDDLRefused = errors.New("DDL refused")
	// ErrDuplicateDiffers marks a transaction skipped as a duplicate by its
	// position whose content differs from the one applied at that position:
	// two histories claim the same place in the topic.
	ErrDuplicateDiffers = errors.New("duplicate differs from the applied transaction")
	// ErrEpochUnconfirmed marks an epoch record that no node's epoch index
	// holds yet: the worker waits for it (a transient error).
	ErrEpochUnconfirmed = errors.New("epoch record not confirmed")
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
	gomysql.ER_CON_COUNT_ERROR:          true, // too many connections
	gomysql.ER_SERVER_SHUTDOWN:          true, // server shutdown in progress
	gomysql.ER_NET_READ_ERROR:           true, // network read/write errors and timeouts
	gomysql.ER_NET_READ_INTERRUPTED:     true,
	gomysql.ER_NET_ERROR_ON_WRITE:       true,
	gomysql.ER_NET_WRITE_INTERRUPTED:    true,
	gomysql.ER_LOCK_WAIT_TIMEOUT:        true,
	gomysql.ER_LOCK_DEADLOCK:            true,
	gomysql.ER_QUERY_INTERRUPTED:        true, // KILL QUERY
	gomysql.ER_TOO_MANY_CONCURRENT_TRXS: true,
	mysqlerr.ErConnectionKilled:         true,
	mysqlerr.CrServerGone:               true,
	mysqlerr.CrServerLost:               true,
	mysqlerr.ErClientInteractionTimeout: true,
}

var advice = map[uint16]string{
	gomysql.ER_DB_CREATE_EXISTS:                "the database already exists on the replica: if the statement's effect is already there, skip this offset",
	gomysql.ER_DB_DROP_EXISTS:                  "the database does not exist on the replica: if it was dropped already, skip this offset",
	gomysql.ER_DBACCESS_DENIED_ERROR:           "grant the sink's user the privileges listed in README.md (the local stack's rowcast user has them)",
	gomysql.ER_ACCESS_DENIED_ERROR:             "check the sink's DSN user and password",
	gomysql.ER_BAD_NULL_ERROR:                  "a column is NOT NULL on the replica but nullable on the master: align the replica's definition with SHOW CREATE TABLE on the master",
	gomysql.ER_BAD_DB_ERROR:                    "the database does not exist on the replica: create it with the master's definition, or exclude it with source.exclude",
	gomysql.ER_TABLE_EXISTS_ERROR:              "the table already exists on the replica: if it matches the master's, skip this offset",
	gomysql.ER_BAD_TABLE_ERROR:                 "the table does not exist on the replica: if it was dropped already, skip this offset",
	gomysql.ER_BAD_FIELD_ERROR:                 "the replica's table lacks a column the master has: compare SHOW CREATE TABLE on both and apply the missing ALTER on the replica",
	gomysql.ER_DUP_FIELDNAME:                   "the column already exists on the replica: if the statement's effect is already there, skip this offset",
	gomysql.ER_DUP_KEYNAME:                     "the index already exists on the replica: if the statement's effect is already there, skip this offset",
	gomysql.ER_DUP_ENTRY:                       "a unique key on the replica rejects a row the master accepted: the replica has diverged (written outside rowcast?) or its keys differ from the master's; compare them, or re-seed the table",
	gomysql.ER_PARSE_ERROR:                     "the replica cannot parse a statement the master ran (different versions?): apply an equivalent statement by hand, then skip this offset",
	gomysql.ER_CANT_DROP_FIELD_OR_KEY:          "the column or key does not exist on the replica: if it was dropped already, skip this offset",
	gomysql.ER_WRONG_VALUE_COUNT_ON_ROW:        "the replica's table has other columns than the master's: align it with SHOW CREATE TABLE on the master",
	gomysql.ER_TABLEACCESS_DENIED_ERROR:        "grant the sink's user the privileges listed in README.md",
	gomysql.ER_NO_SUCH_TABLE:                   "the table does not exist on the replica: create it with the master's definition (SHOW CREATE TABLE on the master), or exclude it with source.exclude",
	gomysql.ER_NET_PACKET_TOO_LARGE:            "the batch exceeds max_allowed_packet: raise max_allowed_packet on the replica or lower sink.max_batch_rows",
	gomysql.ER_LOCK_TABLE_FULL:                 "the replica's InnoDB ran out of memory for row locks: raise innodb_buffer_pool_size on the replica (a source transaction is applied as one, so its locks must fit), or lower sink.max_txn_merge",
	gomysql.ER_SPECIFIC_ACCESS_DENIED_ERROR:    "grant the sink's user the privileges listed in README.md",
	gomysql.ER_WARN_DATA_OUT_OF_RANGE:          "a value is out of range for the replica's column: align the column type with the master's",
	gomysql.WARN_DATA_TRUNCATED:                "a value is truncated by the replica's column (ENUM/SET members or length differ?): align the column type with the master's",
	gomysql.ER_OPTION_PREVENTS_STATEMENT:       "the replica is read-only for the sink's user: GRANT READ_ONLY ADMIN (MariaDB 10.5.2+) or CONNECTION_ADMIN (MySQL 8) to it, and check super_read_only",
	gomysql.ER_TRUNCATED_WRONG_VALUE:           "a date, time or number is invalid for the replica's column: align the column type and sql_mode with the master's",
	gomysql.ER_TRUNCATED_WRONG_VALUE_FOR_FIELD: "a value is invalid for the replica's column (type or character set differs?): align the column with the master's",
	gomysql.ER_DATA_TOO_LONG:                   "a value is too long for the replica's column: ALTER it to the master's definition",
	gomysql.ER_ROW_IS_REFERENCED_2:             "a foreign key blocks the change: the sink runs with foreign_key_checks=0, check the session settings",
	gomysql.ER_NO_REFERENCED_ROW_2:             "a foreign key blocks the change: the sink runs with foreign_key_checks=0, check the session settings",
	gomysql.ER_TRG_ALREADY_EXISTS:              "a trigger of that name already exists on the replica: compare SHOW CREATE TRIGGER on the master and the replica; if the replica's is the master's, skip this offset, otherwise drop it on the replica and restart the worker",
	gomysql.ER_SP_ALREADY_EXISTS:               "a routine of that name already exists on the replica: compare SHOW CREATE PROCEDURE (or FUNCTION) on the master and the replica; if the replica's is the master's, skip this offset, otherwise drop it on the replica and restart the worker",
	gomysql.ER_EVENT_ALREADY_EXISTS:            "an event of that name already exists on the replica: compare SHOW CREATE EVENT on the master and the replica; if the replica's is the master's, skip this offset, otherwise drop it on the replica and restart the worker",
	gomysql.ER_TRG_DOES_NOT_EXIST:              "the trigger does not exist on the replica: if it was dropped already, skip this offset",
	gomysql.ER_SP_DOES_NOT_EXIST:               "the routine does not exist on the replica: if it was dropped already, skip this offset",
	gomysql.ER_EVENT_DOES_NOT_EXIST:            "the event does not exist on the replica: if it was dropped already, skip this offset",
}

// Classify sorts an error into Transient or Human. This is the only place
// that decides what is retried; anything unknown is Human (fail closed).
func Classify(err error) Class {
	if err == nil || errors.Is(err, ErrTxnRolledBack) {
		return Human
	}
	var te transientError
	if errors.As(err, &te) { // the target knows better than the server's code
		return Transient
	}
	if code := mysqlerr.Code(err); code != 0 {
		if transientCodes[code] {
			return Transient
		}
		return Human
	}
	var ne net.Error
	switch {
	case errors.Is(err, pipeline.ErrMalformed), errors.Is(err, pipeline.ErrUnsupported),
		errors.Is(err, ErrRowMissing), errors.Is(err, ErrGap), errors.Is(err, context.Canceled), errors.Is(err, ErrConflict),
		errors.Is(err, ErrUnknownDomain):
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
	code := mysqlerr.Code(err)
	var ae adviceError
	switch {
	case errors.As(err, &ae):
		return ae.fix
	case errors.Is(err, ErrTxnRolledBack):
		return "nothing of the transaction was committed: restart the worker to retry it from the checkpoint; if it recurs, keep the log for a bug report and revoke BINLOG REPLAY (SUPER before MariaDB 10.5.2) from the sink's user, so that rows go as SQL"
	case code != 0:
		return advice[code]
	case errors.Is(err, pipeline.ErrMalformed):
		return "find what wrote this message (another producer? a newer rowcast?); to go on without it, skip its offset explicitly (it is recorded)"
	case errors.Is(err, ErrConflict):
		return "two masters changed this row at about the same time (recorded in the bookkeeping schema's conflicts table; `rowcast conflicts` lists them): make the row what it should be on every master, then skip this offset (`rowcast sink --master M --replica R --skip-offset N`) or restart once the row here equals the before image (docs/MASTER-MASTER.md)"
	case errors.Is(err, ErrRowMissing):
		return "the replica has diverged from the master (written outside rowcast, or seeded at another position): re-seed the table or the replica"
	case errors.Is(err, ErrGap):
		return "messages are missing from the topic (deleted by retention? written by another producer?): re-seed the replica from the master"
	case errors.Is(err, pipeline.ErrUnsupported):
		return "rowcast cannot apply this faithfully: apply it by hand, then skip its offset"
	case errors.Is(err, ErrDDLRefused):
		return "check who ran the statement on the master; allow its kind with sink.allow_ddl if replicas must run it, or skip its offset"
	case errors.Is(err, ErrDuplicateDiffers):
		return "two writers published different transactions under one position (a second reader? a stray writer with the key?): stop them, compare the replica with the master (rowcast verify) and re-seed it if they differ"
	}
	return ""
}

// WithAdvice attaches the fix of err, for a Target that knows better than
// err's server error code what went wrong (a DDL run again after a crash,
// a table the sink refuses). Advice returns fix; Classify still looks at
// err.
func WithAdvice(err error, fix string) error {
	if err == nil {
		return nil
	}
	return adviceError{err: err, fix: fix}
}

type adviceError struct {
	err error
	fix string
}

func (e adviceError) Error() string { return e.err.Error() }
func (e adviceError) Unwrap() error { return e.err }

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
	case errors.Is(err, ErrConflict):
		return "conflict"
	case errors.Is(err, ErrUnknownDomain):
		return "unknown_domain"
	case errors.Is(err, ErrDDLRefused):
		return "ddl_refused"
	case errors.Is(err, ErrDuplicateDiffers):
		return "duplicate_differs"
	}
	return "target"
}
