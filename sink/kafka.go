package sink

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/pipeline"
)

// KafkaInput is the production Input: the changelog partition read by a
// changelog.Consumer without a consumer group (SeekTo starts at the
// checkpoint's offset) and decoded ahead of the worker by a goroutine, within
// bounds of count and bytes. An undecodable message comes as a Message with
// Err set; an offset no longer retained is an error of Next. docs/DESIGN.md,
// "Reading the changelog".
type KafkaInput struct {
	cfg     changelog.Config
	codec   *pipeline.Codec
	log     zerolog.Logger
	metrics changelog.Metrics

	c    *changelog.Consumer
	dec  *decoder
	next int64 // offset after the last message Next returned
}

var _ Input = (*KafkaInput)(nil)

// decodeAheadMessages bounds the messages between the consumer and the
// worker (in the lanes, then decoded and waiting); their bytes are bounded
// to half the consumer's prefetch.
const decodeAheadMessages = 2048

// NewKafkaInput returns an input on cfg.Topic; it starts reading at the
// first SeekTo. metrics may be nil.
func NewKafkaInput(cfg changelog.Config, codec *pipeline.Codec, log zerolog.Logger, metrics changelog.Metrics) *KafkaInput {
	cfg.DeferVerify = true     // the decode lanes check the signatures, in parallel
	cfg.GateBigMessages = true // one worker of the process at a time holds big rows (Applied)
	return &KafkaInput{cfg: cfg, codec: codec, log: log, metrics: metrics}
}

// SeekTo (re)starts the consumer and the decoder at offset. Whatever was
// decoded ahead is dropped.
func (k *KafkaInput) SeekTo(offset int64) error {
	k.stop()
	c, err := changelog.NewConsumer(k.cfg, offset, k.log, k.metrics)
	if err != nil {
		return err
	}
	k.c = c
	k.next = offset
	k.dec = startDecoder(c, k.codec, k.cfg.Topic, k.decodeAheadBytes())
	return nil
}

// Next returns the next message, decoded.
func (k *KafkaInput) Next(ctx context.Context) (Message, error) {
	if k.dec == nil {
		return Message{}, errors.New("kafka input: Next before SeekTo")
	}
	msg, err := k.dec.next(ctx, k.idle)
	if err != nil {
		return Message{}, err
	}
	k.next = msg.Offset + 1
	return msg, nil
}

// Buffered reports how far the worker is behind the partition's end as of
// the consumer's last fetch: more than zero means the worker is behind and
// may merge transactions, zero that it has caught up.
func (k *KafkaInput) Buffered() int {
	if k.c == nil || k.c.AwaitsApplied() {
		return 0 // a consumer that waits for a big row to be applied before the next
	}
	return int(max(k.c.HighWatermark()-k.next, 0))
}

// idle runs when the worker is about to wait for a message: with every
// fetched message in its hands, a wait for the big row before the next one
// to be applied would never end (a transaction of several big rows).
func (k *KafkaInput) idle() {
	if k.c != nil {
		k.c.Idle(k.next)
	}
}

// Applied tells the consumer the worker committed every message before
// offset, which lets go of the big message gate it may hold.
func (k *KafkaInput) Applied(offset int64) {
	if k.c != nil {
		k.c.Applied(offset)
	}
}

// Close stops the decoder and the consumer.
func (k *KafkaInput) Close() error {
	k.stop()
	return nil
}

func (k *KafkaInput) stop() {
	if k.dec != nil {
		k.dec.stop()
		k.dec = nil
	}
	if k.c != nil {
		k.c.Close()
		k.c = nil
	}
}

// decodeAheadBytes is half the consumer's prefetch.
func (k *KafkaInput) decodeAheadBytes() int {
	if k.cfg.PrefetchBytes > 0 {
		return k.cfg.PrefetchBytes / 2
	}
	return changelog.DefaultKafkaPrefetchBytes / 2
}

