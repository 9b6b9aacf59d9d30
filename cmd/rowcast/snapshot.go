package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/service"
)

func init() {
	commands["snapshot"] = command{summary: "ask the running reader to snapshot tables into the topic while it streams", run: runSnapshot}
}

// runSnapshot records a snapshot request on the current master; with
// --wait it follows the snapshot and exits 0 when it is done, 1 when it
// failed or was cancelled. A refused request exits 2.
func runSnapshot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	env := newCommand("snapshot", "--config FILE --tables db.t1,db.t2 [--throttle ROWS_PER_S] [--wait]", "info", stderr)
	var tables string
	env.fs.StringVar(&tables, "tables", "", "comma-separated db.table names to snapshot, in this order")
	throttle := env.fs.Int("throttle", 0, "snapshot at most this many rows per second (0: no limit)")
	wait := env.fs.Bool("wait", false, "follow the snapshot until it ends, with a progress bar on a terminal")
	cfg, log, err := env.setup(args, requireFlag(&tables, "--tables is required, e.g. --tables shop.orders,shop.lines"))
	if err != nil {
		return err
	}
	req := service.SnapshotRequest{Tables: splitList(tables), Throttle: *throttle}
	id, master, err := service.RequestSnapshot(ctx, cfg, req, log)
	if err != nil {
		return withCode(2, err)
	}
	fmt.Fprintf(stdout, "snapshot %d requested on %s: %s (the running `rowcast pipeline` or `rowcast run` starts it within a second; `rowcast status` shows it)\n",
		id, master, strings.Join(req.Tables, ", "))
	if !*wait {
		return nil
	}
	bar := newSnapshotBar(stdout, log)
	s, err := service.WatchSnapshot(ctx, cfg, master, id, time.Second, bar.show)
	bar.end()
	if err != nil {
		return withCode(2, err)
	}
	return snapshotOutcome(stdout, s)
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// snapshotOutcome reports how a followed snapshot ended.
func snapshotOutcome(w io.Writer, s checkpoint.Snapshot) error {
	if s.State == checkpoint.SnapshotDone {
		fmt.Fprintf(w, "snapshot %d done: %d rows of %s\n", s.ID, s.RowsDone, strings.Join(s.Tables, ", "))
		return nil
	}
	return &exitError{code: 1, err: fmt.Errorf("snapshot %d %s: %s", s.ID, s.State, s.Error)}
}

// snapshotBar shows a snapshot's progress: a bar rewritten in place on a
// terminal, a log line at each change otherwise.
type snapshotBar struct {
	w      io.Writer
	log    zerolog.Logger
	tty    bool
	drawn  bool
	last   checkpoint.Snapshot
	start  time.Time
	warned bool
}

func newSnapshotBar(w io.Writer, log zerolog.Logger) *snapshotBar {
	f, ok := w.(*os.File)
	return &snapshotBar{w: w, log: log, tty: ok && isatty.IsTerminal(f.Fd()), start: time.Now()}
}

// pickupWarning is how long a request may wait before the bar says that
// no reader seems to run.
const pickupWarning = 10 * time.Second

func (b *snapshotBar) show(s checkpoint.Snapshot) {
	if s.State == checkpoint.SnapshotRequested && !b.warned && time.Since(b.start) > pickupWarning {
		b.warned = true
		b.end()
		b.drawn = false
		b.log.Warn().Int64("snapshot", s.ID).Msg("no reader has started the snapshot yet: is `rowcast pipeline` or `rowcast run` running with this config, or another snapshot still running?")
	}
	if s.RowsDone == b.last.RowsDone && s.State == b.last.State && s.CurrentTable == b.last.CurrentTable {
		return
	}
	b.last = s
	pct := snapshotPercent(s)
	if !b.tty {
		b.log.Info().Int64("snapshot", s.ID).Str("state", s.State).Str("table", s.CurrentTable).Int64("rows", s.RowsDone).
			Int64("estimate", s.RowsTotal).Float64("percent", pct).Msg("snapshot progress")
		return
	}
	const width = 30
	fill := int(pct / 100 * width)
	fmt.Fprintf(b.w, "\rsnapshot %d %-9s [%s%s] %3.0f%% %d/~%d rows %s ", s.ID, s.State,
		strings.Repeat("#", fill), strings.Repeat(".", width-fill), pct, s.RowsDone, s.RowsTotal, s.CurrentTable)
	b.drawn = true
}

// end finishes the terminal's bar line.
func (b *snapshotBar) end() {
	if b.drawn {
		fmt.Fprintln(b.w)
	}
}

// snapshotPercent is how far a snapshot is, by the row estimate: below 100
// until it is done, since the estimate is rough.
func snapshotPercent(s checkpoint.Snapshot) float64 {
	switch {
	case s.State == checkpoint.SnapshotDone:
		return 100
	case s.RowsTotal <= 0:
		return 0
	}
	return min(99, float64(int(1000*float64(s.RowsDone)/float64(s.RowsTotal)))/10)
}
