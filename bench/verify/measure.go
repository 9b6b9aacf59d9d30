package main

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/rowcast/rowcast/bench/internal/benchkit"
	"github.com/rowcast/rowcast/verify"
)

type variant struct {
	key      string // for --only
	name     string
	chunk    int
	parallel int
	repeat   int
	hash     string // "": verify's default
	keyset   bool   // keyset bounds for the integer key (verify.Config.KeysetBounds)
}

// variants are the configurations measured; the default is what `rowcast
// verify` does without flags.
func variants(repeat int) []variant {
	chunk, parallel := verify.DefaultChunkRows, verify.DefaultParallel
	return []variant{
		{key: "default", name: "default", chunk: chunk, parallel: parallel, repeat: repeat},
		{key: "parallel-4", name: "parallel 4", chunk: chunk, parallel: 4, repeat: repeat},
		{key: "parallel-1", name: "parallel 1", chunk: chunk, parallel: 1, repeat: 1},
		{key: "chunk-5000", name: "chunk 5000", chunk: 5000, parallel: parallel, repeat: 1},
		{key: "chunk-50000", name: "chunk 50000", chunk: 50000, parallel: parallel, repeat: 1},
		{key: "keyset", name: "keyset bounds", chunk: chunk, parallel: parallel, repeat: 1, keyset: true},
		{key: "crc64", name: verify.HashCRC + " hash", chunk: chunk, parallel: parallel, repeat: 1, hash: verify.HashCRC},
		{key: "md5", name: "md5 hash", chunk: chunk, parallel: parallel, repeat: 1, hash: verify.HashMD5},
		// What `rowcast verify` did by default until integer keys got
		// stepped bounds and crc32 became the default hash.
		{key: "before", name: "before (keyset bounds, " + verify.HashCRC + " hash)", chunk: chunk, parallel: parallel, repeat: 1, keyset: true, hash: verify.HashCRC},
	}
}

// plan is what --only selects: the variants and which measurements run.
type plan struct {
	variants []variant
	want     map[string]bool // empty: all
}

func newPlan(o options) plan {
	if v, ok := custom(o.only); ok {
		v.repeat = o.repeat
		return plan{variants: []variant{v}, want: map[string]bool{"custom": true}}
	}
	p := plan{variants: variants(o.repeat), want: map[string]bool{}}
	for _, n := range strings.Split(o.only, ",") {
		if n = strings.TrimSpace(n); n != "" {
			p.want[n] = true
		}
	}
	// Variants named in --only are measured --repeat times each, in turns.
	for i := range p.variants {
		if p.want[p.variants[i].key] {
			p.variants[i].repeat = o.repeat
		}
	}
	return p
}

func (p plan) wants(key string) bool { return len(p.want) == 0 || p.want[key] }

// custom parses --only chunk=N,parallel=P[,hash=H][,keyset].
func custom(only string) (variant, bool) {
	v := variant{key: "custom", name: "custom"}
	for _, f := range strings.Split(only, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(f), "=")
		if !v.set(k, val) {
			return v, false
		}
	}
	return v, v.chunk > 0 && v.parallel > 0
}

// set sets one setting of a custom variant; false for a bad one.
func (v *variant) set(k, val string) bool {
	var err error
	switch k {
	case "chunk":
		v.chunk, err = strconv.Atoi(val)
	case "parallel":
		v.parallel, err = strconv.Atoi(val)
	case "hash":
		v.hash = val
	case "keyset":
		v.keyset = true
	default:
		return false
	}
	return err == nil
}

// title is the variant's name in the report.
func (v variant) title() string {
	extra := ""
	if v.key == "custom" && v.hash != "" {
		extra += ", hash " + v.hash
	}
	if v.key == "custom" && v.keyset {
		extra += ", keyset bounds"
	}
	return fmt.Sprintf("verify, %s (chunk %d, parallel %d%s)", v.name, v.chunk, v.parallel, extra)
}

type result struct {
	name    string
	rows    int64
	chunks  int
	secs    float64
	cpu     benchkit.CPU
	equal   bool
	variant variant
}

func (r result) rate() float64 { return float64(r.rows) / r.secs }

