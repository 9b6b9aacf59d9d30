package service

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/source"
)

// masterSettings are the server settings a master-master set must agree on.
type masterSettings struct {
	name             string
	domain           uint32
	strict           bool
	incr, offset     uint64
	noKey            []string // replicated tables without a primary key
	unreachableError error
}

// CheckMasters refuses to start a unit of a master-master topology whose
// masters would make it diverge: a GTID domain other than the config's,
// auto_increment settings whose sequences overlap, or a replicated table
// without a primary key (rows of another master could not be matched). A
// master that does not answer is left out, with a warning: the others go on
// without it.
func CheckMasters(ctx context.Context, cfg *config.Config, log zerolog.Logger) error {
	var all []masterSettings
	var problems []string
	for _, m := range cfg.Masters {
		s := readMaster(ctx, cfg, m)
		if s.unreachableError != nil {
			log.Warn().Err(s.unreachableError).Str("node", m).Msg("master-master: a master does not answer; its settings are checked when it does")
			continue
		}
		n, _ := cfg.Node(m)
		if n.GTIDDomainID != nil && s.domain != *n.GTIDDomainID {
			problems = append(problems, fmt.Sprintf("%s: @@gtid_domain_id is %d, the config says %d: SET GLOBAL gtid_domain_id=%d on it (and gtid_domain_id=%d in its my.cnf), or correct nodes[].gtid_domain_id",
				m, s.domain, *n.GTIDDomainID, *n.GTIDDomainID, *n.GTIDDomainID))
		}
		if !s.strict {
			problems = append(problems, fmt.Sprintf("%s: gtid_strict_mode is OFF: SET GLOBAL gtid_strict_mode=ON (and in its my.cnf), so that a transaction applied twice is refused by the server too", m))
		}
		for _, t := range s.noKey {
			problems = append(problems, fmt.Sprintf("%s: table %s has no primary key: in a master-master set rows are matched by key across masters; add one (ALTER TABLE %s ADD PRIMARY KEY (...)) or leave the table out with source.exclude", m, t, t))
		}
		all = append(all, s)
	}
	problems = append(problems, autoIncrementOverlaps(all, len(cfg.Masters))...)
	if len(problems) > 0 {
		return fmt.Errorf("master-master: the masters would diverge:\n  - %s", strings.Join(problems, "\n  - "))
	}
	return nil
}

// autoIncrementOverlaps: every master must use the same
// auto_increment_increment, at least the number of masters, and an offset of
// its own, so that no two masters generate the same key.
func autoIncrementOverlaps(all []masterSettings, masters int) []string {
	var problems []string
	byOffset := map[uint64]string{}
	for i, s := range all {
		fix := fmt.Sprintf("SET GLOBAL auto_increment_increment=%d, auto_increment_offset=%d on %s (and in its my.cnf)", masters, i+1, s.name)
		switch {
		case s.incr < uint64(masters):
			problems = append(problems, fmt.Sprintf("%s: auto_increment_increment is %d, fewer than the %d masters: their AUTO_INCREMENT keys would collide; %s", s.name, s.incr, masters, fix))
		case s.incr != all[0].incr:
			problems = append(problems, fmt.Sprintf("%s: auto_increment_increment is %d, %s's is %d: with different increments the sequences meet; %s", s.name, s.incr, all[0].name, all[0].incr, fix))
		case byOffset[s.offset%s.incr] != "":
			problems = append(problems, fmt.Sprintf("%s: auto_increment_offset %d is %s's too: both generate the same keys; %s", s.name, s.offset, byOffset[s.offset%s.incr], fix))
		}
		byOffset[s.offset%max(s.incr, 1)] = s.name
	}
	return problems
}

func readMaster(ctx context.Context, cfg *config.Config, name string) masterSettings {
	s := masterSettings{name: name}
	n, _ := cfg.Node(name)
	db, err := n.Open(ctx, 5*time.Second)
	if err != nil {
		s.unreachableError = err
		return s
	}
	defer db.Close()
	err = db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_domain_id, @@GLOBAL.gtid_strict_mode, @@GLOBAL.auto_increment_increment, @@GLOBAL.auto_increment_offset").
		Scan(&s.domain, &s.strict, &s.incr, &s.offset)
	if err != nil {
		s.unreachableError = fmt.Errorf("read the GTID and auto_increment settings of %s: %w", name, err)
		return s
	}
	s.noKey, err = tablesWithoutKey(ctx, db, cfg)
	if err != nil {
		s.unreachableError = errors.Join(fmt.Errorf("list the tables of %s", name), err)
	}
	return s
}

// noKeySQL lists the base tables outside the system schemas that have no
// primary key.
const noKeySQL = `SELECT t.TABLE_SCHEMA, t.TABLE_NAME FROM information_schema.TABLES t
	LEFT JOIN information_schema.TABLE_CONSTRAINTS c ON c.TABLE_SCHEMA = t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME AND c.CONSTRAINT_TYPE = 'PRIMARY KEY'
	WHERE t.TABLE_TYPE = 'BASE TABLE' AND c.CONSTRAINT_NAME IS NULL
	AND t.TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') AND t.TABLE_SCHEMA <> ?
	ORDER BY 1, 2`

// publishedOf is the reader's rule of which tables the unit's master
// publishes (source.Published).
func publishedOf(cfg *config.Config) (func(db, table string) bool, error) {
	sc, err := cfg.SourceConfig(cfg.Master)
	if err != nil {
		return nil, err
	}
	return source.Published(sc)
}

// tablesWithoutKey are the published tables (the reader's rule) without a
// primary key.
func tablesWithoutKey(ctx context.Context, db *sql.DB, cfg *config.Config) ([]string, error) {
	published, err := publishedOf(cfg)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, noKeySQL, cfg.Sink.BookkeepingSchema)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var schema, table string
		if err := rows.Scan(&schema, &table); err != nil {
			return nil, err
		}
		if published(schema, table) {
			out = append(out, schema+"."+table)
		}
	}
	return out, rows.Err()
}
