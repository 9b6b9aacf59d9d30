package mysql

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/pipeline"
)

// Bulk upserts through LOAD DATA LOCAL INFILE ... REPLACE.
//
// A multi-row INSERT costs the server more to parse than to apply: with
// rows of ~190 bytes, MariaDB 10.11 spends about half of its time in the
// parser (lexing the literals, and converting every string literal's item
// name to the system character set), ~12 us of server CPU per row against
// ~3 us for its own replication applying the same rows. LOAD DATA reads
// the values without the parser, ~6-7 us per row. So large upsert batches
// of a table go through
//
//	LOAD DATA LOCAL INFILE 'Reader::<name>' REPLACE INTO TABLE t
//	CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\t' ESCAPED BY '\\'
//	LINES TERMINATED BY '\n' (c1, c2, @v3) SET c3 = UNHEX(@v3)
//
// with the rows as tab-separated text streamed from memory (the driver's
// Reader:: handler; nothing touches the disk).
//
// When is REPLACE the same as INSERT ... ON DUPLICATE KEY UPDATE of every
// non-key column? When the primary key is the table's only unique key, no
// foreign key references the table and it has no triggers: the server then
// applies a REPLACE that meets an existing key as an update of that row in
// place (sql_insert.cc, write_record: last unique key, no referencing
// foreign key, no delete trigger), which is exactly what the upsert does.
// Otherwise REPLACE would delete and re-insert (firing delete triggers, or
// deleting a row that holds another unique key), so those tables keep the
// INSERT. The Target checks the replica's table (information_schema) once
// per table and session, and again after any DDL.
//
// Errors stay errors: in strict mode LOAD DATA ... REPLACE stops on the
// first value the column cannot hold, as the INSERT does (only LOCAL
// without REPLACE or IGNORE would turn errors into warnings, because the
// server cannot stop the client's upload). A failed batch is applied again
// row by row by the worker (sink.Worker narrows), and single rows use the
// INSERT, so the error names the message.
//
// LOAD DATA costs an extra round trip (the server asks for the data), so
// batches below loadMinRows keep the INSERT. It is used on MariaDB only
// (local_infile is ON by default there; MySQL 8 turns it off) and only
// when the server allows it (@@local_infile).

// loadMinRows is the least rows of an upsert sent with LOAD DATA.
const loadMinRows = 32

// loadSeq names each Target's reader.
var loadSeq atomic.Int64

// tableInfo is what the Target learned about a replica table.
type tableInfo struct {
	load     bool // upserts may use LOAD DATA ... REPLACE
	triggers bool // it has triggers (row events would not fire them: binlog.go)
	// engine and tableType are information_schema.TABLES' ENGINE and
	// TABLE_TYPE ("" when the table is missing): row events go only to
	// InnoDB base tables (binlog.go).
	engine, tableType string
}

// loadable reports whether upserts into tbl may use LOAD DATA REPLACE.
func (t *Target) loadable(ctx context.Context, tbl *pipeline.Table) (bool, error) {
	if !t.loadOK {
		return false, nil
	}
	info, err := t.tableInfo(ctx, tbl)
	return info.load, err
}

// tableInfo asks the replica about tbl once per table and session.
func (t *Target) tableInfo(ctx context.Context, tbl *pipeline.Table) (tableInfo, error) {
	key := tbl.Database + "\x00" + tbl.Name
	if info, ok := t.tables[key]; ok {
		return info, nil
	}
	var uniques, referenced, triggers int
	var engine, tableType string
	err := t.ex.QueryRowContext(ctx, "SELECT "+
		"(SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA=? AND TABLE_NAME=? AND NON_UNIQUE=0 AND INDEX_NAME<>'PRIMARY'),"+
		"(SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE UNIQUE_CONSTRAINT_SCHEMA=? AND REFERENCED_TABLE_NAME=?),"+
		"(SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA=? AND EVENT_OBJECT_TABLE=?),"+
		"COALESCE((SELECT CONCAT(COALESCE(ENGINE,''), '/', TABLE_TYPE) FROM information_schema.TABLES WHERE TABLE_SCHEMA=? AND TABLE_NAME=?),'/')",
		tbl.Database, tbl.Name, tbl.Database, tbl.Name, tbl.Database, tbl.Name, tbl.Database, tbl.Name).Scan(&uniques, &referenced, &triggers, &engine)
	if err != nil {
		return tableInfo{}, fmt.Errorf("read the definition of %s on the replica: %w", qualified(tbl), err)
	}
	engine, tableType, _ = strings.Cut(engine, "/")
	info := tableInfo{load: uniques == 0 && referenced == 0 && triggers == 0, triggers: triggers > 0,
		engine: engine, tableType: tableType}
	if t.tables == nil {
		t.tables = map[string]tableInfo{}
	}
	t.tables[key] = info
	return info, nil
}

// forgetTables drops what the Target knows of the replica's tables (after
// DDL, or on a new session).
func (t *Target) forgetTables() { clear(t.tables); clear(t.binTables) }

