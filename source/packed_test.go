package source

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/rowcast/rowcast/internal/testenv"
)

// binlogCol is a column of a synthetic TABLE_MAP.
type binlogCol struct {
	typ      byte
	meta     uint16
	unsigned bool
}

// metaBytes is the column's metadata as the TABLE_MAP writes it.
func (c binlogCol) metaBytes() []byte {
	switch c.typ {
	case mysql.MYSQL_TYPE_TIME2, mysql.MYSQL_TYPE_DATETIME2, mysql.MYSQL_TYPE_TIMESTAMP2:
		return []byte{byte(c.meta)}
	case mysql.MYSQL_TYPE_NEWDECIMAL:
		return []byte{byte(c.meta >> 8), byte(c.meta)}
	}
	return nil
}

// size is the byte length of a value of the column in a row image.
func (c binlogCol) size() int {
	if n := packedLen(c.typ, c.meta); n > 0 {
		return n
	}
	switch c.typ {
	case mysql.MYSQL_TYPE_TINY, mysql.MYSQL_TYPE_SHORT, mysql.MYSQL_TYPE_INT24, mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_LONGLONG:
		return intWidth(c.typ)
	}
	panic(fmt.Sprintf("no size for type %d", c.typ))
}

// synthBinlog builds binlog events for go-mysql's parser: a FORMAT_DESCRIPTION
// (MariaDB, no checksums), one TABLE_MAP of cols with signedness metadata, and
// WRITE_ROWS events of the given row images (the values' bytes, no NULLs).
type synthBinlog struct {
	cols []binlogCol
}

func event(typ replication.EventType, body []byte) []byte {
	h := make([]byte, replication.EventHeaderSize, replication.EventHeaderSize+len(body))
	h[4] = byte(typ)
	binary.LittleEndian.PutUint32(h[5:], 1)
	binary.LittleEndian.PutUint32(h[9:], uint32(replication.EventHeaderSize+len(body)))
	return append(h, body...)
}

func (s synthBinlog) formatDescription() []byte {
	b := binary.LittleEndian.AppendUint16(nil, 4)
	v := make([]byte, 50)
	copy(v, "10.11.19-MariaDB")
	b = append(b, v...)
	b = append(b, 0, 0, 0, 0, replication.EventHeaderSize)
	lens := make([]byte, 168)
	lens[replication.TABLE_MAP_EVENT-1] = 8
	lens[replication.WRITE_ROWS_EVENTv1-1] = 8
	b = append(b, lens...)
	b = append(b, byte(replication.BINLOG_CHECKSUM_ALG_OFF), 0, 0, 0, 0)
	return event(replication.FORMAT_DESCRIPTION_EVENT, b)
}

func (s synthBinlog) tableMap() []byte {
	b := []byte{7, 0, 0, 0, 0, 0, 0, 0} // table id 7, flags
	b = appendLenenc(append(b, 1, 'd', 0, 1, 't', 0), len(s.cols))
	var meta, signed []byte
	bit := 0
	for _, c := range s.cols {
		b = append(b, c.typ)
		meta = append(meta, c.metaBytes()...)
		switch c.typ {
		case mysql.MYSQL_TYPE_TINY, mysql.MYSQL_TYPE_SHORT, mysql.MYSQL_TYPE_INT24, mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_LONGLONG:
			if bit%8 == 0 {
				signed = append(signed, 0)
			}
			if c.unsigned {
				signed[bit/8] |= 0x80 >> (bit % 8)
			}
			bit++
		}
	}
	b = appendLenenc(b, len(meta))
	b = append(b, meta...)
	b = append(b, make([]byte, (len(s.cols)+7)/8)...) // null bitmap
	b = append(b, 1, byte(len(signed)))               // SIGNEDNESS
	b = append(b, signed...)
	return event(replication.TABLE_MAP_EVENT, b)
}

func appendLenenc(b []byte, n int) []byte {
	if n < 251 {
		return append(b, byte(n))
	}
	return binary.LittleEndian.AppendUint16(append(b, 0xfc), uint16(n))
}

