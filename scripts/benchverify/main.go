// Command benchverify measures `rowcast verify` (pipeline/verify) on the local
// stack: one table of N rows (~100 bytes each) created identically on the
// master db1 and on the replica db2, outside the binlog (sql_log_bin=0, so no
// reader or other test has to read it), then verified several ways. It
// reports rows per second per side (each side reads every row), CPU seconds
// of the benchmark and of both mariadbd, and records a dated section in
// docs/BENCHMARKS.md. Run it through `scripts/bench verify`.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"golang.org/x/sync/errgroup"

	"github.com/rowcast/rowcast/pipeline/verify"
)

// benchDB is the database the benchmark creates on both sides.
const benchDB = "rowcast_bench_verify"

type options struct {
	rows       int
	repeat     int
	master     string
	replica    string
	user, pass string
	masterPid  int
	replicaPid int
	commit     string
	loadBefore string
	doc        string
	keep       bool
	reuse      bool
	only       string
	timeout    time.Duration
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func main() {
	var o options
	host := env("ROWCAST_HOST", "127.0.0.1")
	flag.IntVar(&o.rows, "rows", 10_000_000, "rows of the table (N)")
	flag.IntVar(&o.repeat, "repeat", 3, "measurements of the default configuration and of parallel 4, in turns; the median is reported (the other variants run once)")
	flag.StringVar(&o.master, "master", host+":"+env("ROWCAST_DB1_PORT", "3307"), "the master (db1) host:port")
	flag.StringVar(&o.replica, "replica", host+":"+env("ROWCAST_DB2_PORT", "3308"), "the replica (db2) host:port")
	flag.StringVar(&o.user, "db-user", "root", "user on both servers: needs CREATE, DROP, INSERT, SELECT and SUPER (sql_log_bin)")
	flag.StringVar(&o.pass, "db-password", os.Getenv("ROWCAST_BENCH_DB_PASSWORD"), "password (default $ROWCAST_BENCH_DB_PASSWORD)")
	flag.IntVar(&o.masterPid, "master-pid", 0, "pid of db1's mariadbd, to report its CPU time")
	flag.IntVar(&o.replicaPid, "replica-pid", 0, "pid of db2's mariadbd, to report its CPU time")
	flag.StringVar(&o.commit, "commit", "?", "rowcast commit, for the report")
	flag.StringVar(&o.loadBefore, "load-before", "", "load average before the run (default: read at start)")
	flag.StringVar(&o.doc, "doc", "", "markdown file to add this run's section to (replacing one of the same day)")
	flag.BoolVar(&o.keep, "keep", false, "keep the bench database on both servers (for another run with --reuse)")
	flag.BoolVar(&o.reuse, "reuse", false, "reuse a bench database of N rows kept by --keep instead of creating it")
	flag.StringVar(&o.only, "only", "", "run only these measurements, comma-separated, each --repeat times: ceiling, default, parallel-1, parallel-4, chunk-5000, chunk-50000, keyset, crc64, md5, before (default: all, the variants but default and parallel-4 once); or chunk=N,parallel=P[,hash=H][,keyset] for one custom one")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "limit of one measurement")
	flag.Parse()
	if o.loadBefore == "" {
		o.loadBefore = loadAvg()
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "benchverify:", err)
		os.Exit(1)
	}
}

func dsn(o options, addr string) string {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr = o.user, o.pass, "tcp", addr
	return c.FormatDSN()
}

