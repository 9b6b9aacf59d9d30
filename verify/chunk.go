package verify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// chunk is the key range (lo, hi]; a nil bound is open, so the first and
// last chunks also catch rows the replica holds outside the master's range.
// seq is its place in the table, to list differences in key order; span the
// key values a stepped chunk was meant to cover (see stepper), 0 for others.
type chunk struct {
	lo, hi keyVals
	seq    int
	span   uint64
}

// listedDiff is a difference kept for the report, with its chunk's place.
type listedDiff struct {
	seq int
	Diff
}

// walk verifies one table chunk by chunk.
type walk struct {
	v      *Verifier
	t      *Table
	tr     *TableReport
	repair bool
	// step finds the chunk bounds of a table walked by one integer column
	// (nil: keyset bounds, see boundSQL).
	step *stepper

	mu       sync.Mutex
	differed []chunk      // chunks with confirmed differences
	listed   []listedDiff // the first MaxDiffs differences found
	estimate int64
}

// finish puts the listed differences in the report chunk by chunk, in key
// order of the chunks; within a chunk, the master's rows (changed, missing)
// come before the replica's extra ones.
func (w *walk) finish() {
	sort.SliceStable(w.listed, func(i, j int) bool { return w.listed[i].seq < w.listed[j].seq })
	for _, d := range w.listed {
		w.tr.Diffs = append(w.tr.Diffs, d.Diff)
	}
	w.listed = nil
}

// run walks the whole table: the master's key gives the chunk bounds (by
// steps of key values for an integer key, see stepper; else by keyset), one
// chunk ahead of Parallel workers that hash them.
func (w *walk) run(ctx context.Context) error {
	w.v.master.QueryRowContext(ctx, "SELECT IFNULL(TABLE_ROWS,0) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
		w.t.Schema, w.t.Name).Scan(&w.estimate)
	next := func(ctx context.Context, lo keyVals) (keyVals, uint64, error) {
		hi, err := w.bound(ctx, lo)
		return hi, 0, err
	}
	if w.step = newStepper(w); w.step != nil && !w.v.cfg.KeysetBounds {
		next = w.step.next
	}
	g, gctx := errgroup.WithContext(ctx)
	ch := make(chan chunk, w.v.cfg.Parallel)
	g.Go(func() error {
		defer close(ch)
		var lo keyVals
		for seq := 0; ; seq++ {
			var hi keyVals
			var span uint64
			err := w.v.retry(gctx, w.t, func() (err error) {
				hi, span, err = next(gctx, lo)
				return err
			})
			if err != nil {
				return err
			}
			select {
			case ch <- chunk{lo: lo, hi: hi, seq: seq, span: span}:
			case <-gctx.Done():
				return gctx.Err()
			}
			if hi == nil {
				return nil
			}
			lo = hi
		}
	})
	w.workers(gctx, g, ch)
	err := g.Wait()
	w.finish()
	w.v.progress(Progress{Table: w.t.String(), Rows: w.tr.Rows, Estimate: w.estimate, Done: true})
	return err
}

// chunks verifies the given chunks only.
func (w *walk) chunks(ctx context.Context, cs []chunk) error {
	g, gctx := errgroup.WithContext(ctx)
	ch := make(chan chunk, len(cs))
	for _, c := range cs {
		ch <- c
	}
	close(ch)
	w.workers(gctx, g, ch)
	err := g.Wait()
	w.finish()
	return err
}

func (w *walk) workers(ctx context.Context, g *errgroup.Group, ch <-chan chunk) {
	for range w.v.cfg.Parallel {
		g.Go(func() error {
			for c := range ch {
				if err := w.v.thr.take(ctx, w.v.cfg.ChunkRows); err != nil {
					return err
				}
				if err := w.chunk(ctx, c); err != nil {
					return err
				}
			}
			return nil
		})
	}
}

// bound returns the key of the ChunkRows-th row after lo on the master, nil
// when fewer rows follow (the last chunk).
func (w *walk) bound(ctx context.Context, lo keyVals) (keyVals, error) {
	q, args, err := w.t.boundSQL(lo, w.v.cfg.ChunkRows)
	if err != nil {
		return nil, err
	}
	dest := make([]any, len(w.t.key))
	vals := make([]sql.RawBytes, len(w.t.key))
	for i := range vals {
		dest[i] = &vals[i]
	}
	rows, err := w.v.master.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("find the next chunk of %s after %s on the master: %w", w.t, w.keyString(lo), err)
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, rows.Err()
	}
	if err := rows.Scan(dest...); err != nil {
		return nil, err
	}
	hi := make(keyVals, len(vals))
	for i, v := range vals {
		hi[i] = append([]byte{}, v...)
	}
	return hi, rows.Err()
}

