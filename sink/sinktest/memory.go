package sinktest

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
)

// Memory is an in-memory replica with transactions: the reference Target
// the worker's own tests run the suite against. It applies rows like the
// MySQL target (upsert of the after image, delete by key, a missing row is
// sink.ErrRowMissing unless the transaction is a replay or the rows are
// applied leniently), understands one kind of DDL, ALTER TABLE ... ADD
// COLUMN, and replaces a table at a snapshot start marker with an empty one
// of the marker's columns.
type Memory struct {
	// Fail, when set, is called with the operation's name before every
	// Open ("open"), Begin ("begin"), ApplyRows ("rows"), ApplyDDL ("ddl")
	// and Commit ("commit"), and in StartSnapshot between replacing the
	// table and recording its bootstrap ("snapshot"); an error it returns is
	// returned by the Target (inject faults).
	Fail func(op string) error

	db     string
	mu     sync.Mutex
	tables map[string]*memTable
	ckpt   checkpoint.State
	found  bool
	skips  []checkpoint.Skip
	boot   map[string]checkpoint.Bootstrap
	// digests are the applied transactions' digests (sink.DigestStore).
	digests map[uint64]uint64
}

type memTable struct {
	cols []string
	rows map[string][]string
}

// NewMemory returns an empty replica whose suite tables live in db.
func NewMemory(db string) *Memory {
	return &Memory{db: db, tables: map[string]*memTable{}, boot: map[string]checkpoint.Bootstrap{}}
}

// Target returns a new Target on the replica.
func (m *Memory) Target() sink.Target { return &memTarget{r: m} }

// Database implements Inspect.
func (m *Memory) Database() string { return m.db }

// Setup implements Inspect: tables are created on first use.
func (m *Memory) Setup(testing.TB, ...string) {}

// Reopen implements Inspect.
func (m *Memory) Reopen(testing.TB) sink.Target { return m.Target() }

// Rows implements Inspect.
func (m *Memory) Rows(_ testing.TB, table string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []string{}
	if t := m.tables[m.db+"."+table]; t != nil {
		for _, r := range t.rows {
			full := slices.Clone(r)
			for len(full) < len(t.cols) {
				full = append(full, "NULL")
			}
			out = append(out, strings.Join(full, "|"))
		}
	}
	slices.Sort(out)
	return out
}

// Count implements Inspect.
func (m *Memory) Count(_ testing.TB, table string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := m.tables[m.db+"."+table]; t != nil {
		return len(t.rows)
	}
	return 0
}

// Checkpoint returns the stored checkpoint.
func (m *Memory) Checkpoint() (checkpoint.State, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ckpt, m.found
}

// Bootstrap implements Inspect.
func (m *Memory) Bootstrap(testing.TB) map[string]checkpoint.Bootstrap {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.boot)
}

// SaveBootstrap implements Inspect.
func (m *Memory) SaveBootstrap(_ testing.TB, b checkpoint.Bootstrap) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.boot[b.Key()] = b
}

// Skips returns the recorded operator skips.
func (m *Memory) Skips() []checkpoint.Skip {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.skips)
}

type memTarget struct {
	r       *Memory
	inTx    bool
	undo    []memUndo
	skips   []checkpoint.Skip
	bootEnd []string // bootstrap entries the open transaction deletes
	maxSeq  uint64
	digests []checkpoint.TxnDigest // recorded by the open transaction
}

type memUndo struct {
	t   *memTable
	key string
	old []string // nil: the key did not exist
}

var (
	_ sink.Target      = (*memTarget)(nil)
	_ sink.DigestStore = (*memTarget)(nil)
)

// RecordDigests keeps ds until the open transaction commits (pruning is
// not needed in memory).
func (t *memTarget) RecordDigests(_ context.Context, ds []checkpoint.TxnDigest, _ uint64) error {
	t.digests = append(t.digests, ds...)
	return nil
}

// Digest reads a committed digest.
func (t *memTarget) Digest(_ context.Context, seq uint64) (uint64, bool, error) {
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	d, ok := t.r.digests[seq]
	return d, ok, nil
}

