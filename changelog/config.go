package changelog

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

// Config describes the changelog topic and how rowcast talks to it. The
// producer, the consumer and the topic helpers all take it; a zero field gets
// the default named in its comment (see setDefaults).
type Config struct {
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
	// MinInsyncReplicas is the topic's min.insync.replicas: with acks=all a
	// write is acknowledged only once this many replicas hold it. Set when
	// EnsureTopic creates the topic, and checked on an existing topic, which
	// must have at least this many (and no more than its replicas). Default
	// (0): 2 for a replication factor of 3 or more, else 1 (see
	// MinInsync).
	MinInsyncReplicas int
	// MaxMessageBytes is the topic's max.message.bytes: the largest record
	// batch the brokers take, so a bound on the largest row change (a row's
	// message holds its before and after images as JSON, binary columns in
	// base64). Set when EnsureTopic creates the topic, and checked on an
	// existing topic, which must allow at least this much. Default (0)
	// DefaultKafkaMaxMessageBytes (see MessageBytes). The brokers'
	// replica.fetch.max.bytes and consumers need no change: Kafka returns a
	// batch larger than a fetch's limit whole.
	MaxMessageBytes int
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
	// TLS encrypts the links to the brokers. Default none (plaintext).
	TLS TLS
	// SASL authenticates rowcast to the brokers. Default none.
	SASL SASL
	// DeferVerify leaves a Consumer's signature checks (only a Consumer's:
	// other readers check as they read) to its caller, who
	// runs Consumer.Verify on each message, in goroutines of its own (a sink
	// checks in its decode lanes): until then a message's SigErr is
	// ErrNotVerified, so a message nobody checked is refused, not trusted.
	DeferVerify bool
	// GateBigMessages makes a Consumer take the process's big message gate
	// (biggate.go) before it fetches a message of more than half its
	// prefetch, and keep it until Consumer.Applied covers it: one sink
	// worker of the process at a time holds big rows.
	GateBigMessages bool
	// Signing signs every produced message and checks every message read
	// (Message.SigErr). nil: messages are neither signed nor checked.
	Signing *SigningKeys
	// SigningErr says why there are no Signing keys although signing is
	// required (a key missing from the environment): Validate returns it, so
	// that nothing reads or writes the topic unchecked.
	SigningErr error
}

// Defaults of Config.
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
	// DefaultKafkaMaxMessageBytes is MaxMessageBytes's default: rows of up
	// to a few MiB, eight times Kafka's own default.
	DefaultKafkaMaxMessageBytes = 8 << 20
)

// MinInsync is MinInsyncReplicas, or its default for ReplicationFactor: 2
// from 3 replicas on (one broker may fail without stopping writes, and an
// acknowledged write survives it), else 1.
func (c *Config) MinInsync() int {
	if c.MinInsyncReplicas > 0 {
		return c.MinInsyncReplicas
	}
	if c.ReplicationFactor >= 3 {
		return 2
	}
	return 1
}

// MessageBytes is MaxMessageBytes, or DefaultKafkaMaxMessageBytes.
func (c *Config) MessageBytes() int {
	if c.MaxMessageBytes > 0 {
		return c.MaxMessageBytes
	}
	return DefaultKafkaMaxMessageBytes
}

func (c *Config) setDefaults() {
	setDefault(&c.Partitions, 1)
	setDefault(&c.ReplicationFactor, 1)
	setDefault(&c.Retention, DefaultKafkaRetention)
	setDefault(&c.Compression, DefaultKafkaCompression)
	setDefault(&c.MaxBatchBytes, DefaultKafkaMaxBatchBytes)
	setDefault(&c.MaxBatchMessages, DefaultKafkaMaxBatchMessages)
	setDefault(&c.Linger, DefaultKafkaLinger)
	setDefault(&c.MaxBufferedBytes, DefaultKafkaMaxBufferedBytes)
	setDefault(&c.RequestTimeout, DefaultKafkaRequestTimeout)
	setDefault(&c.MinBackoff, DefaultKafkaMinBackoff)
	setDefault(&c.MaxBackoff, DefaultKafkaMaxBackoff)
	setDefault(&c.ClientID, DefaultKafkaClientID)
	setDefault(&c.PrefetchBytes, DefaultKafkaPrefetchBytes)
	setDefault(&c.FetchMaxWait, DefaultKafkaFetchMaxWait)
}

// setDefault sets *field to def when it holds the zero value.
func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

var kafkaTopicName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)

// Validate fills in the defaults and checks every field, naming the field and
// the fix. It returns all problems at once.
func (c *Config) Validate() error {
	c.setDefaults()
	var p problems
	c.checkAddress(&p)
	c.checkTopic(&p)
	c.checkProducer(&p)
	c.checkRequests(&p)
	c.checkConsumer(&p)
	c.checkSecurity(&p)
	if c.SigningErr != nil {
		p.add("%v", c.SigningErr)
	}
	if len(p) > 0 {
		return fmt.Errorf("invalid kafka config: %s", strings.Join(p, "; "))
	}
	return nil
}

