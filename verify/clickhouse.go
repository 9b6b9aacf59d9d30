package verify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rowcast/rowcast/sink/clickhouse"
)

// HashGo is the hash of a ClickHouse verification: both sides' rows are read
// in a canonical text and hashed in Go (FNV-1a, 64 bits per row, summed per
// chunk), since MySQL's and ClickHouse's SQL hash functions differ.
const HashGo = "go-fnv64"

// CHVerifier compares a ClickHouse replica (sink/clickhouse) with the master
// over its current rows (FINAL, not deleted), chunk by chunk of the key.
type CHVerifier struct {
	cfg    Config
	master *sql.DB
	ch     *chClient
	pos    *chPositions
	thr    *throttle
	note   string
	from   string
}

// NewClickHouse finds the master (Config.Locate), connects to it and to the
// ClickHouse replica at Config.ReplicaDSN (its HTTP URL), and reads the
// replica's checkpoint. Repair is refused: rows of a ReplacingMergeTree are
// rewritten by the sink only.
func NewClickHouse(ctx context.Context, cfg Config) (*CHVerifier, error) {
	cfg.setDefaults()
	if cfg.Repair {
		return nil, fmt.Errorf("%w: --repair works on MySQL replicas only; for ClickHouse replica %s, snapshot the table again or replay its offsets",
			ErrConfig, cfg.ReplicaName)
	}
	from, err := locate(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	v := &CHVerifier{cfg: cfg, from: from, thr: newThrottle(cfg.RowsPerSecond, cfg.ChunkRows)}
	if v.ch, err = newCHClient(cfg.ReplicaDSN, cfg.WaitTimeout); err != nil {
		return nil, fmt.Errorf("%w: replica %s: %v", ErrConfig, cfg.ReplicaName, err)
	}
	var mver string
	if v.master, mver, err = open(ctx, "master "+cfg.MasterName, cfg.MasterDSN, cfg, false); err != nil {
		return nil, err
	}
	if err := v.startPositions(ctx, mver); err != nil {
		v.Close()
		return nil, err
	}
	return v, nil
}

// startPositions reads the replica's checkpoint: without one (or with
// NoWait, or no topic) the replica is compared as it is.
func (v *CHVerifier) startPositions(ctx context.Context, mver string) error {
	cfg := v.cfg
	v.pos = newCHPositions(v.master, mver, clickhouse.Config{URL: cfg.ReplicaDSN, Database: cfg.Filter.Bookkeeping, Topic: cfg.Topic}, cfg)
	switch {
	case cfg.NoWait:
		v.pos.static = true
		v.note = "--no-wait: the replica is compared as it is, without waiting for it to reach the master's position; a difference may be replication lag"
		return nil
	case cfg.Topic == "":
		v.pos.static = true
		v.note = "no topic given: the replica is compared as it is"
		return nil
	}
	st, found, err := v.pos.applied(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("read the checkpoint of replica %s: %w", cfg.ReplicaName, err)
	case !found:
		v.pos.static = true
		v.note = fmt.Sprintf("replica %s holds no rowcast checkpoint for topic %s in database %s: it is compared as it is, without waiting for replication",
			cfg.ReplicaName, cfg.Topic, cfg.Filter.Bookkeeping)
		return nil
	}
	return v.pos.sameMaster(st)
}

// Close closes the master's connections and the replica's idle ones.
func (v *CHVerifier) Close() {
	if v.master != nil {
		v.master.Close()
	}
	v.ch.close()
}

// Static reports whether the replica is compared without waiting for it.
func (v *CHVerifier) Static() bool { return v.pos.static }

// Run verifies every selected table, as Verifier.Run does.
func (v *CHVerifier) Run(ctx context.Context) (*Report, error) {
	rep := &Report{Master: v.cfg.MasterName, MasterEpoch: v.cfg.MasterEpoch, MasterFrom: v.from,
		Replica: v.cfg.ReplicaName, Hash: HashGo, Static: v.pos.static, Note: v.note, Started: time.Now()}
	names, err := listTables(ctx, v.master, v.cfg.Filter)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		tr := v.Table(ctx, name)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		rep.Tables = append(rep.Tables, tr)
	}
	rep.Seconds = time.Since(rep.Started).Seconds()
	return rep, nil
}

// Table verifies one table, "db.table".
func (v *CHVerifier) Table(ctx context.Context, name string) TableReport {
	start := time.Now()
	tr := TableReport{Table: name}
	if err := v.table(ctx, name, &tr); err != nil {
		tr.Error = err.Error()
	}
	tr.Seconds = time.Since(start).Seconds()
	return tr
}

func (v *CHVerifier) table(ctx context.Context, name string, tr *TableReport) error {
	schema, tname, _ := strings.Cut(name, ".")
	t, err := describe(ctx, v.master, schema, tname)
	if err != nil {
		return fmt.Errorf("master %s: %w", v.cfg.MasterName, err)
	}
	tr.Key = t.KeyColumns()
	if err := chWalkable(t); err != nil {
		return err
	}
	w := &chWalk{v: v, t: t, tr: tr, m: newCHTable(t)}
	err = w.run(ctx)
	if errors.Is(err, ErrNoTable) {
		tr.Differences = 1
		tr.Note = fmt.Sprintf("table missing on replica %s: the sink creates it with the table's first row or its snapshot", v.cfg.ReplicaName)
		return nil
	}
	return err
}

// chWalkable checks that the table's key orders the same on both sides, so
// that a key range means the same rows: ClickHouse compares strings as bytes,
// MySQL by the column's collation.
func chWalkable(t *Table) error {
	if len(t.key) == 0 {
		return fmt.Errorf("%s has no primary key: the ClickHouse sink refuses such tables, there is nothing to compare", t)
	}
	for _, k := range t.key {
		if c := t.cols[k]; !chSortable(c) {
			return fmt.Errorf("%s: key column %s (%s) does not sort in ClickHouse as on the master (ClickHouse compares bytes): "+
				"verify of a ClickHouse replica walks keys of integer, BINARY, VARBINARY, DATE and DATETIME columns only",
				t, c.Name, c.Type)
		}
	}
	return nil
}

// chSortable reports a key column whose values sort in ClickHouse's type as
// on the master.
func chSortable(c column) bool {
	switch c.DataType {
	case "binary", "varbinary", "date", "datetime":
		return true
	}
	return c.kind == kindInt || c.kind == kindUint
}
