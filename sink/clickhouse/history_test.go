package clickhouse

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// TestHistoryMode keeps every change as a row: the count of rows (with
// FINAL, which collapses replays) is the count of changes, also after the
// whole changelog is applied twice, and the latest row of each key that is
// not deleted is the master's current row.
func TestHistoryMode(t *testing.T) {
	r := newReplica(t, Config{History: true})
	r.Setup(t, sinktest.SetupSQL...)
	w := sinktest.NewWorkload(r.db, 9, 80, false)
	runAll(t, r, w.Msgs)
	sinktest.Rewind(t, r.target(t), checkpoint.State{})
	runAll(t, r, w.Msgs)
	changes := map[string]int{}
	for _, m := range w.Msgs {
		if ev := m.Event; ev != nil && ev.Kind == pipeline.KindRow {
			changes[ev.Table.Name]++
			if ev.Op == pipeline.OpUpdate && keyChanged(ev) {
				changes[ev.Table.Name]++
			}
		}
	}
	for _, c := range []struct{ table, key string }{{"accounts", "id"}, {"items", "shelf, code"}} {
		n := r.query(t, "SELECT count() FROM "+qualified(r.db, c.table)+" FINAL")[0][0]
		if n != strconv.Itoa(changes[c.table]) {
			t.Errorf("%s: %s history rows, want %d changes", c.table, n, changes[c.table])
		}
		sinktest.CompareRows(t, c.table, r.latest(t, c.table, c.key), w.Expected(c.table))
	}
	ops := r.query(t, "SELECT DISTINCT _op FROM "+qualified(r.db, "accounts")+" FINAL WHERE _commit_time > 0 ORDER BY _op")
	if got := flatten(ops); !slices.Equal(got, []string{"c", "d", "u"}) {
		t.Errorf("accounts history ops %v, want c, d, u with commit times", got)
	}
}

// latest reads the current rows of a history table: each key's latest
// version, unless it is a deletion.
func (r *replica) latest(t testing.TB, table, key string) []string {
	cols := r.columns(t, table)
	q := "SELECT " + strings.Join(cols, ", ") + " FROM (SELECT * FROM " + qualified(r.db, table) +
		" FINAL ORDER BY " + key + ", _version DESC LIMIT 1 BY " + key + ") WHERE _deleted = 0"
	var out []string
	for _, row := range r.query(t, q) {
		for i, v := range row {
			if v == `\N` {
				row[i] = "NULL"
			}
		}
		out = append(out, strings.Join(row, "|"))
	}
	return out
}

func flatten(rows [][]string) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r...)
	}
	return out
}
