package mysql

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unsafe"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
)

// Binary apply: on MariaDB replicas, rows of tables with a primary key go to
// the server as row events inside a BINLOG statement, the way mariadb-binlog
// replays a binlog, instead of SQL text. The server runs them through its
// replication code (what a native replica's SQL thread does): no parsing of
// values, inserts are plain writes and updates a read by primary key and an
// update, instead of an upsert's failed insert + read + update. On the bench
// table this costs the replica ~40-50% less CPU per row (docs/BENCHMARKS.md).
//
// The row events are built from the replica's own column definitions
// (information_schema), so the server never converts a type; a table is
// sent this way only when every column of the event matches a replica
// column of the same name, position and kind, with types rowcast can encode
// (integers, FLOAT, DOUBLE, DECIMAL, utf8mb3/utf8mb4 and binary strings,
// TEXT/BLOB, DATE, DATETIME, TIMESTAMP, TIME, YEAR, BIT, ENUM, SET), and
// the table has no trigger (row events do not fire triggers; SQL does) and
// no generated column. A value that does not fit its column as it is (a
// string too long, a fraction with more digits than the column keeps) sends
// its batch as SQL, which rounds or refuses it exactly as before.
//
// The semantics are the SQL path's:
//   - inserts and snapshot rows are written; a row already there (error 1062)
//     sends the batch again as upserts;
//   - updates find the row by primary key and write the full after image,
//     whatever else the replica's row holds; a missing row (error 1032) sends
//     the batch again as upserts, which re-create it;
//   - deletes find the row by primary key; a missing row sends the batch to
//     the SQL path, which stops the worker or, for a replay, skips it;
//   - so the before images of updates and deletes carry only the primary
//     key's columns, when the replica's primary key is the events' (the
//     replica's own binlog still gets full images: it logs the row it found);
//   - a replayed range (TxnSeq at or below the checkpoint's) goes as SQL.
//
// Only InnoDB base tables get row events: a failed BINLOG statement is then
// rolled back alone (InnoDB's statement rollback), and its rows go again as
// SQL, once, if the transaction is still open; errors that end the
// transaction or the connection go to the worker as they are (binResult).
// A system-versioned table goes as SQL (row events would write no
// history), and so do MyISAM, Aria and MEMORY tables. It needs the BINLOG
// REPLAY privilege (MariaDB 10.5.2+; SUPER before); without it, or on
// MySQL, every row goes as SQL.

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
		var me *gomysql.MySQLError
		if errors.As(err, &me) {
			if !t.binWarned {
				t.log.Info().Err(err).Msg("rows are applied as SQL: the sink's user cannot run BINLOG statements; " +
					"GRANT BINLOG REPLAY ON *.* to it for the binary apply (~40% less replica CPU per row)")
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

func (t *Target) readBinTable(ctx context.Context, tbl *pipeline.Table) (*binTable, string, error) {
	if len(tbl.PrimaryKey) == 0 {
		return nil, "no primary key", nil
	}
	info, err := t.tableInfo(ctx, tbl)
	if err != nil {
		return nil, "", err
	}
	if info.triggers {
		return nil, "has triggers", nil
	}
	// A failed row-event statement must be rolled back alone, so that its
	// rows can go again as SQL: only InnoDB does that. A system-versioned
	// table has row_start/row_end columns information_schema.COLUMNS does
	// not list; row events that lack them write no history.
	if info.tableType == "" {
		return nil, "not found", nil // the SQL path reports it
	}
	if info.tableType != "BASE TABLE" {
		return nil, strings.ToLower(info.tableType), nil
	}
	if !strings.EqualFold(info.engine, "InnoDB") {
		return nil, "engine " + info.engine + " (row events go only to InnoDB tables)", nil
	}
	rows, err := t.conn.QueryContext(ctx, "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, "+
		"COALESCE(CHARACTER_MAXIMUM_LENGTH,0), COALESCE(CHARACTER_OCTET_LENGTH,0), COALESCE(NUMERIC_PRECISION,0), "+
		"COALESCE(NUMERIC_SCALE,0), COALESCE(DATETIME_PRECISION,0), COALESCE(CHARACTER_SET_NAME,''), EXTRA, COLUMN_KEY "+
		"FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=? AND TABLE_NAME=? ORDER BY ORDINAL_POSITION",
		tbl.Database, tbl.Name)
	if err != nil {
		return nil, "", fmt.Errorf("read the definition of %s on the replica: %w", qualified(tbl), err)
	}
	defer rows.Close()
	bt := &binTable{db: tbl.Database, name: tbl.Name}
	why := ""
	for rows.Next() {
		var name, dataType, colType, nullable, charset, extra, colKey string
		var maxChars, octets, prec, scale, fsp int64
		if err := rows.Scan(&name, &dataType, &colType, &nullable, &maxChars, &octets, &prec, &scale, &fsp, &charset, &extra, &colKey); err != nil {
			return nil, "", fmt.Errorf("read the definition of %s on the replica: %w", qualified(tbl), err)
		}
		i := len(bt.cols)
		if why != "" {
			continue
		}
		if i >= len(tbl.Columns) || !strings.EqualFold(tbl.Columns[i].Name, name) {
			why = "columns differ from the events'"
			continue
		}
		if up := strings.ToUpper(extra); strings.Contains(up, "GENERATED") || strings.Contains(up, "ROW START") || strings.Contains(up, "ROW END") {
			why = "generated or system-versioning column " + name
			continue
		}
		c, ok := binColumn(tbl.Columns[i].Kind, name, dataType, colType, charset, maxChars, octets, prec, scale, fsp)
		if !ok {
			why = fmt.Sprintf("column %s: %s holding %s values", name, colType, tbl.Columns[i].Kind)
			continue
		}
		c.nullable = nullable == "YES"
		if colKey == "PRI" {
			bt.key = append(bt.key, i)
		}
		bt.cols = append(bt.cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("read the definition of %s on the replica: %w", qualified(tbl), err)
	}
	if why == "" && len(bt.cols) != len(tbl.Columns) {
		why = "columns differ from the events'"
	}
	if why != "" {
		return nil, why, nil
	}
	// The before images of updates and deletes carry the primary key alone
	// when the replica's is the events': the server finds the row by its
	// primary key and reads no other column of the before image (a full one
	// costs bytes, base64 and parsing, for nothing). Otherwise they are full.
	if !sameSet(bt.key, tbl.PrimaryKey) {
		bt.key = nil
	}
	bt.buildMap()
	return bt, "", nil
}

// binColumn maps a replica column to its row-event encoding; ok is false
// when rowcast does not write it as a row event.
func binColumn(kind pipeline.ValueKind, name, dataType, colType, charset string, maxChars, octets, prec, scale, fsp int64) (binCol, bool) {
	c := binCol{name: name, kind: kind}
	text := charset == "utf8mb4" || charset == "utf8mb3" || charset == "utf8"
	c.mb3 = charset != "utf8mb4"
	isInt := kind == pipeline.VInt || kind == pipeline.VUint
	lower := strings.ToLower(colType)
	intType := func(typ byte, width int) (binCol, bool) {
		c.typ, c.width, c.unsigned = typ, width, strings.Contains(lower, "unsigned")
		return c, isInt
	}
	strLen := func() int {
		if octets < 256 {
			return 1
		}
		return 2
	}
	switch dataType {
	case "tinyint":
		return intType(tTiny, 1)
	case "smallint":
		return intType(tShort, 2)
	case "mediumint":
		return intType(tInt24, 3)
	case "int":
		return intType(tLong, 4)
	case "bigint":
		return intType(tLongLong, 8)
	case "float":
		c.typ, c.meta = tFloat, []byte{4}
		return c, kind == pipeline.VFloat && lower == "float"
	case "double":
		c.typ, c.meta = tDouble, []byte{8}
		return c, kind == pipeline.VDouble && lower == "double"
	case "decimal":
		c.typ, c.meta, c.prec, c.scale = tDecimalNew, []byte{byte(prec), byte(scale)}, int(prec), int(scale)
		return c, kind == pipeline.VDecimal && prec > 0 && prec <= 65 && scale <= 38
	case "char", "binary":
		c.typ, c.width, c.maxBytes, c.maxChars = tString, strLen(), int(octets), int(maxChars)
		c.meta = []byte{byte(tString ^ ((octets & 0x300) >> 4)), byte(octets)}
		if dataType == "binary" {
			return c, kind == pipeline.VBytes && octets <= 255
		}
		return c, kind == pipeline.VString && text && octets <= 1020
	case "varchar", "varbinary":
		c.typ, c.width, c.maxBytes, c.maxChars = tVarchar, strLen(), int(octets), int(maxChars)
		c.meta = []byte{byte(octets), byte(octets >> 8)}
		if dataType == "varbinary" {
			return c, kind == pipeline.VBytes && octets < 65536
		}
		return c, kind == pipeline.VString && text && octets < 65536
	case "tinytext", "text", "mediumtext", "longtext", "tinyblob", "blob", "mediumblob", "longblob":
		w := map[string]int{"tiny": 1, "": 2, "medium": 3, "long": 4}[strings.TrimSuffix(strings.TrimSuffix(dataType, "text"), "blob")]
		c.typ, c.meta, c.width = tBlob, []byte{byte(w)}, w
		c.maxBytes = int(min(int64(1)<<(8*w)-1, 1<<30))
		if strings.HasSuffix(dataType, "blob") {
			return c, kind == pipeline.VBytes
		}
		return c, (kind == pipeline.VString || kind == pipeline.VJSON) && text
	case "date":
		c.typ = tDate
		return c, kind == pipeline.VDate
	case "datetime":
		c.typ, c.meta, c.scale = tDatetime2, []byte{byte(fsp)}, int(fsp)
		return c, kind == pipeline.VDateTime
	case "timestamp":
		c.typ, c.meta, c.scale = tTimestamp2, []byte{byte(fsp)}, int(fsp)
		return c, kind == pipeline.VTimestamp
	case "time":
		c.typ, c.meta, c.scale = tTime2, []byte{byte(fsp)}, int(fsp)
		return c, kind == pipeline.VTime
	case "year":
		c.typ = tYear
		return c, kind == pipeline.VYear
	case "bit":
		c.typ, c.prec, c.width = tBit, int(prec), int(prec+7)/8
		c.meta = []byte{byte(prec % 8), byte(prec / 8)}
		return c, kind == pipeline.VBit && prec >= 1 && prec <= 64
	case "enum", "set":
		members, ok := parseMembers(colType)
		if !ok {
			return c, false
		}
		c.members, c.typ = members, tString
		if dataType == "enum" {
			c.width = 1
			if len(members) > 255 {
				c.width = 2
			}
			c.meta = []byte{tEnum, byte(c.width)}
			return c, kind == pipeline.VEnum && len(members) <= 65535
		}
		c.width = (len(members) + 7) / 8
		if c.width > 4 {
			c.width = 8
		}
		c.meta = []byte{tSet, byte(c.width)}
		return c, kind == pipeline.VSet && len(members) <= 64
	}
	return c, false
}

// parseMembers reads the members of "enum('a','b')" or "set(...)" as
// information_schema spells them (” for a quote). ok is false on anything
// else (a backslash, say), and the table then goes as SQL.
func parseMembers(colType string) ([]string, bool) {
	open := strings.IndexByte(colType, '(')
	if open < 0 || !strings.HasSuffix(colType, ")") || strings.Contains(colType, `\`) {
		return nil, false
	}
	s := colType[open+1 : len(colType)-1]
	var out []string
	for len(s) > 0 {
		if s[0] != '\'' {
			return nil, false
		}
		var m strings.Builder
		i := 1
		for {
			if i >= len(s) {
				return nil, false
			}
			if s[i] == '\'' {
				if i+1 < len(s) && s[i+1] == '\'' {
					m.WriteByte('\'')
					i += 2
					continue
				}
				break
			}
			m.WriteByte(s[i])
			i++
		}
		out = append(out, m.String())
		s = s[i+1:]
		if len(s) > 0 {
			if s[0] != ',' {
				return nil, false
			}
			s = s[1:]
		}
	}
	return out, len(out) > 0
}

// applyBinary applies rows (one table, one op class, as ApplyRows gets
// them) as row events. It returns how many leading rows it applied; the
// caller applies the rest as SQL. err is an error the SQL path would not
// get past either (a lost connection, a deadlock).
//
// A large batch is sent with character_set_client latin1, set back to
// utf8mb4 before anything else is sent: base64 is ASCII, and the server
// spent ~15% less CPU per row on BINLOG statements in latin1 than in
// utf8mb4 (docs/BENCHMARKS.md, "Binary apply").
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
		end := done + 1
		for end < len(rows) && rowsEventType(rows[end].Op) == typ {
			end++
		}
		n, err := t.sendRows(ctx, bt, typ, rows[done:end])
		done += n
		if err != nil || done < end {
			return done, err
		}
	}
	return done, nil
}

// sameSet reports whether a and b hold the same column indexes.
func sameSet(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for _, i := range a {
		if !slices.Contains(b, i) {
			return false
		}
	}
	return true
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
	done := 0
	var inflight chan error
	inflightRows := 0
	// wait collects the statement in flight; ok is false when it was not
	// applied (err then says whether the caller may go on as SQL).
	wait := func() (bool, error) {
		if inflight == nil {
			return true, nil
		}
		err := <-inflight
		inflight = nil
		ok, err := t.binResult(ctx, bt, err)
		if ok {
			done += inflightRows
		}
		inflightRows = 0
		return ok, err
	}
	cur := 0
	next := 0 // first row not yet encoded
	for {
		s := &t.binSends[cur]
		n, stop := t.encodeRows(s, bt, typ, rows[next:])
		next += n
		if ok, err := wait(); !ok || err != nil {
			return done, err
		}
		if n == 0 {
			return done, nil
		}
		text := unsafe.String(&s.stmt[0], len(s.stmt))
		if t.wrap != nil {
			text = string(s.stmt) // a statement recorder (tests) keeps it
		}
		inflight, inflightRows = make(chan error, 1), n
		// The driver copies the text into its packet buffer and keeps
		// nothing: the buffer is reused two statements later, after this
		// one was waited for.
		go func(ch chan error) {
			_, err := t.ex.ExecContext(ctx, text)
			ch <- err
		}(inflight)
		cur ^= 1
		if stop || next == len(rows) {
			_, err := wait()
			return done, err
		}
	}
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
		switch typ {
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
	var me *gomysql.MySQLError
	if !errors.As(err, &me) {
		return false, err
	}
	switch me.Number {
	case 1213, 1205, 1206, 1317, 1927, 1153:
		// deadlock, lock wait timeout, lock table full, interrupted, killed,
		// over max_allowed_packet (the server closed the connection)
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
	switch me.Number {
	case 1062, 1032, 1020: // duplicate key, row not found, record changed
		return false, nil
	}
	// Anything else (a type the server would convert, a corrupt event):
	// this table goes as SQL from now on.
	t.log.Warn().Err(err).Str("table", bt.db+"."+bt.name).Msg("row events refused; rows of this table are applied as SQL from now on")
	bt.refused = true
	return false, nil
}
