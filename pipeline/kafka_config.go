package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// KafkaConfig describes the changelog topic and how rowcast talks to it. The
// producer, the consumer and the topic helpers all take it; a zero field gets
// the default named in its comment (see setDefaults).
type KafkaConfig struct {
	// Brokers is the bootstrap list, "host:port" each. Required.
	Brokers []string
	// Topic is the changelog topic. Required.
	Topic string
	// Partitions of the topic when EnsureTopic creates it. Default 1, and 1
	// is the only value accepted: the producer writes the master's commit
	// order to partition 0, and a topic with more partitions is refused by
	// EnsureTopic.
	Partitions int
	// ReplicationFactor when EnsureTopic creates the topic. Default 1, which
	// suits a single local broker only: use 3 in production (with the
	// broker's min.insync.replicas=2), since acks=all is only as strong as the
	// in-sync replica set.
	ReplicationFactor int
	// Retention is the topic's retention.ms when EnsureTopic creates it.
	// Default 7 days (0 means the default); -1 keeps records forever. A sink
	// whose checkpoint is older than the retention cannot catch up and must be
	// re-seeded (ErrOffsetOutOfRange).
	Retention time.Duration
	// Compression of produced batches: none, gzip, snappy, lz4 or zstd.
	// Default lz4.
	Compression string
	// MaxBatchBytes bounds one produce request: the sum of the keys and
	// values it carries, before compression. Default 1 MiB, which stays under
	// the broker's default max.message.bytes (1 MiB + 12 bytes) after
	// compression. A single message larger than this is sent alone.
	MaxBatchBytes int
	// MaxBatchMessages bounds the number of messages in one produce request.
	// Default 10000.
	MaxBatchMessages int
	// Linger is how long the producer waits for a batch to fill when the
	// queue holds less than a full batch and no request is in flight.
	// Default 2 ms; a negative value sends at once. Messages that arrive while
	// a request is in flight are batched anyway.
	Linger time.Duration
	// MaxBufferedBytes bounds the producer's queue, counted as keys plus
	// values plus a fixed overhead per message (producerEntryOverhead), from
	// Send until Kafka acknowledges the message. Send blocks while the queue
	// is full. Default 64 MiB.
	MaxBufferedBytes int
	// RequestTimeout bounds one request to a broker: the producer's timeout
	// for acks=all is half of it, and a one-shot helper (EndOffset, ReadAt,
	// ...) gives up retrying transient errors after it. Default 30 s.
	RequestTimeout time.Duration
	// MinBackoff is the first wait after a failed request; it doubles after
	// each further failure up to MaxBackoff. Defaults 100 ms and 10 s.
	MinBackoff time.Duration
	// MaxBackoff is the longest wait between two retries. Default 10 s.
	MaxBackoff time.Duration
	// ClientID is the client.id brokers see in their logs and quotas.
	// Default "rowcast".
	ClientID string
	// PrefetchBytes bounds what a Consumer reads ahead of Next, counted like
	// MaxBufferedBytes. A single record batch larger than the bound is still
	// fetched whole (the broker returns at least one batch), so the true
	// bound is PrefetchBytes plus one batch. Default 16 MiB.
	PrefetchBytes int
	// FetchMaxWait is how long the broker holds a fetch request open when
	// there is nothing new to read. New messages are returned at once; this
	// only sets the polling period of an idle consumer. Default 500 ms.
	FetchMaxWait time.Duration
}

// Defaults of KafkaConfig.
const (
	DefaultKafkaRetention        = 7 * 24 * time.Hour
	DefaultKafkaCompression      = "lz4"
	DefaultKafkaMaxBatchBytes    = 1 << 20
	DefaultKafkaMaxBatchMessages = 10000
	DefaultKafkaLinger           = 2 * time.Millisecond
	DefaultKafkaMaxBufferedBytes = 64 << 20
	DefaultKafkaRequestTimeout   = 30 * time.Second
	DefaultKafkaMinBackoff       = 100 * time.Millisecond
	DefaultKafkaMaxBackoff       = 10 * time.Second
	DefaultKafkaClientID         = "rowcast"
	DefaultKafkaPrefetchBytes    = 16 << 20
	DefaultKafkaFetchMaxWait     = 500 * time.Millisecond
)