func (s synthBinlog) writeRows(rows [][]byte) []byte {
	b := appendLenenc([]byte{7, 0, 0, 0, 0, 0, 0, 0}, len(s.cols))
	bitmap := make([]byte, (len(s.cols)+7)/8)
	for i := range s.cols {
		bitmap[i/8] |= 1 << (i % 8)
	}
	b = append(b, bitmap...)
	for _, r := range rows {
		b = append(b, make([]byte, (len(s.cols)+7)/8)...) // no NULLs
		b = append(b, r...)
	}
	return event(replication.WRITE_ROWS_EVENTv1, b)
}

// decode parses the events with a parser set up as cfg sets up the syncer
// and returns the rows of the rows events.
func (s synthBinlog) decode(cfg replication.BinlogSyncerConfig, events ...[]byte) ([][]any, error) {
	p := readerParser(cfg)
	var rows [][]any
	for _, ev := range events {
		e, err := p.Parse(ev)
		if err != nil {
			return nil, err
		}
		if re, ok := e.Event.(*replication.RowsEvent); ok {
			if string(re.Table.Schema) != "d" || re.Table.ColumnType[0] != s.cols[0].typ {
				return nil, fmt.Errorf("rows event has table %s with types %v after decoding", re.Table.Schema, re.Table.ColumnType)
			}
			rows = append(rows, re.Rows...)
		}
	}
	return rows, nil
}

// syncerConfigs are the reader's go-mysql settings and the same without the
// rows decoder: go-mysql's own decoding as the reader used it before.
func syncerConfigs(t testing.TB) (reader, plain replication.BinlogSyncerConfig) {
	cfg := NewReader(Config{Addr: "127.0.0.1:3306", User: "u", ServerID: 1}, testLogger(t)).SyncerConfig(FlavorMariaDB)
	plain = cfg
	plain.RowsEventDecodeFunc = nil
	return cfg, plain
}

