package sink

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/pipeline"
)

// KafkaInput is the production Input: the changelog partition read by a
// pipeline.Consumer and decoded by a pipeline.Codec. It uses no consumer
// group; SeekTo starts a new consumer at the offset the worker's checkpoint
// names, which is the only position that counts.
//
// Messages are decoded ahead of the worker by a goroutine of their own, so
// that decoding overlaps the worker's statements on the replica (the worker
// otherwise waits for the replica while the decoder could work, and the
// replica waits while the worker decodes). The decoded messages waiting for
// the worker are bounded by count (decodeAheadMessages) and by their size
// on the wire (decodeAheadBytes; one message is always let through), on top
// of the consumer's own prefetch bound.
//
// An undecodable message is returned as a Message with Err set (the worker
// stops on it unless the operator skips that offset). Consumer errors that
// need an operator (pipeline.ErrOffsetOutOfRange: the checkpoint's offset
// is no longer retained) come back from Next and stop the worker.
type KafkaInput struct {
	cfg     pipeline.KafkaConfig
	codec   *pipeline.Codec
	log     zerolog.Logger
	metrics pipeline.KafkaMetrics

	c    *pipeline.Consumer
	dec  *decoder
	next int64 // offset after the last message Next returned
}

var _ Input = (*KafkaInput)(nil)

// Bounds of the decoded messages waiting for the worker.
const (
	decodeAheadMessages = 2048
	decodeAheadBytes    = 8 << 20
)

// NewKafkaInput returns an input on cfg.Topic; it starts reading at the
// first SeekTo. metrics may be nil.
func NewKafkaInput(cfg pipeline.KafkaConfig, codec *pipeline.Codec, log zerolog.Logger, metrics pipeline.KafkaMetrics) *KafkaInput {
	return &KafkaInput{cfg: cfg, codec: codec, log: log, metrics: metrics}
}

// SeekTo (re)starts the consumer and the decoder at offset. Whatever was
// decoded ahead is dropped.
func (k *KafkaInput) SeekTo(offset int64) error {
	k.stop()
	c, err := pipeline.NewConsumer(k.cfg, offset, k.log, k.metrics)
	if err != nil {
		return err
	}
	k.c = c
	k.next = offset
	k.dec = startDecoder(c, k.codec, k.cfg.Topic)
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

// decoder decodes the consumer's messages ahead of the worker.
type decoder struct {
	out    chan decoded
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	bytes int           // wire bytes of the messages in out
	space chan struct{} // signalled when bytes went down
	err   error         // the stream's final error, once out is drained
}

type decoded struct {
	msg Message
	err error
}

func startDecoder(c *pipeline.Consumer, codec *pipeline.Codec, topic string) *decoder {
	ctx, cancel := context.WithCancel(context.Background())
	d := &decoder{out: make(chan decoded, decodeAheadMessages), cancel: cancel, done: make(chan struct{}),
		space: make(chan struct{}, 1)}
	go d.run(ctx, c, codec, topic)
	return d
}

func (d *decoder) run(ctx context.Context, c *pipeline.Consumer, codec *pipeline.Codec, topic string) {
	defer close(d.done)
	for {
		m, err := c.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return // stopped by SeekTo or Close
			}
			if errors.Is(err, pipeline.ErrOffsetOutOfRange) {
				err = fmt.Errorf("%w: the checkpoint's offset is no longer in topic %s (retention?): re-seed the replica", err, topic)
			}
			select {
			case d.out <- decoded{err: err}:
			case <-ctx.Done():
			}
			return
		}
		msg := Message{Offset: m.Offset, Size: len(m.Key) + len(m.Value)}
		msg.Event, msg.Err = codec.Decode(m.Key, m.Value)
		if msg.Err != nil && !errors.Is(msg.Err, pipeline.ErrMalformed) {
			msg.Err = fmt.Errorf("%w: %w", pipeline.ErrMalformed, msg.Err)
		}
		// Wait for room by bytes; an empty queue always takes one message.
		for {
			d.mu.Lock()
			room := d.bytes == 0 || d.bytes+msg.Size <= decodeAheadBytes
			if room {
				d.bytes += msg.Size
			}
			d.mu.Unlock()
			if room {
				break
			}
			select {
			case <-d.space:
			case <-ctx.Done():
				return
			}
		}
		select {
		case d.out <- decoded{msg: msg}:
		case <-ctx.Done():
			return
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