func run(o options) error {
	ctx := context.Background()
	m, err := sql.Open("mysql", dsn(o, o.master))
	if err != nil {
		return err
	}
	defer m.Close()
	r, err := sql.Open("mysql", dsn(o, o.replica))
	if err != nil {
		return err
	}
	defer r.Close()
	rep := &report{o: o, when: time.Now().UTC()}
	if err := m.QueryRowContext(ctx, "SELECT VERSION(), @@innodb_buffer_pool_size").Scan(&rep.version, &rep.bufferPool); err != nil {
		return fmt.Errorf("master %s: %w (start the stack: scripts/stack up)", o.master, err)
	}
	t0 := time.Now()
	reused, err := setup(ctx, o, m, r)
	if err != nil {
		return err
	}
	rep.setup, rep.reused = time.Since(t0), reused
	// A fresh table leaves the servers flushing its pages for a while; that
	// CPU would count against the first measurements.
	t0 = time.Now()
	rep.settled = settle(ctx, m, r, 3*time.Minute)
	rep.settle = time.Since(t0)
	if !o.keep {
		defer func() {
			for _, db := range []*sql.DB{m, r} {
				conn, err := db.Conn(ctx)
				if err == nil {
					conn.ExecContext(ctx, "SET SESSION sql_log_bin = 0")
					conn.ExecContext(ctx, "DROP DATABASE IF EXISTS "+benchDB)
					conn.Close()
				}
			}
		}()
	}
	m.QueryRowContext(ctx, "SELECT AVG_ROW_LENGTH, DATA_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 't'",
		benchDB).Scan(&rep.avgRow, &rep.dataLen)

	// The default is what `rowcast verify` does without flags.
	chunk, parallel := verify.DefaultChunkRows, verify.DefaultParallel
	variants := []variant{
		{key: "default", name: "default", chunk: chunk, parallel: parallel, repeat: o.repeat},
		{key: "parallel-4", name: "parallel 4", chunk: chunk, parallel: 4, repeat: o.repeat},
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
	want := map[string]bool{}
	for _, n := range strings.Split(o.only, ",") {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	// Variants named in --only are measured --repeat times each, in turns.
	for i := range variants {
		if want[variants[i].key] {
			variants[i].repeat = o.repeat
		}
	}
	if v, ok := custom(o.only); ok {
		v.repeat = o.repeat
		variants = []variant{v}
		want = map[string]bool{"custom": true}
	}
	run := func(key string) bool { return len(want) == 0 || want[key] }
	// The ceiling: one statement per side over the whole table, both sides
	// at once: a bare COUNT(*), then verify's summary of a chunk with the
	// default hash and with the 64-bit one.
	for _, q := range []struct{ name, sql, hash string }{
		{"one statement, COUNT(*) only", "SELECT COUNT(*), '0' FROM " + benchDB + ".t", ""},
		{"one statement, whole-table summary, " + verify.HashCRC32, "", verify.HashCRC32},
		{"one statement, whole-table summary, " + verify.HashCRC, "", verify.HashCRC},
	} {
		if !run("ceiling") {
			break
		}
		res, err := ceiling(ctx, o, q.name, q.sql, q.hash)
		if err != nil {
			return err
		}
		rep.results = append(rep.results, res)
		fmt.Fprintln(os.Stderr, res.line())
	}
	// Rounds: the variants measured several times take turns, so that a
	// change of the machine's load touches them alike.
	for round := 0; ; round++ {
		more := false
		for _, v := range variants {
			if round >= v.repeat || !run(v.key) {
				continue
			}
			more = true
			res, err := measure(ctx, o, v)
			if err != nil {
				return err
			}
			rep.results = append(rep.results, res)
			fmt.Fprintln(os.Stderr, res.line())
		}
		if !more {
			break
		}
	}
	rep.loadAfter = loadAvg()
	rep.print(os.Stdout)
	if o.doc != "" {
		if err := rep.updateDoc(o.doc); err != nil {
			return fmt.Errorf("update %s: %w", o.doc, err)
		}
		fmt.Fprintf(os.Stderr, "recorded in %s\n", o.doc)
	}
	return nil
}

// setup creates the table on both sides at once, the same rows on each,
// outside the binlog.
func setup(ctx context.Context, o options, m, r *sql.DB) (reused bool, err error) {
	if o.reuse {
		var nm, nr int
		em := m.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+benchDB+".t").Scan(&nm)
		er := r.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+benchDB+".t").Scan(&nr)
		if em == nil && er == nil && nm == o.rows && nr == o.rows {
			fmt.Fprintf(os.Stderr, "reusing %s.t of %d rows on both sides\n", benchDB, o.rows)
			return true, nil
		}
		fmt.Fprintf(os.Stderr, "no reusable %s.t of %d rows; creating it\n", benchDB, o.rows)
	}
	fmt.Fprintf(os.Stderr, "creating %s.t with %d rows on %s and %s ...\n", benchDB, o.rows, o.master, o.replica)
	g, gctx := errgroup.WithContext(ctx)
	for _, db := range []*sql.DB{m, r} {
		g.Go(func() error {
			conn, err := db.Conn(gctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			stmts := []string{
				"SET SESSION sql_log_bin = 0",
				"DROP DATABASE IF EXISTS " + benchDB,
				"CREATE DATABASE " + benchDB,
				// About 100 bytes a row: BIGINT key, INT, nullable BIGINT,
				// 32-character text, DATETIME(6), DECIMAL, nullable text.
				"CREATE TABLE " + benchDB + ".t (id BIGINT NOT NULL PRIMARY KEY, a INT NOT NULL, b BIGINT NULL, c VARCHAR(40) NOT NULL, " +
					"d DATETIME(6) NOT NULL, e DECIMAL(12,2) NOT NULL, f VARCHAR(24) NULL) ENGINE=InnoDB",
			}
			const batch = 500_000
			for lo := 1; lo <= o.rows; lo += batch {
				hi := min(lo+batch-1, o.rows)
				stmts = append(stmts, fmt.Sprintf("INSERT INTO %s.t SELECT seq, seq * 7 %% 100000, IF(seq %% 10 = 0, NULL, seq * 13), MD5(seq), "+
					"'2024-01-01' + INTERVAL seq SECOND, seq / 100, IF(seq %% 3 = 0, NULL, SUBSTRING(SHA1(seq), 1, 20)) FROM %s.seq_%d_to_%d",
					benchDB, benchDB, lo, hi))
			}
			stmts = append(stmts, "ANALYZE TABLE "+benchDB+".t")
			for _, s := range stmts {
				if _, err := conn.ExecContext(gctx, s); err != nil {
					return fmt.Errorf("%s: %w", s, err)
				}
			}
			return nil
		})
	}
	return false, g.Wait()
}

// settle waits until both servers have flushed all but 1% of their buffer
// pool's dirty pages, at most limit; it reports whether they did.
func settle(ctx context.Context, m, r *sql.DB, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		calm := true
		for _, db := range []*sql.DB{m, r} {
			var name string
			var dirty, total int64
			db.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'").Scan(&name, &dirty)
			db.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_total'").Scan(&name, &total)
			calm = calm && dirty*100 <= total
		}
		if calm {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Second)
	}
}

