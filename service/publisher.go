package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/failover"
	"github.com/rowcast/rowcast/internal/obs"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/source"
)

// PublisherConfig is what the pipeline service needs.
type PublisherConfig struct {
	// Cluster is written as source.name in every message.
	Cluster string
	Kafka   changelog.Config
	Source  source.Config
	// Start says where to begin when the topic holds nothing resumable:
	// "snapshot" (every included table, then the binlog from there),
	// "current", "earliest" or a GTID set. Default "current" (the YAML's
	// default is "snapshot").
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
	// SkipGTID is one source transaction the reader leaves out, once,
	// recording the skip in the topic (source.Config.SkipGTID).
	SkipGTID string
	// Emitted, when set, sees every event the publisher emits, before it is
	// sent (DDLLog.Published on a master-master unit).
	Emitted func(ctx context.Context, ev *pipeline.Event)
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
	batch    []changelog.ProducerMessage
	buf      []byte
	gaveBuf  bool        // a message of buf went to the producer as Owned: flush drops buf
	lastSeq  uint64      // TxnSeq of the last transaction emitted
	openTxn  [2]uint64   // epoch and TxnSeq of a transaction emitted in part, zero for none
	txnOpen  atomic.Bool // openTxn is not zero, for holdReads on go-mysql's goroutine
	lastSent time.Time   // when the last message was queued
	epoch    uint64
	master   source.Info
	producer *changelog.Producer
	// counted holds the events counter of each kind, looked up once: a
	// label lookup (hash and lock) per message shows in the profiles of
	// scripts/bench source.
	counted [8]prometheus.Counter

	// Acknowledged position, written from the producer's OnAck.
	acked atomic.Pointer[Acked]
	ready sync.Once
	up    chan struct{}

	follow *follower
	// promoted is set when the master read now was left for a new one.
	promoted atomic.Bool
	// now is the node read now, for Position and the watchdog.
	nowMu     sync.Mutex
	nowName   string
	nowEpoch  uint64
	nowReader *source.Reader
	// binlog is the reader's binlog file, for the purge margin.
	binlog readerBinlog
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
		cfg.Start = StartCurrent
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
	at, err := p.startPoint(ctx)
	if err != nil {
		return err
	}
	producer, err := changelog.NewProducer(p.cfg.Kafka, p.log, changelog.ProducerOptions{OnAck: p.onAck, Metrics: p.metrics.kafka()})
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
	g.Go(func() error { return producerFailure(gctx, prodErr) })
	if p.cfg.Watchdog != nil {
		g.Go(func() error { return p.cfg.Watchdog.Watch(gctx, p.currentMaster) })
	}
	g.Go(func() error { return p.readMasters(gctx, at) })
	err = g.Wait()
	if ctx.Err() != nil && err == nil {
		p.drain()
	}
	stopProducer()
	p.health.Set("pipeline", errors.New("stopped"))
	return err
}

// readPoint is where a master is read from.
type readPoint struct {
	master string
	src    source.Config
	start  source.Start
	// found: start was read back from the topic; else cfg.Start decides
	// where the master is read from.
	found bool
	// cutRead: a snapshot chunk a crash cut short ends the topic
	// (Resume.CutRead); closed only when it is the transaction start
	// continues (not after an epoch record).
	cutRead *pipeline.Event
}

