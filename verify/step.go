package verify

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strconv"
	"sync"
)

// stepper finds the chunk bounds of a table walked by one integer column
// without reading its rows: the next bound is the last one plus a step of
// key values, sized by the density of the rows the master's hash of a recent
// chunk counted, so that a chunk holds about ChunkRows rows. A chunk found
// empty means a gap: the next starts at the master's next key. A large chunk
// that differs is split (walk.split). docs/DESIGN.md, "Stepped chunk bounds".
type stepper struct {
	w        *walk
	col      column
	unsigned bool

	// Key values are mapped to uint64 in key order (signed values with the
	// sign bit flipped), so that steps are unsigned additions.
	started bool
	empty   bool
	min     uint64
	max     uint64 // the master's MAX when last read
	step    uint64

	mu      sync.Mutex
	density float64 // rows per key value of the last chunk measured; 0: none since the last step
	gap     bool    // a chunk was found empty since the last step
}

// newStepper returns the stepper of a table walked by one integer column,
// nil for any other key.
func newStepper(w *walk) *stepper {
	if len(w.t.key) != 1 {
		return nil
	}
	c := w.t.cols[w.t.key[0]]
	if c.kind != kindInt && c.kind != kindUint {
		return nil
	}
	return &stepper{w: w, col: c, unsigned: c.kind == kindUint}
}

// ord maps a key value as read (decimal text) into key order.
func (s *stepper) ord(v []byte) (uint64, error) {
	if s.unsigned {
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("column %s: %q is not an unsigned integer: %w", s.col.Name, v, err)
		}
		return n, nil
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("column %s: %q is not an integer: %w", s.col.Name, v, err)
	}
	return uint64(n) ^ 1<<63, nil
}

// key is the inverse of ord.
func (s *stepper) key(u uint64) keyVals {
	if s.unsigned {
		return keyVals{strconv.AppendUint(nil, u, 10)}
	}
	return keyVals{strconv.AppendInt(nil, int64(u^1<<63), 10)}
}

// extent reads the master's MIN and MAX of the key (after a key, if after is
// not nil); ok is false when there is no such key.
func (s *stepper) extent(ctx context.Context, after keyVals) (lo, hi uint64, ok bool, err error) {
	name := qi(s.col.Name)
	var mn, mx sql.RawBytes
	where, args, err := s.w.t.rangeWhere(after, nil)
	if err != nil {
		return 0, 0, false, err
	}
	rows, err := s.w.v.master.QueryContext(ctx, "SELECT MIN("+name+"), MAX("+name+") FROM "+s.w.t.quoted()+s.w.t.index()+where, args...)
	if err != nil {
		return 0, 0, false, fmt.Errorf("read the key range of %s on the master: %w", s.w.t, err)
	}
	defer rows.Close()
	if !rows.Next() {
		return 0, 0, false, rows.Err()
	}
	if err := rows.Scan(&mn, &mx); err != nil {
		return 0, 0, false, err
	}
	if mn == nil || mx == nil {
		return 0, 0, false, rows.Err()
	}
	if lo, err = s.ord(mn); err != nil {
		return 0, 0, false, err
	}
	if hi, err = s.ord(mx); err != nil {
		return 0, 0, false, err
	}
	return lo, hi, true, rows.Err()
}

// start reads the key range.
func (s *stepper) start(ctx context.Context) error {
	lo, hi, ok, err := s.extent(ctx, nil)
	if err != nil {
		return err
	}
	s.started, s.empty, s.min, s.max = true, !ok, lo, hi
	s.step = uint64(s.w.v.cfg.ChunkRows)
	return nil
}

// clampStep keeps a step between chunk key values (no chunk of integers
// holds more rows than key values) and 2^62.
func clampStep(f float64, chunk int) uint64 {
	if math.IsNaN(f) || f < float64(chunk) {
		return uint64(chunk)
	}
	return uint64(min(f, 1<<62))
}

// next returns the upper bound of the chunk after lo (nil: the table's
// start), nil for the last chunk, which is open-ended, and the number of key
// values the step meant the chunk to cover (which the master's rows are
// counted against: not the gap before them). Chunks are (lo, hi].
func (s *stepper) next(ctx context.Context, lo keyVals) (keyVals, uint64, error) {
	if !s.started {
		if err := s.start(ctx); err != nil {
			return nil, 0, err
		}
	}
	if s.empty {
		return nil, 0, nil
	}
	step, gap := s.nextStep()
	from, ok, err := s.from(ctx, lo, gap)
	if err != nil || !ok {
		return nil, 0, err
	}
	if last, err := s.last(ctx, from, step); err != nil || last {
		return nil, 0, err
	}
	return s.key(from + step - 1), step, nil
}

// last reports whether the chunk from..from+step-1 reaches the master's
// largest key, and is then the last, open-ended one. Past the largest key
// as first read, it reads it again: rows may have come since.
func (s *stepper) last(ctx context.Context, from, step uint64) (bool, error) {
	overflow := from > math.MaxUint64-step+1
	hi := from + step - 1
	if !overflow && hi < s.max {
		return false, nil
	}
	_, mx, ok, err := s.extent(ctx, nil)
	if err != nil {
		return false, err
	}
	if !ok || overflow || hi >= mx {
		return true, nil
	}
	s.max = mx
	return false, nil
}

// from is the first key value of the chunk after lo (nil: the table's
// start): its rows are from..from+step-1. After a gap it is the master's next
// key; ok is false when there is none.
func (s *stepper) from(ctx context.Context, lo keyVals, gap bool) (uint64, bool, error) {
	if lo == nil {
		return s.min, true, nil
	}
	last, err := s.ord(lo[0])
	if err != nil {
		return 0, false, err
	}
	if !gap {
		return last + 1, true, nil // lo < MAX: no overflow
	}
	// Over the gap to the next key at once.
	next, mx, ok, err := s.extent(ctx, lo)
	if err != nil || !ok {
		return 0, false, err
	}
	s.max = mx
	return next, true, nil
}

// nextStep sizes the next step from the density measured last, and tells
// whether a chunk was found empty since.
func (s *stepper) nextStep() (step uint64, gap bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.density > 0 {
		s.step = clampStep(float64(s.w.v.cfg.ChunkRows)/s.density, s.w.v.cfg.ChunkRows)
	}
	gap = s.gap
	s.density, s.gap = 0, false
	return s.step, gap
}

// observe takes the master's row count of a verified chunk: the density of
// the key values its step covered sizes the next steps.
func (s *stepper) observe(c chunk, rows int64) {
	if c.span == 0 {
		return // the open-ended last chunk, or not stepped
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rows == 0 {
		s.gap = true
		return
	}
	s.density = float64(rows) / float64(c.span)
}

// less reports a < b for keys of this column.
func (s *stepper) less(a, b keyVals) (bool, error) {
	x, err := s.ord(a[0])
	if err != nil {
		return false, err
	}
	y, err := s.ord(b[0])
	if err != nil {
		return false, err
	}
	return x < y, nil
}
