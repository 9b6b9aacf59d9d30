package source

import (
	"context"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/pipeline"
)

// MariaDB GTID event flags that go-mysql does not name
// (https://mariadb.com/kb/en/gtid_event/).
const (
	mariaFlPreparedXA  = 0x40
	mariaFlCompletedXA = 0x80
)

// stream turns binlog events into pipeline events, one source transaction at a
// time. It holds at most one message back: the last message of a transaction
// is only known when XID or COMMIT arrives, and it must carry Pos.Last and the
// GTID set, so every message is emitted when the next one is ready.
type stream struct {
	flavor      string
	epoch       uint64
	emit        func(ctx context.Context, ev *pipeline.Event) error
	onPosition  func(set string, nextSeq uint64) // after every complete transaction
	onHeartbeat func(serverTime time.Time, gtidSet, file string)
	tables      *tableCache
	filter      *filter
	snaps       *snapQueue // snapshot jobs, emitted between transactions
	log         zerolog.Logger
	unknownVars map[int]bool // status variable codes logged as unknown
	skipGTID    string       // the transaction to leave out (Config.SkipGTID), until it is
	onSkipped   func()       // after skipGTID was left out
	accounts    bool         // Config.ReplicateAccounts
	onWithheld  func()       // after an account statement was not published

	seq    uint64        // TxnSeq of the next published transaction
	set    mysql.GTIDSet // master's executed set after the last complete transaction
	file   string        // current binlog file, from ROTATE events
	crcLen int           // checksum bytes at the end of each event (FORMAT_DESCRIPTION)

	// The open transaction.
	open       bool
	gtid       string
	addGTID    func() error // adds the open transaction's GTID to set
	serverID   uint32
	commitTime time.Time
	standalone bool // ends after its one statement (a DDL)
	skipping   bool // the transaction is skipGTID: nothing of it is published
	explicit   bool // opened by a BEGIN query (MySQL)
	row        uint64
	pending    *pipeline.Event
}

// at names a binlog position for error messages.
func (s *stream) at(offset uint32) string {
	g := s.gtid
	if !s.open {
		g = "(between transactions)"
	}
	return fmt.Sprintf("%s:%d gtid %s", s.file, offset, g)
}

// handle processes one binlog event. offset is where the event starts; for the
// events inside a compressed transaction payload it is the payload's offset.
func (s *stream) handle(ctx context.Context, be *replication.BinlogEvent, offset uint32, crcLen int) error {
	h := be.Header
	switch e := be.Event.(type) {
	case *replication.RotateEvent:
		// Both the fake ROTATE that opens every dump (header timestamp and
		// log_pos 0, LOG_EVENT_ARTIFICIAL_F) and the real one that ends a file
		// name the file the next events come from; neither is a transaction
		// boundary nor carries a commit time.
		s.file = string(e.NextLogName)
	case *replication.FormatDescriptionEvent:
		s.crcLen = checksumLen(e)
	case *replication.MariadbGTIDEvent:
		return s.beginMariaDB(h, e, offset)
	case *replication.GtidTaggedLogEvent:
		return s.beginMySQL(h, &e.GTIDEvent, offset)
	case *replication.GTIDEvent:
		return s.mysqlGTID(h, e, offset)
	case *replication.QueryEvent:
		return s.query(ctx, h, e, offset)
	case *replication.XIDEvent:
		return s.xid(ctx, offset)
	case *replication.TableMapEvent:
		return s.tableMap(ctx, be, e, offset, crcLen)
	case *replication.RowsEvent:
		return s.rows(ctx, h, e, offset)
	case *replication.TransactionPayloadEvent:
		return s.payload(ctx, e, offset)
	case *replication.HeartbeatEvent:
		s.heartbeat(h)
	case *replication.BeginLoadQueryEvent, *replication.ExecuteLoadQueryEvent:
		return s.statementLoad(offset)
	case *replication.GenericEvent:
		return s.generic(h, offset)
	}
	// Everything else carries no row data for a ROW binlog: FORMAT_DESCRIPTION,
	// MariaDB GTID_LIST / BINLOG_CHECKPOINT / ANNOTATE_ROWS, MySQL
	// PREVIOUS_GTIDS / ROWS_QUERY, STOP, and INTVAR / RAND / USER_VAR, which
	// only precede a statement-based query (refused in query()).
	return nil
}

// checksumLen is the length of the checksum at the end of the events a
// FORMAT_DESCRIPTION event announces.
func checksumLen(e *replication.FormatDescriptionEvent) int {
	if e.ChecksumAlgorithm == replication.BINLOG_CHECKSUM_ALG_CRC32 {
		return replication.BinlogChecksumLength
	}
	return 0
}