// startPoint makes sure the topic exists and finds where the service starts:
// the current master, from the topic's resume point or its newest epoch
// record.
func (p *Publisher) startPoint(ctx context.Context) (readPoint, error) {
	created, err := changelog.EnsureTopic(ctx, p.cfg.Kafka)
	if err != nil {
		return readPoint{}, err
	}
	if created {
		p.log.Info().Str("topic", p.cfg.Kafka.Topic).Msg("created the changelog topic")
	}
	res, err := FindResume(ctx, p.cfg.Kafka, &p.codec, p.log)
	if err != nil {
		return readPoint{}, err
	}
	cur, err := p.locate(ctx)
	if err != nil {
		return readPoint{}, err
	}
	at := readPoint{master: cur.Master}
	if at.start, at.found, err = p.resumeAt(res, cur); err != nil {
		return readPoint{}, err
	}
	if at.src, err = p.sourceOf(cur.Master); err != nil {
		return readPoint{}, err
	}
	at.cutRead = res.CutRead
	if at.found {
		p.log.Info().Int64("offset", res.Offset).Uint64("next_txn_seq", at.start.NextTxnSeq).Str("gtid_set", at.start.GTIDSet).
			Uint64("epoch", at.start.Epoch).Str("master", cur.Master).Str("master_from", cur.From).Msg("resuming after the last transaction published in full")
	}
	p.follow = &follower{kc: p.cfg.Kafka, checked: res.End}
	return at, nil
}

// locate returns the current master: cfg.Locate's, else the config's.
func (p *Publisher) locate(ctx context.Context) (failover.Current, error) {
	if p.cfg.Locate == nil {
		return failover.Current{Master: p.cfg.Master, Epoch: 1, Offset: -1, From: "config"}, nil
	}
	cur, err := p.cfg.Locate(ctx)
	if err != nil {
		return cur, fmt.Errorf("look up the current master: %w", err)
	}
	return cur, nil
}

// resumeAt chooses the start from the topic's resume point and the current
// master; found says whether the topic held one.
func (p *Publisher) resumeAt(res Resume, cur failover.Current) (start source.Start, found bool, err error) {
	switch {
	case cur.Record != nil && (!res.Found || cur.Offset >= res.Offset):
		// The newest epoch record is the resume point: the new master
		// starts from its start set.
		return source.Start{Epoch: cur.Record.Epoch, NextTxnSeq: cur.Record.TxnSeq + 1, GTIDSet: cur.Record.StartGTIDSet}, true, nil
	case p.cfg.Locate != nil && res.Found && res.Epoch > cur.Epoch:
		return source.Start{}, false, fmt.Errorf("the topic holds messages of epoch %d but the current master lookup found epoch %d (%s): the epoch index on the nodes misses a promotion; run `rowcast status` and check the epochs table of the bookkeeping schema",
			res.Epoch, cur.Epoch, cur.Master)
	}
	return source.Start{Epoch: max(res.Epoch, cur.Epoch, p.cfg.Epoch), NextTxnSeq: res.NextTxnSeq, GTIDSet: res.GTIDSet}, res.Found, nil
}

// producerFailure waits for the producer to fail; its stop at shutdown, or
// ctx's end, is no failure.
func producerFailure(ctx context.Context, prodErr <-chan error) error {
	select {
	case err := <-prodErr:
		if err == nil || errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	case <-ctx.Done():
		return nil
	}
}

// readMasters reads the master at, then each new master that an epoch
// record names, until ctx ends or a fault that needs a human.
func (p *Publisher) readMasters(ctx context.Context, at readPoint) error {
	for {
		rec, off, err := p.readMaster(ctx, at)
		if err != nil || rec == nil {
			return err
		}
		next, err := p.sourceOf(rec.Master)
		if err != nil {
			return err
		}
		p.log.Warn().Int64("offset", off).Uint64("epoch", rec.Epoch).Str("old_master", at.master).Str("master", rec.Master).
			Str("start_gtid_set", rec.StartGTIDSet).Uint64("txn_seq", rec.TxnSeq).
			Msg("epoch record: following the new master")
		p.metrics.readerRestarts.Inc()
		at = readPoint{master: rec.Master, src: next, found: true,
			start: source.Start{Epoch: rec.Epoch, NextTxnSeq: rec.TxnSeq + 1, GTIDSet: rec.StartGTIDSet}}
	}
}

