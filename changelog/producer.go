package changelog

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
// acks=all. A transient error is retried forever with backoff until Run's
// context ends; a retry may write a batch twice, which sinks skip by
// Position. An error retrying cannot fix stops Run with an error naming the
// topic, the messages and the fix. Nothing is ever skipped. While a request
// is in flight, the encoder (producer_encode.go) prepares the next full batch.
// Why not kafka.Writer, and how batches are encoded ahead: docs/DESIGN.md,
// "The changelog producer".
type Producer struct {
	cfg         Config
	log         zerolog.Logger
	onAck       func(token any, offset int64)
	metrics     Metrics
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
	// recOverhead is kafkaRecordOverhead, plus the signature header when
	// the producer signs.
	recOverhead int
}

// ProducerMessage is one message for SendBatch.
type ProducerMessage struct {
	Key, Value []byte
	// Token is handed back to OnAck once the message is acknowledged.
	Token any
	// Owned says the caller gives Value to the producer and never touches
	// it again: a big value is then queued as it is, not copied.
	Owned bool
	// Reserved says the caller took Producer.ReserveBig for this message:
	// its acknowledgement lets go of the reservation.
	Reserved bool
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
	Metrics Metrics
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
	dropped    int    // the length of value, once dropped (dropSent)
	sig        []byte // the signature header's value, set by the encoder
	reserved   bool   // ProducerMessage.Reserved
}

func (e *producerEntry) size() int {
	return len(e.key) + len(e.value) + e.dropped + producerEntryOverhead
}

// NewProducer checks cfg and returns a producer whose queue accepts Send at
// once; nothing is sent before Run. It does not create the topic (see
// EnsureTopic).
func NewProducer(cfg Config, log zerolog.Logger, opts ProducerOptions) (*Producer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	comp, _ := parseKafkaCompression(cfg.Compression)
	if opts.Metrics == nil {
		opts.Metrics = NopMetrics{}
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
		recOverhead: recordOverhead(&cfg),
	}, nil
}

// recordOverhead is the encoded size of a record beyond its key and value,
// at most: kafkaRecordOverhead, and the signature header when cfg signs.
func recordOverhead(cfg *Config) int {
	if cfg.Signing != nil {
		return kafkaRecordOverhead + sigHeaderLen
	}
	return kafkaRecordOverhead
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
	n, err := p.enqueue(ctx, msgs)
	if err == nil {
		p.nudge()
	}
	return n, err
}

// enqueue queues msgs, waiting for room in the queue as needed.
func (p *Producer) enqueue(ctx context.Context, msgs []ProducerMessage) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for n := 0; n < len(msgs); {
		if p.stopped != nil {
			return n, p.stopped
		}
		m := &msgs[n]
		size := len(m.Key) + len(m.Value) + producerEntryOverhead
		if p.bytes > 0 && p.bytes+size > p.cfg.MaxBufferedBytes {
			if err := p.waitLocked(ctx, &p.spaceCh); err != nil {
				return n, err
			}
			continue
		}
		p.q = append(p.q, producerEntry{key: p.arena.copy(m.Key), value: p.arena.keep(m.Value, m.Owned), token: m.Token, reserved: m.Reserved})
		p.bytes += size
		p.unclaimed += len(m.Key) + len(m.Value) + p.recOverhead
		p.enqueued++
		n++
	}
	return len(msgs), nil
}