func (c *KafkaConfig) setDefaults() {
	if c.Partitions == 0 {
		c.Partitions = 1
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = 1
	}
	if c.Retention == 0 {
		c.Retention = DefaultKafkaRetention
	}
	if c.Compression == "" {
		c.Compression = DefaultKafkaCompression
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = DefaultKafkaMaxBatchBytes
	}
	if c.MaxBatchMessages == 0 {
		c.MaxBatchMessages = DefaultKafkaMaxBatchMessages
	}
	if c.Linger == 0 {
		c.Linger = DefaultKafkaLinger
	}
	if c.MaxBufferedBytes == 0 {
		c.MaxBufferedBytes = DefaultKafkaMaxBufferedBytes
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultKafkaRequestTimeout
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultKafkaMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultKafkaMaxBackoff
	}
	if c.ClientID == "" {
		c.ClientID = DefaultKafkaClientID
	}
	if c.PrefetchBytes == 0 {
		c.PrefetchBytes = DefaultKafkaPrefetchBytes
	}
	if c.FetchMaxWait == 0 {
		c.FetchMaxWait = DefaultKafkaFetchMaxWait
	}
}

var kafkaTopicName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)

// Validate fills in the defaults and checks every field, naming the field and
// the fix. It returns all problems at once.
func (c *KafkaConfig) Validate() error {
	c.setDefaults()
	var bad []string
	add := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }

	if len(c.Brokers) == 0 {
		add("kafka Brokers is empty: give at least one bootstrap broker as host:port")
	}
	for _, b := range c.Brokers {
		if host, port, err := net.SplitHostPort(b); err != nil || host == "" || port == "" {
			add("kafka Brokers: %q is not host:port (e.g. 127.0.0.1:9092)", b)
		}
	}
	switch {
	case c.Topic == "":
		add("kafka Topic is empty: name the changelog topic")
	case !kafkaTopicName.MatchString(c.Topic) || c.Topic == "." || c.Topic == "..":
		add("kafka Topic %q is not a valid topic name: use 1 to 249 characters of [A-Za-z0-9._-]", c.Topic)
	}
	if c.Partitions != 1 {
		add("kafka Partitions is %d: rowcast keeps the master's commit order in one partition, set it to 1", c.Partitions)
	}
	if c.ReplicationFactor < 1 || c.ReplicationFactor > 32767 {
		add("kafka ReplicationFactor is %d: set 1 for a single broker, 3 in production", c.ReplicationFactor)
	}
	if c.Retention < -1 || (c.Retention > 0 && c.Retention < time.Millisecond) {
		add("kafka Retention is %v: use a duration of at least 1ms, or -1 to keep records forever", c.Retention)
	}
	if _, err := parseKafkaCompression(c.Compression); err != nil {
		add("kafka Compression: %v", err)
	}
	if c.MaxBatchBytes < 1 {
		add("kafka MaxBatchBytes is %d: use a positive size, default 1 MiB", c.MaxBatchBytes)
	}
	if c.MaxBatchMessages < 1 {
		add("kafka MaxBatchMessages is %d: use a positive count, default 10000", c.MaxBatchMessages)
	}
	if c.MaxBufferedBytes < c.MaxBatchBytes {
		add("kafka MaxBufferedBytes (%d) is smaller than MaxBatchBytes (%d): the queue must hold at least one full batch; raise it (default 64 MiB)", c.MaxBufferedBytes, c.MaxBatchBytes)
	}
	if c.RequestTimeout < 100*time.Millisecond {
		add("kafka RequestTimeout is %v: use at least 100ms, default 30s", c.RequestTimeout)
	}
	if c.MinBackoff < 0 {
		add("kafka MinBackoff is %v: use a positive duration, default 100ms", c.MinBackoff)
	}
	if c.MaxBackoff < c.MinBackoff {
		add("kafka MaxBackoff (%v) is shorter than MinBackoff (%v): raise it (default 10s)", c.MaxBackoff, c.MinBackoff)
	}
	if c.PrefetchBytes < 1 {
		add("kafka PrefetchBytes is %d: use a positive size, default 16 MiB", c.PrefetchBytes)
	}
	if c.FetchMaxWait < time.Millisecond || c.FetchMaxWait > c.RequestTimeout/2 {
		add("kafka FetchMaxWait is %v: use between 1ms and half of RequestTimeout (%v), default 500ms", c.FetchMaxWait, c.RequestTimeout/2)
	}
	if len(bad) > 0 {
		return fmt.Errorf("invalid kafka config: %s", strings.Join(bad, "; "))
	}
	return nil
}

