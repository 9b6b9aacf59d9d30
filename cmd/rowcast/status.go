package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/service"
)

func init() {
	commands["status"] = command{summary: "print the master position, the topic, each replica's lag and the snapshots", run: runStatus}
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	env := newCommand("status", "--config FILE [--json] [--watch SECONDS]", "", stderr)
	asJSON := env.fs.Bool("json", false, "print JSON instead of a table")
	watch := env.fs.Float64("watch", 0, "print the status again every SECONDS, on a cleared terminal, until interrupted")
	env.wholeSet = true
	cfg, _, err := env.setup(args, nil)
	if err != nil {
		return err
	}
	if cfg.MasterMaster() && env.master == "" {
		return printMasters(stdout, service.MastersStatus(ctx, cfg), *asJSON)
	}
	if *watch > 0 {
		return watchStatus(ctx, stdout, time.Duration(*watch*float64(time.Second)), func() error {
			return printStatus(stdout, service.Status(ctx, cfg, cfg.ChangelogConfig()), *asJSON)
		})
	}
	return printStatus(stdout, service.Status(ctx, cfg, cfg.ChangelogConfig()), *asJSON)
}

// printStatus prints the report as JSON or as tables.
func printStatus(w io.Writer, rep service.StatusReport, asJSON bool) error {
	if asJSON {
		return writeJSON(w, rep)
	}
	printMaster(w, rep)
	printReplicas(w, rep.Nodes)
	printSnapshots(w, rep.Snapshots)
	return nil
}

// clearScreen moves the cursor home and clears a terminal (ANSI).
const clearScreen = "\x1b[H\x1b[2J"

