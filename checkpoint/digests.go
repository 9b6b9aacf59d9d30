package checkpoint

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// AppliedTable holds a digest of each recently applied source transaction,
// written with the checkpoint: a transaction skipped later as a duplicate
// by its position is compared with it.
const AppliedTable = "applied_txns"

const appliedDDL = " (" +
	"`topic` VARCHAR(249) NOT NULL," +
	"`partition_id` INT NOT NULL," +
	"`txn_seq` BIGINT UNSIGNED NOT NULL," +
	"`digest` BIGINT UNSIGNED NOT NULL COMMENT 'digest of the transaction''s messages, in order'," +
	"PRIMARY KEY (`topic`,`partition_id`,`txn_seq`)" +
	") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='digests of the last applied transactions (rowcast duplicate check)'"

// TxnDigest is the digest of one applied source transaction.
type TxnDigest struct {
	TxnSeq, Digest uint64
}

// InitDigests creates the digests table when it does not exist.
func (m *MySQL) InitDigests(ctx context.Context, ex Execer) error {
	if _, err := ex.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+m.Table(AppliedTable)+appliedDDL); err != nil {
		return fmt.Errorf("create %s: %w", m.Table(AppliedTable), err)
	}
	return nil
}

// SaveDigests records ds in the caller's transaction (the one that writes
// the checkpoint after them) and, when pruneBelow > 0, deletes the digests
// of transactions below it, so that the table stays bounded.
func (m *MySQL) SaveDigests(ctx context.Context, ex Execer, topic string, partition int32, ds []TxnDigest, pruneBelow uint64) error {
	if len(ds) > 0 {
		args := make([]any, 0, 4*len(ds))
		for _, d := range ds {
			args = append(args, topic, partition, d.TxnSeq, d.Digest)
		}
		q := "INSERT INTO " + m.Table(AppliedTable) + " (`topic`,`partition_id`,`txn_seq`,`digest`) VALUES " +
			strings.TrimSuffix(strings.Repeat("(?,?,?,?),", len(ds)), ",") + " ON DUPLICATE KEY UPDATE `digest`=VALUES(`digest`)"
		if _, err := ex.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("save transaction digests: %w", err)
		}
	}
	if pruneBelow == 0 {
		return nil
	}
	if _, err := ex.ExecContext(ctx, "DELETE FROM "+m.Table(AppliedTable)+" WHERE `topic`=? AND `partition_id`=? AND `txn_seq`<?",
		topic, partition, pruneBelow); err != nil {
		return fmt.Errorf("prune transaction digests: %w", err)
	}
	return nil
}

// LoadDigest reads the digest of transaction seq; found is false when it
// was not recorded (or pruned).
func (m *MySQL) LoadDigest(ctx context.Context, ex Querier, topic string, partition int32, seq uint64) (digest uint64, found bool, err error) {
	err = ex.QueryRowContext(ctx, "SELECT `digest` FROM "+m.Table(AppliedTable)+" WHERE `topic`=? AND `partition_id`=? AND `txn_seq`=?",
		topic, partition, seq).Scan(&digest)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("load the digest of transaction %d: %w", seq, err)
	}
	return digest, true, nil
}