func (r result) line() string {
	return fmt.Sprintf("%-34s %9d rows %6.1fs %8.0f rows/s per side  CPU s bench %.1f db1 %.1f db2 %.1f others %.1f",
		r.name, r.rows, r.secs, r.rate(), r.cpu.Self, r.cpu.Proc(procMaster), r.cpu.Proc(procReplica), r.cpu.Others())
}

// measure verifies the table through verify/, as `rowcast verify --tables`
// does (static: the bench replica has no checkpoint, and both sides are
// equal, so no chunk waits or is re-checked).
func measure(ctx context.Context, o options, v variant) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	vf, err := verify.New(ctx, verify.Config{
		MasterName: "db1", ReplicaName: "db2", MasterDSN: o.dsn(o.master), ReplicaDSN: o.dsn(o.replica),
		Filter:    verify.Filter{Tables: []string{benchDB + ".t"}},
		ChunkRows: v.chunk, Parallel: v.parallel, Hash: v.hash, KeysetBounds: v.keyset,
	})
	if err != nil {
		return result{}, err
	}
	defer vf.Close()
	runtime.GC()
	meter := o.cpuMeter()
	c0 := meter.Now()
	t0 := time.Now()
	tr := vf.Table(ctx, benchDB+".t")
	secs := time.Since(t0).Seconds()
	cpu := meter.Now().Since(c0)
	if tr.Error != "" {
		return result{}, fmt.Errorf("verify %s: %s", v.name, tr.Error)
	}
	return result{name: v.title(), rows: tr.Rows, chunks: tr.Chunks, secs: secs, cpu: cpu, equal: tr.Equal(), variant: v}, nil
}

// measureCeilings measures the ceiling: one statement per side over the
// whole table, both sides at once: a bare COUNT(*), then verify's summary
// of a chunk with the default hash and with the 64-bit one.
func measureCeilings(ctx context.Context, o options, rep *report) error {
	for _, q := range []struct{ name, sql, hash string }{
		{"one statement, COUNT(*) only", "SELECT COUNT(*), '0' FROM " + benchDB + ".t", ""},
		{"one statement, whole-table summary, " + verify.HashCRC32, "", verify.HashCRC32},
		{"one statement, whole-table summary, " + verify.HashCRC, "", verify.HashCRC},
	} {
		res, err := ceiling(ctx, o, q.name, q.sql, q.hash)
		if err != nil {
			return err
		}
		rep.add(res)
	}
	return nil
}

// ceiling runs one statement on each side at once: what the servers do
// without chunking, per-chunk queries or the benchmark's own work. An empty
// query is verify's own summary of the whole table with the given hash.
func ceiling(ctx context.Context, o options, name, query, hash string) (result, error) {
	dbs, err := openSides(ctx, o)
	for _, db := range dbs {
		defer db.Close()
	}
	if err != nil {
		return result{}, err
	}
	if query == "" {
		if query, err = verify.HashQuery(ctx, dbs[0], benchDB+".t", hash); err != nil {
			return result{}, err
		}
	}
	meter := o.cpuMeter()
	c0, t0 := meter.Now(), time.Now()
	sums := make([]string, 2)
	counts := make([]int64, 2)
	g, gctx := errgroup.WithContext(ctx)
	for i, db := range dbs {
		g.Go(func() error { return db.QueryRowContext(gctx, query).Scan(&counts[i], &sums[i]) })
	}
	if err := g.Wait(); err != nil {
		return result{}, fmt.Errorf("%s: %w", name, err)
	}
	secs := time.Since(t0).Seconds()
	return result{name: name, rows: counts[0], chunks: 1, secs: secs, cpu: meter.Now().Since(c0),
		equal: sums[0] == sums[1] && counts[0] == counts[1]}, nil
}

// openSides opens one connection pool per side, each checked; the pools
// opened are returned for closing also with an error.
func openSides(ctx context.Context, o options) ([]*sql.DB, error) {
	var dbs []*sql.DB
	for _, addr := range []string{o.master, o.replica} {
		db, err := sql.Open("mysql", o.dsn(addr))
		if err != nil {
			return dbs, err
		}
		dbs = append(dbs, db)
		db.SetMaxIdleConns(1)
		if err := db.PingContext(ctx); err != nil {
			return dbs, err
		}
	}
	return dbs, nil
}
