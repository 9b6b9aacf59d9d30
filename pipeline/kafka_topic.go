package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
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
}

// EnsureTopic creates cfg.Topic with cfg.Partitions, cfg.ReplicationFactor,
// retention.ms from cfg.Retention, cleanup.policy=delete and
// message.timestamp.type=CreateTime, unless it exists. It returns once the
// partition has a leader. An existing topic is checked: it must have exactly
// one partition and must not be compacted (ErrTopicLayout otherwise); its
// other settings are left as they are.
func EnsureTopic(ctx context.Context, cfg KafkaConfig) (created bool, err error) {
	if err := cfg.Validate(); err != nil {
		return false, err
	}
	conn := newKafkaConn(&cfg)
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
func topicExists(ctx context.Context, cfg *KafkaConfig, conn *kafkaConn) (bool, error) {
	var exists bool
	err := kafkaRetry(ctx, cfg, conn, "read metadata", func(ctx context.Context) error {
		md, err := conn.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{cfg.Topic}})
		if err != nil {
			return err
		}
		for _, t := range md.Topics {
			if t.Name != cfg.Topic {
				continue
			}
			switch {
			case t.Error == nil:
				exists = true
			case errors.Is(t.Error, kafka.UnknownTopicOrPartition):
				exists = false
			default:
				return t.Error
			}
			return nil
		}
		return nil
	})
	return exists, err
}

func createTopic(ctx context.Context, cfg *KafkaConfig, conn *kafkaConn) (bool, error) {
	retention := int64(-1)
	if cfg.Retention > 0 {
		retention = cfg.Retention.Milliseconds()
	}
	var created bool
	err := kafkaRetry(ctx, cfg, conn, "create topic", func(ctx context.Context) error {
		res, err := conn.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
			Topic:             cfg.Topic,
			NumPartitions:     cfg.Partitions,
			ReplicationFactor: cfg.ReplicationFactor,
			ConfigEntries: []kafka.ConfigEntry{
				{ConfigName: "retention.ms", ConfigValue: strconv.FormatInt(retention, 10)},
				{ConfigName: "cleanup.policy", ConfigValue: "delete"},
				{ConfigName: "message.timestamp.type", ConfigValue: "CreateTime"},
			},
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
func waitTopicLeader(ctx context.Context, cfg *KafkaConfig, conn *kafkaConn) error {
	return kafkaRetry(ctx, cfg, conn, "wait for a partition leader", func(ctx context.Context) error {
		md, err := conn.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{cfg.Topic}})
		if err != nil {
			return err
		}
		for _, t := range md.Topics {
			if t.Name != cfg.Topic {
				continue
			}
			if t.Error != nil {
				return t.Error
			}
			if n := len(t.Partitions); n != 1 {
				return fmt.Errorf("topic %s has %d partitions: rowcast keeps the master's commit order in one partition; "+
					"delete the topic and let rowcast create it, or set the kafka topic to a one-partition topic: %w",
					cfg.Topic, n, ErrTopicLayout)
			}
			p := t.Partitions[0]
			if p.Error != nil {
				return p.Error
			}
			if p.Leader.Host == "" {
				return kafka.LeaderNotAvailable
			}
			return nil
		}
		return kafka.UnknownTopicOrPartition
	})
}

// checkTopicLayout refuses a compacted topic: compaction keeps only the last
// record of each key, which would delete row changes a new replica needs.
func checkTopicLayout(ctx context.Context, cfg *KafkaConfig, conn *kafkaConn) error {
	return kafkaRetry(ctx, cfg, conn, "describe topic config", func(ctx context.Context) error {
		res, err := conn.client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{
			Resources: []kafka.DescribeConfigRequestResource{{
				ResourceType: kafka.ResourceTypeTopic,
				ResourceName: cfg.Topic,
				ConfigNames:  []string{"cleanup.policy"},
			}},
		})
		if err != nil {
			return err
		}
		for _, r := range res.Resources {
			if r.Error != nil {
				return r.Error
			}
			for _, e := range r.ConfigEntries {
				if e.ConfigName == "cleanup.policy" && strings.Contains(e.ConfigValue, "compact") {
					return fmt.Errorf("topic %s has cleanup.policy=%s: compaction would delete row changes; "+
						"set cleanup.policy=delete (kafka-configs --alter --entity-type topics --entity-name %s --add-config cleanup.policy=delete): %w",
						cfg.Topic, e.ConfigValue, cfg.Topic, ErrTopicLayout)
				}
			}
		}
		return nil
	})
}

// FirstOffset returns the earliest offset the topic still holds (the log
// start offset). It equals EndOffset when the topic is empty.
func FirstOffset(ctx context.Context, cfg KafkaConfig) (int64, error) {
	if err := cfg.Validate(); err != nil {
		return 0, err
	}
	conn := newKafkaConn(&cfg)
	defer conn.close()
	return listOffset(ctx, &cfg, conn, kafka.FirstOffset)
}

