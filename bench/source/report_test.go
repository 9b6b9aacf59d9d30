package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
)

func testReport(when time.Time) *report {
	o := &options{rows: 10, txn: 5, repeat: 1, insertConns: 1, eventBuffer: 64}
	sp := span{Name: "insert", Rows: 10, Txns: 2}
	var results []result
	for i, st := range stages {
		results = append(results, result{Workload: "insert", Stage: st, Rows: 10, Took: time.Duration(i+1) * time.Second})
	}
	return &report{o: o, cond: conditions{Machine: benchkit.Machine{CPUs: 2}}, when: when, spans: []span{sp}, results: results}
}

func TestUpdateDoc(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	day1 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	day2 := day1.Add(24 * time.Hour)

	if err := testReport(day1).updateDoc(path); err != nil {
		t.Fatal(err)
	}
	// Another benchmark's section follows.
	b, _ := os.ReadFile(path)
	other := "\n## other\n\n<!-- bench other 2026-01-01 begin -->\nx\n<!-- bench other 2026-01-01 end -->\n"
	if err := os.WriteFile(path, append(b, other...), 0o644); err != nil {
		t.Fatal(err)
	}
	// Same day: replaced in place; next day: after the first, before "other".
	if err := testReport(day1.Add(time.Hour)).updateDoc(path); err != nil {
		t.Fatal(err)
	}
	if err := testReport(day2).updateDoc(path); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	doc := string(b)
	if n := strings.Count(doc, "<!-- bench source 2026-01-01 begin -->"); n != 1 {
		t.Fatalf("%d sections of day 1:\n%s", n, doc)
	}
	if !strings.Contains(doc, "2026-01-01 11:00 UTC") || strings.Contains(doc, "2026-01-01 10:00 UTC") {
		t.Errorf("day 1 section not replaced:\n%s", doc)
	}
	i1 := strings.Index(doc, "bench source 2026-01-01 end")
	i2 := strings.Index(doc, "bench source 2026-01-02 begin")
	io := strings.Index(doc, "## other")
	if !(i1 < i2 && i2 < io) {
		t.Errorf("sections out of order (day 1 end %d, day 2 %d, other %d):\n%s", i1, i2, io, doc)
	}
}
