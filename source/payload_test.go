package source

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/pipeline"
)

// fakeLoader is a schemaLoader without a server: no table is known to
// information_schema, collations come from a fixed table.
type fakeLoader struct{ cols map[string][]colInfo }

func (f fakeLoader) columns(_ context.Context, db, table string) ([]colInfo, error) {
	return f.cols[db+"."+table], nil
}

func (fakeLoader) charset(_ context.Context, coll uint64) (string, error) {
	switch coll {
	case 8:
		return "latin1", nil
	case 33:
		return "utf8mb3", nil
	case 45, 46, 224, 255:
		return "utf8mb4", nil
	case 63:
		return "binary", nil
	}
	return "", fmt.Errorf("%w: collation %d", ErrUnsupported, coll)
}

// testStream is a stream fed by hand, for events no test server can write.
func testStream(t *testing.T, flavor, start string, emitted *[]*pipeline.Event) *stream {
	t.Helper()
	cfg := Config{}
	cfg.setDefaults()
	f, _ := newFilter(&cfg)
	set, err := mysql.ParseGTIDSet(flavor, start)
	if err != nil {
		t.Fatal(err)
	}
	return &stream{
		flavor: flavor, epoch: 1, seq: 5, set: set, file: "binlog.000001",
		emit: func(_ context.Context, ev *pipeline.Event) error {
			*emitted = append(*emitted, ev)
			return nil
		},
		onPosition: func(string, uint64) {},
		tables:     newTableCache(fakeLoader{}, f, flavor, false, zerolog.Nop()),
		filter:     f,
	}
}

// mysqlEvent frames an event body with a v4 header.
func mysqlEvent(typ replication.EventType, body []byte) []byte {
	h := make([]byte, replication.EventHeaderSize)
	binary.LittleEndian.PutUint32(h[0:], 1700000000)
	h[4] = byte(typ)
	binary.LittleEndian.PutUint32(h[5:], 1)
	binary.LittleEndian.PutUint32(h[9:], uint32(len(h)+len(body)))
	return append(h, body...)
}

// TestCompressedTransactionPayload decodes a TRANSACTION_PAYLOAD_EVENT that
// MySQL 8.0.27 wrote with binlog_transaction_compression=ON (the local stack
// runs MariaDB only, which has no such event) through the same path Run uses.
func TestCompressedTransactionPayload(t *testing.T) {
	pe := parsePayloadEvent(t)
	inner := pe.Event.(*replication.TransactionPayloadEvent).Events
	if len(inner) != 8 {
		t.Fatalf("%d inner events", len(inner))
	}
	const sid = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	u := uuid.MustParse(sid)
	gtid := &replication.BinlogEvent{Header: &replication.EventHeader{EventType: replication.GTID_EVENT, Timestamp: 1700000000, ServerID: 7},
		Event: &replication.GTIDEvent{SID: u[:], GNO: 42}}
	var got []*pipeline.Event

	// That server ran with binlog_row_metadata=MINIMAL: the TABLE_MAP has no
	// column names, and rowcast refuses to guess them.
	s := testStream(t, FlavorMySQL, sid+":1-41", &got)
	err := handleAll(t, s, 1000, gtid, pe)
	if !errors.Is(err, ErrMasterSetup) || !strings.Contains(err.Error(), "compression_test.large_data has no column names: set binlog_row_metadata=FULL") {
		t.Fatalf("MINIMAL metadata: %v", err)
	}

	// With the names FULL metadata would carry, the transaction decodes.
	for _, ev := range inner {
		if tme, ok := ev.Event.(*replication.TableMapEvent); ok {
			tme.ColumnName = [][]byte{[]byte("id"), []byte("data"), []byte("ts")}
		}
	}
	s = testStream(t, FlavorMySQL, sid+":1-41", &got)
	s.tables.loader = fakeLoader{cols: map[string][]colInfo{"compression_test.large_data": {
		{Name: "id", ColumnType: "int", DataType: "int"},
		{Name: "data", ColumnType: "longtext", DataType: "longtext"},
		{Name: "ts", ColumnType: "timestamp", DataType: "timestamp"},
	}}}
	if err := handleAll(t, s, 1000, gtid, pe); err != nil {
		t.Fatal(err)
	}
	if len(got) < 3 {
		t.Fatalf("%d messages, want at least insert, update, delete", len(got))
	}
	checkPayloadMessages(t, got, sid)
	if s.open || s.seq != 6 {
		t.Errorf("after the payload: open %v seq %d", s.open, s.seq)
	}
}