// comparePacked decodes the row images with go-mysql alone and with the
// reader's rows decoder, converts both with the columns' converters, and
// fails on any difference.
func (s synthBinlog) comparePacked(t *testing.T, images [][]byte) {
	t.Helper()
	evs := [][]byte{s.formatDescription(), s.tableMap()}
	for from := 0; from < len(images); from += 500 {
		evs = append(evs, s.writeRows(images[from:min(from+500, len(images))]))
	}
	cfg, plain := syncerConfigs(t)
	want, err := s.decode(plain, evs...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.decode(cfg, evs...)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != len(images) || len(got) != len(images) {
		t.Fatalf("%d and %d rows decoded, want %d", len(want), len(got), len(images))
	}
	convs := s.converters(t)
	bad := 0
	for i := range images {
		for j, c := range s.cols {
			if !comparePackedValue(t, i, j, c, convs[j], got[i][j], want[i][j]) {
				if bad++; bad > 20 {
					t.FailNow()
				}
			}
		}
	}
}

// comparePackedValue checks the value of row i, column j: the rows decoder
// hands a packed column over packed (got) where go-mysql gives its text
// (want), and conv makes the same of both.
func comparePackedValue(t *testing.T, i, j int, c binlogCol, conv convFn, got, want any) bool {
	t.Helper()
	if packedLen(c.typ, c.meta) > 0 {
		if _, ok := got.(int64); !ok {
			t.Fatalf("row %d column %d (type %d): the rows decoder gave %T, want the packed int64", i, j, c.typ, got)
		}
		if _, ok := want.(string); !ok {
			t.Fatalf("row %d column %d (type %d): go-mysql gave %T, want its text", i, j, c.typ, want)
		}
	}
	w, werr := conv(want)
	g, gerr := conv(got)
	if werr != nil || gerr != nil || w != g {
		t.Errorf("type %d meta %#x unsigned %v, go-mysql %q (%v), rowcast %q (%v), go-mysql's value %#v",
			c.typ, c.meta, c.unsigned, w, werr, g, gerr, want)
		return false
	}
	return true
}

func (s synthBinlog) converters(t testing.TB) []convFn {
	t.Helper()
	convs := make([]convFn, len(s.cols))
	for j, c := range s.cols {
		_, fn, err := buildColumn(colSpec{name: fmt.Sprint("c", j), typ: c.typ, meta: c.meta, unsigned: c.unsigned})
		if err != nil {
			t.Fatal(err)
		}
		convs[j] = fn
	}
	return convs
}

// temporalCols covers DATE, TIME, DATETIME and TIMESTAMP with fsp 0 to 6,
// and the integer types signed and unsigned.
func temporalCols() []binlogCol {
	cols := []binlogCol{{typ: mysql.MYSQL_TYPE_DATE}}
	for _, typ := range []byte{mysql.MYSQL_TYPE_TIME2, mysql.MYSQL_TYPE_DATETIME2, mysql.MYSQL_TYPE_TIMESTAMP2} {
		for fsp := range uint16(7) {
			cols = append(cols, binlogCol{typ: typ, meta: fsp})
		}
	}
	for _, typ := range []byte{mysql.MYSQL_TYPE_TINY, mysql.MYSQL_TYPE_SHORT, mysql.MYSQL_TYPE_INT24, mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_LONGLONG} {
		cols = append(cols, binlogCol{typ: typ}, binlogCol{typ: typ, unsigned: true})
	}
	return cols
}

// validPacked encodes a value a server could write: random fields of the
// type's range (also before 1970, year 9999, zero month or day, days a month
// does not have), or a zero date, with a fraction of fsp digits.
func validPacked(r *rand.Rand, c binlogCol) uint64 {
	dec := int(c.meta)
	usec := randomMicros(r, dec)
	fracBytes := (dec + 1) / 2
	frac := packedFraction(usec, fracBytes)
	f := randomDateTime(r)
	switch c.typ {
	case mysql.MYSQL_TYPE_DATE:
		return f.packDate()
	case mysql.MYSQL_TYPE_DATETIME2:
		ip := (f.year*13+f.month)<<22 | f.day<<17 | f.hour<<12 | f.minute<<6 | f.second
		if f.zero {
			ip = 0
		}
		return (ip+0x8000000000)<<(8*fracBytes) | frac
	case mysql.MYSQL_TYPE_TIMESTAMP2:
		sec := r.Uint64N(1 << 32)
		if f.zero {
			sec = 0
		}
		return sec<<(8*fracBytes) | frac
	case mysql.MYSQL_TYPE_TIME2:
		return f.packTime2(r, usec, frac, fracBytes)
	}
	return r.Uint64()
}

// randomMicros is a random fraction of a second of dec digits, in
// microseconds.
func randomMicros(r *rand.Rand, dec int) uint64 {
	if dec == 0 {
		return 0
	}
	scale := uint64(1)
	for range 6 - dec {
		scale *= 10
	}
	return r.Uint64N(1000000/scale) * scale
}

// packedFraction is usec as a fraction of fracBytes bytes stores it:
// hundredths, ten-thousandths or microseconds.
func packedFraction(usec uint64, fracBytes int) uint64 {
	switch fracBytes {
	case 1:
		return usec / 10000
	case 2:
		return usec / 100
	case 3:
		return usec
	}
	return 0
}

// dateTime is validPacked's random date and time.
type dateTime struct {
	year, month, day, hour, minute, second uint64
	zero                                   bool // a zero value
}

func randomDateTime(r *rand.Rand) dateTime {
	years := []uint64{0, 1, 999, 1000, 1969, 1970, 2024, 2038, 2106, 9999}
	f := dateTime{year: years[r.IntN(len(years))]}
	if r.IntN(2) == 0 {
		f.year = r.Uint64N(10000)
	}
	f.month, f.day = r.Uint64N(13), r.Uint64N(32)
	f.hour, f.minute, f.second = r.Uint64N(24), r.Uint64N(60), r.Uint64N(60)
	f.zero = r.IntN(8) == 0
	return f
}

// packDate packs a DATE: little endian on disk.
func (f dateTime) packDate() uint64 {
	if f.zero {
		return 0
	}
	v := f.year<<9 | f.month<<5 | f.day
	return (v&0xff)<<16 | v&0xff00 | v>>16
}

// packTime2 packs a TIME2 of up to 838 hours, negative or not.
func (f dateTime) packTime2(r *rand.Rand, usec, frac uint64, fracBytes int) uint64 {
	hms := r.Uint64N(839)<<12 | f.minute<<6 | f.second
	if f.zero {
		hms, frac, usec = 0, 0, 0
	}
	sign := int64(1)
	if r.IntN(2) == 0 {
		sign = -1
	}
	switch fracBytes {
	case 0:
		return uint64(sign*int64(hms) + 0x800000)
	case 3:
		return uint64(sign*int64(hms<<24|usec) + 0x800000000000)
	}
	// Negative values with a fraction store intpart-1 and the
	// fraction's complement.
	ip := sign * int64(hms)
	if sign < 0 && frac != 0 {
		ip--
		frac = 1<<(8*fracBytes) - frac
	}
	return uint64(ip+0x800000)<<(8*fracBytes) | frac
}

// TestPackedMatchesGoMySQL decodes the same rows events with go-mysql's own
// decoding (the reader's earlier settings: ParseTime false, TIMESTAMP in UTC,
// no rows decoder) and with the reader's rowsDecoder, and converts both with
// the columns' converters: every value must come out the same, byte for byte.
// The rows hold random bytes (invalid values included), values a server
// writes, and edge bytes.
func TestPackedMatchesGoMySQL(t *testing.T) {
	s := synthBinlog{cols: temporalCols()}
	r := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	const n = 20000
	images := make([][]byte, n)
	for i := range n {
		for _, c := range s.cols {
			size := c.size()
			v := testPackedValue(r, c, i)
			if size < 8 {
				v &= 1<<(8*size) - 1
			}
			images[i] = append(images[i], binary.BigEndian.AppendUint64(nil, v)[8-size:]...)
		}
	}
	s.comparePacked(t, images)
}

var packedEdges = []uint64{0, 1, 0x80, 0x7f, 0xff, 0x8000000000, 0x7fffffffff, 0x800000, 0x7fffff, 0x800000000000, 0x7fffffffffff}

// testPackedValue is the value of column c in row i: edge bytes first (as
// they are, inverted, and moved to the top of the value), then random bytes,
// bytes near the offsets of the signed types, and values a server writes.
func testPackedValue(r *rand.Rand, c binlogCol, i int) uint64 {
	size := c.size()
	switch {
	case i < len(packedEdges)*4:
		v := packedEdges[i%len(packedEdges)]
		top := 8 * max(0, size-5)
		return []uint64{v, ^v, v << top, (^v) << top}[i/len(packedEdges)]
	case i%3 == 0:
		return r.Uint64()
	case i%3 == 1 && size >= 3:
		// Near the offsets: small negative and positive values.
		return r.Uint64N(1<<(8*(size-1))) | uint64(0x7f+r.IntN(2))<<(8*(size-1))
	}
	return validPacked(r, c)
}

// TestPackedDecimalMatchesGoMySQL does the same for every DECIMAL(p,s) that
// rowsDecoder hands over packed (up to 8 bytes), with random bytes whose
// 9-digit words are valid (go-mysql fails the event otherwise), and checks
// that a word over 999999999 fails in both.
func TestPackedDecimalMatchesGoMySQL(t *testing.T) {
	var s synthBinlog
	for prec := uint16(1); prec <= 65; prec++ {
		for scale := uint16(0); scale <= min(prec, 30); scale++ {
			if packedLen(mysql.MYSQL_TYPE_NEWDECIMAL, prec<<8|scale) > 0 {
				s.cols = append(s.cols, binlogCol{typ: mysql.MYSQL_TYPE_NEWDECIMAL, meta: prec<<8 | scale})
			}
		}
	}
	if len(s.cols) < 100 || len(s.cols) > 250 {
		t.Fatalf("%d DECIMAL columns", len(s.cols))
	}
	r := rand.New(rand.NewPCG(3, uint64(time.Now().UnixNano())))
	const n = 5000
	images := make([][]byte, n)
	for i := range images {
		for _, c := range s.cols {
			images[i] = append(images[i], randomDecimal(r, c, i)...)
		}
	}
	s.comparePacked(t, images)
	checkDecimalWordOverflow(t)
}

// checkDecimalWordOverflow checks DECIMAL(18,0) with two words after a
// leading 0-digit part, the second over 999999999: both go-mysql and the
// reader refuse it.
func checkDecimalWordOverflow(t *testing.T) {
	bad := synthBinlog{cols: []binlogCol{{typ: mysql.MYSQL_TYPE_NEWDECIMAL, meta: 18 << 8}}}
	img := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 0x80000001), 1000000000)
	evs := [][]byte{bad.formatDescription(), bad.tableMap(), bad.writeRows([][]byte{img})}
	cfg, plain := syncerConfigs(t)
	if _, err := bad.decode(plain, evs...); err == nil {
		t.Error("go-mysql decoded a DECIMAL word over 999999999")
	}
	rows, err := bad.decode(cfg, evs...)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := bad.converters(t)[0](rows[0][0]); err == nil {
		t.Errorf("a DECIMAL word over 999999999 decoded as %q", v)
	}
}