func (s *stream) beginMariaDB(h *replication.EventHeader, e *replication.MariadbGTIDEvent, offset uint32) error {
	if e.Flags&(mariaFlPreparedXA|mariaFlCompletedXA) != 0 {
		return fmt.Errorf("%w: XA transaction %s at %s: rowcast does not replicate XA transactions; stop using XA on the master or exclude the table", ErrUnsupported, e.GTID.String(), s.at(offset))
	}
	g := e.GTID
	return s.begin(h, g.String(), func() error { return s.set.(*mysql.MariadbGTIDSet).AddSet(&g) }, e.IsStandalone(), offset)
}

// mysqlGTID begins a MySQL transaction; an anonymous one means GTIDs are off.
func (s *stream) mysqlGTID(h *replication.EventHeader, e *replication.GTIDEvent, offset uint32) error {
	if h.EventType == replication.ANONYMOUS_GTID_EVENT {
		return fmt.Errorf("%w: anonymous transaction at %s:%d: set gtid_mode=ON and enforce_gtid_consistency=ON on the master", ErrMasterSetup, s.file, offset)
	}
	return s.beginMySQL(h, e, offset)
}

func (s *stream) xid(ctx context.Context, offset uint32) error {
	if !s.open {
		return fmt.Errorf("%w: XID outside a transaction at %s", ErrProtocol, s.at(offset))
	}
	return s.commit(ctx)
}

func (s *stream) tableMap(ctx context.Context, be *replication.BinlogEvent, e *replication.TableMapEvent, offset uint32, crcLen int) error {
	if s.skipping {
		return nil
	}
	body := be.RawData
	if len(body) >= replication.EventHeaderSize+crcLen {
		body = body[replication.EventHeaderSize : len(body)-crcLen]
	}
	if _, err := s.tables.tableMap(ctx, e, body); err != nil {
		return fmt.Errorf("table map at %s: %w", s.at(offset), err)
	}
	return nil
}

// payload handles a MySQL 8.0.20+ compressed transaction
// (binlog_transaction_compression): the GTID event stays outside, the rest
// of the transaction (BEGIN, TABLE_MAP, ROWS, XID) is one zstd payload that
// go-mysql decompresses and decodes into e.Events. They are handled as if
// they had arrived one by one, located at the payload event. The payload is
// held whole in memory, as large as the compressed transaction.
func (s *stream) payload(ctx context.Context, e *replication.TransactionPayloadEvent, offset uint32) error {
	for _, inner := range e.Events {
		if err := s.handle(ctx, inner, offset, 0); err != nil {
			return err
		}
	}
	return nil
}

func (s *stream) heartbeat(h *replication.EventHeader) {
	if s.open || s.onHeartbeat == nil {
		return
	}
	t := time.Now().UTC()
	if h.Timestamp != 0 {
		t = time.Unix(int64(h.Timestamp), 0).UTC()
	}
	s.onHeartbeat(t, s.set.String(), "")
}

// generic refuses the events go-mysql does not decode that mean rowcast
// cannot go on.
func (s *stream) generic(h *replication.EventHeader, offset uint32) error {
	switch h.EventType {
	case replication.INCIDENT_EVENT:
		return fmt.Errorf("%w: the master wrote an INCIDENT event at %s (changes may be missing from its binlog): check the master's error log, re-seed the replicas from a snapshot, or move the start position past it on purpose", ErrProtocol, s.at(offset))
	case replication.XA_PREPARE_LOG_EVENT:
		return fmt.Errorf("%w: XA transaction at %s: rowcast does not replicate XA transactions", ErrUnsupported, s.at(offset))
	}
	return nil
}

func (s *stream) beginMySQL(h *replication.EventHeader, e *replication.GTIDEvent, offset uint32) error {
	u, err := uuid.FromBytes(e.SID)
	if err != nil {
		return fmt.Errorf("%w: GTID event with a bad server uuid at %s:%d: %v", ErrProtocol, s.file, offset, err)
	}
	g := u.String() + ":" + strconv.FormatInt(e.GNO, 10)
	if tag := e.Tag.String(); tag != "" {
		g = u.String() + ":" + tag + ":" + strconv.FormatInt(e.GNO, 10)
	}
	tag, gno := e.Tag, e.GNO
	return s.begin(h, g, func() error {
		s.set.(*mysql.MysqlGTIDSet).AddGTIDWithTag(u, tag, gno)
		return nil
	}, false, offset)
}

