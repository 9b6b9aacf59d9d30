package checkpoint

import (
	"context"
	"fmt"
)

// The tables of the bookkeeping schema. This file is the one place that
// defines them: the sink's checkpoint and skip log, and the promotion
// bookkeeping that the failover package reads and writes (the epoch index
// and the promotion lease). Existing databases keep their tables: every
// statement is CREATE ... IF NOT EXISTS.
const (
	// CheckpointTable holds one row per (topic, partition_id): the State.
	CheckpointTable = "checkpoint"
	// SkippedTable holds one row per message an operator chose to skip.
	SkippedTable = "skipped"
	// EpochsTable holds one row per epoch record written to a topic: an
	// index, so that finding the current master does not mean scanning the
	// topic.
	EpochsTable = "epochs"
	// LeaseTable holds the promotion lease of a topic, one row.
	LeaseTable = "promotion_lease"
	// BootstrapTable holds, on a replica, the tables still being loaded by a
	// snapshot or a clone (bootstrap.go).
	BootstrapTable = "bootstrap"
	// SnapshotsTable holds, on the master, the snapshot requests and their
	// progress, which the reader keeps.
	SnapshotsTable = "snapshots"
	// CloneProgressTable holds, on a node that rowcast clone is filling, how
	// far each table is and the source's checkpoint in the read view it was
	// copied in (clone.go).
	CloneProgressTable = "clone_progress"
)

// tableDDL is the body of each table's CREATE TABLE statement.
var tableDDL = map[string]string{
	CheckpointTable: " (" +
		"`topic` VARCHAR(249) NOT NULL," +
		"`partition_id` INT NOT NULL," +
		"`next_offset` BIGINT NOT NULL COMMENT 'next Kafka offset to read'," +
		"`epoch` BIGINT UNSIGNED NOT NULL," +
		"`txn_seq` BIGINT UNSIGNED NOT NULL COMMENT 'last source transaction applied in full'," +
		"`max_txn_seq` BIGINT UNSIGNED NOT NULL COMMENT 'highest txn_seq ever applied; never lowered'," +
		"`gtid_set` TEXT NOT NULL COMMENT 'master GTID set after txn_seq'," +
		"`commit_time` DATETIME(6) NULL COMMENT 'source commit time of txn_seq, UTC'," +
		"`ddl_pending` BIGINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'txn_seq of a DDL being applied'," +
		"`updated_at` DATETIME(6) NOT NULL," +
		"PRIMARY KEY (`topic`,`partition_id`)" +
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='rowcast sink position, written with the rows'",
	SkippedTable: " (" +
		"`topic` VARCHAR(249) NOT NULL," +
		"`partition_id` INT NOT NULL," +
		"`offset` BIGINT NOT NULL," +
		"`position` VARCHAR(100) NOT NULL DEFAULT ''," +
		"`reason` TEXT NOT NULL," +
		"`operator` VARCHAR(255) NOT NULL," +
		"`at` DATETIME(6) NOT NULL," +
		"PRIMARY KEY (`topic`,`partition_id`,`offset`)" +
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='messages an operator chose to skip'",
	EpochsTable: " (" +
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
	LeaseTable: " (" +
		"`topic` VARCHAR(249) NOT NULL," +
		"`holder` VARCHAR(255) NOT NULL," +
		"`expires_at` DATETIME(6) NULL COMMENT 'NULL once released'," +
		"`from_offset` BIGINT NOT NULL COMMENT 'topic end offset when acquired: any epoch record of this promotion is at or after it'," +
		"`acquired_at` DATETIME(6) NOT NULL," +
		"PRIMARY KEY (`topic`)" +
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='rowcast promotion lease: one promoter at a time'",
	BootstrapTable: " (" +
		"`topic` VARCHAR(249) NOT NULL," +
		"`db` VARCHAR(64) NOT NULL," +
		"`tbl` VARCHAR(64) NOT NULL," +
		"`mode` ENUM('snapshot','clone') NOT NULL," +
		"`floor_offset` BIGINT NOT NULL DEFAULT -1 COMMENT 'clone: the rows hold every message at offsets <= floor_offset'," +
		"`since` DATETIME(6) NOT NULL," +
		"PRIMARY KEY (`topic`,`db`,`tbl`)" +
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='rowcast tables still being loaded by a snapshot or a clone'",
	SnapshotsTable: " (" +
		"`id` BIGINT NOT NULL AUTO_INCREMENT," +
		"`topic` VARCHAR(249) NOT NULL," +
		"`tables` TEXT NOT NULL COMMENT 'JSON array of db.table'," +
		"`throttle` INT NOT NULL DEFAULT 0 COMMENT 'rows per second, 0: no limit'," +
		"`state` ENUM('requested','running','done','failed','cancelled') NOT NULL," +
		"`current_table` VARCHAR(130) NULL," +
		"`last_key` TEXT NULL COMMENT 'JSON array: the primary key of the last row published'," +
		"`rows_done` BIGINT NOT NULL DEFAULT 0," +
		"`rows_total` BIGINT NOT NULL DEFAULT 0 COMMENT 'estimate'," +
		"`error` TEXT NULL," +
		"`requested_at` DATETIME(6) NOT NULL," +
		"`updated_at` DATETIME(6) NOT NULL," +
		"`finished_at` DATETIME(6) NULL," +
		"PRIMARY KEY (`id`), KEY (`topic`,`state`)" +
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='rowcast snapshot requests and progress (on the master)'",
	CloneProgressTable: " (" +
		"`topic` VARCHAR(249) NOT NULL," +
		"`db` VARCHAR(64) NOT NULL," +
		"`tbl` VARCHAR(64) NOT NULL," +
		"`state` ENUM('copying','done') NOT NULL," +
		"`source` VARCHAR(64) NOT NULL COMMENT 'the node copied from'," +
		"`view_offset` BIGINT NOT NULL COMMENT 'next_offset of the source checkpoint in the read view'," +
		"`view_epoch` BIGINT UNSIGNED NOT NULL," +
		"`view_txn_seq` BIGINT UNSIGNED NOT NULL," +
		"`view_max_txn_seq` BIGINT UNSIGNED NOT NULL," +
		"`view_gtid_set` TEXT NOT NULL," +
		"`view_commit_time` DATETIME(6) NULL," +
		"`rows_copied` BIGINT NOT NULL DEFAULT 0," +
		"`started_at` DATETIME(6) NOT NULL," +
		"`updated_at` DATETIME(6) NOT NULL," +
		"PRIMARY KEY (`topic`,`db`,`tbl`)" +
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='rowcast clone: tables copied and the read view of each'",
}

