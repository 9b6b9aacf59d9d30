package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

// Producer publishes messages to partition 0 of the changelog topic, in the
// order they were queued, with exactly one produce request in flight and
// acks=all.
//
// kafka-go has no idempotent producer, so ordering comes from sending one
// request at a time and retrying the same batch until it succeeds: a failed
// request never lets a later one overtake it. A transient error (network,
// broker down, leader change, timeout, not enough replicas) is retried
// forever with exponential backoff until Run's context ends. A retry may write
// a batch twice (the first attempt may have been appended before the error),
// which is accepted: every message carries its Position and sinks skip what
// they already applied. An error retrying cannot fix (message too large,
// authorization, the topic deleted) stops Run with an error naming the topic,
// the messages and the fix. Nothing is ever skipped.
//
// Why not kafka.Writer: its partition writer does send one batch at a time,
// but it gives up on a batch after MaxAttempts (default 10), treats errors
// outside kafka-go's Temporary list (BROKER_NOT_AVAILABLE, dial timeouts) as
// final after one attempt, sleeps between attempts without watching any
// context, and then goes on with the next queued batch, so a failure leaves
// a gap that later messages step over (writer.go, partitionWriter.writeBatch;
// maintainers in segmentio/kafka-go#625: "the kafka.Writer does not provide
// ordering guarantees"; #686). Driving produce requests from one goroutine
// gives the guarantee directly.
//
// Encoding and compressing a 1 MiB batch costs a few milliseconds of CPU, as
// much as a local broker takes to acknowledge it, so it is kept off the
// serial path: while a request is in flight, a second goroutine (the encoder,
// kafka_producer_encode.go) takes the next batch from the queue and encodes
// it as a v2 record batch, and Run sends those bytes as they are with
// (*kafka.Client).RawProduce. The encoder works at most one batch ahead, and
// only on a full one: a partial batch waits, as before, until no request is
// in flight and then Linger or a Flush, so batches stay as large as they
// were. A retry sends the same bytes. When the topic refuses a batch as too
// large, the batch and the one encoded ahead are dropped and the queue is
// batched again from its first unacknowledged message with a smaller limit.
type Producer struct {
	cfg         KafkaConfig
	log         zerolog.Logger
	onAck       func(token any, offset int64)
	metrics     KafkaMetrics
	compression kafka.Compression
	conn        *kafkaConn
	wake        chan struct{} // Send, Flush and acknowledgements nudge the encoder; capacity 1

	// Run and the encoder pass the two producerBatch buffers around: the
	// encoder takes a free one, fills it and hands it over on ready; Run
	// sends it and gives it back on free. Two buffers bound the encoded
	// batches in memory to the one in flight and the one encoded ahead.
	free, ready chan *producerBatch

	mu       sync.Mutex
	q        []producerEntry // q[head:] waits for acknowledgement, in order
	head     int
	bytes    int    // accounted size of q[head:], bounded by MaxBufferedBytes
	enqueued uint64 // messages ever queued
	acked    uint64 // messages ever acknowledged
	arena    kafkaArena
	running  bool
	stopped  error // set when Run returns; Send and Flush return it
	flushing int   // Flush calls waiting: the encoder skips Linger
	spaceCh  chan struct{}
	ackCh    chan struct{}

	// What the encoder has taken from the queue. q[head:head+claimed] are
	// in the batch Run is sending and the one encoded ahead, in order;
	// unclaimed is the size of q[head+claimed:] as fitBatch counts it (keys,
	// values and kafkaRecordOverhead each), so that the encoder can tell a
	// full batch without walking the queue on every Send.
	claimed   int
	unclaimed int
	// gen counts splits: a split drops every claim, and a batch claimed
	// before it is given back unsent (its messages are batched again).
	gen uint64
	// batchBytes is MaxBatchBytes, or less once the topic refused a batch as
	// too large.
	batchBytes int
}

// ProducerMessage is one message for SendBatch.
type ProducerMessage struct {
	Key, Value []byte
	// Token is handed back to OnAck once the message is acknowledged.
	Token any
}

// ProducerOptions are the optional parts of a Producer.
type ProducerOptions struct {
	// OnAck is called for every message Kafka acknowledged, in the order the
	// messages were queued, from Run's goroutine, with the token given to
	// Send and the message's offset. It must not block for long (it delays
	// the next produce request) and must not call Flush. A reader records
	// here which transaction is durable.
	OnAck func(token any, offset int64)
	// Metrics receives counts and latencies. Default: none.
	Metrics KafkaMetrics
}

// producerEntryOverhead is what one queued message costs beyond its key and
// value (the entry, its share of the queue's slice), in the byte accounting
// of MaxBufferedBytes and PrefetchBytes. Tiny messages are thus bounded too.
const producerEntryOverhead = 96

