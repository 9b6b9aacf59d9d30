package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/replay"
	"github.com/rowcast/rowcast/sink/clickhouse"
)

func init() {
	commands["replay"] = command{summary: "rewind a replica's checkpoint and apply a range of the changelog again", run: runReplay}
}

const replaySynopsis = `--config FILE --replica NAME (--from-offset N | --from-time T | --from-gtid SET) [--to-offset N] [--dry-run]

Rewinds the replica's checkpoint to the transaction boundary at the start
of the range and applies the topic again from there, in this process, up to
--to-offset (default: the end of the last complete transaction in the topic
now). Replaying converges to the same data (tables with a primary key).

Stop the replica's sink worker first (rowcast sink, or the replica's worker
in rowcast run): replay refuses to run beside it. Start it again afterwards;
it continues from where the replay stopped.

--from-time is compared with the master's commit time carried in the
messages (ts_ms, second precision), not with Kafka's timestamps: the replay
starts with the first transaction committed at or after T. T is RFC 3339
(2025-03-01T12:00:00Z), "2006-01-02 15:04:05" in UTC, or Unix seconds.
--from-gtid SET starts after the last transaction that SET holds.
`

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	env := newCommand("replay", replaySynopsis, "warn", stderr)
	var f replayFlags
	f.register(env.fs)
	cfg, log, err := env.setup(args, f.check)
	if err != nil {
		return err
	}
	r := &replay.Replayer{Cfg: cfg, Log: log}
	plan, err := r.Plan(ctx, f.opts)
	if err != nil {
		return err
	}
	printPlan(stdout, plan)
	if f.dryRun {
		fmt.Fprintf(stdout, "dry run: nothing changed. Without --dry-run the checkpoint of %s moves back to offset %d and the range is applied again (stop its sink worker first).\n",
			plan.Replica, plan.From.Offset)
		return nil
	}
	return applyPlan(ctx, r, plan, settleTime(cfg, plan.Replica), stdout)
}

// settleTime is how long replay watches the replica's checkpoint for a
// running sink worker. An idle worker writes it only on heartbeats, at most
// once a second (sink.WorkerConfig.HeartbeatCommit): two heartbeat intervals
// and that second. A ClickHouse target stores it up to its flush interval
// later (the fresh-clone CI saw a running worker stay still for 3 s).
func settleTime(cfg *config.Config, replica string) time.Duration {
	settle := max(2*time.Second, 2*cfg.Source.HeartbeatInterval.D()+time.Second)
	if n, _ := cfg.Node(replica); n.Kind == config.KindClickHouse {
		settle += clickhouse.DefaultFlushInterval
	}
	return settle
}

// replayFlags are replay's own flags.
type replayFlags struct {
	replica, fromTime, fromGTID string
	fromOffset, toOffset        int64
	dryRun                      bool
	// opts is what they ask, once checked.
	opts replay.Options
}

func (f *replayFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.replica, "replica", "", "the replica to replay into")
	fs.Int64Var(&f.fromOffset, "from-offset", -1, "replay from this offset (moved back to the start of its transaction)")
	fs.StringVar(&f.fromTime, "from-time", "", "replay from the first transaction committed on the master at or after this time")
	fs.StringVar(&f.fromGTID, "from-gtid", "", "replay the transactions after this GTID set")
	fs.Int64Var(&f.toOffset, "to-offset", -1, "stop before this offset (moved back to a transaction boundary); default: the end of the topic")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print what would be replayed and change nothing")
}

// check requires the replica and exactly one start, and sets opts.
func (f *replayFlags) check() error {
	if f.replica == "" {
		return usageError("--replica is required")
	}
	if countTrue(f.fromOffset >= 0, f.fromTime != "", f.fromGTID != "") != 1 {
		return usageError("give exactly one of --from-offset, --from-time and --from-gtid")
	}
	f.opts = replay.Options{Replica: f.replica, FromOffset: f.fromOffset, FromGTID: f.fromGTID, ToOffset: f.toOffset}
	if f.fromTime == "" {
		return nil
	}
	t, err := parseTime(f.fromTime)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	f.opts.FromTime = t
	return nil
}

func countTrue(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// applyPlan makes sure no sink worker applies to the replica (watching its
// checkpoint for settle), rewinds its checkpoint and applies the range.
func applyPlan(ctx context.Context, r *replay.Replayer, plan *replay.Plan, settle time.Duration, stdout io.Writer) error {
	if err := r.CheckIdle(ctx, plan, settle); err != nil {
		return err
	}
	start := time.Now()
	if err := r.Rewind(ctx, plan); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rewound the checkpoint of %s to offset %d; applying ...\n", plan.Replica, plan.From.Offset)
	st, err := r.Apply(ctx, plan)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "replayed %s: offsets %d..%d applied in %v; checkpoint now offset %d (e%d/t%d). Start its sink worker again.\n",
		plan.Replica, plan.From.Offset, plan.To, time.Since(start).Round(time.Millisecond), st.Offset, st.Epoch, st.TxnSeq)
	return nil
}

func printPlan(w io.Writer, p *replay.Plan) {
	c := p.Checkpoint
	fmt.Fprintf(w, "replay %s from topic %s (retained offsets %d..%d)\n", p.Replica, p.Topic, p.First, p.End)
	fmt.Fprintf(w, "  checkpoint now: offset %d (e%d/t%d, max t%d)\n", c.Offset, c.Epoch, c.TxnSeq, c.MaxTxnSeq)
	fmt.Fprintf(w, "  asked:          %s\n", p.Asked)
	fmt.Fprintf(w, "  from:           offset %d (after e%d/t%d", p.From.Offset, p.From.Epoch, p.From.TxnSeq)
	if p.From.GTIDSet != "" {
		fmt.Fprintf(w, ", gtid set %s", p.From.GTIDSet)
	}
	if !p.From.CommitTime.IsZero() {
		fmt.Fprintf(w, ", committed %s", p.From.CommitTime.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(w, ")")
	fmt.Fprintf(w, "  to:             offset %d (exclusive)\n", p.To)
	for _, n := range p.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	s := p.Summary
	fmt.Fprintf(w, "  range:          %d messages, %d transactions, %d rows, %d DDL, %d duplicates, %d of an older epoch (ignored), %d epoch records\n",
		s.Messages, s.Txns, s.Rows, s.DDL, s.Duplicates, s.Stale, len(s.Epochs))
	if s.Txns > 0 {
		fmt.Fprintf(w, "  transactions:   e%d/t%d (%s, %s) .. e%d/t%d (%s, %s)\n",
			s.First.Epoch, s.First.TxnSeq, s.First.GTID, s.First.CommitTime.UTC().Format(time.RFC3339),
			s.Last.Epoch, s.Last.TxnSeq, s.Last.GTID, s.Last.CommitTime.UTC().Format(time.RFC3339))
	}
	if len(s.Tables) > 0 {
		fmt.Fprintln(w, "  tables touched:")
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "    TABLE\tINSERTS\tUPDATES\tDELETES")
		for _, t := range s.Tables {
			fmt.Fprintf(tw, "    %s\t%d\t%d\t%d\n", t.Table, t.Inserts, t.Updates, t.Deletes)
		}
		tw.Flush()
	}
}

// parseTime reads RFC 3339, "2006-01-02 15:04:05[.999]" (UTC) or Unix seconds.
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02 15:04:05.999999999", s, time.UTC); err == nil {
		return t, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Unix(0, int64(f*1e9)).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time: write RFC 3339 (2025-03-01T12:00:00Z), \"2025-03-01 12:00:00\" (UTC) or Unix seconds", s)
}
