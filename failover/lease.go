package failover

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/config"
)

// Lease is the promotion lease of one topic, held on a majority of the
// cluster's mysql nodes: only one actor (an operator's `rowcast promote`,
// a pipeline service in automatic mode) promotes at a time. Why a majority,
// the TTL and the race after expiry: docs/DESIGN.md, "The promotion lease".
type Lease struct {
	topic  string
	holder string
	ttl    time.Duration
	st     store
	log    zerolog.Logger
	// FromOffset is the topic's end offset when the lease was first taken
	// (or the older offset an expired holder left): every epoch record of
	// this promotion, or of a promotion that died holding the lease, is at
	// or after it.
	FromOffset int64

	dbs   map[string]*node // nodes where it is held
	total int

	mu        sync.Mutex
	renewedAt time.Time
	lost      error
	stop      context.CancelFunc
	done      chan struct{}
}

// Holder names this process for the lease: host, pid and a tag.
func Holder(tag string) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s@%s:%d", tag, host, os.Getpid())
}

// AcquireLease takes the lease on a majority of the mysql nodes, or fails
// with ErrLeaseHeld (another holder) or ErrNoQuorum (too few nodes answer).
// fromOffset is the topic's end offset now.
func AcquireLease(ctx context.Context, cfg *config.Config, topic, holder string, ttl time.Duration, fromOffset int64, log zerolog.Logger) (*Lease, error) {
	return acquireLease(ctx, cfg, topic, holder, ttl, fromOffset, log, nil)
}

func acquireLease(ctx context.Context, cfg *config.Config, topic, holder string, ttl time.Duration, fromOffset int64, log zerolog.Logger, rec recorder) (*Lease, error) {
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	l := &Lease{topic: topic, holder: holder, ttl: ttl, st: newStore(cfg.Sink.BookkeepingSchema), log: log,
		FromOffset: fromOffset, dbs: map[string]*node{}}
	nodes := mysqlNodes(cfg)
	l.total = len(nodes)
	tries := l.tryAll(ctx, nodes, rec)
	held, problems := l.keep(tries)
	if len(l.dbs)*2 <= l.total {
		l.releaseAll(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("promotion lease of topic %s: held on %d of %d mysql nodes, a majority is needed (%s): %w",
			topic, len(l.dbs), l.total, strings.Join(problems, "; "), noQuorumCause(tries))
	}
	l.startRenewing(ctx)
	log.Info().Str("topic", topic).Str("holder", holder).Strs("nodes", held).Int64("from_offset", l.FromOffset).
		Dur("ttl", ttl).Msg("promotion lease taken")
	return l, nil
}

// leaseTry is the lease taken, or not, on one node.
type leaseTry struct {
	name string
	nd   *node
	row  leaseRow
	err  error
}

// tryAll tries to take the lease on every node at once.
func (l *Lease) tryAll(ctx context.Context, nodes []config.Node, rec recorder) []leaseTry {
	tries := make([]leaseTry, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tries[i] = l.try(ctx, n, rec)
		}()
	}
	wg.Wait()
	return tries
}

// try takes the lease on one node, creating its tables when missing; the
// node stays open when it holds the lease.
func (l *Lease) try(ctx context.Context, n config.Node, rec recorder) leaseTry {
	t := leaseTry{name: n.Name}
	nd, err := openNode(ctx, n, 3*time.Second, rec)
	if err != nil {
		t.err = err
		return t
	}
	if err = l.st.init(ctx, nd.ex()); err == nil {
		t.row, err = l.st.tryAcquire(ctx, nd, l.topic, l.holder, l.ttl, l.FromOffset)
	}
	if err != nil {
		nd.close()
		t.err = err
		return t
	}
	t.nd = nd
	return t
}

// keep keeps the nodes that hold the lease, with the oldest from_offset
// among them, and says what went wrong on the others.
func (l *Lease) keep(tries []leaseTry) (held, problems []string) {
	for _, t := range tries {
		if t.err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", t.name, t.err))
			continue
		}
		l.dbs[t.name] = t.nd
		l.FromOffset = min(l.FromOffset, t.row.FromOffset)
		held = append(held, t.name)
	}
	return held, problems
}

