package config

import (
	"strings"
	"testing"
)

// TestKafkaTopicSettings: kafka.min_insync_replicas and
// kafka.max_message_bytes reach the changelog config, and impossible values
// are refused with the key's name.
func TestKafkaTopicSettings(t *testing.T) {
	text := strings.Replace(componentsYAML, "compression: zstd}",
		"compression: zstd, replication_factor: 3, min_insync_replicas: 2, max_message_bytes: 16777216}", 1)
	cfg, err := Parse([]byte(text), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if kc := cfg.ChangelogConfig(); kc.MinInsyncReplicas != 2 || kc.MaxMessageBytes != 16<<20 {
		t.Errorf("changelog config %+v", kc)
	}
	bad := strings.Replace(componentsYAML, "compression: zstd}", "compression: zstd, min_insync_replicas: 2, max_message_bytes: 1000}", 1)
	_, err = Parse([]byte(bad), noEnv)
	for _, s := range []string{"kafka.min_insync_replicas: 2", "kafka.max_message_bytes: 1000"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("Parse: %v, want it to say %q", err, s)
		}
	}
}
