package testenv

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// SigningKeyEnv is the variable the config reads the changelog signing key
// from by default (kafka.signing.key_env).
const SigningKeyEnv = "ROWCAST_SIGNING_KEY"

// SigningKey is the key tests sign the changelog with: every test process
// (and the rowcast processes it starts, which inherit its environment) has
// it in SigningKeyEnv unless the environment sets one already.
const SigningKey = "rowcast-test-signing-key-0123456789abcdef"

func init() {
	if os.Getenv(SigningKeyEnv) == "" {
		os.Setenv(SigningKeyEnv, SigningKey)
	}
}

// ProduceUnsigned writes one message to partition 0 of topic as a stray
// writer would: without rowcast's producer, so without a signature (or with
// the headers given). It returns the message's offset.
func ProduceUnsigned(t testing.TB, topic string, key, value []byte, headers ...kafka.Header) int64 {
	t.Helper()
	c := KafkaClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.Produce(ctx, &kafka.ProduceRequest{Topic: topic, Partition: 0, RequiredAcks: kafka.RequireAll,
		Records: kafka.NewRecordReader(kafka.Record{Key: kafka.NewBytes(key), Value: kafka.NewBytes(value), Headers: headers})})
	if err == nil {
		err = res.Error
	}
	if err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
	return res.BaseOffset
}