// Init creates the bookkeeping schema and the sink's tables (checkpoint,
// skipped, bootstrap) when they do not exist. It is idempotent.
func (m *MySQL) Init(ctx context.Context, ex Execer) error {
	if err := m.create(ctx, ex, CheckpointTable, SkippedTable, BootstrapTable); err != nil {
		return fmt.Errorf("create bookkeeping schema %s: %w", m.schema, err)
	}
	return nil
}

// InitPromotion creates the bookkeeping schema and the promotion tables
// (epochs, promotion_lease) when they do not exist. It is idempotent.
func (m *MySQL) InitPromotion(ctx context.Context, ex Execer) error {
	if err := m.create(ctx, ex, EpochsTable, LeaseTable); err != nil {
		return fmt.Errorf("create the promotion tables in %s: %w", m.schema, err)
	}
	return nil
}

// InitClone creates the bookkeeping schema and the tables of a node that
// rowcast clone fills: the sink's (Init) and clone_progress. It is
// idempotent.
func (m *MySQL) InitClone(ctx context.Context, ex Execer) error {
	if err := m.create(ctx, ex, CheckpointTable, SkippedTable, BootstrapTable, CloneProgressTable); err != nil {
		return fmt.Errorf("create bookkeeping schema %s: %w", m.schema, err)
	}
	return nil
}

// InitSnapshots creates the bookkeeping schema and the snapshots table on a
// master when they do not exist. It is idempotent.
func (m *MySQL) InitSnapshots(ctx context.Context, ex Execer) error {
	if err := m.create(ctx, ex, SnapshotsTable); err != nil {
		return fmt.Errorf("create the snapshots table in %s: %w", m.schema, err)
	}
	return nil
}

// Table is the quoted name of a table of the bookkeeping schema.
func (m *MySQL) Table(name string) string { return quoteIdent(m.schema) + "." + quoteIdent(name) }

// create runs CREATE DATABASE and CREATE TABLE ... IF NOT EXISTS for tables.
func (m *MySQL) create(ctx context.Context, ex Execer, tables ...string) error {
	stmts := []string{"CREATE DATABASE IF NOT EXISTS " + quoteIdent(m.schema) + " DEFAULT CHARACTER SET utf8mb4"}
	for _, t := range tables {
		stmts = append(stmts, "CREATE TABLE IF NOT EXISTS "+m.Table(t)+tableDDL[t])
	}
	for _, s := range stmts {
		if _, err := ex.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	return nil
}