// watchStatus clears the terminal and prints every interval until ctx ends,
// the same view as the status page (`/` on the http address).
func watchStatus(ctx context.Context, w io.Writer, interval time.Duration, print func() error) error {
	for {
		io.WriteString(w, clearScreen)
		if err := print(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// printSnapshots prints the topic's running, requested and latest
// snapshots.
func printSnapshots(w io.Writer, snaps []service.SnapshotStatus) {
	if len(snaps) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SNAPSHOT\tSTATE\tPROGRESS\tROWS\tTABLE\tTABLES\tUPDATED")
	for _, s := range snaps {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d/~%d\t%s\t%d\t%s\n", s.ID, s.State, snapshotProgress(s), s.RowsDone, s.RowsTotal,
			orDash(s.CurrentTable), len(s.Tables), s.UpdatedAt.UTC().Format(time.RFC3339))
	}
	tw.Flush()
	for _, s := range snaps {
		if s.Error != "" {
			fmt.Fprintf(w, "  snapshot %d: %s\n", s.ID, s.Error)
		}
	}
}

// snapshotProgress is a snapshot's progress in percent of the estimate.
func snapshotProgress(s service.SnapshotStatus) string {
	return fmt.Sprintf("%.0f%%", snapshotPercent(checkpoint.Snapshot{State: s.State, RowsDone: s.RowsDone, RowsTotal: s.RowsTotal}))
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printMaster prints the cluster's master and the topic.
func printMaster(w io.Writer, rep service.StatusReport) {
	m := rep.Master
	since := "the config's master"
	if m.EpochOffset >= 0 {
		since = fmt.Sprintf("since the epoch record at offset %d", m.EpochOffset)
	}
	fmt.Fprintf(w, "cluster %s  master %s (%s)  epoch %d (%s)  gtid %s  read_only=%v\n", rep.Cluster, m.Node, orDash(m.Flavor), m.Epoch, since, orDash(m.GTIDSet), m.ReadOnly)
	for _, warning := range m.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", warning)
	}
	if m.Error != "" {
		fmt.Fprintf(w, "  master error: %s\n", m.Error)
	}
	fmt.Fprintf(w, "topic %s  offsets %d..%d\n", rep.Topic.Name, rep.Topic.FirstOffset, rep.Topic.EndOffset)
	for _, s := range rep.Topic.Skips {
		fmt.Fprintf(w, "  skipped transaction %s at offset %d (%s)\n", s.GTID, s.Offset, s.Reason)
	}
	if rep.Topic.Error != "" {
		fmt.Fprintf(w, "  topic error: %s\n", rep.Topic.Error)
	}
	printReader(w, rep.Reader)
}

// printReader prints the reader's health and how far the master is ahead
// of the topic, with a warning when nothing publishes what is missing.
func printReader(w io.Writer, r service.ReaderStatus) {
	ahead := "unknown"
	if r.MasterAhead >= 0 {
		ahead = fmt.Sprintf("%d transactions", r.MasterAhead)
	}
	fmt.Fprintf(w, "reader %s  master ahead of the topic: %s\n", readerWhere(r), ahead)
	if r.Error != "" {
		fmt.Fprintf(w, "  reader error: %s\n", r.Error)
	}
	if r.MasterAhead > 0 && r.Health != "healthy" {
		fmt.Fprintf(w, "  warning: the master has %d transactions the topic lacks and no healthy reader publishes them: start `rowcast pipeline` (or `rowcast run`) with this config\n", r.MasterAhead)
	}
}

// readerWhere is the reader's health and where it was asked.
func readerWhere(r service.ReaderStatus) string {
	if r.Addr == "" {
		return r.Health + " (http: off, nothing to ask)"
	}
	return r.Health + " at " + r.Addr
}

// printReplicas prints a table of the replicas, then their errors and
// their stopped workers.
func printReplicas(w io.Writer, nodes []service.ReplicaInfo) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPLICA\tSTATE\tAPPLIED\tLAG(offsets)\tLAG(s)\tEPOCH\tTXN\tREAD_ONLY\tWORKER")
	for _, r := range nodes {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1f\t%d\t%d\t%v\t%s\n", r.Node, r.State, r.Offset, r.LagOffsets, r.LagSeconds, r.Epoch, r.TxnSeq, r.ReadOnly, workerColumn(r))
	}
	tw.Flush()
	for _, r := range nodes {
		if r.Error != "" {
			fmt.Fprintf(w, "  %s: %s\n", r.Node, r.Error)
		}
		if len(r.Bootstrapping) > 0 {
			fmt.Fprintf(w, "  %s: bootstrapping %s\n", r.Node, strings.Join(r.Bootstrapping, ", "))
		}
		printWorker(w, r)
		printVerify(w, r)
	}
}

// printVerify prints what the replica's continuous verification found.
func printVerify(w io.Writer, r service.ReplicaInfo) {
	if r.WorkerState == nil || r.WorkerState.LastVerify == nil {
		return
	}
	v := r.WorkerState.LastVerify
	fmt.Fprintf(w, "  %s: last verify %s, %d rows compared, %d differences\n", r.Node, v.At.Format(time.RFC3339), v.Rows, v.Differences)
}

// workerColumn is the worker's state in a word when it reports one, else
// its health.
func workerColumn(r service.ReplicaInfo) string {
	if r.WorkerState != nil {
		return r.WorkerState.State
	}
	return orDash(r.Worker)
}

// printWorker prints why a replica's worker stopped or is unhealthy.
func printWorker(w io.Writer, r service.ReplicaInfo) {
	ws := r.WorkerState
	switch {
	case ws != nil && ws.Stopped():
		fmt.Fprintf(w, "  %s: worker stopped at offset %d: %s\n", r.Node, ws.Offset, ws.Error)
		if ws.Fix != "" {
			fmt.Fprintf(w, "  %s: fix: %s\n", r.Node, ws.Fix)
		}
	case strings.HasPrefix(r.Worker, "unhealthy: "):
		fmt.Fprintf(w, "  %s: worker %s\n", r.Node, r.Worker)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printMasters prints where each master of a master-master topology is in
// every other: up to which of the other's own transactions it has applied.
func printMasters(w io.Writer, rep service.MastersReport, asJSON bool) error {
	if asJSON {
		return writeJSON(w, rep)
	}
	fmt.Fprintf(w, "master-master: %d masters. A row is a master; a column, up to which seq_no of that master's GTID domain it has applied (its own: its newest)\n", len(rep.Masters))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "master")
	for _, m := range rep.Masters {
		fmt.Fprintf(tw, "\t%s (domain %d)", m.Name, m.Domain)
	}
	fmt.Fprintln(tw)
	for _, m := range rep.Masters {
		fmt.Fprint(tw, m.Name)
		if m.Error != "" {
			fmt.Fprintf(tw, "\tunreachable: %s\n", m.Error)
			continue
		}
		for _, o := range rep.Masters {
			fmt.Fprintf(tw, "\t%s", masterCell(m, o))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// masterCell is how far m has applied o's own transactions.
func masterCell(m, o service.MasterPosition) string {
	if m.Name == o.Name {
		return strconv.FormatUint(m.Own, 10)
	}
	cell := strconv.FormatUint(m.Applied[o.Name], 10)
	if o.Error == "" && m.Applied[o.Name] < o.Own {
		cell += fmt.Sprintf(" (%d behind)", o.Own-m.Applied[o.Name])
	}
	return cell
}