// randomDecimal returns the bytes of a DECIMAL value of column c: random bytes
// with valid full words, or for the first rows edge values (zero, all
// nines, negative zero).
func randomDecimal(r *rand.Rand, c binlogCol, i int) []byte {
	prec, scale := int(c.meta>>8), int(c.meta&0xff)
	n := packedLen(c.typ, c.meta)
	d := make([]byte, n)
	switch i {
	case 0, 1: // +0 and -0
		d[0] = 0x80
		if i == 1 {
			for j := range d {
				d[j] = ^d[j]
			}
		}
		return d
	}
	for j := range d {
		d[j] = byte(r.Uint32())
	}
	// The sign is the first byte's top bit; a full word's value is read
	// after the flip of that bit and, for a negative value, inverted.
	var mask uint32
	if d[0]&0x80 == 0 {
		mask = ^uint32(0)
	}
	word := func(pos int) {
		v := r.Uint32N(1000000000)
		if r.IntN(4) == 0 {
			v = []uint32{0, 999999999, 1, 100000000}[r.IntN(4)]
		}
		binary.BigEndian.PutUint32(d[pos:], v^mask)
		if pos == 0 {
			d[0] ^= 0x80
		}
	}
	intg := prec - scale
	pos := decimalBytes[intg%9]
	for range intg / 9 {
		word(pos)
		pos += 4
	}
	for range scale / 9 {
		word(pos)
		pos += 4
	}
	return d
}