// parseKafkaCompression maps the config's name to kafka-go's codec; "none" is
// the zero value.
func parseKafkaCompression(name string) (kafka.Compression, error) {
	switch name {
	case "none":
		return 0, nil
	case "gzip":
		return kafka.Gzip, nil
	case "snappy":
		return kafka.Snappy, nil
	case "lz4":
		return kafka.Lz4, nil
	case "zstd":
		return kafka.Zstd, nil
	}
	return 0, fmt.Errorf("unknown compression %q: use none, gzip, snappy, lz4 or zstd", name)
}

// kafkaConn is one kafka-go client with its own Transport, so that closing it
// stops the transport's goroutines, and so that its cached metadata can be
// dropped on demand.
//
// Why its own Transport: kafka-go's Transport caches the cluster metadata and
// refreshes it only every MetadataTTL (a random time up to 6 s); a produce or
// fetch routed to a stale leader fails with NOT_LEADER until then, and there
// is no API to force a refresh (segmentio/kafka-go#1221, #1413).
// CloseIdleConnections drops the transport's connection pools, and with them
// the cached metadata, so the next request rediscovers the cluster: refresh
// calls it after errors that mean the metadata is stale.
type kafkaConn struct {
	transport *kafka.Transport
	client    *kafka.Client
}

func newKafkaConn(cfg *KafkaConfig) *kafkaConn {
	dial := cfg.RequestTimeout
	if dial > 10*time.Second {
		dial = 10 * time.Second
	}
	t := &kafka.Transport{
		DialTimeout: dial,
		ClientID:    cfg.ClientID,
		// MetadataTopics stays empty (all topics): with a topic list, kafka-go
		// caches a topic that does not exist yet as present-with-an-error,
		// so the wait for a new topic in CreateTopics returns at once and the
		// first requests fail until the next refresh.
	}
	return &kafkaConn{
		transport: t,
		client:    &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: cfg.RequestTimeout, Transport: t},
	}
}

// refresh drops cached metadata and connections; in-flight requests finish on
// their connections.
func (c *kafkaConn) refresh() { c.transport.CloseIdleConnections() }

// topicMissing asks the cluster's metadata whether topic is absent. kafka-go
// routes produce and fetch requests from its cached metadata and says "topic
// not found" when it has none at all, for instance while no broker is
// reachable; so an unknown-topic error is confirmed here, and when the
// metadata cannot be read its error (which says why) is returned instead.
func (c *kafkaConn) topicMissing(ctx context.Context, topic string) (bool, error) {
	md, err := c.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return false, err
	}
	for _, t := range md.Topics {
		if t.Name == topic {
			return errors.Is(t.Error, kafka.UnknownTopicOrPartition), nil
		}
	}
	return true, nil
}

// close releases the transport's connections and goroutines.
func (c *kafkaConn) close() { c.transport.CloseIdleConnections() }
