package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
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
// ordering guarantees"; #686). Driving (*kafka.Client).Produce from one
// goroutine gives the guarantee directly.
type Producer struct {
	cfg         KafkaConfig
	log         zerolog.Logger
	onAck       func(token any, offset int64)
	metrics     KafkaMetrics
	compression kafka.Compression
	conn        *kafkaConn
	wake        chan struct{} // Send and Flush nudge Run; capacity 1

	mu       sync.Mutex
	q        []producerEntry // q[head:] waits for acknowledgement, in order
	head     int
	bytes    int    // accounted size of q[head:], bounded by MaxBufferedBytes
	enqueued uint64 // messages ever queued
	acked    uint64 // messages ever acknowledged
	arena    kafkaArena
	running  bool
	stopped  error // set when Run returns; Send and Flush return it
	flushing int   // Flush calls waiting: Run skips Linger
	spaceCh  chan struct{}
	ackCh    chan struct{}

	// Owned by Run.
	batchBytes int // MaxBatchBytes, or less once the topic refused a batch as too large
	batch      []producerEntry
	recs       producerRecords
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
	p.conn = newKafkaConn(&p.cfg)
	defer func() {
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
		if err := p.nextBatch(ctx); err != nil {
			return err
		}
		offset, err := p.produce(ctx)
		if err != nil {
			return err
		}
		p.ack(offset)
	}
}