// checkView checks the view of the TABLE_MAP of TestDecodeView: temporal
// columns as BIT of their length, no signedness, the original untouched.
func checkView(t *testing.T, orig, v *replication.TableMapEvent) {
	t.Helper()
	wantTypes := []byte{mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_BIT, mysql.MYSQL_TYPE_BIT, mysql.MYSQL_TYPE_BIT, mysql.MYSQL_TYPE_DATETIME}
	wantMeta := []uint16{0, 7 << 8, 7 << 8, 3 << 8, 0}
	if string(v.ColumnType) != string(wantTypes) || fmt.Sprint(v.ColumnMeta) != fmt.Sprint(wantMeta) || v.SignednessBitmap != nil {
		t.Errorf("view types %v meta %v signedness %v, want %v %v nil", v.ColumnType, v.ColumnMeta, v.SignednessBitmap, wantTypes, wantMeta)
	}
	if orig.ColumnType[1] != mysql.MYSQL_TYPE_DATETIME2 || orig.ColumnMeta[1] != 3 || orig.SignednessBitmap == nil {
		t.Error("the original TABLE_MAP changed")
	}
}

// TestDecodeView checks the TABLE_MAP view of the rows decoder: temporal
// columns as BIT of their length, no signedness, the original untouched, one
// view per TABLE_MAP event.
func TestDecodeView(t *testing.T) {
	orig := &replication.TableMapEvent{
		TableID:          3,
		ColumnCount:      5,
		ColumnType:       []byte{mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_DATETIME2, mysql.MYSQL_TYPE_TIMESTAMP2, mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_DATETIME},
		ColumnMeta:       []uint16{0, 3, 6, 0, 0},
		SignednessBitmap: []byte{0x80},
	}
	d := newRowsDecoder()
	v := d.view(orig)
	if v == orig {
		t.Fatal("no view")
	}
	checkView(t, orig, v)
	if d.view(orig) != v {
		t.Error("view built twice for one TABLE_MAP")
	}
	next := *orig
	if d.view(&next) == v {
		t.Error("a new TABLE_MAP under the same table id got the old view")
	}
	plain := &replication.TableMapEvent{TableID: 4, ColumnCount: 1, ColumnType: []byte{mysql.MYSQL_TYPE_VARCHAR}, ColumnMeta: []uint16{10}}
	if d.view(plain) != plain {
		t.Error("a table without temporal columns or signedness got a copy")
	}
}