// Encoded size of a v2 record beyond key and value (length, attributes,
// timestamp and offset deltas, key and value lengths, header count), at most,
// and of a record batch's header: used to keep a produce request within
// MaxBatchBytes.
const (
	kafkaRecordOverhead = 21
	kafkaBatchOverhead  = 61
)

type producerEntry struct {
	key, value []byte
	token      any
}

func (e *producerEntry) size() int { return len(e.key) + len(e.value) + producerEntryOverhead }

// NewProducer checks cfg and returns a producer whose queue accepts Send at
// once; nothing is sent before Run. It does not create the topic (see
// EnsureTopic).
func NewProducer(cfg KafkaConfig, log zerolog.Logger, opts ProducerOptions) (*Producer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	comp, _ := parseKafkaCompression(cfg.Compression)
	if opts.Metrics == nil {
		opts.Metrics = NopKafkaMetrics{}
	}
	if opts.OnAck == nil {
		opts.OnAck = func(any, int64) {}
	}
	return &Producer{
		cfg:         cfg,
		log:         log.With().Str("topic", cfg.Topic).Logger(),
		onAck:       opts.OnAck,
		metrics:     opts.Metrics,
		compression: comp,
		wake:        make(chan struct{}, 1),
		free:        make(chan *producerBatch, 2),
		ready:       make(chan *producerBatch),
		batchBytes:  cfg.MaxBatchBytes,
	}, nil
}

// Send queues one message. It copies key and value, so the caller may reuse
// its buffers as soon as Send returns. token is opaque to the producer; it is
// handed back to OnAck and printed with %v in errors, so make it a position,
// never row data. Send blocks while the queue holds MaxBufferedBytes (one
// message larger than that is accepted into an empty queue), and returns
// ctx's error if ctx ends first, or the producer's error once Run has
// returned. Safe for concurrent use, but messages from concurrent calls are
// ordered as the calls happen to complete.
func (p *Producer) Send(ctx context.Context, key, value []byte, token any) error {
	m := [1]ProducerMessage{{Key: key, Value: value, Token: token}}
	_, err := p.SendBatch(ctx, m[:])
	return err
}

// SendBatch queues msgs in order, as Send would one by one but taking the
// queue's lock once per run of messages that fit. It returns how many it
// queued: all of them, or fewer with the error that stopped it.
func (p *Producer) SendBatch(ctx context.Context, msgs []ProducerMessage) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	p.mu.Lock()
	for n < len(msgs) {
		if p.stopped != nil {
			p.mu.Unlock()
			return n, p.stopped
		}
		m := &msgs[n]
		size := len(m.Key) + len(m.Value) + producerEntryOverhead
		if p.bytes > 0 && p.bytes+size > p.cfg.MaxBufferedBytes {
			if p.spaceCh == nil {
				p.spaceCh = make(chan struct{})
			}
			ch := p.spaceCh
			p.mu.Unlock()
			p.nudge() // what is queued so far can go
			select {
			case <-ch:
			case <-ctx.Done():
				return n, ctx.Err()
			}
			p.mu.Lock()
			continue
		}
		p.q = append(p.q, producerEntry{key: p.arena.copy(m.Key), value: p.arena.copy(m.Value), token: m.Token})
		p.bytes += size
		p.unclaimed += len(m.Key) + len(m.Value) + kafkaRecordOverhead
		p.enqueued++
		n++
	}
	p.mu.Unlock()
	p.nudge()
	return n, nil
}

func (p *Producer) nudge() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Flush waits until every message queued before the call is acknowledged.
// It returns ctx's error if ctx ends first, or the producer's error if Run
// returns first.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	target := p.enqueued
	p.flushing++
	defer func() {
		p.mu.Lock()
		p.flushing--
		p.mu.Unlock()
	}()
	for p.acked < target {
		if p.stopped != nil {
			p.mu.Unlock()
			return p.stopped
		}
		if p.ackCh == nil {
			p.ackCh = make(chan struct{})
		}
		ch := p.ackCh
		p.mu.Unlock()
		p.nudge()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		p.mu.Lock()
	}
	p.mu.Unlock()
	return nil
}

// Buffered returns the number of messages queued and not yet acknowledged,
// and their accounted size.
func (p *Producer) Buffered() (messages int, bytes int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.q) - p.head, p.bytes
}

