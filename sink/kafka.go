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

// decodeAheadMessages bounds the decoded messages waiting for the worker;
// their bytes are bounded to half the consumer's prefetch.
const decodeAheadMessages = 2048

// NewKafkaInput returns an input on cfg.Topic; it starts reading at the
// first SeekTo. metrics may be nil.
func NewKafkaInput(cfg changelog.Config, codec *pipeline.Codec, log zerolog.Logger, metrics changelog.Metrics) *KafkaInput {
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
	msg, err := k.dec.next(ctx)
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
	if k.c == nil {
		return 0
	}
	return int(max(k.c.HighWatermark()-k.next, 0))
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
}

type decoded struct {
	msg Message
	err error
}

func startDecoder(c *changelog.Consumer, codec *pipeline.Codec, topic string, maxBytes int) *decoder {
	ctx, cancel := context.WithCancel(context.Background())
	d := &decoder{out: make(chan decoded, decodeAheadMessages), cancel: cancel, done: make(chan struct{}),
		space: make(chan struct{}, 1), maxBytes: maxBytes}
	go d.run(ctx, c, codec, topic)
	return d
}

func (d *decoder) run(ctx context.Context, c *changelog.Consumer, codec *pipeline.Codec, topic string) {
	defer close(d.done)
	for {
		m, err := c.Next(ctx)
		if err != nil {
			d.fail(ctx, err, topic)
			return
		}
		msg := decode(codec, m)
		if !d.reserve(ctx, msg.Size) {
			return
		}
		select {
		case d.out <- decoded{msg: msg}:
		case <-ctx.Done():
			return
		}
	}
}

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
	for {
		d.mu.Lock()
		room := d.bytes == 0 || d.bytes+size <= d.maxBytes
		if room {
			d.bytes += size
		}
		d.mu.Unlock()
		if room {
			return true
		}
		select {
		case <-d.space:
		case <-ctx.Done():
			return false
		}
	}
}

func (d *decoder) next(ctx context.Context) (Message, error) {
	if d.err != nil {
		return Message{}, d.err
	}
	var x decoded
	select {
	case x = <-d.out:
	default:
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
