package mysql

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"unsafe"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/rowcast/rowcast/internal/mysqlerr"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
)

// Binary apply: on MariaDB replicas, rows of tables with a primary key go to
// the server as row events in BINLOG statements, built from the replica's own
// column definitions, with the SQL path's semantics; whatever they cannot
// carry as it is goes as SQL. docs/DESIGN.md, "Binary apply", says when and why.

// binMaxEvent is where a batch's row event is cut into several statements.
var binMaxEvent int64 = 8 << 20

// binChunkRows is the most rows of one BINLOG statement: a batch goes as
// several, so that the next is encoded while the server runs one.
const binChunkRows = 500

// binLatin1Rows is the batch size from which row events are sent with
// character_set_client latin1 (see applyBinary).
var binLatin1Rows = 64

// binInit checks at Open whether this session can apply row events: the
// format description is the first BINLOG statement of every session.
func (t *Target) binInit(ctx context.Context, version string) error {
	t.binOK = false
	t.binTables = nil
	if !t.mariadb || t.cfg.NoBinlog {
		return nil
	}
	why, err := t.binErrorSettings(ctx)
	t.logBinRefusal(why)
	if err != nil || why != "" {
		return err
	}
	var sid uint32
	var maxPacket int64
	if err := t.ex.QueryRowContext(ctx, "SELECT @@server_id, @@max_allowed_packet").Scan(&sid, &maxPacket); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	t.serverID = sid
	t.binLimit = int(min(maxPacket/2, binMaxEvent))
	fde := formatDescription(sid, version)
	stmt := "BINLOG '" + base64.StdEncoding.EncodeToString(fde) + "'"
	if _, err := t.ex.ExecContext(ctx, stmt); err != nil {
		if mysqlerr.Code(err) != 0 {
			if !t.binWarned {
				t.log.Info().Err(err).Msg("rows are applied as SQL: the sink's user cannot run BINLOG statements; " +
					"GRANT BINLOG REPLAY ON *.* to it for the binary apply (less replica CPU per row; see docs/BENCHMARKS.md)")
				t.binWarned = true
			}
			return nil
		}
		return fmt.Errorf("connect: %w", err)
	}
	t.binOK = true
	return nil
}

// binTableFor returns how tbl's rows are written as row events on this
// replica, or nil when they cannot be (they then go as SQL).
func (t *Target) binTableFor(ctx context.Context, tbl *pipeline.Table) (*binTable, error) {
	if bt, ok := t.binTables[tbl]; ok {
		if bt != nil && bt.refused {
			return nil, nil
		}
		return bt, nil
	}
	bt, why, err := t.readBinTable(ctx, tbl)
	if err != nil {
		return nil, err
	}
	if bt == nil {
		t.log.Debug().Str("table", qualified(tbl)).Str("reason", why).Msg("rows of this table are applied as SQL")
	}
	if t.binTables == nil || len(t.binTables) >= 4096 {
		t.binTables = map[*pipeline.Table]*binTable{} // bounded: shapes of dropped tables go
	}
	t.binTables[tbl] = bt
	return bt, nil
}

// readBinTable describes tbl's row-event encoding from the replica's
// definition, or says why its rows go as SQL.
func (t *Target) readBinTable(ctx context.Context, tbl *pipeline.Table) (*binTable, string, error) {
	if len(tbl.PrimaryKey) == 0 {
		return nil, "no primary key", nil
	}
	info, err := t.tableInfo(ctx, tbl)
	if err != nil {
		return nil, "", err
	}
	if why := binRefusal(info); why != "" {
		return nil, why, nil
	}
	defs, err := t.columnDefs(ctx, tbl)
	if err != nil {
		return nil, "", err
	}
	bt, why := newBinTable(tbl, defs)
	return bt, why, nil
}

