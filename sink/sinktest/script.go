package sinktest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
)

// Script builds a changelog as a master would publish it: it assigns
// positions (epoch, TxnSeq, Row, Last), derives before images from its model
// of the tables, and remembers the expected table contents and the
// checkpoint after every transaction.
type Script struct {
	DB   string
	Msgs []sink.Message

	epoch  uint64
	seq    uint64
	gtids  uint64            // source transactions (a snapshot's take a TxnSeq, not a GTID)
	open   []*pipeline.Event // events of the transaction being built
	hidden bool              // changes go to the model only (Hidden)
	cursor map[string]string // the key after which each table's next snapshot chunk starts
	tables map[string]*model
	bounds map[uint64]checkpoint.State
	snaps  map[uint64]map[string][]string
	// Snapshots keeps the expected contents after every transaction
	// (ExpectedAt); off by default because it costs memory.
	Snapshots bool
	base      time.Time
}

type model struct {
	t    *pipeline.Table
	rows map[string][]any
	keys []string // for deterministic random picks
	idx  map[string]int
}

// NewScript starts a changelog for database db at epoch 1 (the first
// message is the epoch 1 record).
func NewScript(db string) *Script {
	s := &Script{DB: db, tables: map[string]*model{}, bounds: map[uint64]checkpoint.State{},
		snaps: map[uint64]map[string][]string{}, base: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	s.Epoch(1)
	return s
}

// Table declares a table of the script's database. pk holds column indexes.
func (s *Script) Table(name string, cols []pipeline.Column, pk ...int) *pipeline.Table {
	t := &pipeline.Table{Database: s.DB, Name: name, Columns: cols, PrimaryKey: pk}
	s.tables[name] = &model{t: t, rows: map[string][]any{}, idx: map[string]int{}}
	return t
}

// AddColumn changes a table's shape (after the DDL that adds the column):
// later events carry the new column; existing rows get NULL.
func (s *Script) AddColumn(name string, c pipeline.Column) *pipeline.Table {
	m := s.tables[name]
	t := *m.t
	t.Columns = append(slices.Clip(m.t.Columns), c)
	m.t = &t
	for k, r := range m.rows {
		m.rows[k] = append(r, nil)
	}
	return m.t
}

// Epoch appends the record of a new epoch whose predecessor ended with the
// last transaction published so far.
func (s *Script) Epoch(e uint64) {
	s.epoch = e
	s.add(&pipeline.Event{Kind: pipeline.KindEpoch, Pos: pipeline.Position{Epoch: e},
		Epoch: &pipeline.EpochRecord{Epoch: e, Master: fmt.Sprintf("db%d", e), TxnSeq: s.seq, Flavor: "mariadb"}})
}

// Heartbeat appends a heartbeat carrying the master's clock.
func (s *Script) Heartbeat() {
	s.add(&pipeline.Event{Kind: pipeline.KindHeartbeat, Pos: pipeline.Position{Epoch: s.epoch},
		CommitTime: s.clock(), GTIDSet: s.gtidSet(s.gtids)})
}

func (s *Script) clock() time.Time { return s.base.Add(time.Duration(s.seq) * time.Second) }
func (s *Script) gtidSet(seq uint64) string {
	if seq == 0 {
		return ""
	}
	return fmt.Sprintf("0-1-%d", seq)
}

// SetEpoch changes the epoch of the next transactions without an epoch
// record (a stray reader of a newer master).
func (s *Script) SetEpoch(e uint64) { s.epoch = e }

// Append appends a message as is: no position is assigned and the model does
// not change (inject duplicates, stray or partial messages).
func (s *Script) Append(ev *pipeline.Event) { s.add(ev) }

func (s *Script) add(ev *pipeline.Event) {
	s.Msgs = append(s.Msgs, sink.Message{Offset: int64(len(s.Msgs)), Event: ev})
}

func (s *Script) row(t *pipeline.Table, op pipeline.Op, before, after []any) {
	if s.hidden {
		return
	}
	ev := &pipeline.Event{Kind: pipeline.KindRow, Table: t, Op: op, Before: before, After: after}
	s.open = append(s.open, ev)
}

// Insert adds an insert to the open transaction.
func (s *Script) Insert(table string, vals ...any) {
	m := s.tables[table]
	k := m.key(vals)
	if _, ok := m.rows[k]; ok {
		panic(fmt.Sprintf("sinktest: insert of existing key %s into %s", k, table))
	}
	m.put(k, vals)
	s.row(m.t, pipeline.OpInsert, nil, vals)
}

// Update replaces the row with primary key key by after (the key may change).
func (s *Script) Update(table string, key []any, after ...any) {
	m := s.tables[table]
	k := keyString(key)
	before, ok := m.rows[k]
	if !ok {
		panic(fmt.Sprintf("sinktest: update of missing key %s in %s", k, table))
	}
	m.del(k)
	m.put(m.key(after), after)
	s.row(m.t, pipeline.OpUpdate, before, after)
}

// Delete deletes the row with primary key key.
func (s *Script) Delete(table string, key ...any) {
	m := s.tables[table]
	k := keyString(key)
	before, ok := m.rows[k]
	if !ok {
		panic(fmt.Sprintf("sinktest: delete of missing key %s in %s", k, table))
	}
	m.del(k)
	s.row(m.t, pipeline.OpDelete, before, nil)
}

// DDL appends a transaction holding one DDL statement, run in the script's
// database.
func (s *Script) DDL(stmt string) {
	s.open = append(s.open, &pipeline.Event{Kind: pipeline.KindDDL, Database: s.DB, Statement: stmt})
	s.Commit()
}

// Commit ends the open transaction: positions are assigned, the last message
// is marked, and the expected state is recorded.
func (s *Script) Commit() { s.commit(true) }

// commit ends the open transaction; gtid is false for the transactions of a
// snapshot (markers, chunks), which the master did not run.
func (s *Script) commit(gtid bool) {
	if len(s.open) == 0 {
		return
	}
	s.seq++
	if gtid {
		s.gtids++
	}
	for i, ev := range s.open {
		ev.Pos = pipeline.Position{Epoch: s.epoch, TxnSeq: s.seq, Row: uint64(i), Last: i == len(s.open)-1}
		if gtid {
			ev.GTID = fmt.Sprintf("0-1-%d", s.gtids)
		}
		ev.Flavor, ev.ServerID, ev.CommitTime = "mariadb", 1, s.clock()
		if ev.Pos.Last {
			ev.GTIDSet = s.gtidSet(s.gtids)
		}
		s.add(ev)
	}
	s.open = nil
	s.bounds[s.seq] = checkpoint.State{Offset: int64(len(s.Msgs)), Epoch: s.epoch, TxnSeq: s.seq,
		GTIDSet: s.gtidSet(s.gtids), CommitTime: s.clock()}
	if s.Snapshots {
		snap := map[string][]string{}
		for name := range s.tables {
			snap[name] = s.Expected(name)
		}
		s.snaps[s.seq] = snap
	}
}

// Seq is the TxnSeq of the last committed transaction.
func (s *Script) Seq() uint64 { return s.seq }

// After is the checkpoint a sink holds after applying transaction seq (Topic
// and Partition unset).
func (s *Script) After(seq uint64) checkpoint.State { return s.bounds[seq] }

// Expected is the expected contents of a table now, in Rows format.
func (s *Script) Expected(table string) []string {
	m := s.tables[table]
	out := make([]string, 0, len(m.rows))
	for _, r := range m.rows {
		out = append(out, FormatRow(r))
	}
	slices.Sort(out)
	return out
}

// ExpectedAt is a table's expected contents after transaction seq (0: empty).
// It needs Snapshots.
func (s *Script) ExpectedAt(seq uint64, table string) []string {
	if seq == 0 {
		return []string{}
	}
	return s.snaps[seq][table]
}

// Tables names the script's tables, sorted.
func (s *Script) Tables() []string {
	var out []string
	for n := range s.tables {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func (m *model) key(vals []any) string {
	k := make([]any, len(m.t.PrimaryKey))
	for i, c := range m.t.PrimaryKey {
		k[i] = vals[c]
	}
	return keyString(k)
}

func (m *model) put(k string, vals []any) {
	m.rows[k] = vals
	m.idx[k] = len(m.keys)
	m.keys = append(m.keys, k)
}

func (m *model) del(k string) {
	delete(m.rows, k)
	i := m.idx[k]
	last := m.keys[len(m.keys)-1]
	m.keys[i] = last
	m.idx[last] = i
	m.keys = m.keys[:len(m.keys)-1]
	delete(m.idx, k)
}

func keyString(vals []any) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = Format(v)
	}
	return strings.Join(parts, "\x00")
}

// Format is how the suite writes one value: NULL, decimal integers, floats
// in Go's shortest form, strings and bytes as they are.
func Format(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case string:
		return v
	case []byte:
		return string(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case uint64:
		return strconv.FormatUint(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

// FormatRow is how Inspect.Rows writes a row: its values in column order,
// formatted by Format, joined by "|".
func FormatRow(vals []any) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = Format(v)
	}
	return strings.Join(parts, "|")
}
