package service

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/pipeline/obs"
	"github.com/rowcast/rowcast/source"
)

// PublisherConfig is what the pipeline service needs.
type PublisherConfig struct {
	// Cluster is written as source.name in every message.
	Cluster string
	Kafka   pipeline.KafkaConfig
	Source  source.Config
	// Start says where to begin when the topic holds nothing resumable:
	// "current", "earliest" or a GTID set.
	Start string
	// HeartbeatInterval is how often an idle reader publishes a heartbeat.
	HeartbeatInterval time.Duration
	// Epoch is the master generation to stamp on messages when the topic has
	// no epoch yet. Default 1.
	Epoch uint64
}

// Publisher is the pipeline service: it tails the master's binlog and
// publishes every transaction to the changelog topic, in commit order.
type Publisher struct {
	cfg     PublisherConfig
	log     zerolog.Logger
	metrics *Metrics
	health  *obs.Health
	codec   pipeline.Codec

	// Written by the reader goroutine (emit and heartbeats).
	batch    []pipeline.ProducerMessage
	buf      []byte
	lastSeq  uint64    // TxnSeq of the last transaction emitted
	lastSent time.Time // when the last message was queued
	epoch    uint64
	master   source.Info
	producer *pipeline.Producer

	// Acknowledged position, written from the producer's OnAck.
	acked atomic.Pointer[Acked]
	ready sync.Once
	up    chan struct{}
}

// Acked is the last transaction Kafka acknowledged in full.
type Acked struct {
	Pos        pipeline.Position
	GTIDSet    string
	CommitTime time.Time
	Offset     int64
}

// sendBatch is how many messages emit collects before handing them to the
// producer in one call; a transaction's last message always flushes.
const sendBatch = 256

// NewPublisher returns a pipeline service. metrics and health may be nil.
func NewPublisher(cfg PublisherConfig, log zerolog.Logger, metrics *Metrics, health *obs.Health) *Publisher {
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 5 * time.Second
	}
	if cfg.Epoch == 0 {
		cfg.Epoch = 1
	}
	if cfg.Start == "" {
		cfg.Start = "current"
	}
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	if health == nil {
		health = obs.NewHealth()
	}
	return &Publisher{cfg: cfg, log: log.With().Str("component", "pipeline").Logger(), metrics: metrics,
		health: health, codec: pipeline.Codec{Cluster: cfg.Cluster}, up: make(chan struct{})}
}

// Acked returns the last transaction Kafka acknowledged, nil before the first.
func (p *Publisher) Acked() *Acked { return p.acked.Load() }

// Started is closed once the binlog stream has been set up.
func (p *Publisher) Started() <-chan struct{} { return p.up }

// Run publishes until ctx ends (it then returns nil after flushing what was
// queued) or a fault that needs a human.
func (p *Publisher) Run(ctx context.Context) error {
	p.health.Set("pipeline", errors.New("starting"))
	created, err := pipeline.EnsureTopic(ctx, p.cfg.Kafka)
	if err != nil {
		return err
	}
	if created {
		p.log.Info().Str("topic", p.cfg.Kafka.Topic).Msg("created the changelog topic")
	}

	srcCfg := p.cfg.Source
	srcCfg.OnHeartbeat = p.onHeartbeat
	reader := source.NewReader(srcCfg, p.log)
	info, err := reader.Check(ctx)
	if err != nil {
		return err
	}
	for _, w := range info.Warnings {
		p.log.Warn().Str("master", srcCfg.Addr).Msg(w)
	}
	res, err := FindResume(ctx, p.cfg.Kafka, &p.codec)
	if err != nil {
		return err
	}
	start := source.Start{Epoch: max(res.Epoch, p.cfg.Epoch), NextTxnSeq: res.NextTxnSeq, GTIDSet: res.GTIDSet}
	if !res.Found {
		switch p.cfg.Start {
		case "current":
			start.GTIDSet = info.GTIDSet
		case "earliest":
			start.GTIDSet = ""
		default:
			start.GTIDSet = p.cfg.Start
		}
		p.log.Info().Str("start", p.cfg.Start).Str("gtid_set", start.GTIDSet).Msg("changelog is empty: starting from the configured position")
	} else {
		p.log.Info().Int64("offset", res.Offset).Uint64("next_txn_seq", res.NextTxnSeq).Str("gtid_set", res.GTIDSet).
			Uint64("epoch", start.Epoch).Msg("resuming after the last transaction published in full")
	}
	if err := reader.CheckResume(ctx, start.GTIDSet); err != nil {
		return err
	}
	p.epoch = start.Epoch
	p.master = info
	p.lastSeq = start.NextTxnSeq - 1
	p.lastSent = time.Now()

	producer, err := pipeline.NewProducer(p.cfg.Kafka, p.log, pipeline.ProducerOptions{OnAck: p.onAck, Metrics: p.metrics.kafka()})
	if err != nil {
		return err
	}
	p.producer = producer

	// The producer outlives the reader: when ctx ends, the reader stops
	// first and what it queued is flushed before the producer stops.
	pctx, stopProducer := context.WithCancel(context.WithoutCancel(ctx))
	defer stopProducer()
	g, gctx := errgroup.WithContext(ctx)
	prodErr := make(chan error, 1)
	go func() { prodErr <- producer.Run(pctx) }()
	g.Go(func() error {
		select {
		case err := <-prodErr:
			if err == nil || errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		case <-gctx.Done():
			return nil
		}
	})
	g.Go(func() error { return p.read(gctx, reader, start) })
	err = g.Wait()
	if ctx.Err() != nil && err == nil {
		// Clean shutdown: drain what the reader queued, then stop.
		fctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if ferr := producer.Flush(fctx); ferr != nil {
			p.log.Warn().Err(ferr).Msg("shutdown: not everything queued was acknowledged; the next start republishes it")
		}
		cancel()
	}
	stopProducer()
	p.health.Set("pipeline", errors.New("stopped"))
	if err != nil {
		return err
	}
	return nil
}