// TestTemporalValuesFromMaster writes random and edge temporal values of every
// fsp to the master, in a session that allows zero and invalid dates
// (ALLOW_INVALID_DATES: '2024-02-30'), and checks each decoded value against
// the master's own text for it.
func TestTemporalValuesFromMaster(t *testing.T) {
	dbName := testenv.CreateDatabase(t, testenv.Master)
	db := testenv.DBAt(t, testenv.Master, dbName)
	cols := []string{"d"}
	defs := []string{"id INT PRIMARY KEY", "d DATE"}
	for fsp := range 7 {
		cols = append(cols, fmt.Sprint("t", fsp), fmt.Sprint("dt", fsp), fmt.Sprint("ts", fsp))
		defs = append(defs, fmt.Sprintf("t%d TIME(%d)", fsp, fsp), fmt.Sprintf("dt%d DATETIME(%d)", fsp, fsp), fmt.Sprintf("ts%d TIMESTAMP(%d) NULL", fsp, fsp))
	}
	testenv.Exec(t, db, "CREATE TABLE tv ("+strings.Join(defs, ", ")+")")
	start := Start{GTIDSet: binlogPos(t, db), NextTxnSeq: 1}
	c := startReader(t, testConfig(t, dbName), start)

	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	execConn(t, conn, "SET SESSION sql_mode='ALLOW_INVALID_DATES', time_zone='+00:00'")
	lit := temporalLiterals{rand.New(rand.NewPCG(2, uint64(time.Now().UnixNano())))}
	const rows = 300
	for id := 1; id <= rows; id++ {
		vals := []string{fmt.Sprint(id), "'" + lit.date() + "'"}
		for fsp := range 7 {
			vals = append(vals, "'"+lit.time(fsp)+"'", "'"+lit.datetime(fsp)+"'", "'"+lit.timestamp(fsp)+"'")
		}
		execConn(t, conn, "INSERT INTO tv VALUES ("+strings.Join(vals, ", ")+")")
	}
	exprs := make([]string, len(cols))
	for i, col := range cols {
		exprs[i] = "CAST(" + col + " AS CHAR)"
	}
	want := readText(t, conn, "SELECT id, "+strings.Join(exprs, ", ")+" FROM tv", len(cols))
	for range rows {
		ev := c.txn(t)[0]
		id := ev.After[0].(int64)
		for i, col := range cols {
			w := want[id][i]
			if got := ev.After[i+1]; !w.Valid || got != w.String {
				t.Errorf("row %d column %s = %#v, the master says %q", id, col, got, w.String)
			}
		}
	}
}

// temporalLiterals writes random and edge temporal values of the master's
// ranges as SQL text.
type temporalLiterals struct{ r *rand.Rand }

var edgeDates = []string{"0000-00-00", "1000-01-01", "9999-12-31", "1969-12-31", "1970-01-01", "2024-02-29",
	"2024-02-30", "2023-02-29", "2024-04-31", "2024-00-15", "2024-05-00", "0001-01-01", "0999-06-15"}

// frac is a fraction of fsp digits, "" for none.
func (l temporalLiterals) frac(fsp int) string {
	if fsp == 0 {
		return ""
	}
	return "." + fmt.Sprintf("%06d", l.r.IntN(1000000))[:fsp]
}

func (l temporalLiterals) date() string {
	if l.r.IntN(3) == 0 {
		return edgeDates[l.r.IntN(len(edgeDates))]
	}
	return fmt.Sprintf("%04d-%02d-%02d", 1000+l.r.IntN(9000), 1+l.r.IntN(12), 1+l.r.IntN(31))
}

func (l temporalLiterals) clock() string {
	return fmt.Sprintf("%02d:%02d:%02d", l.r.IntN(24), l.r.IntN(60), l.r.IntN(60))
}