// noQuorumCause is ErrLeaseHeld when another holder refused the lease on
// some node, else ErrNoQuorum.
func noQuorumCause(tries []leaseTry) error {
	for _, t := range tries {
		if errors.Is(t.err, ErrLeaseHeld) {
			return ErrLeaseHeld
		}
	}
	return ErrNoQuorum
}

// startRenewing starts renewing the lease until Release.
func (l *Lease) startRenewing(ctx context.Context) {
	l.renewedAt = time.Now()
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.stop, l.done = cancel, make(chan struct{})
	go l.renew(rctx)
}

// renew extends the lease every TTL/3 on the nodes that hold it.
func (l *Lease) renew(ctx context.Context) {
	defer close(l.done)
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.renewed(l.renewOnce(ctx))
	}
}

// renewOnce extends the lease on every node that holds it and returns on
// how many it did.
func (l *Lease) renewOnce(ctx context.Context) int {
	ok := 0
	for name, nd := range l.dbs {
		cctx, cancel := context.WithTimeout(ctx, l.ttl/3)
		_, err := l.st.tryAcquire(cctx, nd, l.topic, l.holder, l.ttl, l.FromOffset)
		cancel()
		if err == nil {
			ok++
		} else if ctx.Err() == nil {
			l.log.Warn().Err(err).Str("node", name).Msg("promotion lease not renewed on this node")
		}
	}
	return ok
}

// renewed notes a renewal on ok nodes: the lease is lost once it could not
// be renewed on a majority for two thirds of its TTL.
func (l *Lease) renewed(ok int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ok*2 > l.total {
		l.renewedAt = time.Now()
	} else if time.Since(l.renewedAt) > l.ttl*2/3 {
		l.lost = fmt.Errorf("the promotion lease could be renewed on only %d of %d nodes: %w", ok, l.total, ErrNoQuorum)
	}
}

// Check reports whether the lease is still safely held: renewed on a
// majority within two thirds of the TTL.
func (l *Lease) Check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		return l.lost
	}
	if time.Since(l.renewedAt) > l.ttl*2/3 {
		return fmt.Errorf("the promotion lease was last renewed %v ago (TTL %v): %w", time.Since(l.renewedAt).Round(time.Millisecond), l.ttl, ErrNoQuorum)
	}
	return nil
}

// RecordEpoch writes an epoch record into the index of every node that
// holds the lease; it must reach a majority.
func (l *Lease) RecordEpoch(ctx context.Context, r epochRow) error {
	ok := 0
	var problems []string
	for name, nd := range l.dbs {
		if err := l.st.saveEpoch(ctx, nd.ex(), l.topic, r); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		ok++
	}
	if ok*2 <= l.total {
		return fmt.Errorf("epoch %d written into the index of %d of %d nodes (%s); the lease stays taken until it expires, so readers scan the topic from offset %d: %w",
			r.Record.Epoch, ok, l.total, strings.Join(problems, "; "), l.FromOffset, ErrNoQuorum)
	}
	return nil
}

// Release stops renewing and frees the lease on every node that holds it.
func (l *Lease) Release(ctx context.Context) {
	l.stopRenewing()
	l.releaseAll(ctx)
}

// leave stops renewing the lease and closes its connections without
// releasing it: it expires by itself after its TTL, and until then (or
// until it is taken again) every lookup scans the topic from its offset.
func (l *Lease) leave() {
	l.stopRenewing()
	for _, nd := range l.dbs {
		nd.close()
	}
	l.dbs = map[string]*node{}
}

func (l *Lease) stopRenewing() {
	if l.stop != nil {
		l.stop()
		<-l.done
		l.stop = nil
	}
}

func (l *Lease) releaseAll(ctx context.Context) {
	for name, nd := range l.dbs {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := l.st.release(cctx, nd.ex(), l.topic, l.holder); err != nil {
			l.log.Warn().Err(err).Str("node", name).Msg("promotion lease not released on this node; it expires by itself")
		}
		cancel()
		nd.close()
	}
	l.dbs = map[string]*node{}
}