// decoder decodes the consumer's messages ahead of the worker.
type decoder struct {
	out    chan decoded
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	bytes    int           // wire bytes of the messages in out
	maxBytes int           // bound of bytes
	space    chan struct{} // signalled when bytes went down
	err      error         // the stream's final error, once out is drained

	held *changelog.Message // dispatch's: taken from the consumer, not yet reserved
}

type decoded struct {
	msg Message
	err error
}

func startDecoder(c *changelog.Consumer, codec *pipeline.Codec, topic string, maxBytes int) *decoder {
	ctx, cancel := context.WithCancel(context.Background())
	d := &decoder{out: make(chan decoded, decodeAheadMessages-2*decodeLanes*laneDepth*laneBatch), cancel: cancel, done: make(chan struct{}),
		space: make(chan struct{}, 1), maxBytes: maxBytes}
	go d.run(ctx, c, codec, topic)
	return d
}

func (d *decoder) run(ctx context.Context, c *changelog.Consumer, codec *pipeline.Codec, topic string) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer close(d.done) // last: the consumer is free for the next decoder once done closes
	defer wg.Wait()
	defer cancel()
	lanes := make([]chan []decoded, decodeLanes)
	for i := range lanes {
		lanes[i] = make(chan []decoded, laneDepth)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.dispatch(ctx, c, codec, lanes, &wg)
	}()
	for i := 0; ; i = (i + 1) % len(lanes) {
		var batch []decoded
		select {
		case batch = <-lanes[i]:
		case <-ctx.Done():
			return
		}
		for _, x := range batch {
			if x.err != nil {
				d.fail(ctx, x.err, topic)
				return
			}
			select {
			case d.out <- x:
			case <-ctx.Done():
				return
			}
		}
	}
}

// decodeLanes goroutines decode at once, each up to laneDepth batches of at
// most laneBatch messages ahead: decoding and the signature check are the
// sink's largest costs per row, and a lane per CPU keeps the apply step fed
// (docs/BENCHMARKS.md). run takes the lanes' batches in turn, so the order of
// the topic is kept; batches keep the hand-offs few.
const (
	decodeLanes = 2
	laneDepth   = 4
	laneBatch   = 64
)

// dispatch hands the consumer's messages to the lanes in turn, in batches
// of what the consumer has ready, after reserving their bytes; a consumer
// error ends the batch it would have been in, so that it comes out in order.
func (d *decoder) dispatch(ctx context.Context, c *changelog.Consumer, codec *pipeline.Codec, lanes []chan []decoded, wg *sync.WaitGroup) {
	raw := make([]chan fetched, len(lanes))
	for i := range lanes {
		raw[i] = make(chan fetched, laneDepth)
		wg.Add(1)
		go func() {
			defer wg.Done()
			decodeLane(ctx, c, codec, raw[i], lanes[i])
		}()
	}
	defer func() {
		for _, r := range raw {
			close(r)
		}
	}()
	for i := 0; ; i = (i + 1) % len(lanes) {
		f := d.fetch(ctx, c)
		if ctx.Err() != nil {
			return
		}
		select {
		case raw[i] <- f:
		case <-ctx.Done():
			return
		}
		if f.err != nil {
			return
		}
	}
}

// fetched is a batch of consumer messages, and the consumer's error after
// them, on its way to a lane.
type fetched struct {
	ms  []changelog.Message
	err error
}

// fetch waits for the next message, then takes what else the consumer has
// ready, up to laneBatch messages, reserving the bytes of each. A message
// with no room left is kept for the next batch instead of waited for: the
// room comes back only as the worker takes the messages before it, which
// must reach a lane first (a big row followed by a small one wedged here).
func (d *decoder) fetch(ctx context.Context, c *changelog.Consumer) fetched {
	var f fetched
	for len(f.ms) < laneBatch {
		if d.held == nil {
			if len(f.ms) > 0 && c.Ready() == 0 {
				break
			}
			m, err := c.Next(ctx)
			if err != nil {
				f.err = err
				return f
			}
			d.held = &m
		}
		size := len(d.held.Key) + len(d.held.Value)
		if len(f.ms) > 0 && !d.tryReserve(size) {
			break
		}
		if len(f.ms) == 0 && !d.reserve(ctx, size) {
			return f
		}
		f.ms = append(f.ms, *d.held)
		d.held = nil
	}
	return f
}

