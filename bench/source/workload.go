package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
)

// benchTable is the table both workloads write (benchkit.CreateTable).
const benchTable = "bench_rows"

// span is the binlog range of one workload: the master's GTID set before its
// first transaction, after its last one, and the GTID of that last
// transaction, which is where every measurement stops.
type span struct {
	Name     string
	Rows     int
	Txns     int
	Start    string
	End      string
	Last     mysql.MariadbGTID
	LastText string
	Took     time.Duration
}

// master is the bench database on db1.
type master struct {
	db     *sql.DB
	name   string // database name, unique per run
	flavor string
	conns  int // connections writing the workloads
}

func openMaster(ctx context.Context, o *options) (*master, error) {
	dsn := fmt.Sprintf("%s:%s@tcp(%s)/?interpolateParams=true&maxAllowedPacket=0&parseTime=false", o.dbUser, o.dbPassword, o.dbAddr)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(o.insertConns + 2)
	db.SetMaxIdleConns(o.insertConns + 2)
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to db1 at %s as %s (start the stack with scripts/stack up): %w", o.dbAddr, o.dbUser, err)
	}
	if !strings.Contains(version, "MariaDB") {
		db.Close()
		return nil, fmt.Errorf("db1 at %s runs %s: this benchmark reads MariaDB GTIDs (@@last_gtid); point it at the stack's MariaDB master", o.dbAddr, version)
	}
	m := &master{db: db, flavor: mysql.MariaDBFlavor, conns: o.insertConns,
		name: fmt.Sprintf("rcbench_%s_%04x", time.Now().UTC().Format("20060102_150405"), rand.Uint32()&0xffff)}
	return m, nil
}

// setup creates the database and the table, and starts a new binlog file so
// that the master does not scan an old file's events to find the start GTID
// (that cost would be the same for every measurement, but it is not decoding).
func (m *master) setup(ctx context.Context) error {
	stmts := []string{
		"CREATE DATABASE " + quoteIdent(m.name),
		benchkit.CreateTable(quoteIdent(m.name) + "." + benchTable),
		"FLUSH BINARY LOGS",
	}
	for _, s := range stmts {
		if _, err := m.db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%.40s...: %w", s, err)
		}
	}
	return nil
}

// drop removes the bench database; a failure is only a warning.
func (m *master) drop(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := m.db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(m.name)); err != nil {
		logf("warning: drop database %s: %v", m.name, err)
	}
}

func (m *master) gtidPos(ctx context.Context) (string, error) {
	var pos string
	err := m.db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&pos)
	return pos, err
}

// load is the workload of kind: every row inserted, or updated once, --txn
// rows per transaction.
func (o *options) load(kind string) benchkit.Load {
	return benchkit.Load{Name: kind, Table: benchTable, Kind: kind, Rows: o.rows, Txn: o.txn}
}

// write runs a workload over m.conns connections and returns its binlog
// span.
func (m *master) write(ctx context.Context, l benchkit.Load) (span, error) {
	sp := span{Name: l.Name, Rows: l.Rows, Txns: l.Txns()}
	var err error
	if sp.Start, err = m.gtidPos(ctx); err != nil {
		return sp, err
	}
	start := time.Now()
	lasts := make([]string, m.conns)
	w := benchkit.Writer{DB: m.db, Conns: m.conns,
		Open: func(ctx context.Context, c *sql.Conn) error {
			_, err := c.ExecContext(ctx, "USE "+quoteIdent(m.name))
			return err
		},
		Close: func(ctx context.Context, c *sql.Conn, i int) error {
			return c.QueryRowContext(ctx, "SELECT @@last_gtid").Scan(&lasts[i])
		},
	}
	if err := w.Write(ctx, l); err != nil {
		return sp, err
	}
	sp.Took = time.Since(start)
	if err := sp.setLast(lasts); err != nil {
		return sp, err
	}
	sp.End, err = m.gtidPos(ctx)
	return sp, err
}

// setLast sets the span's last transaction from the connections' last
// ones: the one with the highest sequence number (one domain) is the
// workload's last in commit order.
func (sp *span) setLast(lasts []string) error {
	for _, s := range lasts {
		if s == "" {
			continue
		}
		g, err := mysql.ParseMariadbGTID(s)
		if err != nil {
			return fmt.Errorf("@@last_gtid %q: %w", s, err)
		}
		if sp.LastText != "" && g.DomainID != sp.Last.DomainID {
			return fmt.Errorf("workload transactions in two GTID domains (%s, %s): run it on one connection domain", sp.LastText, s)
		}
		if sp.LastText == "" || g.SequenceNumber > sp.Last.SequenceNumber {
			sp.Last, sp.LastText = *g, s
		}
	}
	return nil
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
