package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

// Sentinel errors of the Kafka layer. They live here rather than in errors.go
// only because this file's author may not edit that one; move them when
// convenient.
var (
	// ErrOffsetOutOfRange means a consumer asked for an offset the topic no
	// longer holds (deleted by retention) or never held (the topic was
	// recreated or truncated). The wrapped message names the requested offset
	// and the range available. It needs an operator: re-seed the replica.
	ErrOffsetOutOfRange = errors.New("offset out of range")
	// ErrTopicLayout means the changelog topic exists but cannot carry the
	// master's commit order (more than one partition, or compaction).
	ErrTopicLayout = errors.New("changelog topic layout not supported")
	// ErrTopicNotFound means the changelog topic does not exist.
	ErrTopicNotFound = errors.New("changelog topic not found")
	// ErrConsumerClosed is returned by Consumer.Next after Close.
	ErrConsumerClosed = errors.New("kafka consumer closed")
	// ErrProducerClosed is returned by Send and Flush once Run has returned.
	ErrProducerClosed = errors.New("kafka producer stopped")
)

// Kinds of Kafka errors, as reported to metrics and logs.
const (
	KafkaErrNetwork      = "network"       // connection refused, reset, EOF, dial failure
	KafkaErrTimeout      = "timeout"       // request or broker-side timeout
	KafkaErrNotLeader    = "not_leader"    // leader change or election in progress
	KafkaErrUnknownTopic = "unknown_topic" // topic or partition unknown (possibly stale metadata)
	KafkaErrReplicas     = "replicas"      // not enough in-sync replicas for acks=all
	KafkaErrThrottled    = "throttled"     // quota exceeded
	KafkaErrBroker       = "broker"        // other retriable broker error
	KafkaErrOther        = "other"         // unrecognized error, retried
	KafkaErrFatal        = "fatal"         // retrying cannot help

	KafkaErrOffsetOutOfRange = "offset_out_of_range" // fetch outside the retained range
)

// kafkaErrClass tells what to do about an error of a Kafka request.
type kafkaErrClass struct {
	kind    string
	retry   bool // retrying may succeed
	refresh bool // the cached cluster metadata is probably stale
}

// classifyKafkaErr sorts the errors kafka-go returns. It never sees the
// caller's own cancellation: callers check their context first.
//
// kafka-go's own Error.Temporary list is not enough: it calls
// BROKER_NOT_AVAILABLE permanent although the transport itself returns it
// when a broker id is missing from its cached metadata, and it reports
// routing failures from that cache as protocol.ErrNoTopic / ErrNoLeader
// rather than as broker error codes.
func classifyKafkaErr(err error) kafkaErrClass {
	var kerr kafka.Error
	if errors.As(err, &kerr) {
		switch kerr {
		case kafka.NotLeaderForPartition, kafka.LeaderNotAvailable, kafka.FencedLeaderEpoch,
			kafka.UnknownLeaderEpoch, kafka.NotController, kafka.ReplicaNotAvailable,
			kafka.PreferredLeaderNotAvailable, kafka.EligibleLeadersNotAvailable:
			return kafkaErrClass{KafkaErrNotLeader, true, true}
		case kafka.UnknownTopicOrPartition, kafka.UnknownTopicID, kafka.InconsistentTopicID:
			return kafkaErrClass{KafkaErrUnknownTopic, true, true}
		case kafka.BrokerNotAvailable, kafka.NetworkException:
			return kafkaErrClass{KafkaErrNetwork, true, true}
		case kafka.RequestTimedOut:
			return kafkaErrClass{KafkaErrTimeout, true, false}
		case kafka.NotEnoughReplicas, kafka.NotEnoughReplicasAfterAppend:
			return kafkaErrClass{KafkaErrReplicas, true, false}
		case kafka.ThrottlingQuotaExceeded:
			return kafkaErrClass{KafkaErrThrottled, true, false}
		case kafka.InvalidMessage, kafka.KafkaStorageError, kafka.OffsetNotAvailable, kafka.Unknown:
			// InvalidMessage is CORRUPT_MESSAGE: a CRC mismatch in transit.
			// Unknown is UNKNOWN_SERVER_ERROR, and also what kafka-go puts in
			// a ListOffsets answer whose request failed.
			return kafkaErrClass{KafkaErrBroker, true, false}
		}
		if kerr.Temporary() {
			return kafkaErrClass{KafkaErrBroker, true, true}
		}
		return kafkaErrClass{KafkaErrFatal, false, false}
	}
	switch {
	case errors.Is(err, protocol.ErrNoTopic), errors.Is(err, protocol.ErrNoPartition):
		return kafkaErrClass{KafkaErrUnknownTopic, true, true}
	case errors.Is(err, protocol.ErrNoLeader):
		return kafkaErrClass{KafkaErrNotLeader, true, true}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return kafkaErrClass{KafkaErrTimeout, true, true}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return kafkaErrClass{KafkaErrNetwork, true, true}
	}
	var nerr net.Error
	if errors.As(err, &nerr) {
		if nerr.Timeout() {
			return kafkaErrClass{KafkaErrTimeout, true, true}
		}
		return kafkaErrClass{KafkaErrNetwork, true, true}
	}
	// Anything else (a malformed response, an unexpected condition inside
	// kafka-go) is retried: retrying never loses or reorders data, and each
	// attempt is logged, so a persistent fault is visible rather than fatal.
	return kafkaErrClass{KafkaErrOther, true, true}
}

