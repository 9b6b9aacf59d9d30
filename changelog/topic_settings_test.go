package changelog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/rowcast/rowcast/internal/testenv"
)

// TestKafkaEnsureTopicSettings: a topic rowcast creates has the safety
// settings and the message size of the config; an existing topic whose
// settings rowcast cannot rely on is refused with the kafka-configs command
// that fixes it.
func TestKafkaEnsureTopicSettings(t *testing.T) {
	ctx := context.Background()
	topic := testenv.UniqueName(t, "rc")
	t.Cleanup(func() { testenv.DeleteTopic(t, topic) })
	cfg := testConfig(topic)
	cfg.MaxMessageBytes = 3 << 20
	if _, err := EnsureTopic(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	got := topicConfig(t, topic, "min.insync.replicas", "unclean.leader.election.enable", "max.message.bytes")
	want := map[string]string{"min.insync.replicas": "1", "unclean.leader.election.enable": "false", "max.message.bytes": "3145728"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("topic config %v, want %v", got, want)
	}

	for _, c := range []struct {
		entry kafka.ConfigEntry
		says  string
	}{
		{kafka.ConfigEntry{ConfigName: "unclean.leader.election.enable", ConfigValue: "true"}, "--add-config unclean.leader.election.enable=false"},
		{kafka.ConfigEntry{ConfigName: "min.insync.replicas", ConfigValue: "2"}, "only 1 replicas"},
		{kafka.ConfigEntry{ConfigName: "max.message.bytes", ConfigValue: "100000"}, "--alter --entity-type topics --entity-name %s --add-config max.message.bytes=8388608"},
	} {
		t.Run(c.entry.ConfigName, func(t *testing.T) {
			weak := testenv.UniqueName(t, "rc")
			createTopicWith(t, weak, c.entry)
			_, err := EnsureTopic(ctx, testConfig(weak))
			says := c.says
			if strings.Contains(says, "%s") {
				says = fmt.Sprintf(says, weak)
			}
			if !errors.Is(err, ErrTopicLayout) || !strings.Contains(err.Error(), says) || !strings.Contains(err.Error(), "kafka-configs") {
				t.Errorf("EnsureTopic: %v, want it to say %q", err, says)
			}
		})
	}
}

// A min.insync.replicas the topic's replication factor cannot meet, or a
// message size below 64 KiB, is a config error.
func TestKafkaConfigTopicSettings(t *testing.T) {
	cfg := Config{Brokers: []string{"127.0.0.1:9092"}, Topic: "t", MinInsyncReplicas: 2, MaxMessageBytes: 1000}
	err := cfg.Validate()
	for _, s := range []string{"MinInsyncReplicas is 2", "MaxMessageBytes is 1000"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("Validate: %v, want it to say %q", err, s)
		}
	}
	for rf, want := range map[int]int{1: 1, 2: 1, 3: 2, 5: 2} {
		if got := (&Config{ReplicationFactor: rf}).MinInsync(); got != want {
			t.Errorf("MinInsync with replication factor %d: %d, want %d", rf, got, want)
		}
	}
}