// keyString renders a key for messages (keys name objects; values stay out
// of logs, keys are how an operator finds the row).
func (w *walk) keyString(k keyVals) string {
	if k == nil {
		return "the start"
	}
	return fieldsString(w.t.keyFields(k))
}

func (t *Table) keyFields(k keyVals) []Field {
	fs := make([]Field, len(t.key))
	for i, ci := range t.key {
		fs[i] = Field{Column: t.cols[ci].Name, Value: display(k[i], t.cols[ci])}
	}
	return fs
}

// hashBoth hashes the chunk on both sides at once and returns the master's
// position read after its hash: the master's snapshot is within it.
func (w *walk) hashBoth(ctx context.Context, c chunk) (m, r hashResult, pos string, err error) {
	q, args, err := w.t.hashSQL(w.v.hash, c.lo, c.hi)
	if err != nil {
		return m, r, "", err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := w.v.master.QueryRowContext(gctx, q, args...).Scan(&m.rows, &m.sum); err != nil {
			return fmt.Errorf("hash %s after %s on the master: %w", w.t, w.keyString(c.lo), err)
		}
		var err error
		pos, err = w.v.pos.masterPos(gctx, w.v.master)
		return err
	})
	g.Go(func() error {
		if err := w.v.replica.QueryRowContext(gctx, q, args...).Scan(&r.rows, &r.sum); err != nil {
			return fmt.Errorf("hash %s after %s on the replica: %w", w.t, w.keyString(c.lo), err)
		}
		return nil
	})
	err = g.Wait()
	return m, r, pos, err
}

// chunk verifies one chunk, retrying it from its first hash after a
// transient error (a lost connection: a server restarting; a lock wait
// timeout or deadlock), up to 5 times with backoff. A chunk counts in the
// report only once it is done, so a retry counts it once.
func (w *walk) chunk(ctx context.Context, c chunk) error {
	var o outcome
	err := w.v.retry(ctx, w.t, func() (err error) {
		o, err = w.verifyChunk(ctx, c, true)
		return err
	})
	if err == nil {
		w.record(c, o)
	}
	return err
}

