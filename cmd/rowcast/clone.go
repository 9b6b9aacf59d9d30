package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/clone"
	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/failover"
)

func init() {
	commands["clone"] = command{summary: "make a new replica: copy the replicated tables of a running replica into an empty node", run: runClone}
}

const cloneSynopsis = `--config FILE --from NODE --to NODE [--overwrite] [--parallel N]

Copies the schema and rows of every replicated table from a running replica
(--from) into an empty node (--to), in one consistent read view of the
replica, and writes the new node's checkpoint at the exact position of that
view: then ` + "`rowcast sink --replica TO`" + ` goes on from there. The source's sink
worker keeps running. Both nodes are mysql nodes of the config.

A target that holds rows in the replicated databases, or a rowcast
checkpoint, is refused unless --overwrite, which drops those databases
first. A clone that was stopped resumes when run again: the tables it
copied are kept, the others are copied in a new read view.
`

func runClone(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	env := newCommand("clone", cloneSynopsis, "info", stderr)
	from := env.fs.String("from", "", "the replica to copy from")
	to := env.fs.String("to", "", "the new node to copy into")
	overwrite := env.fs.Bool("overwrite", false, "drop the replicated databases on --to (and its rowcast checkpoint for the topic) before copying")
	parallel := env.fs.Int("parallel", clone.DefaultParallel, "connections loading --to")
	cfg, log, err := env.setup(args, func() error {
		if *from == "" || *to == "" {
			return usageError("--from and --to are required: e.g. --from db2 --to db4")
		}
		return nil
	})
	if err != nil {
		return withCode(2, err)
	}
	pr := newCloneProgress(stderr, log)
	res, err := clone.Run(ctx, cfg, clone.Options{From: *from, To: *to, Overwrite: *overwrite, Parallel: *parallel,
		Locate: currentMaster(cfg, log), Progress: pr.update, Log: log})
	pr.finish()
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("stopped: %w; run the same command again to resume: the tables copied so far are kept", err)
	}
	if err != nil {
		return err
	}
	printClone(stdout, env.path, *from, *to, res)
	return nil
}

// currentMaster looks the current master up as the other commands do.
func currentMaster(cfg *config.Config, log zerolog.Logger) func(context.Context) (string, error) {
	loc := failover.NewLocator(cfg, cfg.ChangelogConfig(), log)
	return func(ctx context.Context) (string, error) {
		cur, err := loc.Current(ctx)
		if err != nil {
			return "", fmt.Errorf("look up the current master: %w", err)
		}
		return cur.Master, nil
	}
}

// printClone says what the clone did and what to do next.
func printClone(w io.Writer, path, from, to string, res *clone.Result) {
	rate := float64(res.Rows) / max(res.Elapsed.Seconds(), 1e-3)
	fmt.Fprintf(w, "cloned %s into %s: %d tables copied (%d rows, %.0f rows/s), %d kept from an earlier run, in %s\n",
		from, to, res.Copied, res.Rows, rate, res.Kept, res.Elapsed.Round(time.Millisecond))
	for _, v := range res.Views {
		fmt.Fprintf(w, "  read view at offset %d (e%d/t%d, gtid %s)\n", v.Offset, v.Epoch, v.TxnSeq, v.GTIDSet)
	}
	cp := res.Checkpoint
	fmt.Fprintf(w, "checkpoint of %s at offset %d (e%d/t%d). Start its sink worker: rowcast sink --config %s --replica %s\n",
		to, cp.Offset, cp.Epoch, cp.TxnSeq, path, to)
	if res.ReadOnly {
		fmt.Fprintf(w, "%s stays read-only until its sink worker has applied the topic past the clone's read views\n", to)
	}
}

// cloneProgress shows how far the copy is: one line rewritten in place on
// a terminal, a log line every few seconds otherwise.
type cloneProgress struct {
	mu       sync.Mutex
	w        io.Writer
	log      zerolog.Logger
	tty      bool
	start    time.Time
	last     time.Time
	interval time.Duration
	drawn    bool
}

func newCloneProgress(w io.Writer, log zerolog.Logger) *cloneProgress {
	f, ok := w.(*os.File)
	now := time.Now()
	return &cloneProgress{w: w, log: log, tty: ok && isatty.IsTerminal(f.Fd()), start: now, last: now, interval: 5 * time.Second}
}

func (p *cloneProgress) update(u clone.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.tty {
		p.draw(u, now)
		return
	}
	if now.Sub(p.last) >= p.interval {
		p.last = now
		p.log.Info().Str("table", u.Table).Int64("rows", u.Rows).Int64("total_rows", u.Total).Int64("total_estimate", u.TotalEstimate).
			Int("tables_done", u.TablesDone).Int("tables", u.Tables).Float64("rows_per_second", float64(int64(p.rate(u, now)))).Msg("clone progress")
	}
}

func (p *cloneProgress) rate(u clone.Progress, now time.Time) float64 {
	return float64(u.Total) / max(now.Sub(p.start).Seconds(), 1e-3)
}

// draw rewrites the terminal's line at most five times a second, and clears
// it when a table is done, so that the log line saying so stands alone.
func (p *cloneProgress) draw(u clone.Progress, now time.Time) {
	if u.Done {
		p.clear()
		return
	}
	if now.Sub(p.last) < 200*time.Millisecond {
		return
	}
	p.last = now
	pct := 100.0
	if u.TotalEstimate > 0 {
		pct = min(100, 100*float64(u.Total)/float64(u.TotalEstimate))
	}
	const width = 30
	fill := int(pct / 100 * width)
	fmt.Fprintf(p.w, "\r\x1b[Kclone [%s%s] %3.0f%% %d/~%d rows %.0f rows/s  table %d/%d %s", strings.Repeat("#", fill),
		strings.Repeat(".", width-fill), pct, u.Total, u.TotalEstimate, p.rate(u, now), u.TablesDone+1, u.Tables, u.Table)
	p.drawn = true
}

func (p *cloneProgress) clear() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
}

func (p *cloneProgress) finish() {
	p.mu.Lock()
	p.clear()
	p.mu.Unlock()
}
