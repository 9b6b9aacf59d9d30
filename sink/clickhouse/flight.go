package clickhouse

import (
	"context"
	"fmt"

	"github.com/rowcast/rowcast/checkpoint"
)

// flight is one flush on its way to ClickHouse: the encoded blocks, then
// what the commits they complete recorded. At most one flies at a time;
// meanwhile the worker decodes and fills the next blocks, so the sink's
// CPU and ClickHouse's overlap (docs/CLICKHOUSE.md, "Inserts").
type flight struct {
	inserts []insertReq
	st      *checkpoint.State // nil: the rows are of an open transaction only
	boot    []bootOp
	skips   []checkpoint.Skip
	done    chan struct{}
	err     error
	big     bool // a block holds a big row (Commit lands such a flight)
}

// insertReq is one block's Native body and where it goes.
type insertReq struct {
	table string
	cols  []string
	body  [][]byte // the Native block, in parts sent in order
	rows  int
}

// flush inserts every pending row, then saves the bootstrap changes, the
// skips and the checkpoint, in that order, and returns once they are
// stored. Rows of an open transaction go too (when a big transaction fills
// the buffer): the checkpoint stays before them, so a crash re-applies them
// with the same versions.
func (t *Target) flush(ctx context.Context) error {
	if err := t.startFlush(ctx); err != nil {
		return err
	}
	return t.land()
}

// startFlush waits for the flight before, then encodes the pending blocks
// and sends them off with the commits' bookkeeping. A block's encode buffer
// is reused only once its flight landed.
func (t *Target) startFlush(ctx context.Context) error {
	if err := t.land(); err != nil {
		return err
	}
	f := &flight{st: t.pendingSt, boot: t.bootPending, skips: t.skipPending, done: make(chan struct{})}
	for _, b := range t.order {
		if b.rows == 0 {
			continue
		}
		body, err := b.encode()
		if err != nil {
			return err
		}
		f.inserts = append(f.inserts, insertReq{table: b.name, cols: b.names, body: body, rows: b.rows})
		f.big = f.big || b.bigRow
		b.reset()
	}
	t.rows, t.bytes = 0, 0
	t.pendingSt, t.bootPending, t.skipPending = nil, nil, nil
	if len(f.inserts) == 0 && f.st == nil && len(f.boot) == 0 && len(f.skips) == 0 {
		return nil
	}
	t.fl = f
	fctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	go func() {
		defer cancel()
		defer close(f.done)
		f.err = t.fly(fctx, f)
	}()
	return nil
}

// fly inserts the flight's blocks, then stores its bookkeeping. It touches
// nothing of the Target but the client, the store and the counter: the
// worker holds mu meanwhile.
func (t *Target) fly(ctx context.Context, f *flight) error {
	for _, in := range f.inserts {
		if err := t.cl.insert(ctx, in.table, in.cols, in.body); err != nil {
			return fmt.Errorf("insert %d rows into %s: %w", in.rows, in.table, classify(err))
		}
		t.inserts.Add(1)
	}
	if f.st == nil {
		return nil
	}
	if t.afterInsert != nil {
		if err := t.afterInsert(f.st); err != nil {
			return err
		}
	}
	return t.store.saveAll(ctx, f.boot, f.skips, *f.st)
}

// land waits for the flight in the air, if any, and returns its error,
// which is also kept for every later call until Open.
func (t *Target) land() error {
	if t.fl != nil {
		<-t.fl.done
		if t.fl.err != nil && t.bgErr == nil {
			t.bgErr = t.fl.err
		}
		t.fl = nil
	}
	return t.bgErr
}

// landed returns the error of a flight that already landed, without
// waiting for one in the air.
func (t *Target) landed() error {
	if t.fl != nil {
		select {
		case <-t.fl.done:
			return t.land()
		default:
		}
	}
	return t.bgErr
}

// saveAll stores what commits recorded: bootstrap changes, skips, then the
// checkpoint that covers them.
func (s *store) saveAll(ctx context.Context, boot []bootOp, skips []checkpoint.Skip, st checkpoint.State) error {
	for _, op := range boot {
		if err := s.saveBoot(ctx, op); err != nil {
			return classify(err)
		}
	}
	for _, k := range skips {
		if err := s.recordSkip(ctx, k); err != nil {
			return classify(err)
		}
	}
	if err := s.save(ctx, st); err != nil {
		return classify(err)
	}
	return nil
}
