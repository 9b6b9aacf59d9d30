package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/rowcast/rowcast/pipeline/failover"
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
	fs := newFlags("promote", promoteSynopsis, stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	replica := fs.String("replica", "", "the replica to promote (with --force: default the one with the highest applied offset)")
	force := fs.Bool("force", false, "emergency promotion: the master does not answer")
	fence := fs.String("fence", failover.FenceKill, "open write transactions on the old master: kill (their connections) or wait (for them to end)")
	fenceTimeout := fs.Duration("fence-timeout", 10*time.Second, "with --fence wait: how long to wait for open write transactions")
	catchup := fs.Duration("catchup-timeout", 60*time.Second, "how long to wait for the reader to publish the master's last transaction and the replica to apply the topic")
	leaseTTL := fs.Duration("lease-ttl", 30*time.Second, "time to live of the promotion lease (renewed while promoting)")
	pipelineHTTP := fs.String("pipeline-http", "", "metrics address of the pipeline service, whose /healthz says how far it read (default: the config's http; off: watch the topic)")
	var lf logFlags
	lf.register(fs, "warn")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *replica == "" && !*force {
		return &exitError{code: 2, err: fmt.Errorf("--replica is required (or --force when the master is down)")}
	}
	if *fence != failover.FenceKill && *fence != failover.FenceWait {
		return &exitError{code: 2, err: fmt.Errorf("--fence %q: use kill or wait", *fence)}
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	p := &failover.Promoter{Cfg: cfg, Kafka: kafkaConfig(cfg), Log: log, OnStep: func(s failover.Step) {
		fmt.Fprintf(stdout, "  %2d. %-58s %8s", s.N, s.Name, s.Took.Round(time.Millisecond))
		if s.Detail != "" {
			fmt.Fprintf(stdout, "  %s", s.Detail)
		}
		fmt.Fprintln(stdout)
	}}
	kind := "planned promotion"
	if *force {
		kind = "emergency promotion (--force)"
	}
	fmt.Fprintf(stdout, "%s of %s in cluster %s, topic %s\n", kind, orDash(*replica), cfg.Cluster, cfg.Kafka.Topic)
	res, err := p.Promote(ctx, failover.Options{Replica: *replica, Force: *force, Fence: *fence, FenceTimeout: *fenceTimeout,
		CatchupTimeout: *catchup, LeaseTTL: *leaseTTL, PipelineHTTP: *pipelineHTTP})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "promoted %s: epoch %d, epoch record at offset %d, the old master was %s; total %v",
		res.NewMaster, res.Epoch, res.RecordOffset, res.OldMaster, res.Total.Round(time.Millisecond))
	if res.WriteDowntime > 0 {
		fmt.Fprintf(stdout, "; writes refused for %v", res.WriteDowntime.Round(time.Millisecond))
	}
	fmt.Fprintln(stdout)
	fmt.Fprintf(stdout, "next: point writers at %s; `rowcast rejoin --config %s --node %s` makes the old master a replica\n", res.NewMaster, *path, res.OldMaster)
	return nil
}