// problems collects what Validate finds wrong, a sentence each.
type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// check adds the problem unless ok.
func (p *problems) check(ok bool, format string, args ...any) {
	if !ok {
		p.add(format, args...)
	}
}

// checkAddress checks the brokers and the topic's name.
func (c *Config) checkAddress(p *problems) {
	p.check(len(c.Brokers) > 0, "kafka Brokers is empty: give at least one bootstrap broker as host:port")
	for _, b := range c.Brokers {
		host, port, err := net.SplitHostPort(b)
		p.check(err == nil && host != "" && port != "", "kafka Brokers: %q is not host:port (e.g. 127.0.0.1:9092)", b)
	}
	switch {
	case c.Topic == "":
		p.add("kafka Topic is empty: name the changelog topic")
	case !kafkaTopicName.MatchString(c.Topic) || c.Topic == "." || c.Topic == "..":
		p.add("kafka Topic %q is not a valid topic name: use 1 to 249 characters of [A-Za-z0-9._-]", c.Topic)
	}
}

// checkTopic checks the settings of a topic EnsureTopic creates.
func (c *Config) checkTopic(p *problems) {
	p.check(c.Partitions == 1, "kafka Partitions is %d: rowcast keeps the master's commit order in one partition, set it to 1", c.Partitions)
	p.check(c.ReplicationFactor >= 1 && c.ReplicationFactor <= 32767,
		"kafka ReplicationFactor is %d: set 1 for a single broker, 3 in production", c.ReplicationFactor)
	p.check(c.Retention == -1 || c.Retention >= time.Millisecond, // not 0: setDefaults ran
		"kafka Retention is %v: use a duration of at least 1ms, or -1 to keep records forever", c.Retention)
	if _, err := parseKafkaCompression(c.Compression); err != nil {
		p.add("kafka Compression: %v", err)
	}
	p.check(c.MinInsyncReplicas >= 0 && c.MinInsync() <= max(c.ReplicationFactor, 1),
		"kafka MinInsyncReplicas is %d: use 1 to ReplicationFactor (%d), or 0 for the default", c.MinInsyncReplicas, c.ReplicationFactor)
	p.check(c.MaxMessageBytes == 0 || c.MaxMessageBytes >= 1<<16,
		"kafka MaxMessageBytes is %d: use at least 64 KiB, or 0 for the default 8 MiB", c.MaxMessageBytes)
}

// checkProducer checks the producer's batches and queue.
func (c *Config) checkProducer(p *problems) {
	p.check(c.MaxBatchBytes >= 1, "kafka MaxBatchBytes is %d: use a positive size, default 1 MiB", c.MaxBatchBytes)
	p.check(c.MaxBatchMessages >= 1, "kafka MaxBatchMessages is %d: use a positive count, default 10000", c.MaxBatchMessages)
	p.check(c.MaxBufferedBytes >= c.MaxBatchBytes,
		"kafka MaxBufferedBytes (%d) is smaller than MaxBatchBytes (%d): the queue must hold at least one full batch; raise it (default 64 MiB)",
		c.MaxBufferedBytes, c.MaxBatchBytes)
}

// checkRequests checks the timeout of a request and the backoff between
// attempts.
func (c *Config) checkRequests(p *problems) {
	p.check(c.RequestTimeout >= 100*time.Millisecond, "kafka RequestTimeout is %v: use at least 100ms, default 30s", c.RequestTimeout)
	p.check(c.MinBackoff >= 0, "kafka MinBackoff is %v: use a positive duration, default 100ms", c.MinBackoff)
	p.check(c.MaxBackoff >= c.MinBackoff, "kafka MaxBackoff (%v) is shorter than MinBackoff (%v): raise it (default 10s)", c.MaxBackoff, c.MinBackoff)
}

// checkConsumer checks the consumer's read-ahead and polling.
func (c *Config) checkConsumer(p *problems) {
	p.check(c.PrefetchBytes >= 1, "kafka PrefetchBytes is %d: use a positive size, default 16 MiB", c.PrefetchBytes)
	p.check(c.FetchMaxWait >= time.Millisecond && c.FetchMaxWait <= c.RequestTimeout/2,
		"kafka FetchMaxWait is %v: use between 1ms and half of RequestTimeout (%v), default 500ms", c.FetchMaxWait, c.RequestTimeout/2)
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

func newKafkaConn(cfg *Config) (*kafkaConn, error) {
	t, err := newTransport(cfg)
	if err != nil {
		return nil, err
	}
	return &kafkaConn{
		transport: t,
		client:    &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: cfg.RequestTimeout, Transport: authTransport{t, cfg}},
	}, nil
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

// confirmMissing asks the cluster, after an error of class cl, whether the
// topic is really missing: only an unknown-topic error asks (see
// topicMissing). merr is the metadata request's error, which says why there
// is no metadata.
func (c *kafkaConn) confirmMissing(ctx context.Context, topic string, cl kafkaErrClass) (missing bool, merr error) {
	if cl.kind != ClassUnknownTopic {
		return false, nil
	}
	return c.topicMissing(ctx, topic)
}

// close releases the transport's connections and goroutines.
func (c *kafkaConn) close() { c.transport.CloseIdleConnections() }
