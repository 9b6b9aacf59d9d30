package changelog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
)

// Consumer reads partition 0 of the changelog topic from a given offset, for
// a sink worker. It uses no consumer group: the sink's own checkpoint is the
// truth, and the sink passes the offset after it to NewConsumer.
//
// A background goroutine fetches ahead of Next, up to cfg.PrefetchBytes.
// Transient errors (broker restart, leader change, timeouts) are retried
// forever with backoff and logged; Next only waits meanwhile. Errors that
// need an operator end the stream: Next returns them from then on.
//
// Why not kafka.Reader: when the offset it reads is older than the first one
// retained it logs and silently skips ahead to the first offset
// (reader.go: "skipping from offset %d to %d"; segmentio/kafka-go#6, #34),
// unless OffsetOutOfRangeError is set, which only covers the first fetch; a
// sink would lose rows without an error. It also gives up after MaxAttempts.
// (*kafka.Client).Fetch returns the broker's answer as it is.
type Consumer struct {
	cfg     Config
	log     zerolog.Logger
	metrics Metrics
	conn    *kafkaConn
	cancel  context.CancelFunc
	done    chan struct{}
	hwm     atomic.Int64

	mu     sync.Mutex
	chunks [][]Message // fetched, not yet handed to Next
	bytes  int         // accounted size of chunks and cur
	err    error       // the fetcher's final error
	ready  chan struct{}
	space  chan struct{}

	// The big message gate (consumer_big.go): bigUntil is the offset after
	// the last big message fetched under it, 0 for none; awaiting, that the
	// fetcher waits for the worker to apply it before it takes the next big
	// one; starved, that it may take it anyway; bigPass (the fetcher's),
	// one fetch past the gate after its wait ran out; idleAt (Idle), where
	// the worker last waited with everything before it in its hands.
	gateMu    sync.Mutex
	bigUntil  int64
	awaiting  bool
	starved   bool
	bigPass   bool
	bigWake   chan struct{}
	delivered atomic.Int64 // the offset after the last message delivered to Next
	idleAt    atomic.Int64 // Idle's last next, -1 before
	applied   atomic.Int64 // Applied's last offset, the start offset before

	// Owned by Next's caller.
	cur      []Message
	curBytes int
	next     int64
}

