package main

import (
	"context"
	"database/sql"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
)

// benchDB is the database of every workload, on the master and (created
// beforehand, outside the binlog) on both replicas. Its tables are
// benchkit's, the same rows as bench/source writes.
const benchDB = "rcbench"

// span is the binlog range a workload wrote.
type span struct {
	benchkit.Load
	Start, End string // master's gtid_binlog_pos before and after
	end        mysql.GTIDSet
	Took       time.Duration
}

func createTables(ctx context.Context, db *sql.DB, binlog bool, tables ...string) error {
	stmts := []string{}
	if !binlog {
		stmts = append(stmts, "SET SESSION sql_log_bin = 0")
	}
	stmts = append(stmts, "CREATE DATABASE IF NOT EXISTS "+benchDB)
	for _, t := range tables {
		stmts = append(stmts, benchkit.CreateTable(benchDB+"."+t))
	}
	return execAll(ctx, db, stmts...)
}

func gtidPos(ctx context.Context, s *server) (string, error) {
	return s.variable(ctx, "gtid_binlog_pos")
}

// write runs a workload on the master, over --conns connections, each
// transaction one autocommit statement, and returns its span.
func (b *bench) write(ctx context.Context, l benchkit.Load) (span, error) {
	sp := span{Load: l}
	var err error
	if sp.Start, err = gtidPos(ctx, b.master); err != nil {
		return sp, err
	}
	t0 := time.Now()
	if err := (benchkit.Writer{DB: b.master.root, Conns: b.o.conns}).Write(ctx, l); err != nil {
		return sp, err
	}
	sp.Took = time.Since(t0)
	if sp.End, err = gtidPos(ctx, b.master); err != nil {
		return sp, err
	}
	sp.end, err = mysql.ParseMariadbGTIDSet(sp.End)
	return sp, err
}

// containsGTIDs reports whether GTID set text have includes want.
func containsGTIDs(have string, want mysql.GTIDSet) bool {
	if have == "" {
		return false
	}
	h, err := mysql.ParseMariadbGTIDSet(have)
	if err != nil {
		return false
	}
	return h.Contain(want)
}
