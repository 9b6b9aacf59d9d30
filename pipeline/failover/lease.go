package failover

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/pipeline/config"
)

// Lease is the promotion lease of one topic, held on a majority of the
// cluster's mysql nodes: only one actor (an operator's `rowcast promote`,
// a pipeline service in automatic mode) promotes at a time.
//
// Each node keeps one row per topic in <schema>.promotion_lease: the
// holder, an expiry in the node's own clock, and the topic's end offset
// when the lease was taken. Taking it is a transaction on each node (free,
// released, expired or ours: take it; held by another: refuse), and it
// counts only on a majority, so two actors cannot both hold it, whatever
// happens to processes: the rows survive restarts of everything, and a
// holder that dies leaves a lease that expires by itself (TTL). A holder
// renews it every TTL/3; a holder that could not renew on a majority for a
// TTL must stop before its point of no return (Check).
//
// Expiry cannot stop a holder that is paused past its TTL from acting late.
// The topic settles that: a promotion checks, after writing its epoch
// record, that no other record of its epoch or newer precedes its own
// (promote.go); the first one in the topic wins everywhere, since sinks and
// the pipeline honour only the first record of an epoch.
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

	dbs   map[string]*sql.DB // nodes where it is held
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
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	l := &Lease{topic: topic, holder: holder, ttl: ttl, st: store{schema: cfg.Sink.BookkeepingSchema}, log: log,
		FromOffset: fromOffset, dbs: map[string]*sql.DB{}}
	nodes := mysqlNodes(cfg)
	l.total = len(nodes)
	type result struct {
		name string
		db   *sql.DB
		row  leaseRow
		err  error
	}
	res := make([]result, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := result{name: n.Name}
			db, err := openNode(ctx, n, 3*time.Second)
			if err == nil {
				if err = l.st.init(ctx, db); err == nil {
					r.row, err = l.st.tryAcquire(ctx, db, topic, holder, ttl, fromOffset)
				}
				if err != nil {
					db.Close()
				} else {
					r.db = db
				}
			}
			r.err = err
			res[i] = r
		}()
	}
	wg.Wait()
	var problems []string
	var held []string
	for _, r := range res {
		if r.err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", r.name, r.err))
			continue
		}
		l.dbs[r.name] = r.db
		l.FromOffset = min(l.FromOffset, r.row.FromOffset)
		held = append(held, r.name)
	}
	if len(l.dbs)*2 <= l.total {
		l.releaseAll(context.WithoutCancel(ctx))
		err := ErrNoQuorum
		for _, r := range res {
			if errors.Is(r.err, ErrLeaseHeld) {
				err = ErrLeaseHeld
			}
		}
		return nil, fmt.Errorf("promotion lease of topic %s: held on %d of %d mysql nodes, a majority is needed (%s): %w",
			topic, len(l.dbs), l.total, strings.Join(problems, "; "), err)
	}
	l.renewedAt = time.Now()
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.stop, l.done = cancel, make(chan struct{})
	go l.renew(rctx)
	log.Info().Str("topic", topic).Str("holder", holder).Strs("nodes", held).Int64("from_offset", l.FromOffset).
		Dur("ttl", ttl).Msg("promotion lease taken")
	return l, nil
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
		ok := 0
		for name, db := range l.dbs {
			cctx, cancel := context.WithTimeout(ctx, l.ttl/3)
			_, err := l.st.tryAcquire(cctx, db, l.topic, l.holder, l.ttl, l.FromOffset)
			cancel()
			if err == nil {
				ok++
			} else if ctx.Err() == nil {
				l.log.Warn().Err(err).Str("node", name).Msg("promotion lease not renewed on this node")
			}
		}
		l.mu.Lock()
		if ok*2 > l.total {
			l.renewedAt = time.Now()
		} else if time.Since(l.renewedAt) > l.ttl*2/3 {
			l.lost = fmt.Errorf("the promotion lease could be renewed on only %d of %d nodes: %w", ok, l.total, ErrNoQuorum)
		}
		l.mu.Unlock()
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
	for name, db := range l.dbs {
		if err := l.st.saveEpoch(ctx, db, l.topic, r); err != nil {
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
	if l.stop != nil {
		l.stop()
		<-l.done
		l.stop = nil
	}
	l.releaseAll(ctx)
}

func (l *Lease) releaseAll(ctx context.Context) {
	for name, db := range l.dbs {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := l.st.release(cctx, db, l.topic, l.holder); err != nil {
			l.log.Warn().Err(err).Str("node", name).Msg("promotion lease not released on this node; it expires by itself")
		}
		cancel()
		db.Close()
	}
	l.dbs = map[string]*sql.DB{}
}
