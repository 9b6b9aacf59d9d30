package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rowcast/rowcast/failover"
)

func init() {
	commands["rejoin"] = command{summary: "make an old master a replica, after reporting what it committed that never reached the topic", run: runRejoin}
}

const rejoinSynopsis = `--config FILE --node NAME [--loss-file F] [--undo-loss]

For a node that was the master before a promotion. Makes it read-only,
compares its GTID set with the last one the topic got from it, and reads
its binlog after that point with the pipeline's filters: every transaction
found there was committed on the node and never published (the loss). It
lists them and exports them to --loss-file, one message per line in the
topic's JSON ({"key":...,"value":...}).

Only then does it make the node a replica: a checkpoint at the epoch record
that ended its generation, so that its sink worker (` + "`rowcast sink --replica NAME`" + `)
starts there and follows the new master. A node with a loss is made a
replica only with --undo-loss, which reverts those transactions from their
binlog images (newest first, in the transaction that writes the
checkpoint); the file keeps them, to re-apply by hand on the new master.
`

func runRejoin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	env := newCommand("rejoin", rejoinSynopsis, "warn", stderr)
	node := env.fs.String("node", "", "the old master")
	lossFile := env.fs.String("loss-file", "", "where to export the lost transactions (default rowcast-loss-<topic>-<node>-epoch<N>.jsonl)")
	undo := env.fs.Bool("undo-loss", false, "revert the lost transactions on the node so that it can follow the topic")
	timeout := env.fs.Duration("read-timeout", 2*time.Minute, "how long reading the node's binlog may take")
	cfg, log, err := env.setup(args, requireFlag(node, "--node is required: name the old master"))
	if err != nil {
		return err
	}
	if cfg.MasterMaster() {
		return usageError("rejoin: in a master-master topology a master that was down catches up by itself once its unit and the other masters' units run again")
	}
	r := &failover.Rejoiner{Cfg: cfg, Kafka: cfg.ChangelogConfig(), Log: log}
	res, err := r.Rejoin(ctx, failover.RejoinOptions{Node: *node, LossFile: *lossFile, UndoLoss: *undo, ReadTimeout: *timeout})
	if res != nil {
		printRejoinReport(stdout, *node, res)
	}
	if errors.Is(err, failover.ErrLoss) {
		return &exitError{code: 3, err: err}
	}
	if err != nil {
		return err
	}
	if res.Undone > 0 {
		fmt.Fprintf(stdout, "  reverted %d row changes on %s\n", res.Undone, *node)
	}
	fmt.Fprintf(stdout, "%s is a replica of %s now: checkpoint at offset %d (e%d/t%d). Start its sink worker: rowcast sink --config %s --replica %s\n",
		*node, res.NewMaster, res.Checkpoint.Offset, res.Checkpoint.Epoch, res.Checkpoint.TxnSeq, env.path, *node)
	return nil
}

// printRejoinReport says what the old master holds beyond what the topic got
// from it.
func printRejoinReport(w io.Writer, node string, res *failover.RejoinResult) {
	fmt.Fprintf(w, "%s was the master of epoch %d; the epoch %d record at offset %d made %s the master\n",
		node, res.Epoch, res.Epoch+1, res.FenceOffset, res.NewMaster)
	if res.Published != "" {
		fmt.Fprintf(w, "  the topic got %s up to %s; %s is at %s now\n", node, res.Published, node, orDash(res.NodeGTIDSet))
	}
	if res.LossFile == "" || (res.NodeGTIDSet == "" && len(res.Lost) == 0) {
		return
	}
	fmt.Fprintf(w, "  %d transactions never reached the topic (%d row changes), exported to %s\n", len(res.Lost), res.LostRows, res.LossFile)
	for i, t := range res.Lost {
		if i == 50 {
			fmt.Fprintf(w, "    ... and %d more (see the file)\n", len(res.Lost)-i)
			break
		}
		fmt.Fprintf(w, "    %s  %s  %d rows  %s\n", t.GTID, t.CommitTime.UTC().Format(time.RFC3339), t.Rows, strings.Join(t.Tables, ","))
	}
}
