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

	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
)

func TestClassify(t *testing.T) {
	my := func(n uint16) error { return fmt.Errorf("apply: %w", &mysql.MySQLError{Number: n, Message: "x"}) }
	cases := []struct {
		name   string
		err    error
		class  sink.Class
		advice string // substring of Advice, "" for none
	}{
		{"deadlock", my(1213), sink.Transient, ""},
		{"lock wait timeout", my(1205), sink.Transient, ""},
		{"server gone away", my(2006), sink.Transient, ""},
		{"lost connection", my(2013), sink.Transient, ""},
		{"connection killed (MariaDB)", my(1927), sink.Transient, ""},
		{"shutdown in progress", my(1053), sink.Transient, ""},
		{"bad conn", fmt.Errorf("x: %w", driver.ErrBadConn), sink.Transient, ""},
		{"invalid conn", mysql.ErrInvalidConn, sink.Transient, ""},
		{"conn done", sql.ErrConnDone, sink.Transient, ""},
		{"EOF", io.EOF, sink.Transient, ""},
		{"unexpected EOF", io.ErrUnexpectedEOF, sink.Transient, ""},
		{"reset", &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, sink.Transient, ""},
		{"refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), sink.Transient, ""},
		{"i/o timeout", &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, sink.Transient, ""},
		{"marked", sink.MarkTransient(errors.New("clickhouse: 503")), sink.Transient, ""},

		{"read only", my(1290), sink.Human, "READ_ONLY ADMIN"},
		{"unknown table", my(1146), sink.Human, "SHOW CREATE TABLE on the master"},
		{"unknown column", my(1054), sink.Human, "lacks a column"},
		{"column count", my(1136), sink.Human, "other columns"},
		{"duplicate key", my(1062), sink.Human, "diverged"},
		{"data too long", my(1406), sink.Human, "too long"},
		{"incorrect value", my(1366), sink.Human, "invalid for the replica's column"},
		{"incorrect datetime", my(1292), sink.Human, "date, time or number"},
		{"access denied", my(1142), sink.Human, "privileges"},
		{"unknown mysql error", my(9999), sink.Human, ""},
		{"malformed", fmt.Errorf("decode: %w", pipeline.ErrMalformed), sink.Human, "skip its offset"},
		{"unsupported", pipeline.ErrUnsupported, sink.Human, "apply it by hand"},
		{"row missing", sink.ErrRowMissing, sink.Human, "diverged"},
		{"gap", sink.ErrGap, sink.Human, "re-seed"},
		{"rolled back after a duplicate", fmt.Errorf("rows: %w; %w", my(1062), sink.ErrTxnRolledBack), sink.Human, "restart the worker"},
		{"rolled back after a transient code", fmt.Errorf("rows: %w; %w", my(1637), sink.ErrTxnRolledBack), sink.Human, "restart the worker"},
		{"lock table full", my(1206), sink.Human, "innodb_buffer_pool_size"},
		{"canceled", context.Canceled, sink.Human, ""},
		{"anything else", errors.New("boom"), sink.Human, ""},
	}
	for _, c := range cases {
		if got := sink.Classify(c.err); got != c.class {
			t.Errorf("%s: Classify = %s, want %s", c.name, got, c.class)
		}
		if a := sink.Advice(c.err); (c.advice == "") != (a == "") || !strings.Contains(a, c.advice) {
			t.Errorf("%s: Advice = %q, want one containing %q", c.name, a, c.advice)
		}
	}
}

func TestApplyErrorMessage(t *testing.T) {
	p := pipeline.Position{Epoch: 2, TxnSeq: 41, Row: 3}
	err := &sink.ApplyError{Offset: 1234, Pos: &p, Object: "shop.orders (op u)", Err: &mysql.MySQLError{Number: 1146, Message: "Table 'shop.orders' doesn't exist"}}
	want := "offset 1234 (e2/t41/r3) shop.orders (op u): Error 1146: Table 'shop.orders' doesn't exist; fix: the table does not exist on the replica"
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got  %s\nwant %s...", err, want)
	}
	transient := &sink.ApplyError{Offset: 1, Err: driver.ErrBadConn}
	if strings.Contains(transient.Error(), "fix:") || sink.Classify(transient) != sink.Transient {
		t.Fatalf("transient apply error: %s", transient)
	}
}