// loadSQL is the LOAD DATA statement of a table's upserts.
func (t *Target) loadSQL(tbl *pipeline.Table) string {
	var b strings.Builder
	b.WriteString("LOAD DATA LOCAL INFILE 'Reader::")
	b.WriteString(t.loadName)
	b.WriteString("' REPLACE INTO TABLE ")
	b.WriteString(qualified(tbl))
	b.WriteString(" CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (")
	var set []string
	for i, c := range tbl.Columns {
		if i > 0 {
			b.WriteByte(',')
		}
		switch c.Kind {
		case pipeline.VBytes, pipeline.VGeometry:
			// Binary values travel as hex: the file is read as utf8mb4.
			v := "@v" + strconv.Itoa(i)
			b.WriteString(v)
			set = append(set, quoteIdent(c.Name)+"=UNHEX("+v+")")
		case pipeline.VBit:
			// A BIT column takes a number, not its digits as a string.
			v := "@v" + strconv.Itoa(i)
			b.WriteString(v)
			set = append(set, quoteIdent(c.Name)+"=CAST("+v+" AS UNSIGNED)")
		default:
			b.WriteString(quoteIdent(c.Name))
		}
	}
	b.WriteByte(')')
	if len(set) > 0 {
		b.WriteString(" SET ")
		b.WriteString(strings.Join(set, ","))
	}
	return b.String()
}

// loadRows upserts rows with LOAD DATA ... REPLACE.
func (t *Target) loadRows(ctx context.Context, tbl *pipeline.Table, rows []*pipeline.Event) error {
	buf := t.loadBuf[:0]
	for _, ev := range rows {
		var err error
		if buf, err = appendTSV(buf, tbl, ev.After); err != nil {
			return err
		}
	}
	t.loadBuf = buf
	q, ok := t.loadStmts[tbl]
	if !ok {
		if t.loadStmts == nil || len(t.loadStmts) >= maxCachedStmts {
			t.loadStmts = map[*pipeline.Table]string{}
		}
		q = t.loadSQL(tbl)
		t.loadStmts[tbl] = q
	}
	_, err := t.ex.ExecContext(ctx, q)
	if len(buf) > 1<<20 {
		t.loadBuf = nil // do not keep a big buffer
	}
	return err
}

// reader gives the driver the current batch, during ExecContext.
func (t *Target) reader() io.Reader { return bytes.NewReader(t.loadBuf) }

// appendTSV appends a row image as one line of LOAD DATA text: values
// separated by tabs, NULL as \N, backslash, tab, newline, carriage return
// and NUL escaped with a backslash; binary values as hex.
func appendTSV(b []byte, tbl *pipeline.Table, img []any) ([]byte, error) {
	if len(img) != len(tbl.Columns) {
		return b, fmt.Errorf("%w: %s: row image of %d values for %d columns", pipeline.ErrMalformed, qualified(tbl), len(img), len(tbl.Columns))
	}
	for i := range tbl.Columns {
		v, err := value(tbl, i, img)
		if err != nil {
			return b, err
		}
		if i > 0 {
			b = append(b, '\t')
		}
		switch v := v.(type) {
		case nil:
			b = append(b, '\\', 'N')
		case int64:
			b = strconv.AppendInt(b, v, 10)
		case uint64:
			b = strconv.AppendUint(b, v, 10)
		case float64:
			b = strconv.AppendFloat(b, v, 'g', -1, 64)
		case string:
			b = appendEscaped(b, v)
		case []byte:
			b = appendHex(b, v)
		default:
			return b, fmt.Errorf("%w: %s column %s: value of type %T", pipeline.ErrMalformed, qualified(tbl), tbl.Columns[i].Name, v)
		}
	}
	return append(b, '\n'), nil
}

// appendEscaped appends s with backslash, tab, newline, carriage return and
// NUL escaped for LOAD DATA.
func appendEscaped(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		if i+8 <= len(s) {
			// Eight bytes at a time up to the first that may need an escape.
			m := escapeCandidates(load8(s, i))
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		}
		var esc byte
		switch s[i] {
		case '\\':
			esc = '\\'
		case '\t':
			esc = 't'
		case '\n':
			esc = 'n'
		case '\r':
			esc = 'r'
		case 0:
			esc = '0'
		default:
			i++
			continue
		}
		b = append(b, s[start:i]...)
		b = append(b, '\\', esc)
		i++
		start = i
	}
	return append(b, s[start:]...)
}

// load8 reads 8 bytes of s from i, little-endian (one load on amd64/arm64).
func load8(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// escapeCandidates flags (high bit of each byte) the bytes of x below 0x20
// and the backslashes: every byte appendEscaped escapes, and a few others.
// The lowest flag is always a real one ("has zero byte" of
// https://graphics.stanford.edu/~seander/bithacks.html#ZeroInWord).
func escapeCandidates(x uint64) uint64 {
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	ctl := (x - 0x20*lsb) &^ x
	bs := x ^ '\\'*lsb
	bs = (bs - lsb) &^ bs
	return (ctl | bs) & msb
}

const hexDigits = "0123456789ABCDEF"

func appendHex(b, v []byte) []byte {
	for _, c := range v {
		b = append(b, hexDigits[c>>4], hexDigits[c&15])
	}
	return b
}

// registerReader makes the Target's batches readable by the driver, under
// a name of its own (the driver's registry is global).
func (t *Target) registerReader() {
	if t.loadName == "" {
		t.loadName = "rowcast-sink-" + strconv.FormatInt(loadSeq.Add(1), 10)
	}
	mysql.RegisterReaderHandler(t.loadName, t.reader)
}

func (t *Target) deregisterReader() {
	if t.loadName != "" {
		mysql.DeregisterReaderHandler(t.loadName)
		clear(t.loadStmts) // they name the reader
	}
}