// retry runs f again after a transient error, up to 5 times in all, with
// backoff from half a second.
func (v *Verifier) retry(ctx context.Context, t *Table, f func() error) error {
	backoff := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil || attempt == 5 || !transient(err) || ctx.Err() != nil {
			return err
		}
		v.log.Warn().Err(err).Str("table", t.String()).Dur("backoff", backoff).Msg("verify: transient error; trying again")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

// outcome is what verifying one chunk found.
type outcome struct {
	rows      int64
	rechecked bool
	diffs     []Diff
	repaired  int
}

// verifyChunk hashes a chunk on both sides and, if the hashes differ, goes
// through the re-checks described in the package comment. A chunk that
// differs and holds more than twice ChunkRows rows is split first, if split
// (see split).
func (w *walk) verifyChunk(ctx context.Context, c chunk, split bool) (outcome, error) {
	m, r, pos, err := w.hashBoth(ctx, c)
	if err != nil {
		return outcome{}, err
	}
	o := outcome{rows: m.rows}
	if m == r {
		return o, nil
	}
	o.rechecked = true
	if !w.v.pos.static {
		if m, r, err = w.hashCaughtUp(ctx, c, pos); err != nil || m == r {
			return o, err
		}
	}
	if split && w.large(m, r) {
		return w.split(ctx, c)
	}
	cands, err := w.rowDiff(ctx, c)
	if err != nil || len(cands) == 0 {
		return o, err
	}
	o.diffs, o.repaired, err = w.settle(ctx, cands)
	return o, err
}

// hashCaughtUp hashes a chunk that differed again once the replica has what
// the master had at pos: maybe it was only behind.
func (w *walk) hashCaughtUp(ctx context.Context, c chunk, pos string) (m, r hashResult, err error) {
	if err := w.v.pos.wait(ctx, pos); err != nil {
		return m, r, fmt.Errorf("chunk of %s after %s differs: %w", w.t, w.keyString(c.lo), err)
	}
	m, r, _, err = w.hashBoth(ctx, c)
	return m, r, err
}

// large reports a stepped chunk of more than twice ChunkRows rows on a side.
func (w *walk) large(m, r hashResult) bool {
	big := 2 * int64(w.v.cfg.ChunkRows)
	return w.step != nil && (m.rows > big || r.rows > big)
}

// split verifies a large chunk that differs part by part: the keyset bounds
// of the master's rows cut it into chunks of ChunkRows rows, each verified as
// a chunk (hashed, and listed row by row only if it differs), so that no
// listing holds more than about ChunkRows keys per side. Only stepped chunks
// get large (see stepper).
func (w *walk) split(ctx context.Context, c chunk) (outcome, error) {
	o := outcome{rechecked: true}
	lo := c.lo
	for {
		hi, err := w.bound(ctx, lo)
		if err != nil {
			return o, err
		}
		last := hi == nil
		if !last && c.hi != nil {
			in, err := w.step.less(hi, c.hi)
			if err != nil {
				return o, err
			}
			last = !in
		}
		if last {
			hi = c.hi
		}
		part, err := w.verifyChunk(ctx, chunk{lo: lo, hi: hi, seq: c.seq}, false)
		if err != nil {
			return o, err
		}
		o.rows += part.rows
		o.diffs = append(o.diffs, part.diffs...)
		o.repaired += part.repaired
		if last {
			return o, nil
		}
		lo = hi
	}
}

// record adds a verified chunk to the report.
func (w *walk) record(c chunk, o outcome) {
	if w.step != nil {
		w.step.observe(c, o.rows)
	}
	w.mu.Lock()
	w.tr.Chunks++
	w.tr.Rows += o.rows
	if o.rechecked {
		w.tr.Rechecked++
	}
	p := Progress{Table: w.t.String(), Rows: w.tr.Rows, Estimate: w.estimate}
	if len(o.diffs) > 0 {
		w.differed = append(w.differed, c)
		w.tr.Differences += len(o.diffs)
		w.tr.Repaired += o.repaired
		for _, d := range o.diffs {
			if len(w.listed) >= w.v.cfg.MaxDiffs {
				break
			}
			if w.v.cfg.Quiet {
				d.Master, d.Replica = nil, nil
			}
			w.listed = append(w.listed, listedDiff{seq: c.seq, Diff: d})
		}
	}
	w.mu.Unlock()
	for _, d := range o.diffs {
		if !w.v.cfg.LogDiffs {
			break
		}
		w.v.log.Warn().Str("table", w.t.String()).Str("kind", d.Kind).Str("key", d.KeyString()).
			Str("replica", w.v.cfg.ReplicaName).Msg("row differs from the master")
	}
	w.v.progress(p)
}

// rowRef is one row of a row-by-row listing.
type rowRef struct {
	key  keyVals
	hash string
}

func encodeKey(k keyVals) string {
	n := 0
	for _, v := range k {
		n += len(v) + 5
	}
	b := make([]byte, 0, n)
	for _, v := range k {
		b = append(b, byte(len(v)>>24), byte(len(v)>>16), byte(len(v)>>8), byte(len(v)))
		b = append(b, v...)
	}
	return string(b)
}

// rowHashes lists the key and hash of each row of a chunk on one side, in
// key order.
func (w *walk) rowHashes(ctx context.Context, db *sql.DB, c chunk) ([]rowRef, error) {
	q, args, err := w.t.rowHashSQL(w.v.hash, c.lo, c.hi)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	n := len(w.t.key)
	vals := make([]sql.RawBytes, n+1)
	dest := make([]any, n+1)
	for i := range vals {
		dest[i] = &vals[i]
	}
	out := make([]rowRef, 0, w.v.cfg.ChunkRows)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		k := make(keyVals, n)
		for i := range n {
			k[i] = append([]byte{}, vals[i]...)
		}
		out = append(out, rowRef{key: k, hash: string(vals[n])})
	}
	return out, rows.Err()
}

// rowDiff compares a chunk row by row (keys and row hashes) and returns the
// keys that differ: the master's rows in key order, then the replica's
// extra rows in key order.
func (w *walk) rowDiff(ctx context.Context, c chunk) ([]keyVals, error) {
	mrows, rrows, err := w.rowHashesBoth(ctx, c)
	if err != nil {
		return nil, err
	}
	return differingKeys(mrows, rrows), nil
}