// Run sends the queued messages until ctx ends or an error that retrying
// cannot fix, and returns that error (ctx's error on cancellation). Messages
// not yet acknowledged stay unacknowledged: OnAck was not called for them,
// and the reader resumes from what OnAck reported. Run may be called once.
func (p *Producer) Run(ctx context.Context) (err error) {
	p.mu.Lock()
	if p.running || p.stopped != nil {
		p.mu.Unlock()
		return errors.New("kafka producer: Run called twice")
	}
	p.running = true
	p.mu.Unlock()
	if p.conn == nil { // tests may set their own, with a faulty dialer
		p.conn = newKafkaConn(&p.cfg)
	}
	p.free <- new(producerBatch)
	p.free <- new(producerBatch)
	encCtx, stopEncoder := context.WithCancel(ctx)
	var encoder sync.WaitGroup
	encoder.Go(func() { p.encodeBatches(encCtx) })
	defer func() {
		stopEncoder()
		encoder.Wait()
		p.conn.close()
		p.mu.Lock()
		p.stopped = fmt.Errorf("%w: %w", ErrProducerClosed, err)
		if p.spaceCh != nil {
			close(p.spaceCh)
			p.spaceCh = nil
		}
		if p.ackCh != nil {
			close(p.ackCh)
			p.ackCh = nil
		}
		p.mu.Unlock()
	}()
	for {
		b, err := p.nextBatch(ctx)
		if err != nil {
			return err
		}
		offset, err := p.produce(ctx, b)
		switch {
		case errors.Is(err, errBatchSplit):
			// b's messages are being batched again, smaller.
		case err != nil:
			return err
		default:
			p.ack(b, offset)
		}
		p.release(b)
	}
}

// errBatchSplit is produce's answer when the topic refused the batch as too
// large and the queue is being batched again in smaller batches.
var errBatchSplit = errors.New("batch split")