// drain flushes, at a clean shutdown, what the reader queued.
func (p *Publisher) drain() {
	fctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.producer.Flush(fctx); err != nil {
		p.log.Warn().Err(err).Msg("shutdown: not everything queued was acknowledged; the next start republishes it")
	}
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
func (p *Publisher) readMaster(ctx context.Context, at readPoint) (*pipeline.EpochRecord, int64, error) {
	p.promoted.Store(false)
	p.binlog.reset()
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(mctx)
	var rec *pipeline.EpochRecord
	var recOff int64
	if len(p.cfg.Nodes) > 0 {
		g.Go(func() error {
			r, off, err := p.follow.next(gctx, at.start.Epoch, p.busy, &pipeline.Codec{})
			if err != nil {
				return err
			}
			if r != nil {
				rec, recOff = r, off
				p.promoted.Store(true)
				cancel()
			}
			return nil
		})
	}
	g.Go(func() error {
		defer cancel()
		return p.readFrom(gctx, at)
	})
	g.Go(func() error { p.watchPurge(gctx, at.src); return nil })
	err := g.Wait()
	if rec == nil {
		return nil, 0, err
	}
	p.switchMaster(ctx)
	return rec, recOff, nil
}

// switchMaster ends the old master's part of the topic before the new
// master's is read.
func (p *Publisher) switchMaster(ctx context.Context) {
	// The old master's transaction cut short by the switch: it never
	// completes in the topic (sinks abandon it at the record).
	p.batch, p.buf = p.batch[:0], p.buf[:0]
	// What the old master's reader queued goes out before the new
	// master's first message (after the record: sinks ignore it).
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.producer.Flush(fctx); err != nil && ctx.Err() == nil {
		p.log.Warn().Err(err).Msg("the old master's last messages were not all acknowledged before the switch")
	}
}

// readFrom checks the master (retrying while it does not answer), then
// reads it from at, with its snapshots.
func (p *Publisher) readFrom(ctx context.Context, at readPoint) error {
	src := at.src
	src.OnHeartbeat = p.onHeartbeat
	src.HoldReads = p.holdReads
	src.OnWithheld = p.metrics.withheld.Inc
	src.SkipGTID = p.cfg.SkipGTID
	reader := source.NewReader(src, p.log.With().Str("node", at.master).Logger())
	defer reader.CloseSnapshots()
	info, ok, err := p.awaitMaster(ctx, reader, at.master)
	if !ok {
		return err
	}
	for _, w := range info.Warnings {
		p.log.Warn().Str("master", src.Addr).Msg(w)
	}
	sn, err := p.newSnapshots(ctx, reader, src, !at.found && p.cfg.Start == StartSnapshot)
	if err != nil {
		return err
	}
	defer func() { sn.close(p.promoted.Load()) }()
	start, err := p.startOf(ctx, at, info, reader, sn)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	p.reading(at.master, start, info, reader)
	if start, err = p.closeCutRead(ctx, at, start); err != nil {
		return err
	}
	sctx, stopSnapshots := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); sn.run(sctx) }()
	err = p.read(ctx, reader, start)
	stopSnapshots()
	<-done
	return err
}

// closeCutRead ends a snapshot chunk that a crash cut short at the end of
// the topic: its rows are the master's state at its position, so a copy of
// its last row, marked last, completes it; the reader goes on with the next
// transaction. (Published again, a chunk would differ from the first copy,
// which sinks could not tell apart.)
func (p *Publisher) closeCutRead(ctx context.Context, at readPoint, start source.Start) (source.Start, error) {
	ev := at.cutRead
	if ev == nil || ev.Pos.TxnSeq != start.NextTxnSeq || ev.Pos.Epoch != start.Epoch {
		return start, nil
	}
	end := *ev
	end.Pos.Row++
	end.Pos.Last, end.GTIDSet = true, start.GTIDSet
	if err := p.emit(ctx, &end); err != nil {
		return start, fmt.Errorf("end the snapshot chunk %s cut short: %w", ev.Pos, err)
	}
	p.log.Warn().Stringer("position", end.Pos).Msg("a snapshot chunk cut short by a crash ends the topic: ended it with a copy of its last row")
	start.NextTxnSeq++
	return start, nil
}