// nextBatch waits for messages and copies the next batch into p.batch: as
// many queued messages as fit in MaxBatchMessages and MaxBatchBytes. It
// waits up to Linger for a batch to fill, unless a Flush is waiting.
func (p *Producer) nextBatch(ctx context.Context) error {
	var lingerUntil time.Time
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		p.mu.Lock()
		n, size := p.fitBatch()
		queued := len(p.q) - p.head
		full := n < queued || n == p.cfg.MaxBatchMessages || size >= p.batchBytes
		now := time.Now()
		if n > 0 && lingerUntil.IsZero() {
			lingerUntil = now.Add(p.cfg.Linger)
		}
		if n > 0 && (full || p.flushing > 0 || p.cfg.Linger < 0 || !now.Before(lingerUntil)) {
			p.batch = append(p.batch[:0], p.q[p.head:p.head+n]...)
			p.mu.Unlock()
			return nil
		}
		p.mu.Unlock()

		var tc <-chan time.Time
		if n > 0 {
			if timer == nil {
				timer = time.NewTimer(time.Until(lingerUntil))
			} else {
				timer.Reset(time.Until(lingerUntil))
			}
			tc = timer.C
		}
		select {
		case <-p.wake:
		case <-tc:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// fitBatch counts the queued messages that fit in one request, at least one.
func (p *Producer) fitBatch() (n, size int) {
	size = kafkaBatchOverhead
	for _, e := range p.q[p.head:] {
		s := len(e.key) + len(e.value) + kafkaRecordOverhead
		if n == p.cfg.MaxBatchMessages || (n > 0 && size+s > p.batchBytes) {
			break
		}
		n++
		size += s
	}
	return n, size
}

// produce sends p.batch until Kafka acknowledges it and returns the offset
// of its first message.
func (p *Producer) produce(ctx context.Context) (int64, error) {
	bo := newKafkaBackoff(&p.cfg)
	var missingSince time.Time
	dataBytes := p.batchSize(len(p.batch))
	for attempt := 1; ; attempt++ {
		p.recs.reset(p.batch)
		start := time.Now()
		res, err := p.conn.client.Produce(ctx, &kafka.ProduceRequest{
			Topic:        p.cfg.Topic,
			Partition:    0,
			RequiredAcks: kafka.RequireAll,
			Records:      &p.recs,
			Compression:  p.compression,
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
			p.metrics.Produced(len(p.batch), dataBytes, time.Since(start))
			if attempt > 1 {
				p.log.Info().Int("attempts", attempt).Int64("offset", res.BaseOffset).Msg("kafka produce succeeded after retries")
			}
			return res.BaseOffset, nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		c := classifyKafkaErr(err)
		if (errors.Is(err, kafka.MessageSizeTooLarge) || errors.Is(err, kafka.RecordListTooLarge)) && len(p.batch) > 1 {
			// The topic's max.message.bytes is below MaxBatchBytes: send
			// the first half alone, and smaller batches from now on. The
			// rest stays queued, in order.
			p.metrics.RequestError("produce", c.kind)
			p.batchBytes = min(p.batchBytes, p.encodedSize(len(p.batch)/2))
			p.batch = p.batch[:len(p.batch)/2]
			dataBytes = p.batchSize(len(p.batch))
			p.log.Warn().Err(err).Int("max_batch_bytes", p.batchBytes).
				Msg("kafka produce request too large for the topic's max.message.bytes; splitting batches")
			continue
		}
		if !c.retry {
			p.metrics.RequestError("produce", c.kind)
			return 0, p.fatal(err, kafkaFix(err, &p.cfg))
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
			return 0, p.fatal(topicNotFound(&p.cfg), "")
		}
		d := bo.delay()
		p.log.Warn().Err(err).Str("kind", c.kind).Int("attempt", attempt).Int("messages", len(p.batch)).
			Dur("backoff", d).Msg("kafka produce failed, retrying the same batch")
		if err := kafkaSleep(ctx, d); err != nil {
			return 0, err
		}
	}
}

// batchSize is the key and value bytes of the first n messages of p.batch.
func (p *Producer) batchSize(n int) int {
	size := 0
	for _, e := range p.batch[:n] {
		size += len(e.key) + len(e.value)
	}
	return size
}

// encodedSize bounds the encoded size of the first n messages of p.batch as
// one record batch, as fitBatch counts it.
func (p *Producer) encodedSize(n int) int {
	return kafkaBatchOverhead + p.batchSize(n) + n*kafkaRecordOverhead
}

func (p *Producer) fatal(err error, fix string) error {
	p.mu.Lock()
	first := p.acked
	p.mu.Unlock()
	msg := fmt.Sprintf("kafka produce to topic %s partition 0 failed for messages %d to %d since start (first token %v)",
		p.cfg.Topic, first, first+uint64(len(p.batch))-1, p.batch[0].token)
	if fix != "" {
		return fmt.Errorf("%s: %w: %s", msg, err, fix)
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// ack reports p.batch to OnAck, then drops it from the queue and wakes
// Send and Flush.
func (p *Producer) ack(offset int64) {
	for i := range p.batch {
		p.onAck(p.batch[i].token, offset+int64(i))
	}
	n := len(p.batch)
	clear(p.batch)
	p.mu.Lock()
	for i := p.head; i < p.head+n; i++ {
		p.bytes -= p.q[i].size()
		p.q[i] = producerEntry{}
	}
	p.head += n
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
}

// producerRecords exposes a batch to kafka-go's encoder without copying or
// allocating: kafka-go reads one record at a time and each key and value
// once (protocol.forEachRecord), so two readers are reused for every record.
// reset rewinds it for a retry.
type producerRecords struct {
	batch  []producerEntry
	i      int
	rec    kafka.Record
	kr, vr kafkaBytes
}

func (r *producerRecords) reset(batch []producerEntry) { r.batch, r.i = batch, 0 }

func (r *producerRecords) ReadRecord() (*kafka.Record, error) {
	if r.i >= len(r.batch) {
		return nil, io.EOF
	}
	e := &r.batch[r.i]
	r.i++
	r.rec = kafka.Record{}
	if e.key != nil {
		r.kr.b = e.key
		r.rec.Key = &r.kr
	}
	if e.value != nil {
		r.vr.b = e.value
		r.rec.Value = &r.vr
	}
	return &r.rec, nil
}

// kafkaBytes is kafka.Bytes over a byte slice. WriteTo lets io.Copy hand the
// slice to the encoder directly.
type kafkaBytes struct{ b []byte }

func (k *kafkaBytes) Len() int     { return len(k.b) }
func (k *kafkaBytes) Close() error { return nil }

func (k *kafkaBytes) Read(p []byte) (int, error) {
	if len(k.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, k.b)
	k.b = k.b[n:]
	return n, nil
}

func (k *kafkaBytes) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(k.b)
	k.b = k.b[n:]
	return int64(n), err
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