// waitLocked waits, p.mu held on entry and on return but not meanwhile,
// until *ch (made here when nil) is closed or ctx ends. It nudges the
// encoder first: what is queued so far can go.
func (p *Producer) waitLocked(ctx context.Context, ch *chan struct{}) error {
	if *ch == nil {
		*ch = make(chan struct{})
	}
	c := *ch
	p.mu.Unlock()
	defer p.mu.Lock()
	p.nudge()
	select {
	case <-c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wakeWaiters wakes the Send and Flush calls waiting for room or for an
// acknowledgement. p.mu is held.
func (p *Producer) wakeWaiters() {
	if p.spaceCh != nil {
		close(p.spaceCh)
		p.spaceCh = nil
	}
	if p.ackCh != nil {
		close(p.ackCh)
		p.ackCh = nil
	}
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
	defer p.mu.Unlock()
	target := p.enqueued
	p.flushing++
	defer func() { p.flushing-- }()
	for p.acked < target {
		if p.stopped != nil {
			return p.stopped
		}
		if err := p.waitLocked(ctx, &p.ackCh); err != nil {
			return err
		}
	}
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
	if err := p.start(); err != nil {
		return err
	}
	encCtx, stopEncoder := context.WithCancel(ctx)
	var encoder sync.WaitGroup
	encoder.Go(func() { p.encodeBatches(encCtx) })
	defer func() {
		stopEncoder()
		encoder.Wait()
		bigMessages.published(p, -1)
		p.stop(err)
	}()
	for {
		b, err := p.nextBatch(ctx)
		if err != nil {
			return err
		}
		offset, err := p.produce(ctx, b)
		reserved := 0
		switch {
		case errors.Is(err, errBatchSplit):
			// b's messages are being batched again, smaller.
		case err != nil:
			return err
		default:
			reserved = p.ack(b, offset)
		}
		p.release(b)
		if reserved > 0 {
			// After release, which collected the batch's garbage: the
			// reader waiting for this (AwaitBig) reads the next big row on.
			bigMessages.published(p, reserved)
		}
	}
}

// start marks the producer running, once, and gives the encoder its two
// buffers.
func (p *Producer) start() error {
	p.mu.Lock()
	if p.running || p.stopped != nil {
		p.mu.Unlock()
		return errors.New("kafka producer: Run called twice")
	}
	if p.conn == nil { // tests may set their own, with a faulty dialer
		conn, err := newKafkaConn(&p.cfg)
		if err != nil { // the TLS files changed since NewProducer read them
			p.stopped = fmt.Errorf("%w: %w", ErrProducerClosed, err)
			p.wakeWaiters()
			p.mu.Unlock()
			return err
		}
		p.conn = conn
	}
	p.running = true
	p.mu.Unlock()
	p.free <- new(producerBatch)
	p.free <- new(producerBatch)
	return nil
}

// stop releases the connections and ends Send and Flush with Run's error.
func (p *Producer) stop(err error) {
	p.conn.close()
	p.mu.Lock()
	p.stopped = fmt.Errorf("%w: %w", ErrProducerClosed, err)
	p.wakeWaiters()
	p.mu.Unlock()
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
	if p.outsized(b) {
		// Grown for one outsized message: do not keep them (nor the lz4
		// writer, which holds on to what it wrote into).
		b.out, b.more, b.recs, b.lz4 = nil, nil, nil, nil
		// Its copies are garbage now: collect them before the next big row
		// piles onto them (the heap goal would be twice what this one held).
		FreeGarbage()
	}
	p.free <- b // never blocks: free has room for both buffers
}

// outsized reports whether b holds a batch of one outsized message, encoded
// in chunks (compressed) or in a buffer grown for it (uncompressed).
func (p *Producer) outsized(b *producerBatch) bool {
	return cap(b.out) > outsizedBatch(p.cfg.MaxBatchBytes) || b.more != nil
}

// produce sends b until Kafka acknowledges it and returns the offset of its
// first message, or errBatchSplit once it has split the batching (see
// Producer).
func (p *Producer) produce(ctx context.Context, b *producerBatch) (int64, error) {
	if b.err != nil {
		return 0, p.fatal(b, fmt.Errorf("encode record batch: %w", b.err), "")
	}
	r := newRequestRetry("produce", &p.cfg, p.conn, p.metrics)
	dataBytes := batchSize(b.entries)
	if p.dropSent(b) && p.outsized(b) {
		// The message's buffer is garbage now: collect it before kafka-go
		// copies the batch into the request, beside the batch.
		FreeGarbage()
	}
	for attempt := 1; ; attempt++ {
		start := time.Now()
		offset, err := p.send(ctx, b)
		if err != nil {
			if err := p.failedProduce(ctx, &r, b, err, attempt); err != nil {
				return 0, err
			}
			continue
		}
		p.metrics.Produced(len(b.entries), dataBytes, time.Since(start))
		if attempt > 1 {
			p.log.Info().Int("attempts", attempt).Int64("offset", offset).Msg("kafka produce succeeded after retries")
		}
		return offset, nil
	}
}

// dropSent lets go of the value of a batch of one outsized message, which
// b.out holds encoded: such a batch is sent again as it is until it is
// acknowledged, never batched again (failedProduce splits batches of
// several), so the queue need not keep the value, nor the big row with it.
// It reports whether it let go of the value.
func (p *Producer) dropSent(b *producerBatch) bool {
	if len(b.entries) != 1 || len(b.entries[0].value) < dropValueBytes {
		return false
	}
	p.mu.Lock()
	if e := &p.q[p.head]; len(e.value) > 0 && &e.value[0] == &b.entries[0].value[0] {
		e.dropped, e.value = len(e.value), nil
	}
	p.mu.Unlock()
	b.entries[0].value = nil
	return true
}

// dropValueBytes is the value size from which dropSent lets go of it.
const dropValueBytes = 1 << 20

// send makes one produce request of b and returns the offset of its first
// message.
func (p *Producer) send(ctx context.Context, b *producerBatch) (int64, error) {
	res, err := p.conn.client.RawProduce(ctx, &kafka.RawProduceRequest{
		Topic:        p.cfg.Topic,
		Partition:    0,
		RequiredAcks: kafka.RequireAll,
		RawRecords:   protocol.RawRecordSet{Reader: b.reader()},
	})
	if err != nil {
		return 0, err
	}
	if res.Error != nil {
		return 0, res.Error
	}
	for i, rerr := range res.RecordErrors {
		err = fmt.Errorf("%w: record %d of the batch: %v", kafka.InvalidRecord, i, rerr)
		break // one is enough
	}
	return res.BaseOffset, err
}

// failedProduce decides about a failed produce request: it returns the
// error that stops Run, errBatchSplit once the queue is batched again, or
// nil after waiting out the backoff.
func (p *Producer) failedProduce(ctx context.Context, r *requestRetry, b *producerBatch, err error, attempt int) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if (errors.Is(err, kafka.MessageSizeTooLarge) || errors.Is(err, kafka.RecordListTooLarge)) && len(b.entries) > 1 {
		p.metrics.RequestError("produce", classifyKafkaErr(err).kind)
		p.split(b, err)
		return errBatchSplit
	}
	cl, gone, err := r.failed(ctx, err)
	switch {
	case !cl.retry:
		return p.fatal(b, err, kafkaFix(err, &p.cfg))
	case gone:
		return p.fatal(b, topicNotFound(&p.cfg), "")
	}
	d := r.backoff.delay()
	p.log.Warn().Err(err).Str("kind", cl.kind).Int("attempt", attempt).Int("messages", len(b.entries)).
		Dur("backoff", d).Msg("kafka produce failed, retrying the same batch")
	return kafkaSleep(ctx, d)
}

// split answers a batch the topic refused as too large (its
// max.message.bytes is below MaxBatchBytes): the queue is batched again from
// b's first message, with a limit that makes b's first half the next batch,
// kept from now on. The batch encoded ahead is stale: its messages come
// after the ones batched again.
func (p *Producer) split(b *producerBatch, err error) {
	p.mu.Lock()
	p.batchBytes = min(p.batchBytes, encodedSize(b.entries[:len(b.entries)/2], p.recOverhead))
	p.claimed, p.gen = 0, p.gen+1
	p.unclaimed = encodedSize(p.q[p.head:], p.recOverhead) - kafkaBatchOverhead
	batchBytes := p.batchBytes
	p.mu.Unlock()
	p.nudge()
	p.log.Warn().Err(err).Int("max_batch_bytes", batchBytes).
		Msg("kafka produce request too large for the topic's max.message.bytes; splitting batches")
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
func encodedSize(entries []producerEntry, recOverhead int) int {
	return kafkaBatchOverhead + batchSize(entries) + len(entries)*recOverhead
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
// Send, Flush and the encoder. It returns how many of them were reserved
// (ReserveBig), for Run to report published once the batch is released.
func (p *Producer) ack(b *producerBatch, offset int64) (reserved int) {
	for i := range b.entries {
		p.onAck(b.entries[i].token, offset+int64(i))
		if b.entries[i].reserved {
			bigMessages.note(p.cfg.Topic, offset+int64(i))
			reserved++
		}
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
	p.compactQueue()
	p.wakeWaiters()
	p.mu.Unlock()
	p.nudge() // with nothing claimed any more, a partial batch may go
	return reserved
}

// compactQueue moves the unacknowledged messages to the start of the queue
// once they fill less than half of it. p.mu is held.
func (p *Producer) compactQueue() {
	switch {
	case p.head == len(p.q):
		p.q, p.head = p.q[:0], 0
	case p.head > cap(p.q)/2:
		m := copy(p.q, p.q[p.head:])
		clear(p.q[m:])
		p.q, p.head = p.q[:m], 0
	}
}

// Metrics receives what the Kafka layer measures. Implementations must
// be safe for concurrent use and fast: they are called on the hot path.
type Metrics interface {
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

// NopMetrics discards everything.
type NopMetrics struct{}

var _ Metrics = NopMetrics{}

func (NopMetrics) Produced(int, int, time.Duration) {}
func (NopMetrics) Fetched(int, int, time.Duration)  {}
func (NopMetrics) RequestError(string, string)      {}