// decodeLane checks the signatures of one lane's messages (deferred by the
// consumer, see NewKafkaInput) and decodes them, in order.
func decodeLane(ctx context.Context, c *changelog.Consumer, codec *pipeline.Codec, in <-chan fetched, out chan<- []decoded) {
	for f := range in {
		batch := make([]decoded, 0, len(f.ms)+1)
		for i := range f.ms {
			c.Verify(&f.ms[i])
			batch = append(batch, decoded{msg: decode(codec, f.ms[i])})
			big := len(f.ms[i].Value) >= bigDecodeBytes
			f.ms[i] = changelog.Message{} // decoded: the wire bytes are garbage now
			if big {
				changelog.FreeGarbage()
			}
		}
		if f.err != nil {
			batch = append(batch, decoded{err: f.err})
		}
		select {
		case out <- batch:
		case <-ctx.Done():
			return
		}
	}
}

// bigDecodeBytes is the message size from which a lane frees the garbage
// of its decoding at once (see changelog.FreeGarbage).
const bigDecodeBytes = 8 << 20

// fail hands the consumer's error to the worker, unless the decoder was
// stopped (by SeekTo or Close).
func (d *decoder) fail(ctx context.Context, err error, topic string) {
	if ctx.Err() != nil {
		return
	}
	if errors.Is(err, changelog.ErrOffsetOutOfRange) {
		err = fmt.Errorf("%w: the checkpoint's offset is no longer in topic %s (retention?): re-seed the replica", err, topic)
	}
	select {
	case d.out <- decoded{err: err}:
	case <-ctx.Done():
	}
}

// decode decodes a consumer message; an undecodable one carries an
// ErrMalformed in Err, one that failed the signature check is Refused.
func decode(codec *pipeline.Codec, m changelog.Message) Message {
	msg := Message{Offset: m.Offset, Size: len(m.Key) + len(m.Value), Sum: MessageDigest(m.Key, m.Value)}
	if m.SigErr != nil {
		msg.Refused = m.SigErr // not decoded: nothing in it is trusted
		return msg
	}
	msg.Event, msg.Err = codec.Decode(m.Key, m.Value)
	if msg.Err != nil && !errors.Is(msg.Err, pipeline.ErrMalformed) {
		msg.Err = fmt.Errorf("%w: %w", pipeline.ErrMalformed, msg.Err)
	}
	return msg
}

// reserve waits for room for size bytes of decoded messages (an empty queue
// always takes one message); false when the decoder is stopped.
func (d *decoder) reserve(ctx context.Context, size int) bool {
	for !d.tryReserve(size) {
		select {
		case <-d.space:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// tryReserve reserves room for size bytes if there is room now.
func (d *decoder) tryReserve(size int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.bytes != 0 && d.bytes+size > d.maxBytes {
		return false
	}
	d.bytes += size
	return true
}

func (d *decoder) next(ctx context.Context, idle func()) (Message, error) {
	if d.err != nil {
		return Message{}, d.err
	}
	var x decoded
	select {
	case x = <-d.out:
	default:
		idle()
		select {
		case x = <-d.out:
		case <-ctx.Done():
			return Message{}, ctx.Err()
		}
	}
	if x.err != nil {
		d.err = x.err
		return Message{}, x.err
	}
	d.mu.Lock()
	d.bytes -= x.msg.Size
	d.mu.Unlock()
	select {
	case d.space <- struct{}{}:
	default:
	}
	return x.msg, nil
}

func (d *decoder) stop() {
	d.cancel()
	<-d.done
}
