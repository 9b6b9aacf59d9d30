package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/rowcast/rowcast/config"
)

func init() {
	commands["config"] = command{summary: "check a configuration file (config validate --config F [--check-grants])", run: runConfig}
}

func runConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "validate" {
		fmt.Fprintln(stderr, "Usage: rowcast config validate --config FILE [--check-grants]")
		return usageError("unknown or missing config subcommand; use validate")
	}
	env := newCommand("config validate", "--config FILE [--check-grants]", "", stderr)
	checkGrants := env.fs.Bool("check-grants", false, "connect to every mysql node as each account of the config and list what it lacks and has too much of")
	env.wholeSet = true
	cfg, _, err := env.setup(args[1:], nil)
	if err != nil {
		return err
	}
	kc := cfg.ChangelogConfig()
	if kc.SigningErr != nil {
		// Every command that touches the topic would refuse to start.
		return fmt.Errorf("config %s: %w", env.path, kc.SigningErr)
	}
	if cfg.MasterMaster() && env.master == "" {
		fmt.Fprintf(stdout, "%s: ok (cluster %s, master-master: masters %v, each with a topic %s.<master>)\n", env.path, cfg.Cluster, cfg.Masters, kc.Topic)
	} else {
		fmt.Fprintf(stdout, "%s: ok (cluster %s, master %s, replicas %v, topic %s)\n", env.path, cfg.Cluster, cfg.Master, cfg.Replicas, kc.Topic)
	}
	if !*checkGrants {
		return nil
	}
	return printGrants(stdout, cfg.CheckGrants(ctx))
}

// errGrantsLacking makes `config validate --check-grants` exit 1.
var errGrantsLacking = errors.New("an account lacks privileges or could not be checked (see above)")

// printGrants writes, per node and account, what it lacks and has too much
// of; an error when anything is lacking.
func printGrants(w io.Writer, checks []config.GrantCheck) error {
	lacking := false
	for _, c := range checks {
		fmt.Fprintf(w, "%s: %s (%s):", c.Node, c.Account, c.Jobs)
		lacking = lacking || c.Lacking()
		if c.Err != nil {
			fmt.Fprintf(w, " cannot check: %v\n", c.Err)
			continue
		}
		printReport(w, c)
	}
	if lacking {
		return errGrantsLacking
	}
	return nil
}

// quoteAccount writes user@host as a GRANT names it.
func quoteAccount(a string) string {
	user, host, ok := strings.Cut(a, "@")
	if !ok {
		return "'" + a + "'"
	}
	return "'" + user + "'@'" + host + "'"
}

func printReport(w io.Writer, c config.GrantCheck) {
	r := c.Report
	if len(r.Lacks) == 0 && len(r.Excess) == 0 {
		fmt.Fprintln(w, " ok")
	} else {
		fmt.Fprintln(w)
	}
	for _, n := range r.Lacks {
		fmt.Fprintf(w, "  lacks    %s ON %s (%s): GRANT %s ON %s TO %s\n", n.Priv, n.Object(), n.Why, n.Priv, n.Object(), quoteAccount(c.Account))
	}
	for _, e := range r.Excess {
		fmt.Fprintf(w, "  too much %s\n", e)
	}
	if r.Roles > 0 {
		fmt.Fprintf(w, "  note     %d role grant(s): the privileges of roles are not checked\n", r.Roles)
	}
}