// nextBatch waits for the encoder's next batch. A batch claimed before a
// split is given back unsent: its messages are in the batches claimed since.
func (p *Producer) nextBatch(ctx context.Context) (*producerBatch, error) {
	for {
		select {
		case b := <-p.ready:
			p.mu.Lock()
			stale := b.gen != p.gen
			p.mu.Unlock()
			if !stale {
				return b, nil
			}
			p.release(b)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// release empties b and gives it back to the encoder.
func (p *Producer) release(b *producerBatch) {
	clear(b.entries)
	b.entries = b.entries[:0]
	b.err = nil
	b.rd.Reset(nil)
	if cap(b.out) > 4*p.cfg.MaxBatchBytes {
		b.out, b.recs = nil, nil // grown for one outsized message: do not keep them
	}
	p.free <- b // never blocks: free has room for both buffers
}

// produce sends b until Kafka acknowledges it and returns the offset of its
// first message, or errBatchSplit once it has split the batching (see
// Producer).
func (p *Producer) produce(ctx context.Context, b *producerBatch) (int64, error) {
	if b.err != nil {
		return 0, p.fatal(b, fmt.Errorf("encode record batch: %w", b.err), "")
	}
	bo := newKafkaBackoff(&p.cfg)
	var missingSince time.Time
	dataBytes := batchSize(b.entries)
	for attempt := 1; ; attempt++ {
		b.rd.Reset(b.out)
		start := time.Now()
		res, err := p.conn.client.RawProduce(ctx, &kafka.RawProduceRequest{
			Topic:        p.cfg.Topic,
			Partition:    0,
			RequiredAcks: kafka.RequireAll,
			RawRecords:   protocol.RawRecordSet{Reader: &b.rd},
		})
		if err == nil {
			err = res.Error
		}
		if err == nil && len(res.RecordErrors) > 0 {
			for i, rerr := range res.RecordErrors {
				err = fmt.Errorf("%w: record %d of the batch: %v", kafka.InvalidRecord, i, rerr)
				break
			}
		}
		if err == nil {
			p.metrics.Produced(len(b.entries), dataBytes, time.Since(start))
			if attempt > 1 {
				p.log.Info().Int("attempts", attempt).Int64("offset", res.BaseOffset).Msg("kafka produce succeeded after retries")
			}
			return res.BaseOffset, nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		c := classifyKafkaErr(err)
		if (errors.Is(err, kafka.MessageSizeTooLarge) || errors.Is(err, kafka.RecordListTooLarge)) && len(b.entries) > 1 {
			// The topic's max.message.bytes is below MaxBatchBytes: batch
			// the queue again from this batch's first message, with a limit
			// that makes its first half the next batch, and keep the smaller
			// limit from now on. The batch encoded ahead is stale: its
			// messages come after the ones re-batched.
			p.metrics.RequestError("produce", c.kind)
			p.mu.Lock()
			p.batchBytes = min(p.batchBytes, encodedSize(b.entries[:len(b.entries)/2]))
			p.claimed, p.gen = 0, p.gen+1
			p.unclaimed = 0
			for i := range p.q[p.head:] {
				e := &p.q[p.head+i]
				p.unclaimed += len(e.key) + len(e.value) + kafkaRecordOverhead
			}
			batchBytes := p.batchBytes
			p.mu.Unlock()
			p.nudge()
			p.log.Warn().Err(err).Int("max_batch_bytes", batchBytes).
				Msg("kafka produce request too large for the topic's max.message.bytes; splitting batches")
			return 0, errBatchSplit
		}
		if !c.retry {
			p.metrics.RequestError("produce", c.kind)
			return 0, p.fatal(b, err, kafkaFix(err, &p.cfg))
		}
		if c.refresh {
			p.conn.refresh()
		}
		missing := false
		if c.kind == KafkaErrUnknownTopic {
			var merr error
			if missing, merr = p.conn.topicMissing(ctx, p.cfg.Topic); merr != nil {
				err, c = merr, classifyKafkaErr(merr) // why there is no metadata
			}
		}
		p.metrics.RequestError("produce", c.kind)
		switch {
		case !missing:
			missingSince = time.Time{}
		case missingSince.IsZero():
			missingSince = time.Now()
		case time.Since(missingSince) > p.cfg.RequestTimeout:
			return 0, p.fatal(b, topicNotFound(&p.cfg), "")
		}
		d := bo.delay()
		p.log.Warn().Err(err).Str("kind", c.kind).Int("attempt", attempt).Int("messages", len(b.entries)).
			Dur("backoff", d).Msg("kafka produce failed, retrying the same batch")
		if err := kafkaSleep(ctx, d); err != nil {
			return 0, err
		}
	}
}

// batchSize is the key and value bytes of entries.
func batchSize(entries []producerEntry) int {
	size := 0
	for i := range entries {
		size += len(entries[i].key) + len(entries[i].value)
	}
	return size
}

// encodedSize bounds the encoded size of entries as one record batch, as
// fitBatch counts it.
func encodedSize(entries []producerEntry) int {
	return kafkaBatchOverhead + batchSize(entries) + len(entries)*kafkaRecordOverhead
}

func (p *Producer) fatal(b *producerBatch, err error, fix string) error {
	p.mu.Lock()
	first := p.acked
	p.mu.Unlock()
	msg := fmt.Sprintf("kafka produce to topic %s partition 0 failed for messages %d to %d since start (first token %v)",
		p.cfg.Topic, first, first+uint64(len(b.entries))-1, b.entries[0].token)
	if fix != "" {
		return fmt.Errorf("%s: %w: %s", msg, err, fix)
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// ack reports b to OnAck, then drops its messages from the queue and wakes
// Send, Flush and the encoder.
func (p *Producer) ack(b *producerBatch, offset int64) {
	for i := range b.entries {
		p.onAck(b.entries[i].token, offset+int64(i))
	}
	n := len(b.entries)
	p.mu.Lock()
	for i := p.head; i < p.head+n; i++ {
		p.bytes -= p.q[i].size()
		p.q[i] = producerEntry{}
	}
	p.head += n
	p.claimed -= n
	p.acked += uint64(n)
	switch {
	case p.head == len(p.q):
		p.q, p.head = p.q[:0], 0
	case p.head > cap(p.q)/2:
		m := copy(p.q, p.q[p.head:])
		clear(p.q[m:])
		p.q, p.head = p.q[:m], 0
	}
	if p.spaceCh != nil {
		close(p.spaceCh)
		p.spaceCh = nil
	}
	if p.ackCh != nil {
		close(p.ackCh)
		p.ackCh = nil
	}
	p.mu.Unlock()
	p.nudge() // with nothing claimed any more, a partial batch may go
}

// KafkaMetrics receives what the Kafka layer measures. Implementations must
// be safe for concurrent use and fast: they are called on the hot path.
type KafkaMetrics interface {
	// Produced is called once per acknowledged produce request with its
	// message count, key and value bytes, and the successful request's
	// latency.
	Produced(messages, bytes int, latency time.Duration)
	// Fetched is called once per fetch response that carried records.
	Fetched(messages, bytes int, latency time.Duration)
	// RequestError is called for every failed request, retried or not: op is
	// "produce" or "fetch", kind one of the KafkaErr* constants.
	RequestError(op, kind string)
}

// NopKafkaMetrics discards everything.
type NopKafkaMetrics struct{}

var _ KafkaMetrics = NopKafkaMetrics{}

func (NopKafkaMetrics) Produced(int, int, time.Duration) {}
func (NopKafkaMetrics) Fetched(int, int, time.Duration)  {}
func (NopKafkaMetrics) RequestError(string, string)      {}