// NewConsumer starts reading cfg.Topic at offset: the first message Next
// returns is the one at offset (or the first one after it, should offsets
// have gaps). Use FirstOffset to start at the beginning and EndOffset to
// follow only new messages. metrics may be nil.
func NewConsumer(cfg Config, offset int64, log zerolog.Logger, metrics Metrics) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("kafka consumer for topic %s: offset %d is negative: pass a real offset (see FirstOffset, EndOffset)", cfg.Topic, offset)
	}
	if metrics == nil {
		metrics = NopMetrics{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Consumer{
		cfg:     cfg,
		log:     log.With().Str("topic", cfg.Topic).Logger(),
		metrics: metrics,
		cancel:  cancel,
		done:    make(chan struct{}),
		ready:   make(chan struct{}, 1),
		space:   make(chan struct{}, 1),
		bigWake: make(chan struct{}, 1),
		next:    offset,
	}
	c.delivered.Store(offset)
	c.applied.Store(offset)
	c.idleAt.Store(-1)
	conn, err := newKafkaConn(&c.cfg)
	if err != nil {
		cancel()
		return nil, err
	}
	c.conn = conn
	c.hwm.Store(-1)
	if cfg.GateBigMessages {
		bigMessages.join(c)
	}
	go c.fetchLoop(ctx, offset)
	return c, nil
}

// Next returns the next message. It must not be called concurrently with
// itself. It waits for one to be produced; it returns
// ctx's error when ctx ends first, and the stream's error (for instance
// ErrOffsetOutOfRange, or ErrConsumerClosed after Close) once the fetcher
// has stopped and every message fetched before was returned.
func (c *Consumer) Next(ctx context.Context) (Message, error) {
	for len(c.cur) == 0 {
		took, err := c.takeChunk()
		switch {
		case took:
			continue
		case err != nil:
			return Message{}, err
		}
		select {
		case <-c.ready:
		case <-ctx.Done():
			return Message{}, ctx.Err()
		}
	}
	m := c.cur[0]
	c.cur[0] = Message{}
	c.cur = c.cur[1:]
	c.next = m.Offset + 1
	return m, nil
}

// Ready returns how many messages Next returns without waiting: what is
// left of the chunk it reads from.
func (c *Consumer) Ready() int { return len(c.cur) }

// takeChunk gives the room of the chunk Next has read back to the fetcher
// and makes the next fetched chunk current. When there is none it reports
// false, with the fetcher's error once it has stopped.
func (c *Consumer) takeChunk() (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.curBytes > 0 {
		c.bytes -= c.curBytes
		c.curBytes = 0
		kafkaNotify(c.space)
	}
	if len(c.chunks) == 0 {
		return false, c.err
	}
	c.cur = c.chunks[0]
	c.chunks[0] = nil
	c.chunks = c.chunks[1:]
	for _, m := range c.cur {
		c.curBytes += len(m.Key) + len(m.Value) + producerEntryOverhead
	}
	return true, nil
}

// Offset returns the offset after the last message Next returned: where a
// new Consumer would resume.
func (c *Consumer) Offset() int64 { return c.next }

// HighWatermark returns the partition's end offset as the last fetch response
// reported it, without asking the broker: lag in offsets is
// HighWatermark() - Offset(). It is -1 until the first fetch answers.
func (c *Consumer) HighWatermark() int64 { return c.hwm.Load() }

// EndOffset asks the broker for the partition's high watermark now.
func (c *Consumer) EndOffset(ctx context.Context) (int64, error) {
	return listOffset(ctx, &c.cfg, c.conn, kafka.LastOffset)
}

// Close stops the fetcher and releases its connections. Next returns
// ErrConsumerClosed afterwards. Close may be called from another goroutine
// than Next's, once.
func (c *Consumer) Close() error {
	c.cancel()
	<-c.done
	c.releaseBig()
	c.conn.close()
	c.mu.Lock()
	c.chunks = nil
	c.mu.Unlock()
	return nil
}

func kafkaNotify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// fetchLoop fetches from offset on while there is prefetch room, until ctx
// ends or an error needs an operator.
func (c *Consumer) fetchLoop(ctx context.Context, offset int64) {
	defer close(c.done)
	err := c.fetch(ctx, offset)
	if ctx.Err() != nil {
		err = ErrConsumerClosed // only Close cancels ctx
	}
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	kafkaNotify(c.ready)
}

func (c *Consumer) fetch(ctx context.Context, offset int64) error {
	var arena kafkaArena
	r := newRequestRetry("fetch", &c.cfg, c.conn, c.metrics)
	var beyondSince time.Time
	ratio := float64(initialFetchRatio)
	for attempt := 1; ; attempt++ {
		room, err := c.waitRoom(ctx)
		if err != nil {
			return err
		}
		c.beforeFetch(ctx, offset)
		start := time.Now()
		maxBytes := fetchBytes(room, ratio)
		msgs, size, hwm, err := fetchOnce(ctx, &c.cfg, c.conn, offset, maxBytes, &arena, c.cfg.DeferVerify, c.bigReads())
		c.afterFetch()
		if err == nil {
			ratio = nextFetchRatio(ratio, msgs, size, maxBytes, hwm)
			msgs, size = c.gateBig(ctx, msgs, size, &arena)
		}
		if err != nil {
			if err := c.failedFetch(ctx, &r, &beyondSince, err, offset, attempt); err != nil {
				return err
			}
			continue
		}
		c.hwm.Store(hwm)
		r.succeeded()
		beyondSince = time.Time{}
		if attempt > 1 {
			c.log.Info().Int("attempts", attempt).Int64("offset", offset).Msg("kafka fetch succeeded after retries")
		}
		attempt = 0
		offset = c.deliver(msgs, size, offset, time.Since(start))
	}
}

// gateBig runs admitBig on a fetch's messages and returns the ones to
// deliver with their size; after a refetch decision, none.
func (c *Consumer) gateBig(ctx context.Context, msgs []Message, size int, arena *kafkaArena) ([]Message, int) {
	keep, refetch := c.admitBig(ctx, msgs)
	if refetch {
		*arena = kafkaArena{} // no slab of the dropped messages stays
		return nil, 0
	}
	if first, _ := c.bigSpan(keep); first >= 0 {
		FreeGarbage() // kafka-go's copies of the big messages
	}
	if len(keep) == len(msgs) {
		return msgs, size
	}
	size = 0
	for _, m := range keep {
		size += m.Size()
	}
	return keep, size
}

// failedFetch decides about a failed fetch: it returns the error that ends
// the stream, or waits out the backoff and returns nil.
func (c *Consumer) failedFetch(ctx context.Context, r *requestRetry, beyondSince *time.Time, err error, offset int64, attempt int) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	d := r.backoff.delay()
	if errors.Is(err, kafka.OffsetOutOfRange) {
		err = c.outOfRange(ctx, offset, beyondSince)
	} else {
		err = c.retryable(ctx, r, err, offset, attempt, d)
	}
	if err != nil {
		return err
	}
	return kafkaSleep(ctx, d)
}