type variant struct {
	key      string // for --only
	name     string
	chunk    int
	parallel int
	repeat   int
	hash     string // "": verify's default
	keyset   bool   // keyset bounds for the integer key (verify.Config.KeysetBounds)
}

// custom parses --only chunk=N,parallel=P[,hash=H][,keyset].
func custom(only string) (variant, bool) {
	v := variant{key: "custom", name: "custom"}
	for _, f := range strings.Split(only, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(f), "=")
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
			return v, false
		}
		if err != nil {
			return v, false
		}
	}
	return v, v.chunk > 0 && v.parallel > 0
}

type result struct {
	name    string
	rows    int64
	chunks  int
	secs    float64
	cpu     cpuTimes
	equal   bool
	variant variant
}

func (r result) rate() float64 { return float64(r.rows) / r.secs }

func (r result) line() string {
	return fmt.Sprintf("%-34s %9d rows %6.1fs %8.0f rows/s per side  CPU s bench %.1f db1 %.1f db2 %.1f others %.1f",
		r.name, r.rows, r.secs, r.rate(), r.cpu.Self, r.cpu.Master, r.cpu.Replica, r.cpu.Others())
}

// measure verifies the table through pipeline/verify, as `rowcast verify
// --tables` does (static: the bench replica has no checkpoint, and both
// sides are equal, so no chunk waits or is re-checked).
func measure(ctx context.Context, o options, v variant) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	vf, err := verify.New(ctx, verify.Config{
		MasterName: "db1", ReplicaName: "db2", MasterDSN: dsn(o, o.master), ReplicaDSN: dsn(o, o.replica),
		Filter:    verify.Filter{Tables: []string{benchDB + ".t"}},
		ChunkRows: v.chunk, Parallel: v.parallel, Hash: v.hash, KeysetBounds: v.keyset,
	})
	if err != nil {
		return result{}, err
	}
	defer vf.Close()
	runtime.GC()
	c0 := cpuNow(o)
	t0 := time.Now()
	tr := vf.Table(ctx, benchDB+".t")
	secs := time.Since(t0).Seconds()
	c1 := cpuNow(o)
	if tr.Error != "" {
		return result{}, fmt.Errorf("verify %s: %s", v.name, tr.Error)
	}
	extra := ""
	if v.key == "custom" {
		if v.hash != "" {
			extra += ", hash " + v.hash
		}
		if v.keyset {
			extra += ", keyset bounds"
		}
	}
	name := fmt.Sprintf("verify, %s (chunk %d, parallel %d%s)", v.name, v.chunk, v.parallel, extra)
	return result{name: name, rows: tr.Rows, chunks: tr.Chunks, secs: secs, cpu: c1.sub(c0), equal: tr.Equal(), variant: v}, nil
}

// ceiling runs one statement on each side at once: what the servers do
// without chunking, per-chunk queries or the benchmark's own work. An empty
// query is verify's own summary of the whole table with the given hash.
func ceiling(ctx context.Context, o options, name, query, hash string) (result, error) {
	sums := make([]string, 2)
	counts := make([]int64, 2)
	var c0 cpuTimes
	var t0 time.Time
	dbs := make([]*sql.DB, 2)
	for i, addr := range []string{o.master, o.replica} {
		db, err := sql.Open("mysql", dsn(o, addr))
		if err != nil {
			return result{}, err
		}
		defer db.Close()
		db.SetMaxIdleConns(1)
		if err := db.PingContext(ctx); err != nil {
			return result{}, err
		}
		dbs[i] = db
	}
	if query == "" {
		q, err := verify.HashQuery(ctx, dbs[0], benchDB+".t", hash)
		if err != nil {
			return result{}, err
		}
		query = q
	}
	c0, t0 = cpuNow(o), time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for i, db := range dbs {
		g.Go(func() error {
			return db.QueryRowContext(gctx, query).Scan(&counts[i], &sums[i])
		})
	}
	if err := g.Wait(); err != nil {
		return result{}, fmt.Errorf("%s: %w", name, err)
	}
	secs := time.Since(t0).Seconds()
	return result{name: name, rows: counts[0], chunks: 1, secs: secs, cpu: cpuNow(o).sub(c0), equal: sums[0] == sums[1] && counts[0] == counts[1]}, nil
}

func median(rs []result) result {
	s := append([]result(nil), rs...)
	sort.Slice(s, func(i, j int) bool { return s[i].rate() < s[j].rate() })
	return s[len(s)/2]
}
