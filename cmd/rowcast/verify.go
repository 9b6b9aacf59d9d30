package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/service"
	"github.com/rowcast/rowcast/verify"
)

func init() {
	commands["verify"] = command{summary: "compare a replica with the master, chunk by chunk, and repair it (--repair)", run: runVerify}
}

// runVerify exits 0 when the replica equals the master, 1 when it differs
// (after --repair: when differences remain), 2 on an error.
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	env := newCommand("verify", "--config FILE --replica NAME [--tables db.t1,db.t2] [--repair] [--quiet]", "info", stderr)
	var f verifyFlags
	f.register(env.fs)
	cfg, log, err := env.setup(args, requireFlag(&f.replica, "--replica is required: name the replica node, e.g. --replica db2"))
	if err != nil {
		return withCode(2, err)
	}
	vc, err := verifyConfig(cfg, f.replica, log)
	if err != nil {
		return withCode(2, err)
	}
	f.apply(&vc)
	vc.Log = log
	pr := newProgress(stderr, log)
	vc.Progress = pr.update
	rep, err := verifyReplica(ctx, vc, isClickHouse(cfg, f.replica), f.noWait, log)
	pr.finish()
	if err != nil {
		return withCode(2, err)
	}
	if err := f.print(stdout, rep); err != nil {
		return withCode(2, err)
	}
	switch {
	case rep.Errors() > 0:
		return &exitError{code: 2, err: fmt.Errorf("%d table(s) could not be verified (see above)", rep.Errors())}
	case !rep.Equal():
		return &exitError{code: 1}
	}
	return nil
}

// verifyFlags are verify's own flags.
type verifyFlags struct {
	replica, tables, hash               string
	repair, quiet, asJSON, keyset       bool
	noWait                              bool
	rate, chunkRows, parallel, maxDiffs int
	wait                                time.Duration
}

func (f *verifyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.replica, "replica", "", "the replica node to compare with the master")
	fs.StringVar(&f.tables, "tables", "", "comma-separated db.table names (default: every replicated base table)")
	fs.BoolVar(&f.repair, "repair", false, "rewrite the rows that differ on the replica from the master (the sink's checkpoint is not touched), then verify them again")
	fs.BoolVar(&f.quiet, "quiet", false, "print the keys of differing rows only, not their values")
	fs.BoolVar(&f.asJSON, "json", false, "print the report as JSON")
	fs.IntVar(&f.rate, "rows-per-second", 0, "read at most this many rows per second on each side (0: no limit)")
	fs.IntVar(&f.chunkRows, "chunk-rows", verify.DefaultChunkRows, "rows per chunk")
	fs.IntVar(&f.parallel, "parallel", verify.DefaultParallel, "chunks hashed at once on each side")
	fs.BoolVar(&f.keyset, "keyset-bounds", false, "find every chunk's bounds on the master (the key of its last row), also for a key of one integer column, whose bounds are otherwise steps of key values: for keys whose values are spread very unevenly")
	fs.DurationVar(&f.wait, "wait-timeout", 30*time.Second, "how long to wait for the replica to reach the master's position before re-checking a chunk that differs")
	fs.BoolVar(&f.noWait, "no-wait", false, "compare the replica as it is, without waiting for replication (for a replica whose sink is stopped); differences may then be lag")
	fs.IntVar(&f.maxDiffs, "max-diffs", 100, "differences listed per table (all are counted and repaired)")
	fs.StringVar(&f.hash, "hash", "", "hash function: "+verify.HashCRC32+" (32 bits per row), "+verify.HashCRC+" (64 bits per row, slower) or "+
		verify.HashMD5+" (default: "+verify.HashCRC32+" where both servers have CRC32C, MariaDB 10.8 and later, else "+verify.HashMD5+")")
}

// apply sets the run's options on vc.
func (f *verifyFlags) apply(vc *verify.Config) {
	for _, t := range strings.Split(f.tables, ",") {
		if t = strings.TrimSpace(t); t != "" {
			vc.Filter.Tables = append(vc.Filter.Tables, t)
		}
	}
	vc.Repair, vc.Quiet, vc.NoWait = f.repair, f.quiet, f.noWait
	vc.RowsPerSecond, vc.ChunkRows, vc.Parallel, vc.KeysetBounds = f.rate, f.chunkRows, f.parallel, f.keyset
	vc.WaitTimeout, vc.MaxDiffs, vc.Hash = f.wait, f.maxDiffs, f.hash
}

