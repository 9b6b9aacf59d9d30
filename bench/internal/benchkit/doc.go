package benchkit

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// Section is one run's part of the doc.
type Section struct {
	Title      string   // its heading, after "### "
	Conditions []string // the items of its "Conditions:" list
	Table      Table
	After      string // Markdown after the table: verdicts, notes
}

// Markdown is the section without its markers.
func (s Section) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\nConditions:\n\n", s.Title)
	for _, c := range s.Conditions {
		fmt.Fprintf(&b, "- %s\n", c)
	}
	fmt.Fprintf(&b, "\n%s", s.Table.Markdown())
	if after := strings.TrimSpace(s.After); after != "" {
		fmt.Fprintf(&b, "\n%s\n", after)
	}
	return b.String()
}

// Doc is one benchmark's part of docs/BENCHMARKS.md: a dated section per
// day, between markers, under the benchmark's heading.
type Doc struct {
	Bench   string // its name in the markers: <!-- bench NAME DAY begin -->
	Heading string // the level-2 heading its sections go under
	Intro   string // what follows Heading when Record has to add it
}

// Markers are the comments around the section of when's day (UTC).
func (d Doc) Markers(when time.Time) (begin, end string) {
	day := when.UTC().Format("2006-01-02")
	return "<!-- bench " + d.Bench + " " + day + " begin -->", "<!-- bench " + d.Bench + " " + day + " end -->"
}

// Record puts section, the run of when, into the doc at path (created when
// missing), and logs where it went.
func (d Doc) Record(path string, when time.Time, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("update %s: %w", path, err)
	}
	if err := os.WriteFile(path, []byte(d.place(string(old), when, section)), 0o644); err != nil {
		return fmt.Errorf("update %s: %w", path, err)
	}
	Logf("recorded in %s", path)
	return nil
}

// place puts section into doc: in place of the section of the same day;
// else after this benchmark's newest section, so that its sections stay
// together under its heading when other benchmarks' follow; else at the end
// of its heading's part; else at the end, under a new heading. Everything
// else is left as it is.
func (d Doc) place(doc string, when time.Time, section string) string {
	begin, end := d.Markers(when)
	sec := begin + "\n" + strings.TrimRight(section, "\n") + "\n" + end
	if doc == "" {
		doc = "# Benchmarks\n"
	}
	if i, j := strings.Index(doc, begin), strings.Index(doc, end); i >= 0 && j > i {
		return doc[:i] + sec + doc[j+len(end):]
	}
	if k := d.lastSection(doc); k >= 0 {
		return insertAt(doc, k, sec)
	}
	if k := headingEnd(doc, d.Heading); k >= 0 {
		return insertAt(doc, k, sec)
	}
	if d.Heading != "" {
		sec = strings.TrimRight(d.Heading+"\n\n"+d.Intro, "\n") + "\n\n" + sec
	}
	return insertAt(doc, len(doc), sec)
}

// lastSection is the offset just after the last end marker of this
// benchmark's sections, -1 when there is none.
func (d Doc) lastSection(doc string) int {
	prefix := "<!-- bench " + d.Bench + " "
	last := -1
	for off := 0; ; {
		k := strings.Index(doc[off:], prefix)
		if k < 0 {
			return last
		}
		k += off
		e := strings.Index(doc[k:], "-->")
		if e < 0 {
			return last
		}
		e += k + len("-->")
		if strings.HasSuffix(doc[k:e], " end -->") {
			last = e
		}
		off = e
	}
}

// headingEnd is the offset of the end of heading's part of doc (the next
// heading of level 1 or 2, or the end), -1 when doc has no such heading.
func headingEnd(doc, heading string) int {
	if heading == "" {
		return -1
	}
	h := strings.Index("\n"+doc, "\n"+heading+"\n")
	if h < 0 {
		return -1
	}
	from := h + len(heading)
	cut := len(doc)
	for _, next := range []string{"\n## ", "\n# "} {
		if k := strings.Index(doc[from:], next); k >= 0 {
			cut = min(cut, from+k+1)
		}
	}
	return cut
}

// insertAt puts sec into doc at offset k, a blank line on either side.
func insertAt(doc string, k int, sec string) string {
	out := strings.TrimRight(doc[:k], "\n") + "\n\n" + sec + "\n"
	if rest := strings.TrimLeft(doc[k:], "\n"); rest != "" {
		out += "\n" + rest
	}
	return out
}