// startOf is where the reader starts: the topic's resume point, with the
// snapshots a crash cut short queued again, or for an empty topic what
// cfg.Start says; checked against the master's binlogs.
func (p *Publisher) startOf(ctx context.Context, at readPoint, info source.Info, reader *source.Reader, sn *snapshots) (source.Start, error) {
	start := at.start
	var err error
	if at.found {
		err = sn.resume(ctx)
	} else {
		start.GTIDSet, err = p.configuredStart(ctx, info, sn)
		p.log.Info().Str("start", p.cfg.Start).Str("gtid_set", start.GTIDSet).Msg("changelog is empty: starting from the configured position")
	}
	if err == nil {
		err = reader.CheckResume(ctx, start.GTIDSet)
	}
	return start, err
}

// reading records the master read now and where.
func (p *Publisher) reading(master string, start source.Start, info source.Info, reader *source.Reader) {
	p.epoch = start.Epoch
	p.master = info
	p.lastSeq = start.NextTxnSeq - 1
	p.lastSent = time.Now()
	p.nowMu.Lock()
	p.nowName, p.nowEpoch, p.nowReader = master, start.Epoch, reader
	p.nowMu.Unlock()
}

// awaitMaster checks the master, retrying with backoff while it does not
// answer. ok is false when ctx ended first (err nil) or on a fault that
// needs a human.
func (p *Publisher) awaitMaster(ctx context.Context, reader *source.Reader, name string) (source.Info, bool, error) {
	backoff := 200 * time.Millisecond
	for {
		info, err := reader.Check(ctx)
		switch {
		case err == nil:
			return info, true, nil
		case ctx.Err() != nil:
			return info, false, nil
		case !errors.Is(err, source.ErrStream):
			return info, false, err
		}
		p.health.Set("pipeline", fmt.Errorf("master %s does not answer: %v", name, err))
		p.log.Warn().Err(err).Str("master", name).Dur("backoff", backoff).Msg("the master does not answer; retrying")
		if !sleep(ctx, backoff) {
			return info, false, nil
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// Values of PublisherConfig.Start besides a GTID set.
const (
	StartSnapshot = "snapshot"
	StartCurrent  = "current"
	StartEarliest = "earliest"
)

// configuredStart is the GTID set cfg.Start names, for a topic with nothing
// to resume from; for a snapshot, that of its read view (or the master's
// position when there is no table to snapshot).
func (p *Publisher) configuredStart(ctx context.Context, info source.Info, sn *snapshots) (string, error) {
	switch p.cfg.Start {
	case StartSnapshot:
		set, err := sn.initial(ctx)
		if set == "" && err == nil {
			return info.GTIDSet, nil
		}
		return set, err
	case StartCurrent:
		return info.GTIDSet, nil
	case StartEarliest:
		return "", nil
	default:
		return p.cfg.Start, nil
	}
}

// sleep waits for d; false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
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
		if err := p.flush(ctx); err != nil || !sleep(ctx, backoff) {
			return nil
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
	hint := p.codec.ValueSizeHint(ev)
	// The message's buffer is made once it is this one's turn.
	reserved := hint >= changelog.BigMessageBytes && p.reserveBig(ctx, ev)
	if reserved {
		// The arrays go-mysql's buffer left behind as it grew to the
		// event's size are garbage: collect them before the message's
		// buffer joins the event.
		changelog.FreeGarbage()
	}
	if hint >= bigMessage {
		p.buf = slices.Grow(p.buf, hint+bigValueSlack)
	}
	if p.buf, err = p.codec.AppendValue(p.buf, ev); err != nil {
		if reserved {
			p.producer.UnreserveBig()
		}
		return err
	}
	var token any
	p.openTxn = txnOf(ev)
	if ev.Pos.Last {
		token = &Acked{Pos: ev.Pos, GTIDSet: ev.GTIDSet, CommitTime: ev.CommitTime}
		p.lastSeq = ev.Pos.TxnSeq
		p.openTxn = [2]uint64{}
	}
	p.txnOpen.Store(p.openTxn != [2]uint64{})
	token = p.sizeToken(ev, len(p.buf)-start, token)
	big := len(p.buf)-mid >= bigMessage
	p.batch = append(p.batch, changelog.ProducerMessage{Key: p.buf[start:mid:mid], Value: p.buf[mid:len(p.buf):len(p.buf)], Token: token, Owned: big, Reserved: reserved})
	p.gaveBuf = p.gaveBuf || big
	p.countEvent(ev.Kind)
	p.binlog.event(ev.File)
	if p.cfg.Emitted != nil {
		p.cfg.Emitted(ctx, ev)
	}
	switch {
	case reserved:
		// Encoded: the images point into the binlog event's buffer, which
		// need not stay while Kafka takes the message.
		ev.Before, ev.After = nil, nil
		changelog.FreeGarbage() // the event, before the batch joins the message
		err := p.flush(ctx)
		p.producer.AwaitBig(ctx) // read on once Kafka has it: one big row held at a time
		return err
	case ev.Pos.Last || len(p.batch) >= sendBatch || big:
		return p.flush(ctx)
	}
	return nil
}

// holdReads tells the reader to read no further from the master for now: a
// sink worker of this process applies the big row published last. Not
// while a transaction is open: a sink holding a row of it may wait for the
// rest, which the reader would then never read.
func (p *Publisher) holdReads() bool { return !p.txnOpen.Load() && p.producer.SinksApplyBig() }

// reserveBig waits for a big message's turn (Producer.ReserveBig): one big
// row at a time, and not beside a sink's of this process. A row of a
// transaction already begun does not wait for the sink holding big rows:
// that sink may hold an earlier row of it (big for it, whether reserved here
// or not) and wait for the rest. A transaction emitted again after a
// reconnect has begun, from its first row on.
func (p *Publisher) reserveBig(ctx context.Context, ev *pipeline.Event) bool {
	return p.producer.ReserveBig(ctx, ev.Pos.Row > 0 || txnOf(ev) == p.openTxn)
}

// txnOf is the transaction of ev, as the publisher tells them apart.
func txnOf(ev *pipeline.Event) [2]uint64 { return [2]uint64{ev.Pos.Epoch, ev.Pos.TxnSeq} }

// bigMessage is the encoded size from which emit gives the message's buffer
// to the producer rather than having it copied, and sends it at once: a big
// row is held once by the publisher, not twice, and p.buf does not keep its
// size after it.
const bigMessage = 1 << 20

// bigValueSlack is room beyond ValueSizeHint for a big row's other fields
// and escapes.
const bigValueSlack = 64 << 10

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
	clear(p.batch)
	p.batch = p.batch[:0]
	p.buf = p.buf[:0]
	if p.gaveBuf {
		p.buf, p.gaveBuf = nil, false // the producer holds part of it now
	}
	p.lastSent = time.Now()
	return err
}

// onHeartbeat runs on the reader's goroutine between transactions (file is
// that of a filtered-out transaction, "" at the end of the binlog): when
// nothing was published for HeartbeatInterval, it publishes a heartbeat
// carrying the master's clock and GTID set, so sinks can tell lag from an
// idle master.
func (p *Publisher) onHeartbeat(serverTime time.Time, gtidSet, file string) {
	p.health.Set("pipeline", nil)
	if file == "" {
		p.binlog.idle()
	} else {
		p.binlog.event(file)
	}
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
	if o, ok := token.(*oversized); ok {
		token = o.acked
	}
	a, ok := token.(*Acked)
	if !ok || a == nil {
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
