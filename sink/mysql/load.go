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

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/internal/mysqlerr"
	"github.com/rowcast/rowcast/pipeline"
)

// Bulk upserts: large upsert batches of a plain table (its primary key the
// only unique key, no trigger, no foreign key referencing it) go through
// LOAD DATA LOCAL INFILE ... REPLACE, the rows streamed from memory as
// tab-separated text, which the server applies for less CPU than an INSERT.
// docs/DESIGN.md, "Bulk upserts", says why that is the same upsert.

// loadMinRows is the least rows of an upsert sent with LOAD DATA.
const loadMinRows = 32

// loadRefused are the errors of a LOAD DATA LOCAL that the replica no longer
// allows (local_infile=OFF since Open): MariaDB's, older servers', MySQL's.
var loadRefused = []uint16{mysqlerr.ErLoadInfileCapability, gomysql.ER_NOT_ALLOWED_COMMAND, mysqlerr.ErClientLocalFilesDisabled}

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

// tryLoad upserts rows with LOAD DATA when the table allows it; done is
// false when they still need the INSERT.
func (t *Target) tryLoad(ctx context.Context, tbl *pipeline.Table, rows []*pipeline.Event) (done bool, err error) {
	load, err := t.loadable(ctx, tbl)
	if err != nil || !load {
		return false, err
	}
	err = t.loadRows(ctx, tbl, rows)
	if !mysqlerr.Is(err, loadRefused...) {
		return true, err
	}
	// LOAD DATA LOCAL was turned off on the replica since Open: nothing was
	// applied; use the INSERT.
	t.loadOK = false
	t.log.Warn().Err(err).Msg("LOAD DATA LOCAL is not allowed on the replica (local_infile=OFF): upserts use INSERT from now on")
	return false, nil
}

// loadable reports whether upserts into tbl may use LOAD DATA REPLACE.
func (t *Target) loadable(ctx context.Context, tbl *pipeline.Table) (bool, error) {
	if !t.loadOK {
		return false, nil
	}
	info, err := t.tableInfo(ctx, tbl)
	return info.load, err
}

// tableInfoSQL reads what tableInfo holds of one table (schema and name,
// four times).
const tableInfoSQL = "SELECT " +
	"(SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA=? AND TABLE_NAME=? AND NON_UNIQUE=0 AND INDEX_NAME<>'PRIMARY')," +
	"(SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE UNIQUE_CONSTRAINT_SCHEMA=? AND REFERENCED_TABLE_NAME=?)," +
	"(SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA=? AND EVENT_OBJECT_TABLE=?)," +
	"COALESCE((SELECT CONCAT(COALESCE(ENGINE,''), '/', TABLE_TYPE) FROM information_schema.TABLES WHERE TABLE_SCHEMA=? AND TABLE_NAME=?),'/')"

// tableInfo asks the replica about tbl once per table and session.
func (t *Target) tableInfo(ctx context.Context, tbl *pipeline.Table) (tableInfo, error) {
	key := tbl.Database + "\x00" + tbl.Name
	if info, ok := t.tables[key]; ok {
		return info, nil
	}
	var uniques, referenced, triggers int
	var engine, tableType string
	err := t.ex.QueryRowContext(ctx, tableInfoSQL,
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
		var ok bool
		if b, ok = appendTSVValue(b, v); !ok {
			return b, fmt.Errorf("%w: %s column %s: value of type %T", pipeline.ErrMalformed, qualified(tbl), tbl.Columns[i].Name, v)
		}
	}
	return append(b, '\n'), nil
}

// appendTSVValue appends one value as LOAD DATA text; ok is false for a Go
// type no column kind holds.
func appendTSVValue(b []byte, v any) ([]byte, bool) {
	switch v := v.(type) {
	case nil:
		return append(b, '\\', 'N'), true
	case int64:
		return strconv.AppendInt(b, v, 10), true
	case uint64:
		return strconv.AppendUint(b, v, 10), true
	case float64:
		return strconv.AppendFloat(b, v, 'g', -1, 64), true
	case string:
		return appendEscaped(b, v), true
	case []byte:
		return appendHex(b, v), true
	}
	return b, false
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

// loadInit checks whether this session may upsert with LOAD DATA LOCAL:
// MariaDB only (MySQL 8 turns local_infile off by default), when the server
// allows it.
func (t *Target) loadInit(ctx context.Context) error {
	t.loadOK = false
	if !t.mariadb || t.cfg.NoLoadData {
		return nil
	}
	var local int
	if err := t.ex.QueryRowContext(ctx, "SELECT @@local_infile").Scan(&local); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	t.loadOK = local == 1
	if t.loadOK {
		t.registerReader()
	}
	return nil
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
