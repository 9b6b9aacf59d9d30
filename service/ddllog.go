package service

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/mysql"
)

// DDLLog records, on a master of a master-master set, the DDL statements it
// ran itself, by table and seq_no of its own GTID domain, and how far its
// reader has read its own domain (sink/mysql/ddlguard.go: another master's
// DDL on the same table that had not seen one of them stops instead of
// applying). It writes out of the binlog, on a connection of its own.
type DDLLog struct {
	cfg    *config.Config
	domain uint32
	log    zerolog.Logger

	mu      sync.Mutex
	db      *sql.DB
	conn    *sql.Conn
	last    time.Time         // when the progress was last saved
	unsaved []*pipeline.Event // own DDL statements not recorded yet
}

// NewDDLLog returns the log of the unit's master (cfg.Master), or nil when
// cfg is not a master-master unit.
func NewDDLLog(cfg *config.Config, log zerolog.Logger) *DDLLog {
	n, ok := cfg.Node(cfg.Master)
	if !cfg.MasterMaster() || !ok || n.GTIDDomainID == nil {
		return nil
	}
	return &DDLLog{cfg: cfg, domain: *n.GTIDDomainID, log: log}
}

// ddlProgressEvery bounds how often the progress is saved.
const ddlProgressEvery = 200 * time.Millisecond

// Published takes each event the publisher emitted: an own DDL statement
// is recorded, and the progress saved with it and every ddlProgressEvery.
// A failure is logged and retried after ddlProgressEvery: sinks then wait.
func (l *DDLLog) Published(ctx context.Context, ev *pipeline.Event) {
	if l == nil || ev.GTIDSet == "" && ev.Kind != pipeline.KindDDL {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if ev.Kind == pipeline.KindDDL && l.ownGTID(ev.GTID) {
		l.unsaved = append(l.unsaved, ev)
	} else if time.Since(l.last) < ddlProgressEvery {
		return
	}
	l.last = time.Now() // a failure too: retried after ddlProgressEvery, not at every event
	if err := l.save(ctx, ev); err != nil {
		l.log.Warn().Err(err).Msg("master-master: could not record this master's DDL progress; the other masters' DDL waits")
		l.close()
	}
}

// ownGTID reports a GTID of the master's own domain.
func (l *DDLLog) ownGTID(gtid string) bool {
	g, err := gomysql.ParseMariadbGTID(gtid)
	return err == nil && g.DomainID == l.domain
}

// save records the own DDL statements not saved yet, then the progress
// ev's GTID set gives: never past a statement that is not recorded.
func (l *DDLLog) save(ctx context.Context, ev *pipeline.Event) error {
	if err := l.open(ctx); err != nil {
		return err
	}
	schema := l.cfg.Sink.BookkeepingSchema
	for len(l.unsaved) > 0 {
		d := l.unsaved[0]
		table, _ := sink.DDLTable(d.Database, d.Statement)
		if _, err := l.conn.ExecContext(ctx, "INSERT IGNORE INTO "+quoteID(schema)+".`own_ddl` VALUES (?, ?, ?, ?)", table, seqOf(d.GTID), d.GTID, d.Statement); err != nil {
			return err
		}
		l.unsaved = l.unsaved[1:]
	}
	seq, err := mysql.DomainSeq(ev.GTIDSet, l.domain)
	if err != nil || seq == 0 {
		return err
	}
	_, err = l.conn.ExecContext(ctx, "INSERT INTO "+quoteID(schema)+".`own_ddl_progress` VALUES (1, ?) ON DUPLICATE KEY UPDATE `seq` = GREATEST(`seq`, VALUES(`seq`))", seq)
	return err
}

func seqOf(gtid string) uint64 {
	g, err := gomysql.ParseMariadbGTID(gtid)
	if err != nil {
		return 0
	}
	return g.SequenceNumber
}

// open connects to the master, out of its binlog, and creates the tables.
func (l *DDLLog) open(ctx context.Context) error {
	if l.conn != nil {
		return nil
	}
	n, _ := l.cfg.Node(l.cfg.Master)
	db, err := n.Open(ctx, 10*time.Second)
	if err != nil {
		return err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return err
	}
	l.db, l.conn = db, conn
	for _, q := range append([]string{"SET SESSION sql_log_bin = 0"}, mysql.DDLLogTables(l.cfg.Sink.BookkeepingSchema)...) {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s on %s: %w", q, l.cfg.Master, err)
		}
	}
	return nil
}

func (l *DDLLog) close() {
	if l.conn != nil {
		l.conn.Close()
		l.db.Close()
		l.conn, l.db = nil, nil
	}
}

// Close drops the connection.
func (l *DDLLog) Close() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.close()
}