func (s *stream) begin(h *replication.EventHeader, gtid string, add func() error, standalone bool, offset uint32) error {
	if s.open {
		return fmt.Errorf("%w: GTID %s starts at %s:%d while transaction %s is still open", ErrProtocol, gtid, s.file, offset, s.gtid)
	}
	s.open, s.gtid, s.addGTID = true, gtid, add
	s.serverID = h.ServerID
	s.commitTime = time.Unix(int64(h.Timestamp), 0).UTC()
	s.standalone, s.explicit = standalone, false
	s.skipping = s.skipGTID != "" && gtid == s.skipGTID
	s.row, s.pending = 0, nil
	return nil
}

func (s *stream) query(ctx context.Context, h *replication.EventHeader, e *replication.QueryEvent, offset uint32) error {
	stmt := string(e.Query)
	if !s.open {
		return fmt.Errorf("%w: QUERY event outside a GTID transaction at %s: set gtid_mode=ON (MySQL)", ErrProtocol, s.at(offset))
	}
	switch class := classify(stmt); class {
	case stmtBegin:
		s.explicit = true
	case stmtSavepoint:
	case stmtCommit:
		return s.commit(ctx)
	case stmtRollback, stmtRollbackTo:
		return s.rollback(ctx, class, offset)
	case stmtXA:
		return fmt.Errorf("%w: XA statement at %s: rowcast does not replicate XA transactions", ErrUnsupported, s.at(offset))
	case stmtDML:
		return s.statementDML(string(e.Schema), stmt, offset)
	default:
		return s.ddl(ctx, string(e.Schema), stmt, s.session(h, e), offset)
	}
	return nil
}

// rollback handles a ROLLBACK, logged only when a transaction that changed a
// non-transactional table rolls back: the master keeps the non-transactional
// changes and drops the others, which the row events do not tell apart.
func (s *stream) rollback(ctx context.Context, class stmtClass, offset uint32) error {
	if s.row > 0 {
		return fmt.Errorf("%w: transaction %s at %s rolls back after changing non-transactional tables: replicas cannot follow it faithfully; re-seed the affected tables", ErrUnsupported, s.gtid, s.at(offset))
	}
	if class == stmtRollback {
		return s.commit(ctx)
	}
	return nil
}

// ddl publishes a DDL statement run in schema under session, unless
// filtered out, and ends the transaction when the statement is one of its
// own.
func (s *stream) ddl(ctx context.Context, schema, stmt string, session *pipeline.Session, offset uint32) error {
	s.tables.invalidate()
	publish := s.filter.ddl(schema, stmt)
	if isAccountStatement(stmt) {
		stmt, publish = s.accountStatement(stmt, session, offset)
	}
	if publish && !s.skipping {
		if !utf8.ValidString(stmt) {
			return fmt.Errorf("%w: DDL at %s is not valid UTF-8 (client character set?): run DDL with a utf8mb4 connection", ErrUnsupported, s.at(offset))
		}
		ev := s.event(pipeline.KindDDL, offset)
		ev.Database, ev.Statement, ev.Session = schema, stmt, session
		if err := s.add(ctx, ev); err != nil {
			return err
		}
	}
	if s.standalone || (s.flavor == FlavorMySQL && !s.explicit) {
		return s.commit(ctx)
	}
	return nil
}