// kafkaFix is the advice appended to a fatal Kafka error.
func kafkaFix(err error, cfg *KafkaConfig) string {
	var kerr kafka.Error
	if !errors.As(err, &kerr) {
		return "check the broker's log"
	}
	switch kerr {
	case kafka.MessageSizeTooLarge, kafka.RecordListTooLarge, kafka.InvalidMessageSize:
		return fmt.Sprintf("a single message is larger than the topic's max.message.bytes (rowcast splits batches by itself): "+
			"raise max.message.bytes on topic %s, and message.max.bytes and replica.fetch.max.bytes on the brokers, above the largest row change",
			cfg.Topic)
	case kafka.TopicAuthorizationFailed:
		return fmt.Sprintf("grant rowcast's principal WRITE, READ and DESCRIBE on topic %s", cfg.Topic)
	case kafka.ClusterAuthorizationFailed:
		return "grant rowcast's principal the cluster permissions it needs (CREATE to create the topic), or create the topic beforehand"
	case kafka.UnsupportedCompressionType:
		return fmt.Sprintf("the brokers do not support compression %q: choose another Compression", cfg.Compression)
	case kafka.InvalidTopic:
		return fmt.Sprintf("topic name %q is refused by the broker: choose another", cfg.Topic)
	case kafka.InvalidRequiredAcks:
		return "the broker refuses acks=all: check its version and configuration"
	case kafka.PolicyViolation, kafka.InvalidConfiguration, kafka.InvalidReplicationFactor:
		return "the broker refuses the topic's settings: check ReplicationFactor against the number of brokers and the broker's create-topic policy"
	case kafka.UnsupportedVersion:
		return "the broker does not speak a protocol version kafka-go supports: rowcast needs Kafka 2.1 or later"
	case kafka.SASLAuthenticationFailed:
		return "check the credentials"
	}
	return "check the broker's log for " + kerr.Title()
}

// kafkaBackoff is exponential backoff with jitter between cfg.MinBackoff and
// cfg.MaxBackoff.
type kafkaBackoff struct {
	min, max time.Duration
	next     time.Duration
}

func newKafkaBackoff(cfg *KafkaConfig) kafkaBackoff {
	return kafkaBackoff{min: cfg.MinBackoff, max: cfg.MaxBackoff, next: cfg.MinBackoff}
}

// delay returns the next wait: the current step, -20%..+0% jitter, and
// doubles the step up to max.
func (b *kafkaBackoff) delay() time.Duration {
	d := b.next
	if d <= 0 {
		d = time.Millisecond
	}
	b.next *= 2
	if b.next > b.max {
		b.next = b.max
	}
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

func (b *kafkaBackoff) reset() { b.next = b.min }

// kafkaSleep waits d or until ctx is done, and returns ctx's error then.
func kafkaSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
