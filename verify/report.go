package verify

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Difference kinds.
const (
	Changed = "changed" // the row is on both sides with different values
	Missing = "missing" // the row is on the master, not on the replica
	Extra   = "extra"   // the row is on the replica, not on the master
)

// Field is one column's value; Value nil is SQL NULL. Binary values that are
// not UTF-8 are shown in hex (0x...).
type Field struct {
	Column string  `json:"column"`
	Value  *string `json:"value"`
}

// Diff is one row that differs, confirmed with the replica at or past the
// master's position.
type Diff struct {
	Kind string  `json:"kind"`
	Key  []Field `json:"key"`
	// Master and Replica are the row's values on each side (nil when absent,
	// or when values were not asked for).
	Master  []Field `json:"master,omitempty"`
	Replica []Field `json:"replica,omitempty"`
}

// KeyString is the key as col=value, col=value.
func (d Diff) KeyString() string { return fieldsString(d.Key) }

// TableReport is the outcome for one table.
type TableReport struct {
	Table string `json:"table"`
	// Key names the columns the table was walked by; empty when it has no
	// usable key and was compared as a whole.
	Key    []string `json:"key,omitempty"`
	Rows   int64    `json:"rows"`   // rows compared (the master's side)
	Chunks int      `json:"chunks"` // chunks hashed
	// Rechecked counts chunks whose first hashes differed and that were
	// checked again once the replica had reached the master's position.
	Rechecked int `json:"rechecked"`
	// Differences counts rows that differ (for a table compared as a whole,
	// 1 when it differs); Diffs lists the first of them.
	Differences int    `json:"differences"`
	Diffs       []Diff `json:"diffs,omitempty"`
	// Note explains a special case: a table compared as a whole, a table
	// missing on the replica, different columns.
	Note string `json:"note,omitempty"`
	// Repaired counts rows rewritten on the replica (upserted or deleted);
	// Remaining the differences found by the verification after the repair.
	Repaired  int     `json:"repaired,omitempty"`
	Remaining *int    `json:"remaining,omitempty"`
	Error     string  `json:"error,omitempty"`
	Seconds   float64 `json:"seconds"`
}

// Equal reports whether the table was verified equal (after any repair).
func (t *TableReport) Equal() bool {
	if t.Error != "" {
		return false
	}
	if t.Remaining != nil {
		return *t.Remaining == 0
	}
	return t.Differences == 0
}

// Report is the outcome of one verification.
type Report struct {
	Master string `json:"master"`
	// MasterEpoch is the master's generation; MasterFrom where its name
	// comes from ("config", "epoch record"; empty when it was given).
	MasterEpoch uint64 `json:"master_epoch"`
	MasterFrom  string `json:"master_from,omitempty"`
	Replica     string `json:"replica"`
	Hash        string `json:"hash"`
	// Static is set when the replica was compared as it is, without waiting
	// for it to reach the master's position (no checkpoint, or --no-wait);
	// Note says why.
	Static  bool          `json:"static"`
	Note    string        `json:"note,omitempty"`
	Tables  []TableReport `json:"tables"`
	Started time.Time     `json:"started"`
	Seconds float64       `json:"seconds"`
}

// Rows is the number of rows compared in all tables.
func (r *Report) Rows() int64 {
	var n int64
	for _, t := range r.Tables {
		n += t.Rows
	}
	return n
}

// Errors counts tables that could not be verified.
func (r *Report) Errors() int {
	n := 0
	for _, t := range r.Tables {
		if t.Error != "" {
			n++
		}
	}
	return n
}

// Equal reports whether every table was verified equal.
func (r *Report) Equal() bool {
	for i := range r.Tables {
		if !r.Tables[i].Equal() {
			return false
		}
	}
	return true
}

