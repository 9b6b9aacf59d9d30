package changelog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/segmentio/kafka-go"
)

// Message is one record read from the changelog topic.
type Message struct {
	// Offset of the record in partition 0.
	Offset int64
	// Key and Value are the record's bytes. The Consumer and ReadAt never
	// reuse them: the caller may keep them. A null key or value is nil.
	Key   []byte
	Value []byte
	// Time is the record's timestamp. On a topic created by EnsureTopic
	// (message.timestamp.type=CreateTime) it is set by rowcast's producer
	// when it encodes a batch: the same for every record of a produce
	// request, within milliseconds of the broker's append time, and the time
	// OffsetForTime searches. kafka-go ignores a batch's LogAppendTime (it
	// never reads the batch's max timestamp), so on a LogAppendTime topic this
	// is still the producer's time.
	Time time.Time
	// SigErr is set when the topic's config has signing keys and the
	// message's signature header is missing or does not verify
	// (ErrUnsigned, ErrBadSignature): the message is not rowcast's and must
	// be neither applied nor followed.
	SigErr error
	// sig is the signature header's value, kept for Consumer.Verify when
	// the check is deferred (nil: no header).
	sig []byte
	// bigLen is the size of a big value a gated consumer left unread
	// (fetchOnce's bigReads): such a message is never delivered.
	bigLen int
}

// EnsureTopic creates cfg.Topic with cfg.Partitions, cfg.ReplicationFactor,
// retention.ms from cfg.Retention, cleanup.policy=delete,
// message.timestamp.type=CreateTime, min.insync.replicas (cfg.MinInsync),
// unclean.leader.election.enable=false and max.message.bytes
// (cfg.MessageBytes), unless it exists. It returns once the partition has a
// leader. The topic is then checked: exactly one partition, not compacted,
// no unclean leader election, min.insync.replicas and max.message.bytes at
// least the configured ones (ErrTopicLayout, with the kafka-configs command
// that fixes it, otherwise). Nothing is changed on an existing topic.
func EnsureTopic(ctx context.Context, cfg Config) (created bool, err error) {
	if err := cfg.Validate(); err != nil {
		return false, err
	}
	conn, err := newKafkaConn(&cfg)
	if err != nil {
		return false, err
	}
	defer conn.close()

	exists, err := topicExists(ctx, &cfg, conn)
	if err != nil {
		return false, err
	}
	if !exists {
		created, err = createTopic(ctx, &cfg, conn)
		if err != nil {
			return false, err
		}
	}
	if err := waitTopicLeader(ctx, &cfg, conn); err != nil {
		return created, err
	}
	if err := checkTopicLayout(ctx, &cfg, conn); err != nil {
		return created, err
	}
	return created, nil
}

// topicExists asks the cluster's metadata whether the topic exists.
func topicExists(ctx context.Context, cfg *Config, conn *kafkaConn) (bool, error) {
	var exists bool
	err := kafkaRetry(ctx, cfg, conn, "read metadata", func(ctx context.Context) error {
		t, err := topicMetadata(ctx, cfg, conn)
		switch {
		case err != nil:
			return err
		case t == nil || errors.Is(t.Error, kafka.UnknownTopicOrPartition):
			exists = false
			return nil
		case t.Error != nil:
			return t.Error
		}
		exists = true
		return nil
	})
	return exists, err
}

// topicMetadata asks the cluster's metadata about the topic; nil when the
// answer does not name it.
func topicMetadata(ctx context.Context, cfg *Config, conn *kafkaConn) (*kafka.Topic, error) {
	md, err := conn.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{cfg.Topic}})
	if err != nil {
		return nil, err
	}
	for i := range md.Topics {
		if md.Topics[i].Name == cfg.Topic {
			return &md.Topics[i], nil
		}
	}
	return nil, nil
}

func createTopic(ctx context.Context, cfg *Config, conn *kafkaConn) (bool, error) {
	var created bool
	err := kafkaRetry(ctx, cfg, conn, "create topic", func(ctx context.Context) error {
		res, err := conn.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
			Topic:             cfg.Topic,
			NumPartitions:     cfg.Partitions,
			ReplicationFactor: cfg.ReplicationFactor,
			ConfigEntries:     createEntries(cfg),
		}}})
		if err != nil {
			return err
		}
		err = res.Errors[cfg.Topic]
		switch {
		case err == nil:
			created = true
		case errors.Is(err, kafka.TopicAlreadyExists):
			// Someone else created it meanwhile: check it like any other.
			created = false
			err = nil
		}
		return err
	})
	return created, err
}

