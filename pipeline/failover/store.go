package failover

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/pipeline"
)

// store keeps the promotion bookkeeping of a topic in a node's bookkeeping
// schema (the one holding the sink checkpoints; never replicated):
//
//	<schema>.epochs           one row per epoch record written to the topic:
//	                          an index, so that finding the current master
//	                          does not mean scanning the topic
//	<schema>.promotion_lease  the promotion lease of the topic, one row
//
// Every mysql node of the cluster holds a copy; a promotion writes a
// majority (see lease.go). The topic stays the truth: the index is checked
// against it (locate.go).
type store struct {
	schema string
}

func (s store) q(table string) string { return quoteIdent(s.schema) + "." + quoteIdent(table) }

// init creates the schema and tables when missing; idempotent.
func (s store) init(ctx context.Context, db *sql.DB) error {
	stmts := []string{
		"CREATE DATABASE IF NOT EXISTS " + quoteIdent(s.schema) + " DEFAULT CHARACTER SET utf8mb4",
		"CREATE TABLE IF NOT EXISTS " + s.q("epochs") + " (" +
			"`topic` VARCHAR(249) NOT NULL," +
			"`epoch` BIGINT UNSIGNED NOT NULL," +
			"`master` VARCHAR(64) NOT NULL," +
			"`record_offset` BIGINT NOT NULL COMMENT 'offset of the epoch record in the topic'," +
			"`start_gtid_set` TEXT NOT NULL," +
			"`flavor` VARCHAR(16) NOT NULL," +
			"`txn_seq` BIGINT UNSIGNED NOT NULL COMMENT 'last transaction of the previous epoch'," +
			"`promoted_by` VARCHAR(255) NOT NULL," +
			"`promoted_at` DATETIME(6) NOT NULL," +
			"PRIMARY KEY (`topic`,`epoch`)" +
			") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='rowcast epoch records (an index; the topic is the truth)'",
		"CREATE TABLE IF NOT EXISTS " + s.q("promotion_lease") + " (" +
			"`topic` VARCHAR(249) NOT NULL," +
			"`holder` VARCHAR(255) NOT NULL," +
			"`expires_at` DATETIME(6) NULL COMMENT 'NULL once released'," +
			"`from_offset` BIGINT NOT NULL COMMENT 'topic end offset when acquired: any epoch record of this promotion is at or after it'," +
			"`acquired_at` DATETIME(6) NOT NULL," +
			"PRIMARY KEY (`topic`)" +
			") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='rowcast promotion lease: one promoter at a time'",
	}
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create the promotion tables in %s: %w", s.schema, err)
		}
	}
	return nil
}

// epochRow is one row of <schema>.epochs.
type epochRow struct {
	Offset     int64
	Record     pipeline.EpochRecord
	PromotedBy string
	PromotedAt time.Time
}

