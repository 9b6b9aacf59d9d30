package checkpoint

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Execer runs a statement: *sql.Tx, *sql.Conn and *sql.DB all satisfy it.
// Save and RecordSkip take the caller's Execer so that they write inside the
// caller's transaction.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Querier reads one row: *sql.Tx, *sql.Conn and *sql.DB all satisfy it.
type Querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// MySQL keeps checkpoints in a MySQL or MariaDB target, in the bookkeeping
// schema:
//
//	<schema>.checkpoint       one row per (topic, partition_id): the State
//	<schema>.skipped          one row per message an operator chose to skip
//	<schema>.epochs           the epoch index of promotions (package failover)
//	<schema>.promotion_lease  the promotion lease (package failover)
//
// Every table is InnoDB, so a checkpoint row commits or rolls back with the
// rows of the same transaction. This package owns the schema's DDL
// (schema.go). The bookkeeping schema is never replicated: the reader
// excludes it and sinks refuse DDL on it.
type MySQL struct {
	schema string

	saveSQL, loadSQL, skipSQL, deleteSQL string
}

// NewMySQL returns the store for the given bookkeeping schema.
func NewMySQL(schema string) *MySQL {
	q := quoteIdent(schema)
	cols := []string{"topic", "partition_id", "next_offset", "epoch", "txn_seq", "max_txn_seq",
		"gtid_set", "commit_time", "ddl_pending", "updated_at"}
	set := make([]string, 0, len(cols))
	for _, c := range cols[2:] {
		switch c {
		case "max_txn_seq":
			set = append(set, "`max_txn_seq`=GREATEST(`max_txn_seq`,VALUES(`max_txn_seq`))")
		default:
			set = append(set, fmt.Sprintf("`%s`=VALUES(`%s`)", c, c))
		}
	}
	return &MySQL{
		schema: schema,
		// VALUES() in ON DUPLICATE KEY UPDATE is MariaDB's syntax; MySQL 8.0.20+
		// still accepts it (with a deprecation warning).
		saveSQL: "INSERT INTO " + q + ".`checkpoint` (`" + strings.Join(cols, "`,`") + "`) VALUES (" +
			strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ") ON DUPLICATE KEY UPDATE " +
			strings.Join(set, ","),
		loadSQL: "SELECT `next_offset`,`epoch`,`txn_seq`,`max_txn_seq`,`gtid_set`," +
			"CAST(`commit_time` AS CHAR),`ddl_pending`,CAST(`updated_at` AS CHAR) FROM " + q +
			".`checkpoint` WHERE `topic`=? AND `partition_id`=?",
		skipSQL: "INSERT INTO " + q + ".`skipped` (`topic`,`partition_id`,`offset`,`position`,`reason`,`operator`,`at`)" +
			" VALUES (?,?,?,?,?,?,?) ON DUPLICATE KEY UPDATE `reason`=VALUES(`reason`),`operator`=VALUES(`operator`),`at`=VALUES(`at`)",
		deleteSQL: "DELETE FROM " + q + ".`checkpoint` WHERE `topic`=? AND `partition_id`=?",
	}
}

// Schema is the bookkeeping schema's name.
func (m *MySQL) Schema() string { return m.schema }

// Load reads the checkpoint of a topic partition. found is false when the
// target has none (a new replica).
func (m *MySQL) Load(ctx context.Context, q Querier, topic string, partition int32) (st State, found bool, err error) {
	var commit sql.NullString
	var updated string
	err = q.QueryRowContext(ctx, m.loadSQL, topic, partition).Scan(&st.Offset, &st.Epoch, &st.TxnSeq,
		&st.MaxTxnSeq, &st.GTIDSet, &commit, &st.DDLPending, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return State{Topic: topic, Partition: partition}, false, nil
	}
	if err != nil {
		return State{}, false, fmt.Errorf("load checkpoint %s[%d] from %s: %w", topic, partition, m.schema, err)
	}
	st.Topic, st.Partition = topic, partition
	if commit.Valid {
		if st.CommitTime, err = parseTime(commit.String); err != nil {
			return State{}, false, fmt.Errorf("load checkpoint %s[%d]: commit_time: %w", topic, partition, err)
		}
	}
	if st.UpdatedAt, err = parseTime(updated); err != nil {
		return State{}, false, fmt.Errorf("load checkpoint %s[%d]: updated_at: %w", topic, partition, err)
	}
	return st, true, nil
}

// Save writes st with an INSERT ... ON DUPLICATE KEY UPDATE. Call it inside
// the transaction that applied the rows up to st, just before COMMIT: that is
// what makes the apply exactly-once. A zero UpdatedAt means now.
func (m *MySQL) Save(ctx context.Context, ex Execer, st State) error {
	if st.UpdatedAt.IsZero() {
		st.UpdatedAt = time.Now()
	}
	var commit any
	if !st.CommitTime.IsZero() {
		commit = formatTime(st.CommitTime)
	}
	_, err := ex.ExecContext(ctx, m.saveSQL, st.Topic, st.Partition, st.Offset, st.Epoch, st.TxnSeq,
		max(st.MaxTxnSeq, st.TxnSeq), st.GTIDSet, commit, st.DDLPending, formatTime(st.UpdatedAt))
	if err != nil {
		return fmt.Errorf("save checkpoint %s: %w", st, err)
	}
	return nil
}

// SaveSQL is the statement Save runs, for tests that assert the exact SQL
// sequence of a transaction.
func (m *MySQL) SaveSQL() string { return m.saveSQL }

// RecordSkip records an operator skip. Call it in the transaction of the next
// commit, so that the record and the checkpoint that moves past the message
// appear together.
func (m *MySQL) RecordSkip(ctx context.Context, ex Execer, s Skip) error {
	if s.At.IsZero() {
		s.At = time.Now()
	}
	if _, err := ex.ExecContext(ctx, m.skipSQL, s.Topic, s.Partition, s.Offset, s.Position, s.Reason,
		s.Operator, formatTime(s.At)); err != nil {
		return fmt.Errorf("record skip of offset %d: %w", s.Offset, err)
	}
	return nil
}

// Delete removes the checkpoint of a topic partition, for an operator who
// re-seeds a replica: the next worker starts from its configured offset and
// treats every transaction as new.
func (m *MySQL) Delete(ctx context.Context, ex Execer, topic string, partition int32) error {
	if _, err := ex.ExecContext(ctx, m.deleteSQL, topic, partition); err != nil {
		return fmt.Errorf("delete checkpoint %s[%d]: %w", topic, partition, err)
	}
	return nil
}

const timeLayout = "2006-01-02 15:04:05.000000"

// formatTime writes times as UTC strings, so the result does not depend on
// the connection's loc or time_zone settings.
func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) {
	return time.ParseInLocation("2006-01-02 15:04:05.999999999", s, time.UTC)
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