// waitTopicLeader waits until partition 0 has a leader, so that the first
// produce does not race the topic's creation.
func waitTopicLeader(ctx context.Context, cfg *Config, conn *kafkaConn) error {
	return kafkaRetry(ctx, cfg, conn, "wait for a partition leader", func(ctx context.Context) error {
		t, err := topicMetadata(ctx, cfg, conn)
		switch {
		case err != nil:
			return err
		case t == nil:
			return kafka.UnknownTopicOrPartition
		case t.Error != nil:
			return t.Error
		}
		return partitionLeader(cfg, t)
	})
}

// partitionLeader checks that t has one partition, with a leader.
func partitionLeader(cfg *Config, t *kafka.Topic) error {
	if n := len(t.Partitions); n != 1 {
		return fmt.Errorf("topic %s has %d partitions: rowcast keeps the master's commit order in one partition; "+
			"delete the topic and let rowcast create it, or set the kafka topic to a one-partition topic: %w",
			cfg.Topic, n, ErrTopicLayout)
	}
	p := t.Partitions[0]
	switch {
	case p.Error != nil:
		return p.Error
	case p.Leader.Host == "":
		return kafka.LeaderNotAvailable
	}
	return nil
}

// checkTopicLayout refuses a topic whose settings rowcast cannot rely on
// (checkTopicSettings): compaction, which keeps only the last record of each
// key and would delete row changes a new replica needs, among them.
func checkTopicLayout(ctx context.Context, cfg *Config, conn *kafkaConn) error {
	replicas := 0
	if t, err := topicMetadata(ctx, cfg, conn); err == nil && t != nil && len(t.Partitions) > 0 {
		replicas = len(t.Partitions[0].Replicas)
	}
	return checkTopicSettings(ctx, cfg, conn, replicas)
}

// FirstOffset returns the earliest offset the topic still holds (the log
// start offset). It equals EndOffset when the topic is empty.
func FirstOffset(ctx context.Context, cfg Config) (int64, error) {
	return listOffsetOnce(ctx, cfg, kafka.FirstOffset)
}

// EndOffset returns the high watermark: the offset the next acknowledged
// record will get, one past the last record a consumer can read.
func EndOffset(ctx context.Context, cfg Config) (int64, error) {
	return listOffsetOnce(ctx, cfg, kafka.LastOffset)
}

// listOffsetOnce is listOffset on a connection of its own.
func listOffsetOnce(ctx context.Context, cfg Config, ts int64) (int64, error) {
	if err := cfg.Validate(); err != nil {
		return 0, err
	}
	conn, err := newKafkaConn(&cfg)
	if err != nil {
		return 0, err
	}
	defer conn.close()
	return listOffset(ctx, &cfg, conn, ts)
}

// OffsetForTime returns the offset of the first record whose timestamp is at
// or after t (see Message.Time), or EndOffset when there is none.
func OffsetForTime(ctx context.Context, cfg Config, t time.Time) (int64, error) {
	if err := cfg.Validate(); err != nil {
		return 0, err
	}
	conn, err := newKafkaConn(&cfg)
	if err != nil {
		return 0, err
	}
	defer conn.close()
	ms := t.UnixMilli()
	if ms < 0 {
		ms = 0 // negative values are ListOffsets' special requests
	}
	off, err := listOffset(ctx, &cfg, conn, ms)
	if err != nil || off >= 0 {
		return off, err
	}
	return listOffset(ctx, &cfg, conn, kafka.LastOffset)
}

// ReadAt returns the records from offset on, at most max of them, stopping at
// the end of the topic as it was when ReadAt started. It returns
// ErrOffsetOutOfRange when offset is before the first retained record or
// after the end.
func ReadAt(ctx context.Context, cfg Config, offset int64, max int) ([]Message, error) {
	return readAt(ctx, cfg, offset, max, 0)
}

// readAt is ReadAt and ReadAtMost: maxBytes 0 is no bound by bytes.
func readAt(ctx context.Context, cfg Config, offset int64, max, maxBytes int) ([]Message, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if max <= 0 {
		return nil, nil
	}
	conn, err := newKafkaConn(&cfg)
	if err != nil {
		return nil, err
	}
	defer conn.close()
	end, err := listOffset(ctx, &cfg, conn, kafka.LastOffset)
	if err != nil {
		return nil, err
	}
	if offset < 0 || offset > end {
		return nil, offsetOutOfRange(ctx, &cfg, conn, offset)
	}
	r := rangeReader{cfg: &cfg, conn: conn, offset: offset, end: end, max: max, maxBytes: maxBytes}
	return r.read(ctx)
}