// time is a TIME(fsp), negative or not, or an edge value.
func (l temporalLiterals) time(fsp int) string {
	tm := fmt.Sprintf("%d:%02d:%02d", l.r.IntN(839), l.r.IntN(60), l.r.IntN(60))
	if l.r.IntN(2) == 0 {
		tm = "-" + tm
	}
	if l.r.IntN(6) == 0 {
		return []string{"00:00:00", "-00:00:00.5", "838:59:59", "-838:59:59", "-00:00:01.01"}[l.r.IntN(5)]
	}
	return tm + l.frac(fsp)
}

// datetime is a DATETIME(fsp), or the zero one.
func (l temporalLiterals) datetime(fsp int) string {
	dt := l.date() + " " + l.clock() + l.frac(fsp)
	if l.r.IntN(8) == 0 {
		return "0000-00-00 00:00:00"
	}
	return dt
}

// timestamp is a TIMESTAMP(fsp), the zero one, or an edge of its range.
func (l temporalLiterals) timestamp(fsp int) string {
	ts := time.Unix(1+l.r.Int64N(1<<31-2), 0).UTC().Format(time.DateTime) + l.frac(fsp)
	switch l.r.IntN(8) {
	case 0:
		return "0000-00-00 00:00:00"
	case 1:
		return []string{"1970-01-01 00:00:01", "2038-01-19 03:14:07"}[l.r.IntN(2)] + l.frac(fsp)
	}
	return ts
}

// readText runs query, whose rows are an id and n values as text, and
// returns the values by id.
func readText(t *testing.T, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, n int) map[int64][]sql.NullString {
	t.Helper()
	rows, err := q.QueryContext(t.Context(), query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64][]sql.NullString{}
	for rows.Next() {
		var id int64
		vals := make([]sql.NullString, n)
		dest := []any{&id}
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		out[id] = vals
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

// serverImages returns n row images of values a server could write.
func (s synthBinlog) serverImages(r *rand.Rand, n int) [][]byte {
	images := make([][]byte, n)
	for i := range images {
		for _, c := range s.cols {
			if c.typ == mysql.MYSQL_TYPE_NEWDECIMAL {
				images[i] = append(images[i], randomDecimal(r, c, i+2)...)
				continue
			}
			size := c.size()
			images[i] = append(images[i], binary.BigEndian.AppendUint64(nil, validPacked(r, c))[8-size:]...)
		}
	}
	return images
}

// BenchmarkPackedDecode decodes rows events of 10,000 rows of DECIMAL(12,2),
// DATETIME and DATETIME(3) (the temporal and decimal columns of scripts/bench
// source's table) plus DATE, TIME(6) and TIMESTAMP(6), and converts the
// values: with go-mysql's own decoding ("go-mysql", the reader's settings
// before the rows decoder) and with the reader's rows decoder ("rowcast").
func BenchmarkPackedDecode(b *testing.B) {
	s := synthBinlog{cols: []binlogCol{
		{typ: mysql.MYSQL_TYPE_NEWDECIMAL, meta: 12<<8 | 2},
		{typ: mysql.MYSQL_TYPE_DATETIME2, meta: 0},
		{typ: mysql.MYSQL_TYPE_DATETIME2, meta: 3},
		{typ: mysql.MYSQL_TYPE_DATE},
		{typ: mysql.MYSQL_TYPE_TIME2, meta: 6},
		{typ: mysql.MYSQL_TYPE_TIMESTAMP2, meta: 6},
	}}
	const rows = 10000
	images := s.serverImages(rand.New(rand.NewPCG(4, 5)), rows)
	evs := [][]byte{s.formatDescription(), s.tableMap()}
	for from := 0; from < rows; from += 100 {
		evs = append(evs, s.writeRows(images[from:from+100]))
	}
	cfg, plain := syncerConfigs(b)
	convs := s.converters(b)
	for _, bc := range []struct {
		name string
		cfg  replication.BinlogSyncerConfig
	}{{"go-mysql", plain}, {"rowcast", cfg}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				got, err := s.decode(bc.cfg, evs...)
				if err != nil {
					b.Fatal(err)
				}
				for _, row := range got {
					for j, v := range row {
						if row[j], err = convs[j](v); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rows*b.N), "ns/row")
		})
	}
}
