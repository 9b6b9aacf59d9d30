package benchkit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var (
	day1 = time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	day2 = day1.Add(24 * time.Hour)
	sink = Doc{Bench: "sink", Heading: "## Sink", Intro: "What sink measures."}
)

func TestPlaceNewDoc(t *testing.T) {
	got := sink.place("", day1, "### run 1\n")
	want := "# Benchmarks\n\n## Sink\n\nWhat sink measures.\n\n" +
		"<!-- bench sink 2026-01-01 begin -->\n### run 1\n<!-- bench sink 2026-01-01 end -->\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestPlaceSameDayReplaces(t *testing.T) {
	doc := sink.place("", day1, "### run 1")
	doc = sink.place(doc+"\n## Other\n", day1.Add(time.Hour), "### run 2")
	if strings.Contains(doc, "run 1") || strings.Count(doc, "run 2") != 1 {
		t.Fatalf("same day not replaced:\n%s", doc)
	}
	if strings.Index(doc, "run 2") > strings.Index(doc, "## Other") {
		t.Fatalf("replaced section moved:\n%s", doc)
	}
}

func TestPlaceAfterNewestSection(t *testing.T) {
	doc := "# B\n\n## Sink\n\nintro\n\n" +
		"<!-- bench sink 2025-12-30 begin -->\nold\n<!-- bench sink 2025-12-30 end -->\n\n" +
		"<!-- bench sinkhole 2025-12-31 begin -->\nx\n<!-- bench sinkhole 2025-12-31 end -->\n\n" +
		"Notes after the sections.\n\n## Other\n\nother text\n"
	got := sink.place(doc, day2, "### new")
	iOld, iNew := strings.Index(got, "old"), strings.Index(got, "### new")
	iHole, iNotes := strings.Index(got, "sinkhole"), strings.Index(got, "Notes after")
	if !(iOld < iNew && iNew < iHole && iHole < iNotes) {
		t.Fatalf("new section not right after the newest one of its benchmark:\n%s", got)
	}
	if !strings.Contains(got, "end -->\n\n<!-- bench sink 2026-01-02 begin -->\n### new\n<!-- bench sink 2026-01-02 end -->\n\n<!-- bench sinkhole") {
		t.Fatalf("not one blank line on either side:\n%s", got)
	}
}

func TestPlaceEndOfHeading(t *testing.T) {
	doc := "# B\n\n## Sink\n\nintro, no runs yet\n\n### Notes\n\ntext\n\n## Other\n\nother\n"
	got := sink.place(doc, day1, "### new")
	iNotes, iNew, iOther := strings.Index(got, "### Notes"), strings.Index(got, "### new"), strings.Index(got, "## Other")
	if !(iNotes < iNew && iNew < iOther) {
		t.Fatalf("new section not at the end of its heading's part:\n%s", got)
	}
	if strings.Count(got, "## Sink") != 1 {
		t.Fatalf("heading repeated:\n%s", got)
	}
}

func TestPlaceHeadingIsALine(t *testing.T) {
	// "### Sink, ..." holds "## Sink" but is not the heading.
	doc := "# B\n\n### Sink, 2025\n\ntext\n"
	got := sink.place(doc, day1, "### new")
	if !strings.HasSuffix(got, "text\n\n## Sink\n\nWhat sink measures.\n\n<!-- bench sink 2026-01-01 begin -->\n### new\n<!-- bench sink 2026-01-01 end -->\n") {
		t.Fatalf("heading not added at the end:\n%s", got)
	}
}

func TestRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := sink.Record(path, day1, "### run 1"); err != nil {
		t.Fatal(err)
	}
	if err := sink.Record(path, day2, "### run 2"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if doc := string(b); strings.Index(doc, "run 1") > strings.Index(doc, "run 2") || strings.Count(doc, "## Sink") != 1 {
		t.Fatalf("two runs not in order under one heading:\n%s", doc)
	}
}

func TestSectionMarkdown(t *testing.T) {
	s := Section{Title: "t", Conditions: []string{"a", "b"},
		Table: Table{Header: []string{"x", "n"}, Align: "lr", Rows: [][]string{{"one", "1"}}}, After: "\nverdict\n"}
	want := "### t\n\nConditions:\n\n- a\n- b\n\n| x | n |\n|---|--:|\n| one | 1 |\n\nverdict\n"
	if got := s.Markdown(); got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}