// applyBinary applies rows (one table, one op class, as ApplyRows gets
// them) as row events. It returns how many leading rows it applied; the
// caller applies the rest as SQL. err is an error the SQL path would not
// get past either (a lost connection, a deadlock).
//
// A large batch is sent with character_set_client latin1, set back to
// utf8mb4 before anything else is sent: base64 is ASCII, and the server
// parses BINLOG statements in latin1 for less CPU than in utf8mb4
// (docs/BENCHMARKS.md, "Binary apply").
func (t *Target) applyBinary(ctx context.Context, bt *binTable, rows []*pipeline.Event) (done int, err error) {
	if len(rows) >= binLatin1Rows {
		if _, err := t.ex.ExecContext(ctx, "SET character_set_client=latin1"); err != nil {
			return 0, err
		}
		defer func() {
			if _, rerr := t.ex.ExecContext(ctx, "SET character_set_client=utf8mb4"); rerr != nil && err == nil {
				err = rerr
			}
		}()
	}
	for done < len(rows) {
		typ := rowsEventType(rows[done].Op)
		end := done + sameTypeRun(rows[done:], typ)
		n, err := t.sendRows(ctx, bt, typ, rows[done:end])
		done += n
		if err != nil || done < end {
			return done, err
		}
	}
	return done, nil
}

// sameTypeRun is the number of leading rows that go in rows events of typ.
func sameTypeRun(rows []*pipeline.Event, typ byte) int {
	n := 0
	for n < len(rows) && rowsEventType(rows[n].Op) == typ {
		n++
	}
	return n
}

func rowsEventType(op pipeline.Op) byte {
	switch op {
	case pipeline.OpDelete:
		return evDeleteRowsV1
	case pipeline.OpUpdate:
		return evUpdateRowsV1
	}
	return evWriteRowsV1
}

// binSend is one BINLOG statement: its buffers, and the rows it holds.
type binSend struct {
	ev, stmt []byte
	rows     int
}

// sendRows sends rows of one event type as BINLOG statements of at most
// binChunkRows rows (or binLimit bytes) and returns how many leading rows
// were applied: it stops before a row with a value that needs SQL, or at a
// statement the server refused (none of whose rows are then applied).
// While the server runs one statement, the next is encoded (two buffers,
// one statement in flight, in order).
func (t *Target) sendRows(ctx context.Context, bt *binTable, typ byte, rows []*pipeline.Event) (int, error) {
	done, next, cur := 0, 0, 0 // next: the first row not yet encoded
	var f binFlight
	for {
		s := &t.binSends[cur]
		n, stop := t.encodeRows(s, bt, typ, rows[next:])
		next += n
		landed, ok, err := t.land(ctx, bt, &f)
		done += landed
		if !ok || err != nil || n == 0 {
			return done, err
		}
		f = t.launch(ctx, s, n)
		cur ^= 1
		if stop || next == len(rows) {
			landed, _, err := t.land(ctx, bt, &f)
			return done + landed, err
		}
	}
}

// binFlight is the BINLOG statement the server runs while the next is
// encoded: where its result comes (nil: none in flight), and its rows.
type binFlight struct {
	result chan error
	rows   int
}

// launch sends the statement of s, which holds n rows. The driver copies
// the text into its packet buffer and keeps nothing: the buffer is reused
// two statements later, after this one was waited for.
func (t *Target) launch(ctx context.Context, s *binSend, n int) binFlight {
	text := unsafe.String(&s.stmt[0], len(s.stmt))
	if t.wrap != nil {
		text = string(s.stmt) // a statement recorder (tests) keeps it
	}
	f := binFlight{result: make(chan error, 1), rows: n}
	go func(ch chan error) {
		_, err := t.ex.ExecContext(ctx, text)
		ch <- err
	}(f.result)
	return f
}

// land waits for the statement in flight and returns the rows it applied;
// ok is false when it was not applied (err then says whether the caller may
// go on as SQL).
func (t *Target) land(ctx context.Context, bt *binTable, f *binFlight) (rows int, ok bool, err error) {
	if f.result == nil {
		return 0, true, nil
	}
	err = <-f.result
	rows = f.rows
	*f = binFlight{}
	if ok, err = t.binResult(ctx, bt, err); !ok {
		return 0, false, err
	}
	return rows, true, err
}

