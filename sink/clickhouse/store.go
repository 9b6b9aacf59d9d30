package clickhouse

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/rowcast/rowcast/checkpoint"
)

// store keeps the sink's bookkeeping in a ClickHouse database: the
// checkpoint, the bootstrap entries and the operator's skips. Rows are never
// updated: each save is a new row with a higher seq, and reads take the row
// of the highest seq, so no read depends on merges having run.
type store struct {
	cl  *client
	db  string
	seq uint64 // the highest seq saved or read
}

var storeTables = []string{
	"CREATE TABLE IF NOT EXISTS %s.checkpoints (topic String, part Int32, seq UInt64, next_offset Int64, " +
		"state String, updated_at DateTime) ENGINE = ReplacingMergeTree(seq) ORDER BY (topic, part)",
	"CREATE TABLE IF NOT EXISTS %s.bootstrap (topic String, db String, tbl String, seq UInt64, deleted UInt8, " +
		"entry String) ENGINE = ReplacingMergeTree(seq) ORDER BY (topic, db, tbl)",
	"CREATE TABLE IF NOT EXISTS %s.skips (topic String, part Int32, skipped_offset Int64, position String, " +
		"reason String, operator String, at DateTime) ENGINE = MergeTree ORDER BY (topic, part, skipped_offset)",
}

// init creates the bookkeeping database and tables.
func (s *store) init(ctx context.Context) error {
	if err := s.cl.exec(ctx, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(s.db)); err != nil {
		return fmt.Errorf("create bookkeeping database %s: %w", s.db, err)
	}
	for _, t := range storeTables {
		if err := s.cl.exec(ctx, fmt.Sprintf(t, quoteIdent(s.db))); err != nil {
			return fmt.Errorf("create bookkeeping tables in %s: %w", s.db, err)
		}
	}
	return nil
}

// load returns the checkpoint of topic[partition]; found is false when none.
func (s *store) load(ctx context.Context, topic string, partition int32) (st checkpoint.State, found bool, err error) {
	rows, err := s.cl.query(ctx, fmt.Sprintf("SELECT seq, state FROM %s.checkpoints WHERE topic = %s AND part = %d ORDER BY seq DESC LIMIT 1",
		quoteIdent(s.db), quoteString(topic), partition))
	if err != nil {
		return st, false, fmt.Errorf("load checkpoint: %w", err)
	}
	if err := s.loadSeq(ctx); err != nil {
		return st, false, err
	}
	if len(rows) == 0 {
		return st, false, nil
	}
	if err := json.Unmarshal([]byte(rows[0][1]), &st); err != nil {
		return st, false, fmt.Errorf("checkpoint of %s[%d] in %s.checkpoints is not readable: %w", topic, partition, s.db, err)
	}
	return st, true, nil
}

// loadSeq reads the highest seq of every bookkeeping table.
func (s *store) loadSeq(ctx context.Context) error {
	rows, err := s.cl.query(ctx, fmt.Sprintf("SELECT max(seq) FROM (SELECT seq FROM %[1]s.checkpoints UNION ALL SELECT seq FROM %[1]s.bootstrap)", quoteIdent(s.db)))
	if err != nil {
		return fmt.Errorf("load checkpoint seq: %w", err)
	}
	if len(rows) > 0 {
		n, _ := strconv.ParseUint(rows[0][0], 10, 64)
		s.seq = max(s.seq, n)
	}
	return nil
}

// save stores st as the newest checkpoint of its topic partition.
func (s *store) save(ctx context.Context, st checkpoint.State) error {
	js, err := json.Marshal(st)
	if err != nil {
		return err
	}
	s.seq++
	q := fmt.Sprintf("INSERT INTO %s.checkpoints VALUES (%s, %d, %d, %d, %s, %d)", quoteIdent(s.db),
		quoteString(st.Topic), st.Partition, s.seq, st.Offset, quoteString(string(js)), time.Now().Unix())
	if err := s.cl.exec(ctx, q); err != nil {
		return fmt.Errorf("save checkpoint %s: %w", st, err)
	}
	return nil
}

// bootOp is a change to a bootstrap entry: saved, or deleted.
type bootOp struct {
	b       checkpoint.Bootstrap
	deleted bool
}

func (s *store) saveBoot(ctx context.Context, op bootOp) error {
	js, err := json.Marshal(op.b)
	if err != nil {
		return err
	}
	s.seq++
	del := 0
	if op.deleted {
		del = 1
	}
	q := fmt.Sprintf("INSERT INTO %s.bootstrap VALUES (%s, %s, %s, %d, %d, %s)", quoteIdent(s.db),
		quoteString(op.b.Topic), quoteString(op.b.DB), quoteString(op.b.Table), s.seq, del, quoteString(string(js)))
	if err := s.cl.exec(ctx, q); err != nil {
		return fmt.Errorf("save bootstrap entry %s: %w", op.b.Key(), err)
	}
	return nil
}

// loadBoot returns the topic's bootstrap entries that are not deleted.
func (s *store) loadBoot(ctx context.Context, topic string) (map[string]checkpoint.Bootstrap, error) {
	rows, err := s.cl.query(ctx, fmt.Sprintf("SELECT argMax(entry, seq), argMax(deleted, seq) FROM %s.bootstrap WHERE topic = %s GROUP BY db, tbl",
		quoteIdent(s.db), quoteString(topic)))
	if err != nil {
		return nil, fmt.Errorf("load bootstrap entries: %w", err)
	}
	out := map[string]checkpoint.Bootstrap{}
	for _, r := range rows {
		if len(r) < 2 || r[1] == "1" {
			continue
		}
		var b checkpoint.Bootstrap
		if err := json.Unmarshal([]byte(r[0]), &b); err != nil {
			return nil, fmt.Errorf("bootstrap entry in %s.bootstrap is not readable: %w", s.db, err)
		}
		out[b.Key()] = b
	}
	return out, nil
}

func (s *store) recordSkip(ctx context.Context, k checkpoint.Skip) error {
	q := fmt.Sprintf("INSERT INTO %s.skips VALUES (%s, %d, %d, %s, %s, %s, %d)", quoteIdent(s.db),
		quoteString(k.Topic), k.Partition, k.Offset, quoteString(k.Position), quoteString(k.Reason),
		quoteString(k.Operator), k.At.Unix())
	if err := s.cl.exec(ctx, q); err != nil {
		return fmt.Errorf("record skip of offset %d: %w", k.Offset, err)
	}
	return nil
}
