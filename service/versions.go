package service

import (
	"context"
	"crypto/sha1"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/sink/mysql"
)

// Row versions of a master-master set that resolves conflicts by version
// (sink/mysql/versions.go has the argument): each unit keeps, on its own
// master, the versions table, the procedure that computes a write's
// version and the triggers of every replicated table with a key, all out
// of the binlog (each master has its own: the priority node's triggers
// raise the level).

// versionProc computes and saves the version of a local write of key k of
// table tn: one more than the key's version here if the clock is behind it,
// the level raised by bump, this session's GTID domain. It reads that
// version with FOR UPDATE: the newest committed one (a sink may have saved
// a newer one since the writer's snapshot), locked until the write commits.
const versionProc = "CREATE OR REPLACE PROCEDURE %[1]s.`rowcast_version`(IN tn VARCHAR(200), IN k VARBINARY(32), IN del TINYINT, IN bump TINYINT) " +
	"MODIFIES SQL DATA BEGIN " +
	"DECLARE l INT UNSIGNED DEFAULT 0; DECLARE t BIGINT DEFAULT 0; " +
	"SELECT COALESCE(MAX(`lvl`), 0), COALESCE(MAX(`ts`), 0) INTO l, t FROM %[1]s.`row_versions` WHERE `table_name` = tn AND `row_key` = k FOR UPDATE; " +
	"INSERT INTO %[1]s.`row_versions` VALUES (tn, k, l + bump, GREATEST(CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED), t + 1), @@gtid_domain_id, del) " +
	"ON DUPLICATE KEY UPDATE `lvl` = VALUES(`lvl`), `ts` = VALUES(`ts`), `domain` = VALUES(`domain`), `deleted` = VALUES(`deleted`); END"

// versionedTable is a replicated table with a primary key whose conflicts
// are resolved by version.
type versionedTable struct {
	db, name string
	key      []string // primary key columns, in order
	bump     int      // 1 when this master wins the table's conflicts (policy priority)
}

// InstallVersions creates the versions table, the procedure and the
// triggers on the unit's master (cfg.Master), replacing triggers whose body
// changed (a new key, another policy).
func InstallVersions(ctx context.Context, cfg *config.Config, log zerolog.Logger) error {
	n, _ := cfg.Node(cfg.Master)
	db, err := n.Open(ctx, 10*time.Second)
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := installVersions(ctx, conn, cfg, log); err != nil {
		return fmt.Errorf("master-master: install the row version triggers on %s: %w", cfg.Master, err)
	}
	return nil
}

func installVersions(ctx context.Context, conn *sql.Conn, cfg *config.Config, log zerolog.Logger) error {
	schema := quoteID(cfg.Sink.BookkeepingSchema)
	for _, q := range []string{"SET SESSION sql_log_bin = 0", "CREATE DATABASE IF NOT EXISTS " + schema,
		mysql.VersionsTableDDL(cfg.Sink.BookkeepingSchema), fmt.Sprintf(versionProc, schema)} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%.60s...: %w", q, err)
		}
	}
	tables, err := versionedTables(ctx, conn, cfg)
	if err != nil {
		return err
	}
	have, err := installedTriggers(ctx, conn)
	if err != nil {
		return err
	}
	made := 0
	for _, t := range tables {
		for _, tr := range triggersOf(t, schema) {
			if have[t.db+"."+tr.name] == tr.body {
				continue
			}
			if _, err := conn.ExecContext(ctx, tr.create(t)); err != nil {
				return fmt.Errorf("trigger %s on %s.%s: %w", tr.name, t.db, t.name, err)
			}
			made++
		}
	}
	if made > 0 {
		log.Info().Int("triggers", made).Int("tables", len(tables)).Str("master", cfg.Master).Msg("master-master: row version triggers installed")
	}
	return nil
}

// KeepVersions installs the triggers again every interval, for tables
// created or re-keyed since, until ctx ends.
func KeepVersions(ctx context.Context, cfg *config.Config, interval time.Duration, log zerolog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := InstallVersions(ctx, cfg, log); err != nil && ctx.Err() == nil {
				log.Warn().Err(err).Msg("master-master: row version triggers not refreshed; retrying")
			}
		}
	}
}