// encodeRows encodes the next statement of rows into s: a TABLE_MAP and one
// rows event of up to binChunkRows rows, as a BINLOG statement. It returns
// how many rows it holds, and stop when the row after them needs SQL.
func (t *Target) encodeRows(s *binSend, bt *binTable, typ byte, rows []*pipeline.Event) (n int, stop bool) {
	t.binTableID = (t.binTableID + 1) & (1<<48 - 1)
	ev := bt.appendTableMap(s.ev[:0], t.binTableID, t.serverID)
	ev, start := bt.startRows(ev, typ, t.binTableID, t.serverID, rowsStmtEnd|rowsNoFKChecks)
	for _, r := range rows {
		if n >= binChunkRows {
			break
		}
		mark := len(ev)
		var ok bool
		switch typ { // inline: a call per row costs small rows measurably (BenchmarkBinaryEncode/delete)
		case evWriteRowsV1:
			ev, ok = bt.appendImage(ev, r.After)
		case evDeleteRowsV1:
			ev, ok = bt.appendKeyImage(ev, r.Before)
		default:
			if ev, ok = bt.appendKeyImage(ev, r.Before); ok {
				ev, ok = bt.appendImage(ev, r.After)
			}
		}
		if !ok || len(ev)-start > t.binLimit && n == 0 {
			// a value that needs SQL, or a row alone over the size limit
			// (the SQL path reports what the server says)
			ev, stop = ev[:mark], true
			break
		}
		if len(ev)-start > t.binLimit {
			ev = ev[:mark] // over the limit with this row: it starts the next statement
			break
		}
		n++
	}
	s.ev = finishRows(ev, start)
	s.rows = n
	if n == 0 {
		return 0, stop
	}
	size := base64.StdEncoding.EncodedLen(len(s.ev))
	stmt := slices.Grow(s.stmt[:0], size+10)
	stmt = append(stmt, "BINLOG '"...)
	stmt = stmt[:len(stmt)+size]
	base64.StdEncoding.Encode(stmt[8:], s.ev)
	s.stmt = append(stmt, '\'')
	return n, stop
}

// binResult classifies the outcome of a BINLOG statement. ok is false when
// the server refused the rows in a way the SQL path handles (a duplicate or
// missing row, a type it would convert): the statement was rolled back
// alone, and the caller goes on as SQL. err is returned as is when the SQL
// path would not get past it either (sink.Classify decides whether the
// worker retries it); when the server unexpectedly rolled back the whole
// transaction, it wraps sink.ErrTxnRolledBack, which stops the worker.
func (t *Target) binResult(ctx context.Context, bt *binTable, err error) (bool, error) {
	if err == nil {
		return true, nil
	}
	if mysqlerr.Code(err) == 0 || mysqlerr.Is(err, binPassOn...) {
		return false, err
	}
	// Going on as SQL is right only if the server rolled back this statement
	// alone: the transaction's earlier rows must still be in it.
	var open int
	if qerr := t.ex.QueryRowContext(ctx, "SELECT @@in_transaction").Scan(&open); qerr != nil {
		// qerr decides: a lost connection took the transaction with it and
		// is retried from the checkpoint.
		return false, fmt.Errorf("row events of %s.%s: %v; then, checking whether the transaction is still open: %w", bt.db, bt.name, err, qerr)
	}
	if open != 1 {
		return false, fmt.Errorf("row events of %s.%s: %w; %w", bt.db, bt.name, err, sink.ErrTxnRolledBack)
	}
	if mysqlerr.Is(err, binConflicts...) {
		return false, nil
	}
	// Anything else (a type the server would convert, a corrupt event):
	// this table goes as SQL from now on.
	t.log.Warn().Err(err).Str("table", bt.db+"."+bt.name).Msg("row events refused; rows of this table are applied as SQL from now on")
	bt.refused = true
	return false, nil
}

// binPassOn are the errors of a BINLOG statement that go to the worker as
// they are: the SQL path would not get past them either.
var binPassOn = []uint16{
	gomysql.ER_LOCK_DEADLOCK,
	gomysql.ER_LOCK_WAIT_TIMEOUT,
	gomysql.ER_LOCK_TABLE_FULL,
	gomysql.ER_QUERY_INTERRUPTED,
	mysqlerr.ErConnectionKilled,
	gomysql.ER_NET_PACKET_TOO_LARGE, // the server closed the connection
}

// binConflicts are the rows the replica does not hold as the events expect:
// the SQL path applies them with its own semantics.
var binConflicts = []uint16{
	gomysql.ER_DUP_ENTRY,
	gomysql.ER_KEY_NOT_FOUND,
	gomysql.ER_CHECKREAD, // the record changed since it was read
}