// rangeReader is ReadAt's reading of the records from offset to end.
type rangeReader struct {
	cfg    *Config
	conn   *kafkaConn
	offset int64 // the next record to read
	end    int64
	max    int
	out    []Message
	arena  kafkaArena
	ratio  float64 // the compression estimate (consumer.go, fetchBytes)

	maxBytes int // stop once out holds this many bytes (0: no bound)
	bytes    int // what out holds, by MessageBytes
}

func (r *rangeReader) read(ctx context.Context) ([]Message, error) {
	for len(r.out) < r.max && r.offset < r.end && !r.full() {
		got, err := r.fetch(ctx)
		if err != nil {
			return nil, err
		}
		r.keep(got)
		if len(got) > 0 {
			continue
		}
		// Records below end exist, so an empty answer means they were
		// deleted meanwhile; ask again rather than spin.
		if err := r.checkRetained(ctx); err != nil {
			return nil, err
		}
		if err := kafkaSleep(ctx, r.cfg.MinBackoff); err != nil {
			return nil, err
		}
	}
	return r.out, nil
}

// full reports whether out reached maxBytes.
func (r *rangeReader) full() bool { return r.maxBytes > 0 && r.bytes >= r.maxBytes }

// fetchRoom is the fetch size bound: PrefetchBytes, or less when maxBytes
// leaves less room.
func (r *rangeReader) fetchRoom() int {
	if r.maxBytes > 0 {
		return max(1, min(r.cfg.PrefetchBytes, r.maxBytes-r.bytes))
	}
	return r.cfg.PrefetchBytes
}

// fetch reads the records from r.offset on, as one fetch answers.
func (r *rangeReader) fetch(ctx context.Context) ([]Message, error) {
	var got []Message
	if r.ratio == 0 {
		r.ratio = initialFetchRatio
	}
	err := kafkaRetry(ctx, r.cfg, r.conn, "fetch", func(ctx context.Context) error {
		maxBytes := fetchBytes(r.fetchRoom(), r.ratio)
		var (
			size int
			hwm  int64
			err  error
		)
		got, size, hwm, err = fetchOnce(ctx, r.cfg, r.conn, r.offset, maxBytes, &r.arena, false, bigReads{})
		if err == nil {
			r.ratio = nextFetchRatio(r.ratio, got, size, maxBytes, hwm)
		}
		return err
	})
	if errors.Is(err, kafka.OffsetOutOfRange) {
		return nil, offsetOutOfRange(ctx, r.cfg, r.conn, r.offset)
	}
	return got, err
}

// keep adds the fetched records up to max and end.
func (r *rangeReader) keep(got []Message) {
	for _, m := range got {
		if len(r.out) == r.max || m.Offset >= r.end || r.full() {
			return
		}
		r.out = append(r.out, m)
		r.offset = m.Offset + 1
		r.bytes += m.Size()
	}
}

// checkRetained refuses to go on when retention deleted r.offset.
func (r *rangeReader) checkRetained(ctx context.Context) error {
	first, err := listOffset(ctx, r.cfg, r.conn, kafka.FirstOffset)
	if err != nil {
		return err
	}
	if first > r.offset {
		return offsetOutOfRange(ctx, r.cfg, r.conn, r.offset)
	}
	return nil
}

// offsetOutOfRange builds the error for a fetch the broker refused with
// OFFSET_OUT_OF_RANGE, naming the range the topic holds now.
func offsetOutOfRange(ctx context.Context, cfg *Config, conn *kafkaConn, offset int64) error {
	first, err1 := listOffset(ctx, cfg, conn, kafka.FirstOffset)
	end, err2 := listOffset(ctx, cfg, conn, kafka.LastOffset)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("topic %s partition 0: offset %d is out of range (the available range could not be read: %v): %w",
			cfg.Topic, offset, err, ErrOffsetOutOfRange)
	}
	if offset < first {
		return fmt.Errorf("topic %s partition 0: offset %d is no longer retained, the earliest available offset is %d "+
			"(%d records were deleted by retention before this consumer read them): re-seed the replica from a snapshot, "+
			"or raise the topic's retention.ms so that it outlives a sink's downtime: %w",
			cfg.Topic, offset, first, first-offset, ErrOffsetOutOfRange)
	}
	return fmt.Errorf("topic %s partition 0: offset %d is beyond the end of the topic (available offsets %d to %d): "+
		"the topic was deleted and recreated, or records were lost in an unclean leader election; "+
		"the checkpoint does not belong to this topic: re-seed the replica: %w",
		cfg.Topic, offset, first, end-1, ErrOffsetOutOfRange)
}