// print writes the report as text or JSON.
func (f *verifyFlags) print(w io.Writer, rep *verify.Report) error {
	if f.asJSON {
		return writeJSON(w, rep)
	}
	rep.WriteText(w, f.quiet)
	return nil
}

// replicaVerifier is verify.Verifier (MySQL replicas) or verify.CHVerifier
// (ClickHouse replicas).
type replicaVerifier interface {
	Run(ctx context.Context) (*verify.Report, error)
	Static() bool
	Close()
}

func isClickHouse(cfg *config.Config, node string) bool {
	n, ok := cfg.Node(node)
	return ok && n.Kind == config.KindClickHouse
}

// newVerifier connects the verification of a MySQL or a ClickHouse replica.
func newVerifier(ctx context.Context, vc verify.Config, clickhouse bool) (replicaVerifier, error) {
	if clickhouse {
		return verify.NewClickHouse(ctx, vc)
	}
	return verify.New(ctx, vc)
}

// verifyReplica runs one verification.
func verifyReplica(ctx context.Context, vc verify.Config, clickhouse, noWait bool, log zerolog.Logger) (*verify.Report, error) {
	v, err := newVerifier(ctx, vc, clickhouse)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	if v.Static() && !noWait {
		log.Warn().Str("replica", vc.ReplicaName).Msg("the replica holds no rowcast checkpoint for this topic: comparing it as it is, without waiting for replication")
	}
	return v.Run(ctx)
}

// verifyConfig maps the config file to a verification of one replica
// against the current master: the config's master until a promotion, then
// the node the topic's newest epoch record names (see service.VerifyMasterLocator). The
// replica may be any other MySQL node, the config's master too once another
// node was promoted and it rejoined, or a ClickHouse node.
func verifyConfig(cfg *config.Config, replica string, log zerolog.Logger) (verify.Config, error) {
	n, ok := cfg.Node(replica)
	if !ok {
		return verify.Config{}, fmt.Errorf("replica %q is not a node of the config; use one of %v", replica, cfg.Replicas)
	}
	if n.Kind != config.KindMySQL && n.Kind != config.KindClickHouse {
		return verify.Config{}, fmt.Errorf("replica %s is a %s node: verify compares MySQL/MariaDB and ClickHouse replicas only", replica, n.Kind)
	}
	vc, err := cfg.VerifyConfig(replica)
	vc.Locate = service.VerifyMasterLocator(cfg, log)
	return vc, err
}

// progress shows how far a large table is: one line rewritten in place on a
// terminal, a log line every few seconds otherwise. Tables the master
// estimates below progressMinRows show nothing.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	log      zerolog.Logger
	tty      bool
	table    string
	start    time.Time
	last     time.Time
	drawn    bool
	interval time.Duration
}

const progressMinRows = 100000

func newProgress(w io.Writer, log zerolog.Logger) *progress {
	f, ok := w.(*os.File)
	return &progress{w: w, log: log, tty: ok && isatty.IsTerminal(f.Fd()), interval: 5 * time.Second}
}

func (p *progress) update(u verify.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if u.Table != p.table {
		p.clear()
		p.table, p.start, p.last = u.Table, now, now
	}
	if u.Estimate < progressMinRows {
		return
	}
	rate := float64(u.Rows) / max(now.Sub(p.start).Seconds(), 1e-3)
	pct := min(100, 100*float64(u.Rows)/float64(u.Estimate))
	if p.tty {
		if now.Sub(p.last) < 200*time.Millisecond && !u.Done {
			return
		}
		p.last = now
		const width = 30
		fill := int(pct / 100 * width)
		fmt.Fprintf(p.w, "\r%s [%s%s] %3.0f%% %d/~%d rows %.0f rows/s ", u.Table,
			strings.Repeat("#", fill), strings.Repeat(".", width-fill), pct, u.Rows, u.Estimate, rate)
		p.drawn = true
		if u.Done {
			p.clear()
		}
		return
	}
	if now.Sub(p.last) >= p.interval || u.Done && now.Sub(p.start) >= p.interval {
		p.last = now
		p.log.Info().Str("table", u.Table).Int64("rows", u.Rows).Int64("estimate", u.Estimate).
			Float64("percent", float64(int(pct*10))/10).Float64("rows_per_second", float64(int(rate))).Bool("done", u.Done).Msg("verify progress")
	}
}

// clear ends the terminal's progress line.
func (p *progress) clear() {
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

func (p *progress) finish() {
	p.mu.Lock()
	p.clear()
	p.mu.Unlock()
}
