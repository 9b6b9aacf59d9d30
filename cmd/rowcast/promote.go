package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/rowcast/rowcast/failover"
)

func init() {
	commands["promote"] = command{summary: "make a replica the master: planned switchover, or --force when the master is down", run: runPromote}
}

const promoteSynopsis = `--config FILE --replica NAME [--fence kill|wait] | --force [--replica NAME]

Planned (the master answers): fences the master (read_only=ON, then kills
or waits for its open write transactions), waits until the pipeline service
has published the master's last transaction and the replica has applied the
whole topic, writes the epoch record (new epoch, new master, its start GTID
set), and makes the replica writable. The pipeline service then reads the
new master, and every other replica follows it. Each step is printed with
its duration; a failure before the epoch record is written undoes the
fencing and says why.

--force (the master does not answer): no fencing and no reader to wait for;
the replica with the highest applied offset is promoted (or --replica) once
it has applied the whole topic. What the old master committed and never
published is reported by ` + "`rowcast rejoin`" + ` when it is back.

The replica's sink worker must be running (it applies the rest of the topic
and stops by itself at the epoch record). Only one promotion runs at a time
(a lease on a majority of the mysql nodes).
`

func runPromote(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	env := newCommand("promote", promoteSynopsis, "warn", stderr)
	var o failover.Options
	env.fs.StringVar(&o.Replica, "replica", "", "the replica to promote (with --force: default the one with the highest applied offset)")
	env.fs.BoolVar(&o.Force, "force", false, "emergency promotion: the master does not answer")
	env.fs.StringVar(&o.Fence, "fence", failover.FenceKill, "open write transactions on the old master: kill (their connections) or wait (for them to end)")
	env.fs.DurationVar(&o.FenceTimeout, "fence-timeout", 10*time.Second, "with --fence wait: how long to wait for open write transactions")
	env.fs.DurationVar(&o.CatchupTimeout, "catchup-timeout", 60*time.Second, "how long to wait for the reader to publish the master's last transaction and the replica to apply the topic")
	env.fs.DurationVar(&o.LeaseTTL, "lease-ttl", 30*time.Second, "time to live of the promotion lease (renewed while promoting)")
	env.fs.StringVar(&o.PipelineHTTP, "pipeline-http", "", "metrics address of the pipeline service, whose /healthz says how far it read (default: the config's http; off: watch the topic)")
	cfg, log, err := env.setup(args, func() error { return checkPromoteFlags(o) })
	if err != nil {
		return err
	}
	if cfg.MasterMaster() {
		return usageError("promote: in a master-master topology every master takes writes already; there is no replica to promote (a read replica follows its master's topic)")
	}
	p := &failover.Promoter{Cfg: cfg, Kafka: cfg.ChangelogConfig(), Log: log, OnStep: func(s failover.Step) { printStep(stdout, s) }}
	kind := "planned promotion"
	if o.Force {
		kind = "emergency promotion (--force)"
	}
	fmt.Fprintf(stdout, "%s of %s in cluster %s, topic %s\n", kind, orDash(o.Replica), cfg.Cluster, p.Kafka.Topic)
	res, err := p.Promote(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "promoted %s: epoch %d, epoch record at offset %d, the old master was %s; total %v",
		res.NewMaster, res.Epoch, res.RecordOffset, res.OldMaster, res.Total.Round(time.Millisecond))
	if res.WriteDowntime > 0 {
		fmt.Fprintf(stdout, "; writes refused for %v", res.WriteDowntime.Round(time.Millisecond))
	}
	fmt.Fprintln(stdout)
	fmt.Fprintf(stdout, "next: point writers at %s; `rowcast rejoin --config %s --node %s` makes the old master a replica\n", res.NewMaster, env.path, res.OldMaster)
	return nil
}

// checkPromoteFlags requires a replica unless forced, and a known fence.
func checkPromoteFlags(o failover.Options) error {
	if o.Replica == "" && !o.Force {
		return usageError("--replica is required (or --force when the master is down)")
	}
	if o.Fence != failover.FenceKill && o.Fence != failover.FenceWait {
		return usageError("--fence %q: use kill or wait", o.Fence)
	}
	return nil
}

// printStep prints one step of a promotion with its duration.
func printStep(w io.Writer, s failover.Step) {
	fmt.Fprintf(w, "  %2d. %-58s %8s", s.N, s.Name, s.Took.Round(time.Millisecond))
	if s.Detail != "" {
		fmt.Fprintf(w, "  %s", s.Detail)
	}
	fmt.Fprintln(w)
}