// versionedTables lists the replicated tables with a key whose policy is
// not stop.
func versionedTables(ctx context.Context, conn *sql.Conn, cfg *config.Config) ([]versionedTable, error) {
	published, err := publishedOf(cfg)
	if err != nil {
		return nil, err
	}
	rows, err := conn.QueryContext(ctx, "SELECT k.TABLE_SCHEMA, k.TABLE_NAME, k.COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE k "+
		"JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = k.TABLE_SCHEMA AND t.TABLE_NAME = k.TABLE_NAME AND t.TABLE_TYPE = 'BASE TABLE' "+
		"WHERE k.CONSTRAINT_NAME = 'PRIMARY' AND k.TABLE_SCHEMA <> ? ORDER BY k.TABLE_SCHEMA, k.TABLE_NAME, k.ORDINAL_POSITION", cfg.Sink.BookkeepingSchema)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []versionedTable
	for rows.Next() {
		var db, name, col string
		if err := rows.Scan(&db, &name, &col); err != nil {
			return nil, err
		}
		if k := len(out) - 1; k >= 0 && out[k].db == db && out[k].name == name {
			out[k].key = append(out[k].key, col)
			continue
		}
		policy, winner := cfg.ConflictPolicy(db, name)
		if policy == config.PolicyStop || !published(db, name) {
			continue
		}
		t := versionedTable{db: db, name: name, key: []string{col}}
		if policy == config.PolicyPriority && winner == cfg.Master {
			t.bump = 1
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// installedTriggers maps "db.trigger" to the body of rowcast's triggers.
func installedTriggers(ctx context.Context, conn *sql.Conn) (map[string]string, error) {
	rows, err := conn.QueryContext(ctx, "SELECT TRIGGER_SCHEMA, TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE TRIGGER_NAME LIKE 'rcv\\_%'")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var db, name, body string
		if err := rows.Scan(&db, &name, &body); err != nil {
			return nil, err
		}
		out[db+"."+name] = body
	}
	return out, rows.Err()
}

// trigger is one of a table's three version triggers.
type trigger struct {
	name, event, body string
}

func (tr trigger) create(t versionedTable) string {
	return fmt.Sprintf("CREATE OR REPLACE TRIGGER %s.%s AFTER %s ON %s.%s FOR EACH ROW %s",
		quoteID(t.db), quoteID(tr.name), tr.event, quoteID(t.db), quoteID(t.name), tr.body)
}

// triggersOf are t's triggers: after each insert, update and delete they
// save the version of the key written (and of the old key an update moved
// away from, as a delete), unless the sink applies the change
// (@rowcast_applying: it saves the origin's version itself).
func triggersOf(t versionedTable, schema string) []trigger {
	h := sha1.Sum([]byte(t.name))
	suffix := hex.EncodeToString(h[:4])
	tn := "'" + strings.ReplaceAll(strings.ReplaceAll(t.db+"."+t.name, `\`, `\\`), "'", "''") + "'"
	call := func(key string, del int) string {
		return fmt.Sprintf("CALL %s.`rowcast_version`(%s, %s, %d, %d);", schema, tn, key, del, t.bump)
	}
	guard := func(s string) string { return "BEGIN IF @rowcast_applying IS NULL THEN " + s + " END IF; END" }
	oldKey, newKey := keyExpr("OLD", t.key), keyExpr("NEW", t.key)
	return []trigger{
		{name: "rcv_i_" + suffix, event: "INSERT", body: guard(call(newKey, 0))},
		{name: "rcv_u_" + suffix, event: "UPDATE", body: guard("IF " + oldKey + " <> " + newKey + " THEN " + call(oldKey, 1) + " END IF; " + call(newKey, 0))},
		{name: "rcv_d_" + suffix, event: "DELETE", body: guard(call(oldKey, 1))},
	}
}

// keyExpr is the 32-byte key of a row: SHA-256 of its key columns' bytes,
// each prefixed with its length.
func keyExpr(row string, cols []string) string {
	parts := make([]string, 0, 3*len(cols))
	for _, c := range cols {
		v := "CAST(" + row + "." + quoteID(c) + " AS BINARY)"
		parts = append(parts, "LENGTH("+v+")", "':'", v)
	}
	return "UNHEX(SHA2(CONCAT(" + strings.Join(parts, ", ") + "), 256))"
}

func quoteID(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
