package service

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/pipeline/failover"
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
	// Master names the node Source reads: the config's master.
	Master string
	// Nodes are the source settings of every node that may become the
	// master, by name: the publisher follows an epoch record (written by
	// `rowcast promote` or the automatic failover) to the node it names.
	// Empty: the publisher stays on Source and never looks for epoch
	// records (a reader pinned to one master; benchmarks, tests).
	Nodes map[string]source.Config
	// Locate returns the current master when the service starts (the
	// topic's newest epoch record, through failover.Locator). Nil: Master,
	// epoch 1.
	Locate func(ctx context.Context) (failover.Current, error)
	// Watchdog, when set, runs beside the reader for as long as the service
	// runs: the automatic failover (failover.Auto).
	Watchdog Watchdog
}

// Watchdog is a companion of the pipeline service that watches the master.
type Watchdog interface {
	// Watch runs until ctx ends. master returns the node the service reads
	// now and its epoch.
	Watch(ctx context.Context, master func() (node string, epoch uint64)) error
}

// Position is where the pipeline service stands, served in /healthz's
// details for `rowcast promote`.
type Position struct {
	// Topic is the changelog topic.
	Topic string `json:"topic"`
	// Master is the node read now, Epoch its generation.
	Master string `json:"master"`
	Epoch  uint64 `json:"epoch"`
	// ReadGTIDSet is the master's GTID set after the last transaction read
	// in full (published, or filtered out and so not published).
	ReadGTIDSet string `json:"read_gtid_set"`
	// Queued is the number of messages queued and not yet acknowledged by
	// Kafka, read after ReadGTIDSet: when it is 0, everything up to
	// ReadGTIDSet is in the topic.
	Queued int `json:"queued"`
	// AckedOffset and AckedTxnSeq are the last transaction acknowledged.
	AckedOffset int64  `json:"acked_offset"`
	AckedTxnSeq uint64 `json:"acked_txn_seq"`
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
	// counted holds the events counter of each kind, looked up once: a
	// label lookup (hash and lock) per message took ~170 ns a row in
	// profiles of scripts/bench source.
	counted [8]prometheus.Counter

	// Acknowledged position, written from the producer's OnAck.
	acked atomic.Pointer[Acked]
	ready sync.Once
	up    chan struct{}

	follow *follower
	// now is the node read now, for Position and the watchdog.
	nowMu     sync.Mutex
	nowName   string
	nowEpoch  uint64
	nowReader *source.Reader
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
//
// It reads the current master: the config's, or the one the topic's newest
// epoch record names (cfg.Locate). When a newer epoch record appears in the
// topic (a promotion), it stops reading the old master and reads the new
// one from the record's start GTID set, with the record's epoch and the
// transaction sequence continued.
func (p *Publisher) Run(ctx context.Context) error {
	p.health.Set("pipeline", errors.New("starting"))
	p.health.SetDetail("pipeline", func() any { return p.Position() })
	created, err := pipeline.EnsureTopic(ctx, p.cfg.Kafka)
	if err != nil {
		return err
	}
	if created {
		p.log.Info().Str("topic", p.cfg.Kafka.Topic).Msg("created the changelog topic")
	}
	res, err := FindResume(ctx, p.cfg.Kafka, &p.codec)
	if err != nil {
		return err
	}
	cur := failover.Current{Master: p.cfg.Master, Epoch: 1, Offset: -1, From: "config"}
	if p.cfg.Locate != nil {
		if cur, err = p.cfg.Locate(ctx); err != nil {
			return fmt.Errorf("look up the current master: %w", err)
		}
	}
	start := source.Start{Epoch: max(res.Epoch, cur.Epoch, p.cfg.Epoch), NextTxnSeq: res.NextTxnSeq, GTIDSet: res.GTIDSet}
	found := res.Found
	switch {
	case cur.Record != nil && (!res.Found || cur.Offset >= res.Offset):
		// The newest epoch record is the resume point: the new master
		// starts from its start set.
		start = source.Start{Epoch: cur.Record.Epoch, NextTxnSeq: cur.Record.TxnSeq + 1, GTIDSet: cur.Record.StartGTIDSet}
		found = true
	case p.cfg.Locate != nil && res.Found && res.Epoch > cur.Epoch:
		return fmt.Errorf("the topic holds messages of epoch %d but the current master lookup found epoch %d (%s): the epoch index on the nodes misses a promotion; run `rowcast status` and check the epochs table of the bookkeeping schema",
			res.Epoch, cur.Epoch, cur.Master)
	}
	srcCfg, err := p.sourceOf(cur.Master)
	if err != nil {
		return err
	}
	if found {
		p.log.Info().Int64("offset", res.Offset).Uint64("next_txn_seq", start.NextTxnSeq).Str("gtid_set", start.GTIDSet).
			Uint64("epoch", start.Epoch).Str("master", cur.Master).Str("master_from", cur.From).Msg("resuming after the last transaction published in full")
	}
	p.follow = &follower{kc: p.cfg.Kafka, checked: res.End}

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
	if p.cfg.Watchdog != nil {
		g.Go(func() error { return p.cfg.Watchdog.Watch(gctx, p.currentMaster) })
	}
	g.Go(func() error {
		name := cur.Master
		for {
			rec, off, err := p.readMaster(gctx, name, srcCfg, start, found)
			if err != nil || rec == nil {
				return err
			}
			next, err := p.sourceOf(rec.Master)
			if err != nil {
				return err
			}
			p.log.Warn().Int64("offset", off).Uint64("epoch", rec.Epoch).Str("old_master", name).Str("master", rec.Master).
				Str("start_gtid_set", rec.StartGTIDSet).Uint64("txn_seq", rec.TxnSeq).
				Msg("epoch record: following the new master")
			p.metrics.readerRestarts.Inc()
			name, srcCfg, found = rec.Master, next, true
			start = source.Start{Epoch: rec.Epoch, NextTxnSeq: rec.TxnSeq + 1, GTIDSet: rec.StartGTIDSet}
		}
	})
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

// sourceOf returns the source settings of a node.
func (p *Publisher) sourceOf(node string) (source.Config, error) {
	if c, ok := p.cfg.Nodes[node]; ok {
		return c, nil
	}
	if node == p.cfg.Master || p.cfg.Master == "" || len(p.cfg.Nodes) == 0 {
		return p.cfg.Source, nil
	}
	return source.Config{}, fmt.Errorf("the master is node %q, which is not a mysql node of the config: add it to nodes", node)
}

// readMaster reads one master until ctx ends (nil, nil), a fault that needs a
// human, or a newer epoch record in the topic (returned with its offset).
// A master that does not answer is retried, while the follower watches.
func (p *Publisher) readMaster(ctx context.Context, name string, srcCfg source.Config, start source.Start, found bool) (*pipeline.EpochRecord, int64, error) {
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(mctx)
	var rec *pipeline.EpochRecord
	var recOff int64
	if len(p.cfg.Nodes) > 0 {
		g.Go(func() error {
			r, off, err := p.follow.next(gctx, start.Epoch, p.busy, &pipeline.Codec{})
			if err != nil {
				return err
			}
			if r != nil {
				rec, recOff = r, off
				cancel()
			}
			return nil
		})
	}
	g.Go(func() error {
		defer cancel()
		return p.readFrom(gctx, name, srcCfg, start, found)
	})
	err := g.Wait()
	if rec != nil {
		// The old master's transaction cut short by the switch: it never
		// completes in the topic (sinks abandon it at the record).
		p.batch, p.buf = p.batch[:0], p.buf[:0]
		// What the old master's reader queued goes out before the new
		// master's first message (after the record: sinks ignore it).
		fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
		if ferr := p.producer.Flush(fctx); ferr != nil && ctx.Err() == nil {
			p.log.Warn().Err(ferr).Msg("the old master's last messages were not all acknowledged before the switch")
		}
		fcancel()
		return rec, recOff, nil
	}
	return nil, 0, err
}

// readFrom checks the master (retrying while it does not answer), then
// reads it from start.
func (p *Publisher) readFrom(ctx context.Context, name string, srcCfg source.Config, start source.Start, found bool) error {
	srcCfg.OnHeartbeat = p.onHeartbeat
	reader := source.NewReader(srcCfg, p.log.With().Str("node", name).Logger())
	backoff := 200 * time.Millisecond
	var info source.Info
	for {
		var err error
		info, err = reader.Check(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		if !errors.Is(err, source.ErrStream) {
			return err
		}
		p.health.Set("pipeline", fmt.Errorf("master %s does not answer: %v", name, err))
		p.log.Warn().Err(err).Str("master", name).Dur("backoff", backoff).Msg("the master does not answer; retrying")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	for _, w := range info.Warnings {
		p.log.Warn().Str("master", srcCfg.Addr).Msg(w)
	}
	if !found {
		switch p.cfg.Start {
		case "current":
			start.GTIDSet = info.GTIDSet
		case "earliest":
			start.GTIDSet = ""
		default:
			start.GTIDSet = p.cfg.Start
		}
		p.log.Info().Str("start", p.cfg.Start).Str("gtid_set", start.GTIDSet).Msg("changelog is empty: starting from the configured position")
	}
	if err := reader.CheckResume(ctx, start.GTIDSet); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	p.epoch = start.Epoch
	p.master = info
	p.lastSeq = start.NextTxnSeq - 1
	p.lastSent = time.Now()
	p.nowMu.Lock()
	p.nowName, p.nowEpoch, p.nowReader = name, start.Epoch, reader
	p.nowMu.Unlock()
	return p.read(ctx, reader, start)
}

// currentMaster is the node read now and its epoch.
func (p *Publisher) currentMaster() (string, uint64) {
	p.nowMu.Lock()
	defer p.nowMu.Unlock()
	if p.nowName == "" {
		return p.cfg.Master, max(p.cfg.Epoch, 1)
	}
	return p.nowName, p.nowEpoch
}

// busy reports whether messages are queued and not yet acknowledged.
func (p *Publisher) busy() bool {
	if p.producer == nil {
		return false
	}
	n, _ := p.producer.Buffered()
	return n > 0
}

// Position returns where the service stands; safe from any goroutine.
func (p *Publisher) Position() Position {
	p.nowMu.Lock()
	pos := Position{Topic: p.cfg.Kafka.Topic, Master: p.nowName, Epoch: p.nowEpoch, AckedOffset: -1}
	r := p.nowReader
	p.nowMu.Unlock()
	if r != nil {
		pos.ReadGTIDSet = r.Position()
	}
	if p.producer != nil {
		pos.Queued, _ = p.producer.Buffered()
	}
	if a := p.acked.Load(); a != nil {
		pos.AckedOffset, pos.AckedTxnSeq = a.Offset, a.Pos.TxnSeq
	}
	return pos
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
	p.countEvent(ev.Kind)
	if ev.Pos.Last || len(p.batch) >= sendBatch {
		return p.flush(ctx)
	}
	return nil
}

func (p *Publisher) countEvent(k pipeline.Kind) {
	if int(k) >= len(p.counted) {
		p.metrics.events.WithLabelValues(k.String()).Inc()
		return
	}
	if p.counted[k] == nil {
		p.counted[k] = p.metrics.events.WithLabelValues(k.String())
	}
	p.counted[k].Inc()
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
	p.follow.acked(offset)
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