// read runs the reader, restarting it after stream errors with backoff.
func (p *Publisher) read(ctx context.Context, reader *source.Reader, start source.Start) error {
	backoff := 200 * time.Millisecond
	for {
		err := reader.Run(ctx, start, p.emit)
		if ctx.Err() != nil {
			return nil
		}
		if !errors.Is(err, source.ErrStream) {
			return err
		}
		p.metrics.readerRestarts.Inc()
		p.health.Set("pipeline", fmt.Errorf("binlog stream lost, reconnecting: %v", err))
		p.log.Warn().Err(err).Dur("backoff", backoff).Msg("binlog stream lost; reconnecting")
		// Messages of a transaction cut short are in the batch or the queue;
		// they stay: the transaction is emitted again from row 0 under the same
		// positions, and sinks skip the copies.
		if err := p.flush(ctx); err != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
		start = reader.Resume()
		start.Epoch = p.epoch
	}
}

// emit encodes one message and queues it; the last message of a transaction
// flushes the batch to the producer.
func (p *Publisher) emit(ctx context.Context, ev *pipeline.Event) error {
	select {
	case <-p.up:
	default:
		p.ready.Do(func() { close(p.up) })
		p.health.Set("pipeline", nil)
	}
	start := len(p.buf)
	var err error
	if p.buf, err = p.codec.AppendKey(p.buf, ev); err != nil {
		return err
	}
	mid := len(p.buf)
	if p.buf, err = p.codec.AppendValue(p.buf, ev); err != nil {
		return err
	}
	var token any
	if ev.Pos.Last {
		token = &Acked{Pos: ev.Pos, GTIDSet: ev.GTIDSet, CommitTime: ev.CommitTime}
		p.lastSeq = ev.Pos.TxnSeq
	}
	p.batch = append(p.batch, pipeline.ProducerMessage{Key: p.buf[start:mid:mid], Value: p.buf[mid:len(p.buf):len(p.buf)], Token: token})
	p.metrics.events.WithLabelValues(ev.Kind.String()).Inc()
	if ev.Pos.Last || len(p.batch) >= sendBatch {
		return p.flush(ctx)
	}
	return nil
}

// flush hands the collected messages to the producer (which copies them).
func (p *Publisher) flush(ctx context.Context) error {
	if len(p.batch) == 0 {
		return nil
	}
	_, err := p.producer.SendBatch(ctx, p.batch)
	p.batch = p.batch[:0]
	p.buf = p.buf[:0]
	p.lastSent = time.Now()
	return err
}

// onHeartbeat runs on the reader's goroutine between transactions: when
// nothing was published for HeartbeatInterval, it publishes a heartbeat
// carrying the master's clock and GTID set, so sinks can tell lag from an
// idle master.
func (p *Publisher) onHeartbeat(serverTime time.Time, gtidSet string) {
	p.health.Set("pipeline", nil)
	if time.Since(p.lastSent) < p.cfg.HeartbeatInterval || p.producer == nil {
		return
	}
	ev := &pipeline.Event{Kind: pipeline.KindHeartbeat, GTIDSet: gtidSet, CommitTime: serverTime,
		Flavor: p.master.Flavor, ServerID: p.master.ServerID,
		Pos: pipeline.Position{Epoch: p.epoch, TxnSeq: p.lastSeq, Last: true}}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.HeartbeatInterval)
	defer cancel()
	if err := p.emit(ctx, ev); err != nil {
		p.log.Warn().Err(err).Msg("heartbeat not queued")
	}
}

// onAck runs on the producer's goroutine, in order.
func (p *Publisher) onAck(token any, offset int64) {
	a, ok := token.(*Acked)
	if !ok {
		return
	}
	a.Offset = offset
	p.acked.Store(a)
	p.metrics.ackedOffset.Set(float64(offset))
	p.metrics.ackedTxnSeq.Set(float64(a.Pos.TxnSeq))
	if !a.CommitTime.IsZero() {
		p.metrics.lag.Set(time.Since(a.CommitTime).Seconds())
		p.metrics.lastCommit.Set(float64(a.CommitTime.Unix()))
	}
}
