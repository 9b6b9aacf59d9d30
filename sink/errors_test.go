package sink_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/internal/mysqlerr"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
)

func TestClassify(t *testing.T) {
	my := func(n uint16) error { return fmt.Errorf("apply: %w", &mysql.MySQLError{Number: n, Message: "x"}) }
	transient := []struct {
		name string
		err  error
	}{
		{"deadlock", my(gomysql.ER_LOCK_DEADLOCK)},
		{"lock wait timeout", my(gomysql.ER_LOCK_WAIT_TIMEOUT)},
		{"server gone away", my(mysqlerr.CrServerGone)},
		{"lost connection", my(mysqlerr.CrServerLost)},
		{"connection killed (MariaDB)", my(mysqlerr.ErConnectionKilled)},
		{"shutdown in progress", my(gomysql.ER_SERVER_SHUTDOWN)},
		{"bad conn", fmt.Errorf("x: %w", driver.ErrBadConn)},
		{"invalid conn", mysql.ErrInvalidConn},
		{"conn done", sql.ErrConnDone},
		{"EOF", io.EOF},
		{"unexpected EOF", io.ErrUnexpectedEOF},
		{"reset", &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}},
		{"refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED)},
		{"i/o timeout", &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}},
		{"marked", sink.MarkTransient(errors.New("clickhouse: 503"))},
	}
	for _, c := range transient {
		checkClass(t, c.name, c.err, sink.Transient, "")
	}
	if c := sink.Classify(sink.MarkTransient(my(gomysql.ER_BAD_FIELD_ERROR))); c != sink.Transient {
		t.Errorf("a server error marked transient: class %v", c) // the target knows better than the code
	}
	human := []struct {
		name   string
		err    error
		advice string // substring of Advice, "" for none
	}{
		{"read only", my(gomysql.ER_OPTION_PREVENTS_STATEMENT), "READ_ONLY ADMIN"},
		{"unknown table", my(gomysql.ER_NO_SUCH_TABLE), "SHOW CREATE TABLE on the master"},
		{"unknown column", my(gomysql.ER_BAD_FIELD_ERROR), "lacks a column"},
		{"column count", my(gomysql.ER_WRONG_VALUE_COUNT_ON_ROW), "other columns"},
		{"duplicate key", my(gomysql.ER_DUP_ENTRY), "diverged"},
		{"data too long", my(gomysql.ER_DATA_TOO_LONG), "too long"},
		{"incorrect value", my(gomysql.ER_TRUNCATED_WRONG_VALUE_FOR_FIELD), "invalid for the replica's column"},
		{"incorrect datetime", my(gomysql.ER_TRUNCATED_WRONG_VALUE), "date, time or number"},
		{"access denied", my(gomysql.ER_TABLEACCESS_DENIED_ERROR), "privileges"},
		{"unknown mysql error", my(9999), ""},
		{"malformed", fmt.Errorf("decode: %w", pipeline.ErrMalformed), "skip its offset"},
		{"unsupported", pipeline.ErrUnsupported, "apply it by hand"},
		{"row missing", sink.ErrRowMissing, "diverged"},
		{"gap", sink.ErrGap, "re-seed"},
		{"rolled back after a duplicate", fmt.Errorf("rows: %w; %w", my(gomysql.ER_DUP_ENTRY), sink.ErrTxnRolledBack), "restart the worker"},
		{"rolled back after a transient code", fmt.Errorf("rows: %w; %w", my(gomysql.ER_TOO_MANY_CONCURRENT_TRXS), sink.ErrTxnRolledBack), "restart the worker"},
		{"lock table full", my(gomysql.ER_LOCK_TABLE_FULL), "innodb_buffer_pool_size"},
		{"canceled", context.Canceled, ""},
		{"anything else", errors.New("boom"), ""},
		{"trigger exists", my(gomysql.ER_TRG_ALREADY_EXISTS), "SHOW CREATE TRIGGER"},
		{"routine exists", my(gomysql.ER_SP_ALREADY_EXISTS), "SHOW CREATE PROCEDURE"},
		{"event gone", my(gomysql.ER_EVENT_DOES_NOT_EXIST), "dropped already"},
		{"the target's fix", sink.WithAdvice(fmt.Errorf("x: %w", my(gomysql.ER_NO_SUCH_TABLE)), "rename it back"), "rename it back"},
		{"the target's fix of a plain error", sink.WithAdvice(errors.New("boom"), "stop the other worker"), "stop the other worker"},
	}
	for _, c := range human {
		checkClass(t, c.name, c.err, sink.Human, c.advice)
	}
}

// checkClass checks Classify of err, and that its Advice contains advice
// (is "" when advice is "").
func checkClass(t *testing.T, name string, err error, class sink.Class, advice string) {
	t.Helper()
	if got := sink.Classify(err); got != class {
		t.Errorf("%s: Classify = %s, want %s", name, got, class)
	}
	if a := sink.Advice(err); (advice == "") != (a == "") || !strings.Contains(a, advice) {
		t.Errorf("%s: Advice = %q, want one containing %q", name, a, advice)
	}
}

func TestApplyErrorMessage(t *testing.T) {
	p := pipeline.Position{Epoch: 2, TxnSeq: 41, Row: 3}
	err := &sink.ApplyError{Offset: 1234, Pos: &p, Object: "shop.orders (op u)", Err: &mysql.MySQLError{Number: gomysql.ER_NO_SUCH_TABLE, Message: "Table 'shop.orders' doesn't exist"}}
	want := "offset 1234 (e2/t41/r3) shop.orders (op u): Error 1146: Table 'shop.orders' doesn't exist; fix: the table does not exist on the replica"
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got  %s\nwant %s...", err, want)
	}
	withFix := &sink.ApplyError{Offset: 7, Err: sink.WithAdvice(&mysql.MySQLError{Number: gomysql.ER_NO_SUCH_TABLE, Message: "gone"}, "rename it back")}
	if got := withFix.Error(); !strings.HasSuffix(got, "Error 1146: gone; fix: rename it back") || !mysqlerr.Is(withFix, gomysql.ER_NO_SUCH_TABLE) {
		t.Fatalf("the target's fix: %s", got)
	}
	transient := &sink.ApplyError{Offset: 1, Err: driver.ErrBadConn}
	if strings.Contains(transient.Error(), "fix:") || sink.Classify(transient) != sink.Transient {
		t.Fatalf("transient apply error: %s", transient)
	}
}
