package sinktest

import (
	"fmt"
	"math/rand/v2"

	"github.com/rowcast/rowcast/pipeline"
)

// SetupSQL creates the tables of the standard workload (MySQL syntax, run
// with the suite's database selected). Tables created by the workload's own
// DDL events are not here.
var SetupSQL = []string{
	"CREATE TABLE `accounts` (`id` BIGINT NOT NULL PRIMARY KEY, `owner` VARCHAR(32) NOT NULL, " +
		"`balance` DECIMAL(12,2) NOT NULL, `opened` DATETIME(6) NULL) ENGINE=InnoDB",
	"CREATE TABLE `items` (`shelf` INT NOT NULL, `code` VARCHAR(16) NOT NULL, `qty` INT NOT NULL, " +
		"PRIMARY KEY (`shelf`,`code`)) ENGINE=InnoDB",
}

// The DDL statements the standard workload carries between its DML.
const (
	CreateExtraSQL = "CREATE TABLE `extra` (`id` INT NOT NULL PRIMARY KEY, `label` VARCHAR(20) NULL) ENGINE=InnoDB"
	AddNoteSQL     = "ALTER TABLE `accounts` ADD COLUMN `note` VARCHAR(20) NULL"
)

// Workload is a deterministic mixed changelog over three tables: inserts,
// updates, primary-key changes and deletes, single- and multi-table
// transactions, heartbeats, and two DDL statements between the DML (a
// CREATE TABLE and an ALTER TABLE ADD COLUMN, after which events carry the
// new column).
type Workload struct {
	*Script
	rng    *rand.Rand
	nextID int64
	txns   int
	extra  bool
	note   bool
}

// NewWorkload builds txns source transactions (plus two DDL) for database db.
func NewWorkload(db string, seed uint64, txns int, snapshots bool) *Workload {
	w := &Workload{Script: NewScript(db), rng: rand.New(rand.NewPCG(seed, 1)), txns: txns}
	w.Snapshots = snapshots
	w.Table("accounts", []pipeline.Column{
		{Name: "id", Kind: pipeline.VInt, SQLType: "bigint(20)"},
		{Name: "owner", Kind: pipeline.VString, SQLType: "varchar(32)"},
		{Name: "balance", Kind: pipeline.VDecimal, SQLType: "decimal(12,2)"},
		{Name: "opened", Kind: pipeline.VDateTime, SQLType: "datetime(6)"},
	}, 0)
	w.Table("items", []pipeline.Column{
		{Name: "shelf", Kind: pipeline.VInt, SQLType: "int(11)"},
		{Name: "code", Kind: pipeline.VString, SQLType: "varchar(16)"},
		{Name: "qty", Kind: pipeline.VInt, SQLType: "int(11)"},
	}, 0, 1)
	for i := 0; i < txns; i++ {
		switch i {
		case txns / 3:
			w.DDL(CreateExtraSQL)
			w.Table("extra", []pipeline.Column{
				{Name: "id", Kind: pipeline.VInt, SQLType: "int(11)"},
				{Name: "label", Kind: pipeline.VString, SQLType: "varchar(20)"},
			}, 0)
			w.extra = true
		case txns / 2:
			w.DDL(AddNoteSQL)
			w.AddColumn("accounts", pipeline.Column{Name: "note", Kind: pipeline.VString, SQLType: "varchar(20)"})
			w.note = true
		}
		if i%17 == 5 {
			w.Heartbeat()
		}
		n := 1 + w.rng.IntN(6)
		for j := 0; j < n; j++ {
			w.randomOp()
		}
		w.Commit()
	}
	return w
}

func (w *Workload) account(id int64) []any {
	var opened any
	if w.rng.IntN(4) > 0 {
		opened = fmt.Sprintf("2024-%02d-%02d 12:%02d:%02d.%06d", 1+w.rng.IntN(12), 1+w.rng.IntN(28),
			w.rng.IntN(60), w.rng.IntN(60), w.rng.IntN(1000000))
	}
	r := []any{id, fmt.Sprintf("owner-%d", w.rng.IntN(1000)),
		fmt.Sprintf("%d.%02d", w.rng.IntN(100000)-50000, w.rng.IntN(100)), opened}
	if w.note {
		var note any
		if w.rng.IntN(2) == 0 {
			note = fmt.Sprintf("n%d", w.rng.IntN(100))
		}
		r = append(r, note)
	}
	return r
}

func (w *Workload) pick(table string) []any {
	m := w.tables[table]
	if len(m.keys) == 0 {
		return nil
	}
	return m.rows[m.keys[w.rng.IntN(len(m.keys))]]
}

func (w *Workload) randomOp() {
	switch r := w.rng.IntN(100); {
	case r < 45:
		t := "accounts"
		if w.extra && r < 10 {
			t = "extra"
		}
		w.insertOrChange(t)
	default:
		w.itemOp()
	}
}

func (w *Workload) insertOrChange(table string) {
	cur := w.pick(table)
	op := w.rng.IntN(10)
	if cur == nil || op < 4 {
		w.nextID++
		if table == "extra" {
			w.Insert(table, w.nextID, fmt.Sprintf("x%d", w.rng.IntN(50)))
		} else {
			w.Insert(table, w.account(w.nextID)...)
		}
		return
	}
	key := []any{cur[0]}
	switch {
	case op < 7:
		if table == "extra" {
			w.Update(table, key, cur[0], nil)
		} else {
			w.Update(table, key, w.account(cur[0].(int64))...)
		}
	case op < 8: // primary key change
		w.nextID++
		if table == "extra" {
			w.Update(table, key, w.nextID, cur[1])
		} else {
			w.Update(table, key, w.account(w.nextID)...)
		}
	default:
		w.Delete(table, key...)
	}
}

func (w *Workload) itemOp() {
	cur := w.pick("items")
	op := w.rng.IntN(10)
	if cur == nil || op < 4 {
		for {
			shelf, code := int64(w.rng.IntN(20)), fmt.Sprintf("c%03d", w.rng.IntN(400))
			if _, ok := w.tables["items"].rows[keyString([]any{shelf, code})]; !ok {
				w.Insert("items", shelf, code, int64(w.rng.IntN(1000)))
				return
			}
		}
	}
	key := []any{cur[0], cur[1]}
	switch {
	case op < 7:
		w.Update("items", key, cur[0], cur[1], int64(w.rng.IntN(1000)))
	case op < 8: // change the second key column
		code := fmt.Sprintf("m%05d", w.rng.IntN(100000))
		if _, ok := w.tables["items"].rows[keyString([]any{cur[0], code})]; !ok {
			w.Update("items", key, cur[0], code, cur[2])
		}
	default:
		w.Delete("items", key...)
	}
}