func (s store) epochs(ctx context.Context, db *sql.DB, topic string) ([]epochRow, error) {
	rows, err := db.QueryContext(ctx, "SELECT `epoch`,`master`,`record_offset`,`start_gtid_set`,`flavor`,`txn_seq`,`promoted_by`,CAST(`promoted_at` AS CHAR) FROM "+
		s.q("epochs")+" WHERE `topic`=? ORDER BY `epoch`", topic)
	if isMissing(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []epochRow
	for rows.Next() {
		var r epochRow
		var at string
		if err := rows.Scan(&r.Record.Epoch, &r.Record.Master, &r.Offset, &r.Record.StartGTIDSet, &r.Record.Flavor,
			&r.Record.TxnSeq, &r.PromotedBy, &at); err != nil {
			return nil, err
		}
		r.PromotedAt, _ = time.ParseInLocation("2006-01-02 15:04:05.999999", at, time.UTC)
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s store) saveEpoch(ctx context.Context, db *sql.DB, topic string, r epochRow) error {
	_, err := db.ExecContext(ctx, "INSERT INTO "+s.q("epochs")+
		" (`topic`,`epoch`,`master`,`record_offset`,`start_gtid_set`,`flavor`,`txn_seq`,`promoted_by`,`promoted_at`) VALUES (?,?,?,?,?,?,?,?,?)"+
		" ON DUPLICATE KEY UPDATE `master`=VALUES(`master`),`record_offset`=VALUES(`record_offset`),`start_gtid_set`=VALUES(`start_gtid_set`),"+
		"`flavor`=VALUES(`flavor`),`txn_seq`=VALUES(`txn_seq`),`promoted_by`=VALUES(`promoted_by`),`promoted_at`=VALUES(`promoted_at`)",
		topic, r.Record.Epoch, r.Record.Master, r.Offset, r.Record.StartGTIDSet, r.Record.Flavor, r.Record.TxnSeq, r.PromotedBy,
		r.PromotedAt.UTC().Format("2006-01-02 15:04:05.000000"))
	return err
}

// leaseRow is the row of <schema>.promotion_lease.
type leaseRow struct {
	Holder     string
	Held       bool // expires_at is set: acquired and not released (possibly expired)
	Expired    bool
	FromOffset int64
	ExpiresIn  time.Duration
}

func (s store) lease(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, topic string, forUpdate bool) (leaseRow, bool, error) {
	var r leaseRow
	var exp sql.NullFloat64
	lock := ""
	if forUpdate {
		lock = " FOR UPDATE"
	}
	err := q.QueryRowContext(ctx, "SELECT `holder`,`from_offset`,TIMESTAMPDIFF(MICROSECOND,NOW(6),`expires_at`)/1e6 FROM "+
		s.q("promotion_lease")+" WHERE `topic`=?"+lock, topic).Scan(&r.Holder, &r.FromOffset, &exp)
	if errors.Is(err, sql.ErrNoRows) || isMissing(err) {
		return leaseRow{}, false, nil
	}
	if err != nil {
		return leaseRow{}, false, err
	}
	if exp.Valid {
		r.Held = true
		r.ExpiresIn = time.Duration(exp.Float64 * float64(time.Second))
		r.Expired = r.ExpiresIn <= 0
	}
	return r, true, nil
}

// tryAcquire takes or renews the lease on one node in one transaction: it
// succeeds when the lease is free, released, expired or already ours.
// fromOffset is kept from an earlier acquisition of the same holder.
func (s store) tryAcquire(ctx context.Context, db *sql.DB, topic, holder string, ttl time.Duration, fromOffset int64) (leaseRow, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return leaseRow{}, err
	}
	defer tx.Rollback()
	cur, found, err := s.lease(ctx, tx, topic, true)
	if err != nil {
		return leaseRow{}, err
	}
	if found && cur.Held && !cur.Expired && cur.Holder != holder {
		return cur, fmt.Errorf("%w: held by %s for %v more", ErrLeaseHeld, cur.Holder, cur.ExpiresIn.Round(time.Millisecond))
	}
	if found && cur.Held && cur.Holder == holder {
		fromOffset = min(fromOffset, cur.FromOffset)
	}
	if found && cur.Held && cur.Expired && cur.Holder != holder {
		// A promoter died holding it: whatever it wrote is at or after its
		// from_offset, which the next promoter must still scan.
		fromOffset = min(fromOffset, cur.FromOffset)
	}
	ms := ttl.Microseconds()
	_, err = tx.ExecContext(ctx, "INSERT INTO "+s.q("promotion_lease")+" (`topic`,`holder`,`expires_at`,`from_offset`,`acquired_at`)"+
		" VALUES (?,?,NOW(6) + INTERVAL ? MICROSECOND,?,NOW(6)) ON DUPLICATE KEY UPDATE "+
		// MySQL assigns left to right: acquired_at reads the old holder.
		"`acquired_at`=IF(`holder`=VALUES(`holder`) AND `expires_at` IS NOT NULL,`acquired_at`,VALUES(`acquired_at`)),"+
		"`holder`=VALUES(`holder`),`expires_at`=VALUES(`expires_at`),`from_offset`=VALUES(`from_offset`)",
		topic, holder, ms, fromOffset)
	if err != nil {
		return leaseRow{}, err
	}
	if err := tx.Commit(); err != nil {
		return leaseRow{}, err
	}
	return leaseRow{Holder: holder, Held: true, FromOffset: fromOffset, ExpiresIn: ttl}, nil
}

// release frees the lease if we hold it.
func (s store) release(ctx context.Context, db *sql.DB, topic, holder string) error {
	_, err := db.ExecContext(ctx, "UPDATE "+s.q("promotion_lease")+" SET `expires_at`=NULL WHERE `topic`=? AND `holder`=?", topic, holder)
	return err
}

// isMissing is true for "no such table" and "no such database".
func isMissing(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1146 || me.Number == 1049)
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
