package sink

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/pipeline"
)

// KafkaInput is the production Input: the changelog partition read by a
// pipeline.Consumer and decoded by a pipeline.Codec. It uses no consumer
// group; SeekTo starts a new consumer at the offset the worker's checkpoint
// names, which is the only position that counts.
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
	c       *pipeline.Consumer
}

var _ Input = (*KafkaInput)(nil)

// NewKafkaInput returns an input on cfg.Topic; it starts reading at the
// first SeekTo. metrics may be nil.
func NewKafkaInput(cfg pipeline.KafkaConfig, codec *pipeline.Codec, log zerolog.Logger, metrics pipeline.KafkaMetrics) *KafkaInput {
	return &KafkaInput{cfg: cfg, codec: codec, log: log, metrics: metrics}
}

// SeekTo (re)starts the consumer at offset.
func (k *KafkaInput) SeekTo(offset int64) error {
	if k.c != nil {
		k.c.Close()
		k.c = nil
	}
	c, err := pipeline.NewConsumer(k.cfg, offset, k.log, k.metrics)
	if err != nil {
		return err
	}
	k.c = c
	return nil
}

// Next returns the next message, decoded.
func (k *KafkaInput) Next(ctx context.Context) (Message, error) {
	if k.c == nil {
		return Message{}, errors.New("kafka input: Next before SeekTo")
	}
	m, err := k.c.Next(ctx)
	if err != nil {
		if errors.Is(err, pipeline.ErrOffsetOutOfRange) {
			return Message{}, fmt.Errorf("%w: the checkpoint's offset is no longer in topic %s (retention?): re-seed the replica", err, k.cfg.Topic)
		}
		return Message{}, err
	}
	msg := Message{Offset: m.Offset, Size: len(m.Key) + len(m.Value)}
	msg.Event, msg.Err = k.codec.Decode(m.Key, m.Value)
	if msg.Err != nil && !errors.Is(msg.Err, pipeline.ErrMalformed) {
		msg.Err = fmt.Errorf("%w: %w", pipeline.ErrMalformed, msg.Err)
	}
	return msg, nil
}

// Buffered reports how far the consumer is behind the partition's end as of
// its last fetch: more than zero means the worker is behind and may merge
// transactions, zero that it has caught up.
func (k *KafkaInput) Buffered() int {
	if k.c == nil {
		return 0
	}
	return int(max(k.c.HighWatermark()-k.c.Offset(), 0))
}

// Close stops the consumer.
func (k *KafkaInput) Close() error {
	if k.c == nil {
		return nil
	}
	err := k.c.Close()
	k.c = nil
	return err
}