func (t *memTarget) fail(op string) error {
	if t.r.Fail != nil {
		return t.r.Fail(op)
	}
	return nil
}

func (t *memTarget) Open(context.Context) (checkpoint.State, bool, error) {
	if err := t.fail("open"); err != nil {
		return checkpoint.State{}, false, err
	}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	t.maxSeq = t.r.ckpt.MaxTxnSeq
	return t.r.ckpt, t.r.found, nil
}

func (t *memTarget) Begin(context.Context) error {
	if err := t.fail("begin"); err != nil {
		return err
	}
	t.inTx, t.undo, t.skips, t.bootEnd = true, t.undo[:0], nil, nil
	return nil
}

func (t *memTarget) ApplyRows(_ context.Context, rows []*pipeline.Event) error {
	return t.applyRows(rows, false)
}

func (t *memTarget) ApplyRowsLenient(_ context.Context, rows []*pipeline.Event) error {
	return t.applyRows(rows, true)
}

// applyRows upserts after images and deletes before images by key; a
// missing row is an error unless the transaction is a replay or lenient.
func (t *memTarget) applyRows(rows []*pipeline.Event, lenient bool) error {
	if err := t.fail("rows"); err != nil {
		return err
	}
	if !t.inTx {
		return fmt.Errorf("sinktest: ApplyRows outside a transaction")
	}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	for _, ev := range rows {
		tb := t.r.table(ev.Table)
		if ev.Before != nil && (ev.Op == pipeline.OpDelete || keyChanged(ev)) {
			k := rowKey(ev.Table, ev.Before)
			if _, ok := tb.rows[k]; !ok && !lenient && ev.Pos.TxnSeq > t.maxSeq {
				return fmt.Errorf("%w: %s.%s key %s", sink.ErrRowMissing, ev.Table.Database, ev.Table.Name, k)
			}
			t.set(tb, k, nil)
		}
		if ev.After != nil {
			t.upsert(tb, ev)
		}
	}
	return nil
}

// upsert writes ev's after image over the row of its key, if any.
func (t *memTarget) upsert(tb *memTable, ev *pipeline.Event) {
	k := rowKey(ev.Table, ev.After)
	row := slices.Clone(tb.rows[k])
	for i, c := range ev.Table.Columns {
		j := slices.Index(tb.cols, c.Name)
		for len(row) <= j {
			row = append(row, "NULL")
		}
		row[j] = Format(ev.After[i])
	}
	t.set(tb, k, row)
}

func (t *memTarget) set(tb *memTable, k string, row []string) {
	old := tb.rows[k] // nil when absent; a stored row is never nil
	t.undo = append(t.undo, memUndo{t: tb, key: k, old: old})
	if row == nil {
		delete(tb.rows, k)
	} else {
		tb.rows[k] = row
	}
}

var addColumn = regexp.MustCompile("(?i)^ALTER TABLE `?([^` ]+)`? ADD COLUMN `?([^` ]+)`?")

func (t *memTarget) ApplyDDL(_ context.Context, ev *pipeline.Event, st checkpoint.State) error {
	if err := t.fail("ddl"); err != nil {
		return err
	}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	if m := addColumn.FindStringSubmatch(ev.Statement); m != nil {
		tb := t.r.table(&pipeline.Table{Database: ev.Database, Name: m[1]})
		if !slices.Contains(tb.cols, m[2]) {
			tb.cols = append(tb.cols, m[2])
		}
	}
	t.r.save(st)
	t.maxSeq = max(t.maxSeq, st.TxnSeq)
	return nil
}

// StartSnapshot replaces the table with an empty one of the marker's
// columns (outside any transaction, like DDL), then records the bootstrap
// and the checkpoint together.
func (t *memTarget) StartSnapshot(_ context.Context, ev *pipeline.Event, st checkpoint.State) error {
	if ev.Table == nil || ev.Statement == "" {
		return fmt.Errorf("%w: snapshot start marker without a table or a definition", pipeline.ErrMalformed)
	}
	name := ev.Table.Database + "." + ev.Table.Name
	t.r.mu.Lock()
	delete(t.r.tables, name)
	t.r.table(ev.Table)
	t.r.mu.Unlock()
	if err := t.fail("snapshot"); err != nil {
		return err
	}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	t.r.boot[name] = checkpoint.Bootstrap{Topic: st.Topic, DB: ev.Table.Database, Table: ev.Table.Name,
		Mode: checkpoint.ModeSnapshot, FloorOffset: -1, Since: st.UpdatedAt}
	t.r.save(st)
	t.maxSeq = max(t.maxSeq, st.TxnSeq)
	return nil
}

