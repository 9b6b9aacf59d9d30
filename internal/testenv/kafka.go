package testenv

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// KafkaClient returns a kafka-go client for the local broker, after checking
// that the broker answers a metadata request.
func KafkaClient(t testing.TB) *kafka.Client {
	t.Helper()
	c := checkedClient(t)
	t.Cleanup(func() { closeClient(c) })
	return c
}

// checkedClient is KafkaClient for a caller that closes the client itself.
func checkedClient(t testing.TB) *kafka.Client {
	t.Helper()
	Need(t, "kafka")
	c := newClient()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := c.Metadata(ctx, &kafka.MetadataRequest{}); err != nil {
		closeClient(c)
		t.Fatalf("kafka at %s does not answer a metadata request (%v): %s", Addr("kafka"), err, StartAdvice)
	}
	return c
}

// CreateTopic creates a uniquely named topic with the given number of
// partitions (replication factor 1) and deletes it when the test ends.
func CreateTopic(t testing.TB, partitions int) string {
	t.Helper()
	c := checkedClient(t)
	defer closeClient(c)
	name := UniqueName(t, "rc")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: name, NumPartitions: partitions, ReplicationFactor: 1}},
	})
	if err == nil {
		err = resp.Errors[name]
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	t.Cleanup(func() { DeleteTopic(t, name) })
	WaitTopic(t, name)
	return name
}

// WaitTopic waits until the broker reports a leader for every partition of
// topic, so that the first produce does not race topic creation.
func WaitTopic(t testing.TB, topic string) {
	t.Helper()
	c := checkedClient(t)
	defer closeClient(c)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		cancel()
		if err == nil && len(md.Topics) == 1 && md.Topics[0].Error == nil && len(md.Topics[0].Partitions) > 0 {
			ready := true
			for _, p := range md.Topics[0].Partitions {
				if p.Leader.ID < 0 || p.Error != nil {
					ready = false
				}
			}
			if ready {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s has no leader after 30s (last error %v)", topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// DeleteTopic deletes a topic, logging (not failing) when it cannot.
func DeleteTopic(t testing.TB, topic string) {
	c := newClient()
	defer closeClient(c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	if err == nil {
		err = resp.Errors[topic]
	}
	if err != nil && !errors.Is(err, kafka.UnknownTopicOrPartition) {
		t.Logf("delete topic %s: %v", topic, err)
	}
}

// newClient returns a client with a transport of its own: kafka-go's shared
// DefaultTransport keeps pooled connections and cached metadata across a
// broker restart, so its first request afterwards fails with EOF.
func newClient() *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(KafkaBrokers()...), Timeout: 30 * time.Second,
		Transport: &kafka.Transport{MetadataTTL: time.Second}}
}

// closeClient closes c's transport: until then it refreshes the cluster's
// metadata every MetadataTTL, for good, and keeps connections, whose
// goroutines a leak check taken meanwhile counts as the code's
// (TestKafkaProducerCompressions failed under CI on eight kafka-go
// connections still open 90 s after its producer stopped).
func closeClient(c *kafka.Client) {
	if tr, ok := c.Transport.(*kafka.Transport); ok {
		tr.CloseIdleConnections()
	}
}