// parsePayloadEvent parses testdata/mysql8027_payload.hex as go-mysql parses
// it after MySQL 8.0.27's FORMAT_DESCRIPTION without checksums, located at
// offset 1000.
func parsePayloadEvent(t *testing.T) *replication.BinlogEvent {
	t.Helper()
	payload := readHex(t, "testdata/mysql8027_payload.hex")
	// FORMAT_DESCRIPTION of MySQL 8.0.27 with checksums off.
	fde := binary.LittleEndian.AppendUint16(nil, 4)
	fde = append(fde, make([]byte, 50)...)
	copy(fde[2:], "8.0.27")
	fde = append(fde, 0, 0, 0, 0, replication.EventHeaderSize)
	fde = append(fde, 0x38, 0xd, 0x0, 0x8, 0x0, 0x12, 0x0, 0x4, 0x4, 0x4, 0x4, 0x12, 0x0, 0x0, 0x5c, 0x0, 0x4, 0x1a, 0x8, 0x0, 0x0, 0x0, 0x8, 0x8, 0x8, 0x2, 0x0, 0x0, 0x0, 0xa, 0xa, 0xa, 0x19, 0x19, 0x0, 0x12, 0x34, 0x0, 0xa, 0x28, 0x0)
	fde = append(fde, byte(replication.BINLOG_CHECKSUM_ALG_OFF), 0, 0, 0, 0)
	// TRANSACTION_PAYLOAD: size, compression type (0 = zstd), end mark, payload.
	tp := []byte{replication.OTW_PAYLOAD_SIZE_FIELD, 2, byte(len(payload)), byte(len(payload) >> 8),
		replication.OTW_PAYLOAD_COMPRESSION_TYPE_FIELD, 1, replication.ZSTD,
		replication.OTW_PAYLOAD_HEADER_END_MARK}
	tp = append(tp, payload...)

	p := replication.NewBinlogParser()
	p.SetFlavor(FlavorMySQL)
	p.SetTimestampStringLocation(time.UTC)
	p.SetRenderJSONAsMySQLText(true)
	if _, err := p.Parse(mysqlEvent(replication.FORMAT_DESCRIPTION_EVENT, fde)); err != nil {
		t.Fatal(err)
	}
	pe, err := p.Parse(mysqlEvent(replication.TRANSACTION_PAYLOAD_EVENT, tp))
	if err != nil {
		t.Fatal(err)
	}
	pe.Header.LogPos = 1000 + pe.Header.EventSize
	return pe
}

// handleAll hands evs to s at offset, until one fails.
func handleAll(t *testing.T, s *stream, offset uint32, evs ...*replication.BinlogEvent) error {
	for _, ev := range evs {
		if err := s.handle(t.Context(), ev, offset, 0); err != nil {
			return err
		}
	}
	return nil
}

// payloadSource is where a message of the payload's transaction says it
// comes from.
type payloadSource struct {
	gtid     string
	serverID uint32
	offset   uint32
	flavor   string
}

// checkPayloadMessages checks the messages of the payload's transaction: its
// position and source, an insert first, an update, a delete last.
func checkPayloadMessages(t *testing.T, got []*pipeline.Event, sid string) {
	t.Helper()
	ops := ""
	for i, ev := range got {
		ops += string(ev.Op)
		want := pipeline.Position{Epoch: 1, TxnSeq: 5, Row: uint64(i), Last: i == len(got)-1}
		if ev.Pos != want || (payloadSource{ev.GTID, ev.ServerID, ev.Offset, ev.Flavor}) != (payloadSource{sid + ":42", 7, 1000, FlavorMySQL}) {
			t.Errorf("message %d: %s %s server %d at %d", i, ev.Pos, ev.GTID, ev.ServerID, ev.Offset)
		}
		t.Logf("%s %s %s.%s %+v before %.60q after %.60q", ev.Pos, ev.Op, ev.Table.Database, ev.Table.Name, ev.Table.Columns, ev.Before, ev.After)
	}
	if !strings.HasPrefix(ops, "c") || !strings.Contains(ops, "u") || !strings.HasSuffix(ops, "d") {
		t.Errorf("operations %q", ops)
	}
	if last := got[len(got)-1]; last.GTIDSet != sid+":1-42" {
		t.Errorf("GTIDSet %q", last.GTIDSet)
	}
}

