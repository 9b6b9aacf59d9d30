package benchkit

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Table is a result table: aligned columns on the terminal, Markdown in the
// doc.
type Table struct {
	Header []string
	Align  string // a letter per column, l or r, for Markdown; missing: l
	Rows   [][]string
}

// Text is the table with each column padded to its widest cell.
func (t Table) Text() string {
	var width []int
	for _, row := range t.all() {
		for i, c := range row {
			if i == len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], len(c))
		}
	}
	var b strings.Builder
	for _, row := range t.all() {
		for i, c := range row {
			fmt.Fprintf(&b, "%-*s  ", width[i], c)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func (t Table) all() [][]string { return append([][]string{t.Header}, t.Rows...) }

// Markdown is the table in Markdown.
func (t Table) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| %s |\n|", strings.Join(t.Header, " | "))
	for i := range t.Header {
		if i < len(t.Align) && t.Align[i] == 'r' {
			b.WriteString("--:|")
		} else {
			b.WriteString("---|")
		}
	}
	b.WriteString("\n")
	for _, row := range t.Rows {
		fmt.Fprintf(&b, "| %s |\n", strings.Join(row, " | "))
	}
	return b.String()
}

// Median is the element of xs with the median key, the upper one for an
// even count; the zero T when xs is empty.
func Median[T any](xs []T, key func(T) float64) T {
	if len(xs) == 0 {
		var zero T
		return zero
	}
	s := slices.Clone(xs)
	slices.SortStableFunc(s, func(a, b T) int { return cmp.Compare(key(a), key(b)) })
	return s[len(s)/2]
}

// MiB formats bytes in MiB.
func MiB(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// Met is a goal's verdict.
func Met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}
