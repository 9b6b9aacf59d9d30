package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/rowcast/rowcast/pipeline/service"
)

func init() {
	commands["status"] = command{summary: "print the master position, the topic and each replica's lag", run: runStatus}
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", "--config FILE [--json]", stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	rep := service.Status(ctx, cfg, kafkaConfig(cfg))
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	m := rep.Master
	since := "the config's master"
	if m.EpochOffset >= 0 {
		since = fmt.Sprintf("since the epoch record at offset %d", m.EpochOffset)
	}
	fmt.Fprintf(stdout, "cluster %s  master %s (%s)  epoch %d (%s)  gtid %s  read_only=%v\n", rep.Cluster, m.Node, orDash(m.Flavor), m.Epoch, since, orDash(m.GTIDSet), m.ReadOnly)
	for _, w := range m.Warnings {
		fmt.Fprintf(stdout, "  warning: %s\n", w)
	}
	if m.Error != "" {
		fmt.Fprintf(stdout, "  master error: %s\n", m.Error)
	}
	fmt.Fprintf(stdout, "topic %s  offsets %d..%d\n", rep.Topic.Name, rep.Topic.FirstOffset, rep.Topic.EndOffset)
	if rep.Topic.Error != "" {
		fmt.Fprintf(stdout, "  topic error: %s\n", rep.Topic.Error)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPLICA\tSTATE\tAPPLIED\tLAG(offsets)\tLAG(s)\tEPOCH\tTXN\tREAD_ONLY\tWORKER")
	for _, r := range rep.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1f\t%d\t%d\t%v\t%s\n", r.Node, r.State, r.Offset, r.LagOffsets, r.LagSeconds, r.Epoch, r.TxnSeq, r.ReadOnly, orDash(r.Worker))
	}
	tw.Flush()
	for _, r := range rep.Nodes {
		if r.Error != "" {
			fmt.Fprintf(stdout, "  %s: %s\n", r.Node, r.Error)
		}
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