// EndOffset returns the high watermark: the offset the next acknowledged
// record will get, one past the last record a consumer can read.
func EndOffset(ctx context.Context, cfg KafkaConfig) (int64, error) {
	if err := cfg.Validate(); err != nil {
		return 0, err
	}
	conn := newKafkaConn(&cfg)
	defer conn.close()
	return listOffset(ctx, &cfg, conn, kafka.LastOffset)
}

// OffsetForTime returns the offset of the first record whose timestamp is at
// or after t (see Message.Time), or EndOffset when there is none.
func OffsetForTime(ctx context.Context, cfg KafkaConfig, t time.Time) (int64, error) {
	if err := cfg.Validate(); err != nil {
		return 0, err
	}
	conn := newKafkaConn(&cfg)
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
func ReadAt(ctx context.Context, cfg KafkaConfig, offset int64, max int) ([]Message, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if max <= 0 {
		return nil, nil
	}
	conn := newKafkaConn(&cfg)
	defer conn.close()
	end, err := listOffset(ctx, &cfg, conn, kafka.LastOffset)
	if err != nil {
		return nil, err
	}
	if offset < 0 || offset > end {
		return nil, offsetOutOfRange(ctx, &cfg, conn, offset)
	}
	var (
		out   []Message
		arena kafkaArena
	)
	for len(out) < max && offset < end {
		var got []Message
		err := kafkaRetry(ctx, &cfg, conn, "fetch", func(ctx context.Context) error {
			var err error
			got, _, _, err = fetchOnce(ctx, &cfg, conn, offset, cfg.PrefetchBytes, &arena)
			return err
		})
		if errors.Is(err, kafka.OffsetOutOfRange) {
			return nil, offsetOutOfRange(ctx, &cfg, conn, offset)
		}
		if err != nil {
			return nil, err
		}
		for _, m := range got {
			if len(out) == max || m.Offset >= end {
				break
			}
			out = append(out, m)
			offset = m.Offset + 1
		}
		if len(got) == 0 {
			// Records below end exist, so an empty answer means they were
			// deleted meanwhile; ask again rather than spin.
			first, err := listOffset(ctx, &cfg, conn, kafka.FirstOffset)
			if err != nil {
				return nil, err
			}
			if first > offset {
				return nil, offsetOutOfRange(ctx, &cfg, conn, offset)
			}
			if err := kafkaSleep(ctx, cfg.MinBackoff); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// offsetOutOfRange builds the error for a fetch the broker refused with
// OFFSET_OUT_OF_RANGE, naming the range the topic holds now.
func offsetOutOfRange(ctx context.Context, cfg *KafkaConfig, conn *kafkaConn, offset int64) error {
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
func listOffset(ctx context.Context, cfg *KafkaConfig, conn *kafkaConn, ts int64) (int64, error) {
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
// error for the partition is returned as the error.
func fetchOnce(ctx context.Context, cfg *KafkaConfig, conn *kafkaConn, offset int64, maxBytes int, arena *kafkaArena) ([]Message, int, int64, error) {
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
		m.Key, err = arena.read(r.Key)
		if err == nil {
			m.Value, err = arena.read(r.Value)
		}
		closeKafkaBytes(r)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("decode record at offset %d: %w", r.Offset, err)
		}
		msgs = append(msgs, m)
		size += len(m.Key) + len(m.Value) + producerEntryOverhead
	}
	return msgs, size, res.HighWatermark, nil
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
func kafkaRetry(ctx context.Context, cfg *KafkaConfig, conn *kafkaConn, what string, fn func(context.Context) error) error {
	deadline := time.Now().Add(cfg.RequestTimeout)
	bo := newKafkaBackoff(cfg)
	missing := 0
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("kafka %s on topic %s: %w (last error: %v)", what, cfg.Topic, ctx.Err(), err)
		}
		if errors.Is(err, ErrTopicLayout) || errors.Is(err, kafka.OffsetOutOfRange) {
			return err
		}
		c := classifyKafkaErr(err)
		if !c.retry {
			return fmt.Errorf("kafka %s on topic %s: %w: %s", what, cfg.Topic, err, kafkaFix(err, cfg))
		}
		if c.refresh {
			conn.refresh()
		}
		gone := false
		if c.kind == KafkaErrUnknownTopic {
			var merr error
			if gone, merr = conn.topicMissing(ctx, cfg.Topic); merr != nil {
				err = merr // why there is no metadata
			}
		}
		if gone {
			missing++
		} else {
			missing = 0
		}
		if missing >= 2 {
			return topicNotFound(cfg)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kafka %s on topic %s: still failing after %d attempts in %v: %w: check that the brokers %v are up and reachable",
				what, cfg.Topic, attempt, cfg.RequestTimeout, err, cfg.Brokers)
		}
		if serr := kafkaSleep(ctx, bo.delay()); serr != nil {
			return fmt.Errorf("kafka %s on topic %s: %w (last error: %v)", what, cfg.Topic, serr, err)
		}
	}
}

func topicNotFound(cfg *KafkaConfig) error {
	return fmt.Errorf("topic %s does not exist on brokers %v: create it (EnsureTopic; the pipeline service creates it at start) or correct the topic name: %w",
		cfg.Topic, cfg.Brokers, ErrTopicNotFound)
}