func readHex(t *testing.T, name string) []byte {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		b, err := hex.DecodeString(line)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

// TestProtocolRefusals feeds events rowcast must refuse rather than guess at.
func TestProtocolRefusals(t *testing.T) {
	g := func() *replication.BinlogEvent {
		return &replication.BinlogEvent{Header: &replication.EventHeader{EventType: replication.MARIADB_GTID_EVENT, ServerID: 1},
			Event: &replication.MariadbGTIDEvent{GTID: mysql.MariadbGTID{DomainID: 0, ServerID: 1, SequenceNumber: 11}, Flags: 0x0c}}
	}
	q := func(stmt string) *replication.BinlogEvent {
		return &replication.BinlogEvent{Header: &replication.EventHeader{EventType: replication.QUERY_EVENT},
			Event: &replication.QueryEvent{Schema: []byte("app"), Query: []byte(stmt)}}
	}
	cases := []struct {
		name   string
		events []*replication.BinlogEvent
		err    error
		says   string
	}{
		{"statement DML", []*replication.BinlogEvent{g(), q("INSERT INTO t VALUES (1)")}, ErrUnsupported, "binlog_format=ROW"},
		{"XA", []*replication.BinlogEvent{{Header: &replication.EventHeader{EventType: replication.MARIADB_GTID_EVENT},
			Event: &replication.MariadbGTIDEvent{GTID: mysql.MariadbGTID{SequenceNumber: 3}, Flags: 0x40}}}, ErrUnsupported, "XA"},
		{"incident", []*replication.BinlogEvent{{Header: &replication.EventHeader{EventType: replication.INCIDENT_EVENT},
			Event: &replication.GenericEvent{}}}, ErrProtocol, "INCIDENT"},
		{"xid outside", []*replication.BinlogEvent{{Header: &replication.EventHeader{EventType: replication.XID_EVENT},
			Event: &replication.XIDEvent{}}}, ErrProtocol, "outside"},
		{"two GTIDs", []*replication.BinlogEvent{g(), g()}, ErrProtocol, "still open"},
		{"rollback after changes", []*replication.BinlogEvent{g(), q("CREATE TABLE x (id INT)"), q("ROLLBACK")}, ErrUnsupported, "rolls back"},
		{"anonymous", []*replication.BinlogEvent{{Header: &replication.EventHeader{EventType: replication.ANONYMOUS_GTID_EVENT},
			Event: &replication.GTIDEvent{SID: make([]byte, 16)}}}, ErrMasterSetup, "gtid_mode=ON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []*pipeline.Event
			err := handleAll(t, testStream(t, FlavorMariaDB, "0-1-10", &got), 4, tc.events...)
			if !errors.Is(err, tc.err) || !strings.Contains(fmt.Sprint(err), tc.says) {
				t.Errorf("%v, want %v saying %q", err, tc.err, tc.says)
			}
		})
	}
	// A rolled-back transaction that changed nothing publishes nothing and
	// takes no TxnSeq, but its GTID is executed.
	var got []*pipeline.Event
	s := testStream(t, FlavorMariaDB, "0-1-10", &got)
	if err := handleAll(t, s, 4, g(), q("SAVEPOINT a"), q("ROLLBACK TO a"), q("ROLLBACK")); err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 || s.seq != 5 || s.open || s.set.String() != "0-1-11" {
		t.Errorf("empty rollback: %d messages, seq %d, open %v, set %s", len(got), s.seq, s.open, s.set)
	}
}

// TestMySQLDDLTransaction: a MySQL DDL is a GTID event and one QUERY, no BEGIN
// and no XID; the QUERY ends the transaction.
func TestMySQLDDLTransaction(t *testing.T) {
	const sid = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	u := uuid.MustParse(sid)
	var got []*pipeline.Event
	s := testStream(t, FlavorMySQL, sid+":1-9", &got)
	gtid := func(gno int64) *replication.BinlogEvent {
		return &replication.BinlogEvent{Header: &replication.EventHeader{EventType: replication.GTID_EVENT, ServerID: 3},
			Event: &replication.GTIDEvent{SID: u[:], GNO: gno}}
	}
	query := func(schema, stmt string) *replication.BinlogEvent {
		return &replication.BinlogEvent{Header: &replication.EventHeader{EventType: replication.QUERY_EVENT},
			Event: &replication.QueryEvent{Schema: []byte(schema), Query: []byte(stmt)}}
	}
	if err := handleAll(t, s, 100,
		gtid(10), query("app", "CREATE TABLE t (id INT)"),
		gtid(11), query("rowcast", "CREATE TABLE ck (id INT)"), // bookkeeping: published nothing
		gtid(12), query("app", "DROP TABLE t"),
	); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || s.open {
		t.Fatalf("%d messages, open %v", len(got), s.open)
	}
	for i, want := range []struct{ gtid, set, stmt string }{
		{sid + ":10", sid + ":1-10", "CREATE TABLE t (id INT)"},
		{sid + ":12", sid + ":1-12", "DROP TABLE t"},
	} {
		ev := got[i]
		if (struct{ gtid, set, stmt string }{ev.GTID, ev.GTIDSet, ev.Statement}) != want || !isDDL(ev, "") ||
			ev.Database != "app" || ev.Pos != (pipeline.Position{Epoch: 1, TxnSeq: 5 + uint64(i), Last: true}) {
			t.Errorf("message %d: %+v", i, ev)
		}
	}
}