// WriteText prints the report for an operator: one block per table, each
// difference with its key and, unless quiet, the values on both sides.
func (r *Report) WriteText(w io.Writer, quiet bool) {
	if r.MasterFrom != "" {
		fmt.Fprintf(w, "compared with master %s, epoch %d (from the %s)\n", r.Master, r.MasterEpoch, r.MasterFrom)
	}
	if r.Note != "" {
		fmt.Fprintf(w, "note: %s\n", r.Note)
	}
	diffTables, repaired := 0, 0
	for i := range r.Tables {
		t := &r.Tables[i]
		switch t.writeText(w, quiet) {
		case tableDiffers:
			diffTables++
		case tableRepaired:
			repaired++
		}
	}
	fmt.Fprintf(w, "%s: replica %s vs master %s: %d table(s), %d row(s) in %.1fs (%.0f rows/s), %d table(s) with differences, %d repaired, %d error(s)\n",
		r.verdict(), r.Replica, r.Master, len(r.Tables), r.Rows(), r.Seconds, float64(r.Rows())/max(r.Seconds, 1e-9), diffTables, repaired, r.Errors())
}

func (r *Report) verdict() string {
	switch {
	case r.Errors() > 0:
		return "ERROR"
	case !r.Equal():
		return "DIFFERENT"
	}
	return "EQUAL"
}

// tableOutcome is how a table came out, for the report's last line.
type tableOutcome int

const (
	tableEqual tableOutcome = iota
	tableFailed
	tableDiffers
	tableRepaired
)

func (t *TableReport) outcome() tableOutcome {
	switch {
	case t.Error != "":
		return tableFailed
	case t.Differences > 0 && t.Equal():
		return tableRepaired
	case t.Differences > 0:
		return tableDiffers
	}
	return tableEqual
}

// writeText prints one table's block and returns its outcome.
func (t *TableReport) writeText(w io.Writer, quiet bool) tableOutcome {
	o := t.outcome()
	key := "key (" + strings.Join(t.Key, ",") + ")"
	if len(t.Key) == 0 {
		key = "no key"
	}
	fmt.Fprintf(w, "%s: %s  rows %d, chunks %d (%d re-checked), %s, %.1fs\n", t.Table, t.status(o), t.Rows, t.Chunks, t.Rechecked, key, t.Seconds)
	if t.Note != "" {
		fmt.Fprintf(w, "  note: %s\n", t.Note)
	}
	if t.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", t.Error)
	}
	t.writeDiffs(w, quiet)
	t.writeRepair(w)
	return o
}

func (t *TableReport) status(o tableOutcome) string {
	switch o {
	case tableFailed:
		return "ERROR"
	case tableRepaired:
		return fmt.Sprintf("%d difference(s), repaired", t.Differences)
	case tableDiffers:
		return fmt.Sprintf("%d difference(s)", t.Differences)
	}
	return "equal"
}

func (t *TableReport) writeDiffs(w io.Writer, quiet bool) {
	for _, d := range t.Diffs {
		fmt.Fprintf(w, "  %-7s %s\n", d.Kind, d.KeyString())
		if quiet {
			continue
		}
		if d.Master != nil {
			fmt.Fprintf(w, "          master:  %s\n", fieldsString(d.Master))
		}
		if d.Replica != nil {
			fmt.Fprintf(w, "          replica: %s\n", fieldsString(d.Replica))
		}
	}
	if more := t.Differences - len(t.Diffs); more > 0 && len(t.Key) > 0 {
		fmt.Fprintf(w, "  ... and %d more\n", more)
	}
}

func (t *TableReport) writeRepair(w io.Writer) {
	if t.Repaired == 0 && t.Remaining == nil {
		return
	}
	rem := 0
	if t.Remaining != nil {
		rem = *t.Remaining
	}
	fmt.Fprintf(w, "  repaired %d row(s) on the replica; verified again: %d difference(s) left\n", t.Repaired, rem)
}

func fieldsString(fs []Field) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		v := "NULL"
		if f.Value != nil {
			v = *f.Value
		}
		s[i] = f.Column + "=" + v
	}
	return strings.Join(s, ", ")
}

// display renders a value for the report: numbers as they are, text
// quoted, binary values quoted when they are UTF-8 text, else in hex (BIT and
// spatial values always).
func display(v []byte, c column) *string {
	if v == nil {
		return nil
	}
	var s string
	switch c.kind {
	case kindInt, kindUint, kindDecimal, kindFloat:
		s = string(v)
	case kindBinary:
		if c.DataType == "binary" || c.DataType == "varbinary" || strings.HasSuffix(c.DataType, "blob") {
			if utf8.Valid(v) {
				s = strconv.Quote(string(v))
				break
			}
		}
		s = fmt.Sprintf("0x%X", v)
	default:
		s = strconv.Quote(string(v))
	}
	return &s
}
