package clone

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/internal/mysqlerr"
)

// batch is rows of one table as LOAD DATA text (encode.go).
type batch struct {
	t        *tableCopy
	buf      []byte
	rows     int
	warnings int // expected: invalid ENUM values ''
}

// loaders are the connections that load batches into the target, each with
// its own LOAD DATA LOCAL reader. Buffers circulate: the reader takes one
// from free, the loader puts it back, so memory stays within the free
// list's capacity.
type loaders struct {
	batches chan *batch
	free    chan []byte
	wg      sync.WaitGroup
	each    []*loader
}

// loader is one loading connection.
type loader struct {
	c    *cloner
	conn *sql.Conn
	name string // the driver's reader name
	cur  []byte // the batch being sent, during ExecContext
}

var loaderSeq atomic.Int64

// loadRefused are the errors of a server that refuses LOAD DATA LOCAL.
var loadRefused = []uint16{mysqlerr.ErLoadInfileCapability, gomysql.ER_NOT_ALLOWED_COMMAND, mysqlerr.ErClientLocalFilesDisabled}

// startLoaders connects opts.Parallel loaders. A loader that fails cancels
// ctx with its error, then goes on taking batches (without loading them),
// so that the reader never waits for a batch nobody takes.
func (c *cloner) startLoaders(ctx context.Context, cancel context.CancelCauseFunc) (*loaders, error) {
	n := c.opts.Parallel
	ld := &loaders{batches: make(chan *batch, n), free: make(chan []byte, 2*n+1)}
	for range cap(ld.free) {
		ld.free <- nil
	}
	for range n {
		conn, err := c.dst.Conn(ctx)
		if err != nil {
			ld.stop()
			return nil, fmt.Errorf("connect to %s: %w", c.opts.To, err)
		}
		l := &loader{c: c, conn: conn, name: "rowcast-clone-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(loaderSeq.Add(1), 10)}
		mysql.RegisterReaderHandler(l.name, func() io.Reader { return bytes.NewReader(l.cur) })
		ld.each = append(ld.each, l)
		ld.wg.Go(func() { l.run(ctx, cancel, ld) })
	}
	return ld, nil
}

// run loads batches until the reader closes the channel.
func (l *loader) run(ctx context.Context, cancel context.CancelCauseFunc, ld *loaders) {
	for b := range ld.batches {
		if ctx.Err() == nil {
			if err := l.load(ctx, b); err != nil {
				cancel(err)
			}
		}
		b.t.pending.Done()
		ld.free <- b.buf[:0]
	}
}

// buffer takes a free buffer, waiting while every one is in use.
func (ld *loaders) buffer(ctx context.Context) ([]byte, error) {
	select {
	case b := <-ld.free:
		return b, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// send queues a batch for the loaders.
func (ld *loaders) send(ctx context.Context, b *batch) error {
	b.t.pending.Add(1)
	select {
	case ld.batches <- b:
		return nil
	case <-ctx.Done():
		b.t.pending.Done()
		return context.Cause(ctx)
	}
}

// stop waits for the loaders to finish the queued batches and closes them.
func (ld *loaders) stop() {
	close(ld.batches)
	ld.wg.Wait()
	for _, l := range ld.each {
		mysql.DeregisterReaderHandler(l.name)
		l.conn.Close()
	}
}

// loadSQL is the part of a table's LOAD DATA statement after the file name.
// BIT, MySQL's JSON and types without a character set go through a
// variable (kind says why).
func loadSQL(d *tableDef) string {
	var b strings.Builder
	b.WriteString(" INTO TABLE " + d.name.quoted() +
		" CHARACTER SET binary FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (")
	var set []string
	for i, c := range d.cols {
		if i > 0 {
			b.WriteByte(',')
		}
		v := "@v" + strconv.Itoa(i)
		switch c.kind {
		case kindBit:
			b.WriteString(v)
			set = append(set, qi(c.name)+"=CAST("+v+" AS UNSIGNED)")
		case kindJSON, kindTyped:
			b.WriteString(v)
			set = append(set, qi(c.name)+"=CONVERT("+v+" USING utf8mb4)")
		default:
			b.WriteString(qi(c.name))
		}
	}
	b.WriteByte(')')
	if len(set) > 0 {
		b.WriteString(" SET " + strings.Join(set, ","))
	}
	return b.String()
}

// load sends one batch and checks that the target took every row as sent.
// LOAD DATA LOCAL turns errors into warnings (the server cannot stop the
// client's file), so the rows and the warnings are counted.
func (l *loader) load(ctx context.Context, b *batch) error {
	res, err := l.exec(ctx, b)
	if mysqlerr.Is(err, loadRefused...) {
		return fmt.Errorf("%s refuses LOAD DATA LOCAL INFILE: SET GLOBAL local_infile=ON there for the clone: %w", l.c.opts.To, err)
	}
	if err != nil {
		return fmt.Errorf("%s: load %d rows into %s: %w", l.c.opts.To, b.rows, b.t.def.name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != int64(b.rows) {
		return fmt.Errorf("%w: %s: %d of %d rows were inserted into %s: the others met a duplicate key; is something else writing to %s?",
			ErrLoad, l.c.opts.To, n, b.rows, b.t.def.name, l.c.opts.To)
	}
	if err := l.checkWarnings(ctx, b); err != nil {
		return err
	}
	b.t.rows.Add(n)
	b.t.run.rows.Add(n)
	return nil
}

// exec runs the batch's LOAD DATA, again when InnoDB chose it as the victim
// of a deadlock: loaders of one table in parallel can deadlock on its index
// locks, and the victim's statement (autocommitted) was rolled back whole.
func (l *loader) exec(ctx context.Context, b *batch) (sql.Result, error) {
	for attempt := 1; ; attempt++ {
		l.cur = b.buf
		res, err := l.conn.ExecContext(ctx, "LOAD DATA LOCAL INFILE 'Reader::"+l.name+"'"+b.t.load)
		l.cur = nil
		if !mysqlerr.Is(err, gomysql.ER_LOCK_DEADLOCK) || attempt == deadlockAttempts {
			return res, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt) * 20 * time.Millisecond):
		}
	}
}

// deadlockAttempts bounds the tries of a batch that keeps losing deadlocks.
const deadlockAttempts = 5

// checkWarnings accepts only the warnings the batch expects: one "data
// truncated" (1265) for each invalid ENUM value ”.
func (l *loader) checkWarnings(ctx context.Context, b *batch) error {
	var n int
	if err := l.conn.QueryRowContext(ctx, "SELECT @@warning_count").Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	first, err := l.unexpectedWarning(ctx)
	if err != nil {
		return err
	}
	if n > b.warnings || first != "" {
		return fmt.Errorf("%w: %s: loading %d rows into %s gave %d warning(s), %d expected (invalid ENUM values ''): %s",
			ErrLoad, l.c.opts.To, b.rows, b.t.def.name, n, b.warnings, first)
	}
	return nil
}

// unexpectedWarning returns the first warning that is not 1265, as text.
func (l *loader) unexpectedWarning(ctx context.Context) (string, error) {
	rows, err := l.conn.QueryContext(ctx, "SHOW WARNINGS")
	if err != nil {
		return "", err
	}
	defer rows.Close()
	for rows.Next() {
		var level, msg string
		var code uint16
		if err := rows.Scan(&level, &code, &msg); err != nil {
			return "", err
		}
		if code != gomysql.WARN_DATA_TRUNCATED {
			return fmt.Sprintf("%s %d: %s", level, code, msg), nil
		}
	}
	return "", rows.Err()
}
