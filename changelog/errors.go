package changelog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

// Sentinel errors of the changelog package. Callers test them with errors.Is;
// the wrapped message names the topic, the offset and the fix.
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
	ClassNetwork      = "network"       // connection refused, reset, EOF, dial failure
	ClassTimeout      = "timeout"       // request or broker-side timeout
	ClassNotLeader    = "not_leader"    // leader change or election in progress
	ClassUnknownTopic = "unknown_topic" // topic or partition unknown (possibly stale metadata)
	ClassReplicas     = "replicas"      // not enough in-sync replicas for acks=all
	ClassThrottled    = "throttled"     // quota exceeded
	ClassBroker       = "broker"        // other retriable broker error
	ClassOther        = "other"         // unrecognized error, retried
	ClassFatal        = "fatal"         // retrying cannot help

	ClassOffsetOutOfRange = "offset_out_of_range" // fetch outside the retained range
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
	if errors.Is(err, ErrKafkaAuth) {
		return kafkaErrClass{ClassAuth, false, false}
	}
	var kerr kafka.Error
	if errors.As(err, &kerr) {
		return classifyBrokerErr(kerr)
	}
	return classifyClientErr(err)
}

// classifyBrokerErr sorts an error code a broker answered with.
func classifyBrokerErr(kerr kafka.Error) kafkaErrClass {
	switch kerr {
	case kafka.NotLeaderForPartition, kafka.LeaderNotAvailable, kafka.FencedLeaderEpoch,
		kafka.UnknownLeaderEpoch, kafka.NotController, kafka.ReplicaNotAvailable,
		kafka.PreferredLeaderNotAvailable, kafka.EligibleLeadersNotAvailable:
		return kafkaErrClass{ClassNotLeader, true, true}
	case kafka.UnknownTopicOrPartition, kafka.UnknownTopicID, kafka.InconsistentTopicID:
		return kafkaErrClass{ClassUnknownTopic, true, true}
	case kafka.BrokerNotAvailable, kafka.NetworkException:
		return kafkaErrClass{ClassNetwork, true, true}
	case kafka.RequestTimedOut:
		return kafkaErrClass{ClassTimeout, true, false}
	case kafka.NotEnoughReplicas, kafka.NotEnoughReplicasAfterAppend:
		return kafkaErrClass{ClassReplicas, true, false}
	case kafka.ThrottlingQuotaExceeded:
		return kafkaErrClass{ClassThrottled, true, false}
	case kafka.InvalidMessage, kafka.KafkaStorageError, kafka.OffsetNotAvailable, kafka.Unknown:
		// InvalidMessage is CORRUPT_MESSAGE: a CRC mismatch in transit.
		// Unknown is UNKNOWN_SERVER_ERROR, and also what kafka-go puts in
		// a ListOffsets answer whose request failed.
		return kafkaErrClass{ClassBroker, true, false}
	}
	if kerr.Temporary() {
		return kafkaErrClass{ClassBroker, true, true}
	}
	return kafkaErrClass{ClassFatal, false, false}
}

// classifyClientErr sorts an error of kafka-go or of the network.
func classifyClientErr(err error) kafkaErrClass {
	switch {
	case errors.Is(err, protocol.ErrNoTopic), errors.Is(err, protocol.ErrNoPartition):
		return kafkaErrClass{ClassUnknownTopic, true, true}
	case errors.Is(err, protocol.ErrNoLeader):
		return kafkaErrClass{ClassNotLeader, true, true}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return kafkaErrClass{ClassTimeout, true, true}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return kafkaErrClass{ClassNetwork, true, true}
	}
	var nerr net.Error
	if errors.As(err, &nerr) {
		if nerr.Timeout() {
			return kafkaErrClass{ClassTimeout, true, true}
		}
		return kafkaErrClass{ClassNetwork, true, true}
	}
	// Anything else (a malformed response, an unexpected condition inside
	// kafka-go) is retried: retrying never loses or reorders data, and each
	// attempt is logged, so a persistent fault is visible rather than fatal.
	return kafkaErrClass{ClassOther, true, true}
}

// kafkaFix is the advice appended to a fatal Kafka error.
func kafkaFix(err error, cfg *Config) string {
	var aerr *authError
	if errors.As(err, &aerr) {
		return aerr.fix
	}
	var kerr kafka.Error
	if !errors.As(err, &kerr) {
		return "check the broker's log"
	}
	switch kerr {
	case kafka.MessageSizeTooLarge, kafka.RecordListTooLarge, kafka.InvalidMessageSize:
		return fmt.Sprintf("a single message is larger than the topic's max.message.bytes (rowcast splits batches by itself): "+
			"raise max.message.bytes on topic %s above the largest row change (kafka-configs.sh --bootstrap-server %s --alter --entity-type topics "+
			"--entity-name %s --add-config max.message.bytes=N) and kafka.max_message_bytes to match (default 8 MiB)",
			cfg.Topic, strings.Join(cfg.Brokers, ","), cfg.Topic)
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
	case kafka.SASLAuthenticationFailed, kafka.UnsupportedSASLMechanism, kafka.IllegalSASLState:
		return saslFix(kerr, cfg)
	}
	return "check the broker's log for " + kerr.Title()
}

// kafkaBackoff is exponential backoff with jitter between cfg.MinBackoff and
// cfg.MaxBackoff.
type kafkaBackoff struct {
	min, max time.Duration
	next     time.Duration
}

func newKafkaBackoff(cfg *Config) kafkaBackoff {
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

// requestRetry is what a loop that retries one request until it succeeds
// (the producer's produce, the consumer's fetch) keeps between attempts.
type requestRetry struct {
	op      string // "produce" or "fetch", for metrics
	cfg     *Config
	conn    *kafkaConn
	metrics Metrics
	backoff kafkaBackoff
	// missingSince is when the cluster first said the topic does not
	// exist, in the current run of such answers.
	missingSince time.Time
}

func newRequestRetry(op string, cfg *Config, conn *kafkaConn, metrics Metrics) requestRetry {
	return requestRetry{op: op, cfg: cfg, conn: conn, metrics: metrics, backoff: newKafkaBackoff(cfg)}
}

// succeeded resets the backoff and the missing topic's clock.
func (r *requestRetry) succeeded() {
	r.backoff.reset()
	r.missingSince = time.Time{}
}

// failed sorts err and counts it. For an error that is retried, it drops
// stale metadata and asks the cluster whether an unknown topic is really
// missing; it returns the error to report (the metadata request's own, when
// that failed: it says why there is no metadata) and whether the topic has
// been missing for longer than RequestTimeout.
func (r *requestRetry) failed(ctx context.Context, err error) (cl kafkaErrClass, gone bool, report error) {
	cl = classifyKafkaErr(err)
	if !cl.retry {
		r.metrics.RequestError(r.op, cl.kind)
		return cl, false, err
	}
	if cl.refresh {
		r.conn.refresh()
	}
	missing, merr := r.conn.confirmMissing(ctx, r.cfg.Topic, cl)
	if merr != nil {
		err, cl = merr, classifyKafkaErr(merr)
	}
	r.metrics.RequestError(r.op, cl.kind)
	return cl, r.stillMissing(missing), err
}

// stillMissing reports whether the topic, missing now or not, has been
// missing for longer than RequestTimeout.
func (r *requestRetry) stillMissing(missing bool) bool {
	switch {
	case !missing:
		r.missingSince = time.Time{}
	case r.missingSince.IsZero():
		r.missingSince = time.Now()
	case time.Since(r.missingSince) > r.cfg.RequestTimeout:
		return true
	}
	return false
}
