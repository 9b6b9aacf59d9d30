package mysql

import (
	"errors"
	"testing"

	"github.com/rowcast/rowcast/pipeline"
)

// Versions order by level, then time, then the earlier master; a domain
// that is no master's comes last.
func TestVersionOrder(t *testing.T) {
	tg := &Target{cfg: Config{MasterDomains: []uint32{1, 2, 3}}}
	v := func(lvl uint64, ts int64, d uint32) version { return version{lvl: lvl, ts: ts, domain: d} }
	for _, c := range []struct {
		a, b version
		want bool
	}{
		{v(0, 20, 3), v(0, 10, 1), true},  // later
		{v(0, 10, 1), v(0, 20, 3), false}, // earlier
		{v(1, 10, 2), v(0, 99, 1), true},  // the priority level wins whatever the time
		{v(0, 10, 1), v(0, 10, 2), true},  // a tie: the earlier master
		{v(0, 10, 2), v(0, 10, 1), false},
		{v(0, 10, 3), v(0, 10, 9), true}, // 9 is no master's
	} {
		if got := tg.beats(c.a, c.b); got != c.want {
			t.Errorf("%v beats %v: %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

// A versions row reads back from its after image; one without a key is
// malformed.
func TestVersionOf(t *testing.T) {
	tbl := &pipeline.Table{Database: "rowcast", Name: VersionsTable, Columns: []pipeline.Column{
		{Name: "table_name"}, {Name: "row_key"}, {Name: "lvl"}, {Name: "ts"}, {Name: "domain"}, {Name: "deleted"}}}
	ev := &pipeline.Event{Kind: pipeline.KindRow, Op: pipeline.OpInsert, Table: tbl,
		After: []any{"shop.t", []byte{1, 2}, uint64(1), int64(1700000000123456), uint64(2), int64(1)}}
	got, err := versionOf(ev)
	if err != nil || got.table != "shop.t" || string(got.key) != "\x01\x02" || got.lvl != 1 || got.ts != 1700000000123456 || got.domain != 2 || !got.deleted {
		t.Fatalf("versionOf: %+v, %v", got, err)
	}
	ev.After[1] = []byte{}
	if _, err := versionOf(ev); !errors.Is(err, pipeline.ErrMalformed) {
		t.Fatalf("a version without a key: %v", err)
	}
}