// rowHashesBoth lists the rows of a chunk on both sides at once.
func (w *walk) rowHashesBoth(ctx context.Context, c chunk) (mrows, rrows []rowRef, err error) {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		if mrows, err = w.rowHashes(gctx, w.v.master, c); err != nil {
			return fmt.Errorf("list rows of %s after %s on the master: %w", w.t, w.keyString(c.lo), err)
		}
		return nil
	})
	g.Go(func() error {
		var err error
		if rrows, err = w.rowHashes(gctx, w.v.replica, c); err != nil {
			return fmt.Errorf("list rows of %s after %s on the replica: %w", w.t, w.keyString(c.lo), err)
		}
		return nil
	})
	err = g.Wait()
	return mrows, rrows, err
}

// differingKeys returns the keys whose rows differ: the master's rows in
// key order, then the replica's extra rows in key order.
func differingKeys(mrows, rrows []rowRef) []keyVals {
	onReplica := make(map[string]string, len(rrows))
	for _, r := range rrows {
		onReplica[encodeKey(r.key)] = r.hash
	}
	onMaster := make(map[string]bool, len(mrows))
	var out []keyVals
	for _, m := range mrows {
		k := encodeKey(m.key)
		onMaster[k] = true
		if h, ok := onReplica[k]; !ok || h != m.hash {
			out = append(out, m.key)
		}
	}
	for _, r := range rrows {
		if !onMaster[encodeKey(r.key)] {
			out = append(out, r.key)
		}
	}
	return out
}

// settleBatch bounds the keys read (and locked) in one statement.
const settleBatch = 200

// settle reads the candidate rows again: first without locks once the
// replica is past the master's position (rows that were only behind drop
// out), then under a shared lock on the master's rows, which confirms the
// rest and, when repairing, rewrites them on the replica before the lock is
// released.
func (w *walk) settle(ctx context.Context, keys []keyVals) (diffs []Diff, repaired int, err error) {
	for lo := 0; lo < len(keys); lo += settleBatch {
		batch := keys[lo:min(lo+settleBatch, len(keys))]
		if !w.v.pos.static {
			if batch, err = w.stillDiffer(ctx, batch); err != nil {
				return nil, 0, err
			}
			if len(batch) == 0 {
				continue
			}
		}
		d, n, err := w.confirm(ctx, batch)
		if err != nil {
			return nil, 0, err
		}
		repaired += n
		for _, x := range d {
			diffs = append(diffs, x.Diff)
		}
	}
	return diffs, repaired, nil
}

// stillDiffer returns the keys whose rows still differ once the replica is
// past the master's position (rows that were only behind drop out).
func (w *walk) stillDiffer(ctx context.Context, keys []keyVals) ([]keyVals, error) {
	d, _, err := w.compareRows(ctx, keys, false, false)
	if err != nil {
		return nil, err
	}
	out := make([]keyVals, 0, len(d))
	for _, x := range d {
		out = append(out, x.key)
	}
	return out, nil
}

// confirm compares the rows of keys under a shared lock on the master's,
// repairing them if configured, up to three times after a lock wait timeout
// or a deadlock.
func (w *walk) confirm(ctx context.Context, keys []keyVals) (d []rowDiff, repaired int, err error) {
	for attempt := 1; ; attempt++ {
		d, repaired, err = w.compareRows(ctx, keys, true, w.repair)
		if err == nil || attempt == 3 || !retryable(err) && !errors.Is(err, ErrBehind) {
			return d, repaired, err
		}
		if errors.Is(err, ErrBehind) {
			if err := w.catchUp(ctx); err != nil {
				return nil, 0, err
			}
		}
	}
}

// lockedWait bounds how long a confirmation waits for the replica while it
// holds shared locks on the master's rows: the master's writers, and a
// promotion's fence (SET GLOBAL read_only), wait behind them. Past it the
// locks are let go, catchUp waits without them, and the rows are read again.
const lockedWait = 2 * time.Second

// catchUp waits, holding no lock, for the replica to reach the master's
// current position.
func (w *walk) catchUp(ctx context.Context) error {
	pos, err := w.v.pos.masterPos(ctx, w.v.master)
	if err != nil {
		return err
	}
	return w.v.pos.wait(ctx, pos)
}