func (s *stream) rows(ctx context.Context, h *replication.EventHeader, e *replication.RowsEvent, offset uint32) error {
	if !s.open {
		return fmt.Errorf("%w: rows event outside a transaction at %s", ErrProtocol, s.at(offset))
	}
	if s.skipping {
		return nil
	}
	te := s.tables.byID[e.TableID]
	if te == nil {
		return fmt.Errorf("%w: rows event for table id %d without its TABLE_MAP at %s", ErrProtocol, e.TableID, s.at(offset))
	}
	if te.skip {
		return nil
	}
	op, err := s.rowsOp(h, te, e, offset)
	if err != nil {
		return err
	}
	step := 1
	if op == pipeline.OpUpdate {
		step = 2
	}
	// One message a row change, made here rather than in a function a row:
	// this loop runs for every row read.
	for i := 0; i+step <= len(e.Rows); i += step {
		ev := s.event(pipeline.KindRow, offset)
		ev.Table, ev.Op = te.table, op
		img, err := s.convert(te, e.Rows[i], offset)
		if err != nil {
			return err
		}
		switch op {
		case pipeline.OpInsert:
			ev.After = img
		case pipeline.OpDelete:
			ev.Before = img
		default:
			ev.Before = img
			if ev.After, err = s.convert(te, e.Rows[i+1], offset); err != nil {
				return err
			}
		}
		if err := s.add(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}

// rowsOp is the operation of a rows event, which must hold full row images.
func (s *stream) rowsOp(h *replication.EventHeader, te *tableEntry, e *replication.RowsEvent, offset uint32) (pipeline.Op, error) {
	op, ok := rowsOpOf(h.EventType)
	if !ok {
		return 0, fmt.Errorf("%w: %s of %s at %s carries partial JSON: set binlog_row_value_options='' on the master", ErrUnsupported, h.EventType, te.name(), s.at(offset))
	}
	for _, sk := range e.SkippedColumns {
		if len(sk) > 0 {
			return 0, fmt.Errorf("%w: row image of %s at %s lacks %d columns (a session used binlog_row_image other than FULL): set binlog_row_image=FULL globally and in every session, then re-seed %s", ErrMasterSetup, te.name(), s.at(offset), len(sk), te.name())
		}
	}
	return op, nil
}

// rowsOpOf is the operation of a rows event type; false for
// PARTIAL_UPDATE_ROWS_EVENT.
func rowsOpOf(t replication.EventType) (pipeline.Op, bool) {
	switch t {
	case replication.WRITE_ROWS_EVENTv0, replication.WRITE_ROWS_EVENTv1, replication.WRITE_ROWS_EVENTv2,
		replication.MARIADB_WRITE_ROWS_COMPRESSED_EVENT_V1:
		return pipeline.OpInsert, true
	case replication.UPDATE_ROWS_EVENTv0, replication.UPDATE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv2,
		replication.MARIADB_UPDATE_ROWS_COMPRESSED_EVENT_V1:
		return pipeline.OpUpdate, true
	case replication.DELETE_ROWS_EVENTv0, replication.DELETE_ROWS_EVENTv1, replication.DELETE_ROWS_EVENTv2,
		replication.MARIADB_DELETE_ROWS_COMPRESSED_EVENT_V1:
		return pipeline.OpDelete, true
	}
	return 0, false
}

// convert turns a row image as go-mysql decoded it into pipeline values, in
// place: the RowsEvent is the stream's alone once received.
func (s *stream) convert(te *tableEntry, row []any, offset uint32) ([]any, error) {
	t := te.table
	if len(row) != len(te.conv) {
		return nil, fmt.Errorf("%w: row of %s.%s has %d columns, its TABLE_MAP %d, at %s", ErrProtocol, t.Database, t.Name, len(row), len(te.conv), s.at(offset))
	}
	for j, v := range row {
		if v == nil {
			continue
		}
		var err error
		if row[j], err = te.conv[j](v); err != nil {
			return nil, fmt.Errorf("decode %s.%s.%s at %s: %w", t.Database, t.Name, t.Columns[j].Name, s.at(offset), err)
		}
	}
	return row, nil
}

func (s *stream) event(kind pipeline.Kind, offset uint32) *pipeline.Event {
	return &pipeline.Event{Kind: kind, GTID: s.gtid, Flavor: s.flavor, ServerID: s.serverID,
		CommitTime: s.commitTime, File: s.file, Offset: offset}
}

// add numbers a message and emits the one held back before it.
func (s *stream) add(ctx context.Context, ev *pipeline.Event) error {
	ev.Pos = pipeline.Position{Epoch: s.epoch, TxnSeq: s.seq, Row: s.row}
	s.row++
	prev := s.pending
	s.pending = ev
	if prev != nil {
		if err := s.emit(ctx, prev); err != nil {
			return fmt.Errorf("emit %s: %w", prev.Pos, err)
		}
	}
	return nil
}

// nothingPublished ends a transaction of which nothing was published: one
// skipped on request is recorded; one all filtered out is the caller's
// chance to publish a heartbeat. On a master busy with such writes no
// heartbeat event ever comes: without one sinks would see no progress and
// report a growing lag.
func (s *stream) nothingPublished(ctx context.Context, set string) error {
	switch {
	case s.skipping:
		return s.recordSkip(ctx, set)
	case s.onHeartbeat != nil:
		s.onHeartbeat(s.commitTime, set, s.file)
	}
	return nil
}

// commit ends the open transaction: its GTID joins the set, and its last
// message, if any, is flagged and emitted. A transaction that published
// nothing takes no TxnSeq.
func (s *stream) commit(ctx context.Context) error {
	if err := s.addGTID(); err != nil {
		return fmt.Errorf("%w: add GTID %s to %s: %v", ErrProtocol, s.gtid, s.set, err)
	}
	set := s.set.String()
	last := s.pending
	s.open, s.pending = false, nil
	if last != nil {
		last.Pos.Last, last.GTIDSet = true, set
		if err := s.emit(ctx, last); err != nil {
			return fmt.Errorf("emit %s: %w", last.Pos, err)
		}
		s.seq++
	} else if err := s.nothingPublished(ctx, set); err != nil {
		return err
	}
	s.onPosition(set, s.seq)
	if q := s.snaps; q != nil && q.active.Load() {
		return s.snapshotsDue(ctx)
	}
	return nil
}