// listOffset sends one ListOffsets request for partition 0: ts is
// kafka.FirstOffset, kafka.LastOffset or a time in Unix milliseconds. For a
// time it returns -1 when no record is that recent.
func listOffset(ctx context.Context, cfg *Config, conn *kafkaConn, ts int64) (int64, error) {
	var off int64
	err := kafkaRetry(ctx, cfg, conn, "list offsets", func(ctx context.Context) error {
		res, err := conn.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
			Topics: map[string][]kafka.OffsetRequest{cfg.Topic: {{Partition: 0, Timestamp: ts}}},
		})
		if err != nil {
			return err
		}
		for _, p := range res.Topics[cfg.Topic] {
			if p.Partition != 0 {
				continue
			}
			if p.Error != nil {
				return p.Error
			}
			switch ts {
			case kafka.FirstOffset:
				off = p.FirstOffset
			case kafka.LastOffset:
				off = p.LastOffset
			default:
				// kafka-go files a by-time answer in a map keyed by offset.
				off = -1
				for o := range p.Offsets {
					off = o
				}
			}
			return nil
		}
		return fmt.Errorf("no answer for partition 0 of topic %s: %w", cfg.Topic, kafka.UnknownTopicOrPartition)
	})
	return off, err
}

// fetchOnce sends one fetch request from offset and decodes the records at or
// after offset into arena-backed messages. It returns their accounted size
// (see producerEntryOverhead) and the partition's high watermark. A broker
// error for the partition is returned as the error. deferVerify leaves the
// signature checks to Consumer.Verify (Config.DeferVerify).
//
// big says which big values to leave unread: the message carries only their
// size (bigLen), for a consumer that will drop it and fetch it again under
// the big message gate.
func fetchOnce(ctx context.Context, cfg *Config, conn *kafkaConn, offset int64, maxBytes int, arena *kafkaArena, deferVerify bool, big bigReads) ([]Message, int, int64, error) {
	res, err := conn.client.Fetch(ctx, &kafka.FetchRequest{
		Topic:     cfg.Topic,
		Partition: 0,
		Offset:    offset,
		MinBytes:  1,
		MaxBytes:  int64(maxBytes),
		MaxWait:   cfg.FetchMaxWait,
	})
	if err != nil {
		return nil, 0, 0, err
	}
	if res.Error != nil {
		return nil, 0, 0, res.Error
	}
	var (
		msgs []Message
		size int
	)
	for {
		r, err := res.Records.ReadRecord()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, 0, fmt.Errorf("decode fetched records: %w", err)
		}
		// A compressed batch comes whole, so it may start before offset.
		if r.Offset < offset {
			closeKafkaBytes(r)
			continue
		}
		m := Message{Offset: r.Offset, Time: r.Time}
		if big.skip(r.Value) {
			m.bigLen = r.Value.Len()
			closeKafkaBytes(r)
			msgs = append(msgs, m)
			continue
		}
		m.Key, err = arena.read(r.Key)
		if err == nil {
			m.Value, err = arena.read(r.Value)
		}
		closeKafkaBytes(r)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("decode record at offset %d: %w", r.Offset, err)
		}
		if deferVerify && cfg.Signing != nil {
			m.sig, m.SigErr = sigHeader(r.Headers), ErrNotVerified
		} else {
			m.SigErr = cfg.verify(&m, r.Headers)
		}
		msgs = append(msgs, m)
		size += len(m.Key) + len(m.Value) + producerEntryOverhead
	}
	return msgs, size, res.HighWatermark, nil
}

// bigReads is how many values of size bytes or more fetchOnce reads; it
// leaves the others unread. The zero value reads every value.
type bigReads struct{ size, quota int }

// skip reports whether to leave v unread, counting the big values read.
func (b *bigReads) skip(v kafka.Bytes) bool {
	if b.size == 0 || v == nil || v.Len() < b.size {
		return false
	}
	if b.quota == 0 {
		return true
	}
	b.quota--
	return false
}

// closeKafkaBytes releases the buffers kafka-go holds for a fetched record.
func closeKafkaBytes(r *kafka.Record) {
	if r.Key != nil {
		r.Key.Close()
	}
	if r.Value != nil {
		r.Value.Close()
	}
}

// kafkaArena copies fetched keys and values into shared slabs: one allocation
// per slab instead of two per record. A slab is freed by the garbage
// collector once no message refers to it.
type kafkaArena struct{ slab []byte }

const kafkaSlabSize = 256 << 10

