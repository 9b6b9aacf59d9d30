package failover

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/internal/mysqlerr"
	"github.com/rowcast/rowcast/pipeline"
)

// store keeps the promotion bookkeeping of a topic in a node's bookkeeping
// schema (the one holding the sink checkpoints; never replicated), in the
// tables package checkpoint defines:
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
	bk *checkpoint.MySQL
}

func newStore(schema string) store { return store{bk: checkpoint.NewMySQL(schema)} }

func (s store) q(table string) string { return s.bk.Table(table) }

// init creates the schema and tables when missing; idempotent.
func (s store) init(ctx context.Context, db execer) error { return s.bk.InitPromotion(ctx, db) }

// epochRow is one row of <schema>.epochs.
type epochRow struct {
	Offset     int64
	Record     pipeline.EpochRecord
	PromotedBy string
	PromotedAt time.Time
}

func (s store) epochs(ctx context.Context, db execer, topic string) ([]epochRow, error) {
	rows, err := db.QueryContext(ctx, "SELECT `epoch`,`master`,`record_offset`,`start_gtid_set`,`flavor`,`txn_seq`,`promoted_by`,CAST(`promoted_at` AS CHAR) FROM "+
		s.q(checkpoint.EpochsTable)+" WHERE `topic`=? ORDER BY `epoch`", topic)
	if mysqlerr.Missing(err) {
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

func (s store) saveEpoch(ctx context.Context, db execer, topic string, r epochRow) error {
	_, err := db.ExecContext(ctx, "INSERT INTO "+s.q(checkpoint.EpochsTable)+
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

func (s store) lease(ctx context.Context, q execer, topic string, forUpdate bool) (leaseRow, bool, error) {
	var r leaseRow
	var exp sql.NullFloat64
	lock := ""
	if forUpdate {
		lock = " FOR UPDATE"
	}
	err := q.QueryRowContext(ctx, "SELECT `holder`,`from_offset`,TIMESTAMPDIFF(MICROSECOND,NOW(6),`expires_at`)/1e6 FROM "+
		s.q(checkpoint.LeaseTable)+" WHERE `topic`=?"+lock, topic).Scan(&r.Holder, &r.FromOffset, &exp)
	if errors.Is(err, sql.ErrNoRows) || mysqlerr.Missing(err) {
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
func (s store) tryAcquire(ctx context.Context, nd *node, topic, holder string, ttl time.Duration, fromOffset int64) (leaseRow, error) {
	tx, err := nd.begin(ctx)
	if err != nil {
		return leaseRow{}, err
	}
	defer tx.Rollback()
	cur, found, err := s.lease(ctx, tx, topic, true)
	if err != nil {
		return leaseRow{}, err
	}
	if fromOffset, err = takeOver(cur, found, holder, fromOffset); err != nil {
		return cur, err
	}
	if err := s.writeLease(ctx, tx, topic, holder, ttl, fromOffset); err != nil {
		return leaseRow{}, err
	}
	if err := tx.Commit(); err != nil {
		return leaseRow{}, err
	}
	return leaseRow{Holder: holder, Held: true, FromOffset: fromOffset, ExpiresIn: ttl}, nil
}

// takeOver decides on the lease row cur: another live holder keeps it;
// otherwise it is ours, with the older from_offset when it is held (by us,
// or by a promoter that died holding it: whatever that one wrote is at or
// after its from_offset, which the next promoter must still scan).
func takeOver(cur leaseRow, found bool, holder string, fromOffset int64) (int64, error) {
	if !found || !cur.Held {
		return fromOffset, nil
	}
	if !cur.Expired && cur.Holder != holder {
		return 0, fmt.Errorf("%w: held by %s for %v more", ErrLeaseHeld, cur.Holder, cur.ExpiresIn.Round(time.Millisecond))
	}
	return min(fromOffset, cur.FromOffset), nil
}

// writeLease writes the lease row of holder, expiring in ttl.
func (s store) writeLease(ctx context.Context, tx execer, topic, holder string, ttl time.Duration, fromOffset int64) error {
	_, err := tx.ExecContext(ctx, "INSERT INTO "+s.q(checkpoint.LeaseTable)+" (`topic`,`holder`,`expires_at`,`from_offset`,`acquired_at`)"+
		" VALUES (?,?,NOW(6) + INTERVAL ? MICROSECOND,?,NOW(6)) ON DUPLICATE KEY UPDATE "+
		// MySQL assigns left to right: acquired_at reads the old holder.
		"`acquired_at`=IF(`holder`=VALUES(`holder`) AND `expires_at` IS NOT NULL,`acquired_at`,VALUES(`acquired_at`)),"+
		"`holder`=VALUES(`holder`),`expires_at`=VALUES(`expires_at`),`from_offset`=VALUES(`from_offset`)",
		topic, holder, ttl.Microseconds(), fromOffset)
	return err
}

// release frees the lease if we hold it.
func (s store) release(ctx context.Context, db execer, topic, holder string) error {
	_, err := db.ExecContext(ctx, "UPDATE "+s.q(checkpoint.LeaseTable)+" SET `expires_at`=NULL WHERE `topic`=? AND `holder`=?", topic, holder)
	return err
}
