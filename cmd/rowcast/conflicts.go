package main

import (
	"context"
	"fmt"
	"io"
	"sort"

	"github.com/rowcast/rowcast/service"
)

func init() {
	commands["conflicts"] = command{summary: "list the master-master conflicts the sinks met, on every master", run: runConflicts}
}

func runConflicts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	env := newCommand("conflicts", "--config FILE [--json]", "", stderr)
	asJSON := env.fs.Bool("json", false, "print JSON instead of a list")
	env.wholeSet = true
	cfg, _, err := env.setup(args, nil)
	if err != nil {
		return err
	}
	rep := service.Conflicts(ctx, cfg)
	sort.Slice(rep.Conflicts, func(i, j int) bool { return rep.Conflicts[i].DetectedAt < rep.Conflicts[j].DetectedAt })
	if *asJSON {
		return writeJSON(stdout, rep)
	}
	fmt.Fprintf(stdout, "%d conflict(s)\n", len(rep.Conflicts))
	for _, c := range rep.Conflicts {
		fmt.Fprintf(stdout, "%s on %s: %s %s key %s, transaction %s of topic %s\n  incoming: %s\n  here:     %s\n  policy %s: %s\n",
			c.DetectedAt, c.Node, c.Op, c.Table, c.Key, c.OriginGTID, c.Topic, c.Incoming, c.Current, c.Policy, c.Resolution)
	}
	for node, e := range rep.Errors {
		fmt.Fprintf(stdout, "%s: could not be read: %s\n", node, e)
	}
	if len(rep.Errors) > 0 {
		return fmt.Errorf("%d master(s) could not be read", len(rep.Errors))
	}
	return nil
}