// A fetch's MaxBytes counts compressed bytes, while the prefetch budget
// counts them decompressed: with lz4 a changelog often shrinks tenfold or
// more, so a fetch of the whole room could decompress into many times the
// budget. The consumer keeps an estimate of the ratio and asks for
// room/ratio bytes; docs/DESIGN.md, "Memory", says how it is bounded.
const (
	initialFetchRatio = 8
	maxFetchRatio     = 256
	minFetchBytes     = 64 << 10
)

// fetchBytes is the MaxBytes of a fetch with room bytes of budget left.
func fetchBytes(room int, ratio float64) int {
	return min(room, max(minFetchBytes, int(float64(room)/ratio)))
}

// nextFetchRatio updates the estimate from a fetch that was cut by its
// MaxBytes (more was there to read): its decompressed size over maxBytes is
// at most the true ratio, since the broker returned at most maxBytes (or
// one batch more). A fetch that reached the end says nothing about it.
func nextFetchRatio(ratio float64, msgs []Message, size, maxBytes int, hwm int64) float64 {
	if len(msgs) == 0 || msgs[len(msgs)-1].Offset+1 >= hwm {
		return ratio
	}
	seen := float64(size) / float64(maxBytes)
	return min(maxFetchRatio, max(1, (ratio+seen)/2, seen))
}

// waitRoom waits until at least a quarter of the prefetch budget is free and
// returns the room there is.
func (c *Consumer) waitRoom(ctx context.Context) (int, error) {
	for {
		c.mu.Lock()
		room := c.cfg.PrefetchBytes - c.bytes
		c.mu.Unlock()
		if room >= c.cfg.PrefetchBytes/4 && room > 0 {
			return room, nil
		}
		select {
		case <-c.space:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// deliver hands fetched messages to Next and returns the offset to fetch
// from next.
func (c *Consumer) deliver(msgs []Message, size int, offset int64, latency time.Duration) int64 {
	if len(msgs) == 0 {
		return offset // the broker waited FetchMaxWait: nothing new
	}
	c.metrics.Fetched(len(msgs), size-len(msgs)*producerEntryOverhead, latency)
	next := msgs[len(msgs)-1].Offset + 1 // before Next may clear them
	c.delivered.Store(next)
	c.mu.Lock()
	c.chunks = append(c.chunks, msgs)
	c.bytes += size
	c.mu.Unlock()
	kafkaNotify(c.ready)
	return next
}

// outOfRange decides about a fetch the broker refused as out of range: an
// offset before the first retained one ends the stream; one beyond the end
// is retried for a while, since a new leader may briefly lag behind after a
// failover, but lasting, it means the topic was recreated.
func (c *Consumer) outOfRange(ctx context.Context, offset int64, beyondSince *time.Time) error {
	c.metrics.RequestError("fetch", ClassOffsetOutOfRange)
	first, err := listOffset(ctx, &c.cfg, c.conn, kafka.FirstOffset)
	switch {
	case err != nil:
		c.log.Warn().Err(err).Int64("offset", offset).Msg("kafka fetch offset out of range, and the first offset cannot be read; retrying")
		return nil
	case offset < first:
		return offsetOutOfRange(ctx, &c.cfg, c.conn, offset)
	case beyondSince.IsZero():
		*beyondSince = time.Now()
	case time.Since(*beyondSince) > c.cfg.RequestTimeout:
		return offsetOutOfRange(ctx, &c.cfg, c.conn, offset)
	}
	c.log.Warn().Int64("offset", offset).Msg("kafka fetch offset beyond the end of the topic, retrying")
	return nil
}

// retryable decides about any other failed fetch: it returns the error that
// ends the stream, or nil after logging the retry in d.
func (c *Consumer) retryable(ctx context.Context, r *requestRetry, err error, offset int64, attempt int, d time.Duration) error {
	cl, gone, err := r.failed(ctx, err)
	switch {
	case !cl.retry:
		return fmt.Errorf("kafka fetch from topic %s partition 0 at offset %d: %w: %s", c.cfg.Topic, offset, err, kafkaFix(err, &c.cfg))
	case gone:
		return fmt.Errorf("kafka fetch at offset %d: %w", offset, topicNotFound(&c.cfg))
	}
	c.log.Warn().Err(err).Str("kind", cl.kind).Int("attempt", attempt).Int64("offset", offset).
		Dur("backoff", d).Msg("kafka fetch failed, retrying")
	return nil
}