func (t *memTarget) EndBootstrap(_ context.Context, db, table string) error {
	if !t.inTx {
		return fmt.Errorf("sinktest: EndBootstrap outside a transaction")
	}
	t.bootEnd = append(t.bootEnd, db+"."+table)
	return nil
}

func (t *memTarget) Bootstrap(context.Context) (map[string]checkpoint.Bootstrap, error) {
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	return maps.Clone(t.r.boot), nil
}

func (t *memTarget) RecordSkip(_ context.Context, s checkpoint.Skip) error {
	t.skips = append(t.skips, s)
	return nil
}

func (t *memTarget) Commit(_ context.Context, st checkpoint.State) error {
	if err := t.fail("commit"); err != nil {
		t.rollback()
		return err
	}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	t.r.save(st)
	t.r.skips = append(t.r.skips, t.skips...)
	if t.r.digests == nil {
		t.r.digests = map[uint64]uint64{}
	}
	for _, d := range t.digests {
		t.r.digests[d.TxnSeq] = d.Digest
	}
	t.digests = t.digests[:0]
	for _, k := range t.bootEnd {
		delete(t.r.boot, k)
	}
	t.maxSeq = max(t.maxSeq, st.TxnSeq)
	t.inTx, t.undo, t.skips, t.bootEnd = false, t.undo[:0], nil, nil
	return nil
}

func (t *memTarget) Rollback(context.Context) error {
	t.rollback()
	return nil
}

func (t *memTarget) rollback() {
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	for i := len(t.undo) - 1; i >= 0; i-- {
		u := t.undo[i]
		if u.old == nil {
			delete(u.t.rows, u.key)
		} else {
			u.t.rows[u.key] = u.old
		}
	}
	t.inTx, t.undo, t.skips, t.bootEnd, t.digests = false, t.undo[:0], nil, nil, t.digests[:0]
}

func (t *memTarget) Close() error { return nil }

// save stores a checkpoint, keeping the high-water mark like the MySQL store.
func (m *Memory) save(st checkpoint.State) {
	st.MaxTxnSeq = max(st.MaxTxnSeq, st.TxnSeq, m.ckpt.MaxTxnSeq)
	m.ckpt, m.found = st, true
}

func (m *Memory) table(t *pipeline.Table) *memTable {
	name := t.Database + "." + t.Name
	tb := m.tables[name]
	if tb == nil {
		tb = &memTable{rows: map[string][]string{}}
		m.tables[name] = tb
	}
	for _, c := range t.Columns {
		if !slices.Contains(tb.cols, c.Name) {
			tb.cols = append(tb.cols, c.Name)
		}
	}
	return tb
}

// rowKey is the primary key of a row image, or the whole image without one.
func rowKey(t *pipeline.Table, img []any) string {
	if len(t.PrimaryKey) == 0 {
		return keyString(img)
	}
	k := make([]any, len(t.PrimaryKey))
	for i, c := range t.PrimaryKey {
		k[i] = img[c]
	}
	return keyString(k)
}

func keyChanged(ev *pipeline.Event) bool {
	if ev.Op != pipeline.OpUpdate || ev.Before == nil {
		return false
	}
	if len(ev.Table.PrimaryKey) == 0 {
		return true // matched on the whole before image
	}
	for _, c := range ev.Table.PrimaryKey {
		a, b := ev.Before[c], ev.After[c]
		ab, aok := a.([]byte)
		bb, bok := b.([]byte)
		if aok || bok {
			if !bytes.Equal(ab, bb) {
				return true
			}
		} else if a != b {
			return true
		}
	}
	return false
}