// alloc returns n bytes, never nil: an empty key or value must stay empty,
// not turn into a null one.
func (a *kafkaArena) alloc(n int) []byte {
	if n == 0 {
		return []byte{}
	}
	if n > kafkaSlabSize/4 {
		return make([]byte, n)
	}
	if cap(a.slab)-len(a.slab) < n {
		a.slab = make([]byte, 0, kafkaSlabSize)
	}
	start := len(a.slab)
	a.slab = a.slab[:start+n]
	return a.slab[start : start+n : start+n]
}

func (a *kafkaArena) read(b kafka.Bytes) ([]byte, error) {
	if b == nil {
		return nil, nil
	}
	dst := a.alloc(b.Len())
	_, err := io.ReadFull(b, dst)
	return dst, err
}

// keep is copy, but for a value the caller gave away (owned) that the arena
// would not share a slab with anyway: that one is kept as it is.
func (a *kafkaArena) keep(b []byte, owned bool) []byte {
	if owned && len(b) > kafkaSlabSize/4 {
		return b
	}
	return a.copy(b)
}

func (a *kafkaArena) copy(b []byte) []byte {
	if b == nil {
		return nil
	}
	dst := a.alloc(len(b))
	copy(dst, b)
	return dst
}

// kafkaRetry runs a one-shot request, retrying transient errors with backoff
// for up to cfg.RequestTimeout, and wraps the final error with what failed
// and the advice. A topic the cluster confirms twice to be missing is
// ErrTopicNotFound at once.
func kafkaRetry(ctx context.Context, cfg *Config, conn *kafkaConn, what string, fn func(context.Context) error) error {
	deadline := time.Now().Add(cfg.RequestTimeout)
	bo := newKafkaBackoff(cfg)
	missing := 0
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		final, err := giveUp(ctx, cfg, conn, what, err, &missing)
		switch {
		case final != nil:
			return final
		case time.Now().After(deadline):
			return fmt.Errorf("kafka %s on topic %s: still failing after %d attempts in %v: %w: check that the brokers %v are up and reachable%s",
				what, cfg.Topic, attempt, cfg.RequestTimeout, err, cfg.Brokers, closedHint(cfg, err))
		}
		if serr := kafkaSleep(ctx, bo.delay()); serr != nil {
			return fmt.Errorf("kafka %s on topic %s: %w (last error: %v)", what, cfg.Topic, serr, err)
		}
	}
}

// giveUp decides after a failed attempt of kafkaRetry: it returns the final
// error, or nil and the error to name should the retries run out (the
// metadata request's own when a missing topic cannot be confirmed: it says
// why). missing counts the attempts in a row that found the topic missing.
func giveUp(ctx context.Context, cfg *Config, conn *kafkaConn, what string, err error, missing *int) (final, last error) {
	if ctx.Err() != nil {
		return fmt.Errorf("kafka %s on topic %s: %w (last error: %v)", what, cfg.Topic, ctx.Err(), err), err
	}
	if errors.Is(err, ErrTopicLayout) || errors.Is(err, kafka.OffsetOutOfRange) {
		return err, err
	}
	c := classifyKafkaErr(err)
	if !c.retry {
		return fmt.Errorf("kafka %s on topic %s: %w: %s", what, cfg.Topic, err, kafkaFix(err, cfg)), err
	}
	if c.refresh {
		conn.refresh()
	}
	gone, merr := conn.confirmMissing(ctx, cfg.Topic, c)
	if merr != nil {
		err = merr
	}
	if !gone {
		*missing = 0
		return nil, err
	}
	*missing++
	if *missing >= 2 {
		return topicNotFound(cfg), err
	}
	return nil, err
}

func topicNotFound(cfg *Config) error {
	return fmt.Errorf("topic %s does not exist on brokers %v: create it (EnsureTopic; the pipeline service creates it at start) or correct the topic name: %w",
		cfg.Topic, cfg.Brokers, ErrTopicNotFound)
}

// Topic is the read side of the changelog topic (partition 0), as the
// workflows that read positions and epochs back see it. Tests replace it
// with a slice of messages.
type Topic interface {
	FirstOffset(ctx context.Context) (int64, error)
	EndOffset(ctx context.Context) (int64, error)
	ReadAt(ctx context.Context, offset int64, max int) ([]Message, error)
}

// TopicOf is the topic cfg names, as a Topic.
func TopicOf(cfg Config) Topic { return configTopic{cfg} }

type configTopic struct{ cfg Config }

func (t configTopic) FirstOffset(ctx context.Context) (int64, error) { return FirstOffset(ctx, t.cfg) }
func (t configTopic) EndOffset(ctx context.Context) (int64, error)   { return EndOffset(ctx, t.cfg) }
func (t configTopic) ReadAt(ctx context.Context, offset int64, max int) ([]Message, error) {
	return ReadAt(ctx, t.cfg, offset, max)
}
