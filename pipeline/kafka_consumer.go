package pipeline

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
	cfg     KafkaConfig
	log     zerolog.Logger
	metrics KafkaMetrics
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

	// Owned by Next's caller.
	cur      []Message
	curBytes int
	next     int64
}

// NewConsumer starts reading cfg.Topic at offset: the first message Next
// returns is the one at offset (or the first one after it, should offsets
// have gaps). Use FirstOffset to start at the beginning and EndOffset to
// follow only new messages. metrics may be nil.
func NewConsumer(cfg KafkaConfig, offset int64, log zerolog.Logger, metrics KafkaMetrics) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("kafka consumer for topic %s: offset %d is negative: pass a real offset (see FirstOffset, EndOffset)", cfg.Topic, offset)
	}
	if metrics == nil {
		metrics = NopKafkaMetrics{}
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
		next:    offset,
	}
	c.conn = newKafkaConn(&c.cfg)
	c.hwm.Store(-1)
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
		c.mu.Lock()
		if c.curBytes > 0 {
			c.bytes -= c.curBytes
			c.curBytes = 0
			kafkaNotify(c.space)
		}
		if len(c.chunks) > 0 {
			c.cur = c.chunks[0]
			c.chunks[0] = nil
			c.chunks = c.chunks[1:]
			for _, m := range c.cur {
				c.curBytes += len(m.Key) + len(m.Value) + producerEntryOverhead
			}
			c.mu.Unlock()
			continue
		}
		err := c.err
		c.mu.Unlock()
		if err != nil {
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
	bo := newKafkaBackoff(&c.cfg)
	var beyondSince, missingSince time.Time
	for attempt := 1; ; attempt++ {
		// Wait for room: fetch when at least a quarter of the budget is free.
		var room int
		for {
			c.mu.Lock()
			room = c.cfg.PrefetchBytes - c.bytes
			c.mu.Unlock()
			if room >= c.cfg.PrefetchBytes/4 && room > 0 {
				break
			}
			select {
			case <-c.space:
			case <-ctx.Done():
				return ctx.Err()
			}
		}

		start := time.Now()
		msgs, size, hwm, err := fetchOnce(ctx, &c.cfg, c.conn, offset, room, &arena)
		if err == nil {
			c.hwm.Store(hwm)
			bo.reset()
			beyondSince, missingSince = time.Time{}, time.Time{}
			if attempt > 1 {
				c.log.Info().Int("attempts", attempt).Int64("offset", offset).Msg("kafka fetch succeeded after retries")
			}
			attempt = 0
			if len(msgs) == 0 {
				continue // the broker waited FetchMaxWait: nothing new
			}
			c.metrics.Fetched(len(msgs), size-len(msgs)*producerEntryOverhead, time.Since(start))
			offset = msgs[len(msgs)-1].Offset + 1
			c.mu.Lock()
			c.chunks = append(c.chunks, msgs)
			c.bytes += size
			c.mu.Unlock()
			kafkaNotify(c.ready)
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}

		if errors.Is(err, kafka.OffsetOutOfRange) {
			c.metrics.RequestError("fetch", KafkaErrOffsetOutOfRange)
			first, ferr := listOffset(ctx, &c.cfg, c.conn, kafka.FirstOffset)
			switch {
			case ferr != nil:
				c.log.Warn().Err(ferr).Int64("offset", offset).Msg("kafka fetch offset out of range, and the first offset cannot be read; retrying")
			case offset < first:
				return offsetOutOfRange(ctx, &c.cfg, c.conn, offset)
			default:
				// Beyond the end: a new leader may briefly lag behind after
				// a failover; lasting, it means the topic was recreated.
				if beyondSince.IsZero() {
					beyondSince = time.Now()
				} else if time.Since(beyondSince) > c.cfg.RequestTimeout {
					return offsetOutOfRange(ctx, &c.cfg, c.conn, offset)
				}
				c.log.Warn().Int64("offset", offset).Msg("kafka fetch offset beyond the end of the topic, retrying")
			}
			if err := kafkaSleep(ctx, bo.delay()); err != nil {
				return err
			}
			continue
		}

		cl := classifyKafkaErr(err)
		if !cl.retry {
			c.metrics.RequestError("fetch", cl.kind)
			return fmt.Errorf("kafka fetch from topic %s partition 0 at offset %d: %w: %s", c.cfg.Topic, offset, err, kafkaFix(err, &c.cfg))
		}
		if cl.refresh {
			c.conn.refresh()
		}
		missing := false
		if cl.kind == KafkaErrUnknownTopic {
			var merr error
			if missing, merr = c.conn.topicMissing(ctx, c.cfg.Topic); merr != nil {
				err, cl = merr, classifyKafkaErr(merr) // why there is no metadata
			}
		}
		c.metrics.RequestError("fetch", cl.kind)
		switch {
		case !missing:
			missingSince = time.Time{}
		case missingSince.IsZero():
			missingSince = time.Now()
		case time.Since(missingSince) > c.cfg.RequestTimeout:
			return fmt.Errorf("kafka fetch at offset %d: %w", offset, topicNotFound(&c.cfg))
		}
		d := bo.delay()
		c.log.Warn().Err(err).Str("kind", cl.kind).Int("attempt", attempt).Int64("offset", offset).
			Dur("backoff", d).Msg("kafka fetch failed, retrying")
		if err := kafkaSleep(ctx, d); err != nil {
			return err
		}
	}
}
