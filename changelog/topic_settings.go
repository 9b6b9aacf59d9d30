package changelog

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/segmentio/kafka-go"
)

// The topic settings rowcast relies on: set when EnsureTopic creates the
// topic, checked on an existing one (checkTopicSettings). A setting that
// weakens what an acknowledged write means fails closed, with the
// kafka-configs command that fixes it. docs/OPERATIONS.md, "The changelog
// topic".

// topicSettingNames are the settings checkTopicSettings reads.
var topicSettingNames = []string{"cleanup.policy", "min.insync.replicas", "unclean.leader.election.enable", "max.message.bytes"}

// createEntries are the settings of a topic EnsureTopic creates.
func createEntries(cfg *Config) []kafka.ConfigEntry {
	retention := int64(-1)
	if cfg.Retention > 0 {
		retention = cfg.Retention.Milliseconds()
	}
	return []kafka.ConfigEntry{
		{ConfigName: "retention.ms", ConfigValue: strconv.FormatInt(retention, 10)},
		{ConfigName: "cleanup.policy", ConfigValue: "delete"},
		{ConfigName: "message.timestamp.type", ConfigValue: "CreateTime"},
		{ConfigName: "min.insync.replicas", ConfigValue: strconv.Itoa(cfg.MinInsync())},
		{ConfigName: "unclean.leader.election.enable", ConfigValue: "false"},
		{ConfigName: "max.message.bytes", ConfigValue: strconv.Itoa(cfg.MessageBytes())},
	}
}

// checkTopicSettings reads the topic's effective settings and refuses
// those rowcast cannot rely on. replicas is the partition's replica count.
func checkTopicSettings(ctx context.Context, cfg *Config, conn *kafkaConn, replicas int) error {
	var settings map[string]string
	err := kafkaRetry(ctx, cfg, conn, "describe topic config", func(ctx context.Context) error {
		var err error
		settings, err = describeTopic(ctx, cfg, conn)
		return err
	})
	if err != nil {
		return err
	}
	return topicSettingsProblem(cfg, settings, replicas)
}

// describeTopic reads topicSettingNames of the topic.
func describeTopic(ctx context.Context, cfg *Config, conn *kafkaConn) (map[string]string, error) {
	res, err := conn.client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{
		Resources: []kafka.DescribeConfigRequestResource{{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: cfg.Topic, ConfigNames: topicSettingNames,
		}},
	})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range res.Resources {
		if r.Error != nil {
			return nil, r.Error
		}
		for _, e := range r.ConfigEntries {
			out[e.ConfigName] = e.ConfigValue
		}
	}
	return out, nil
}

// topicSettingsProblem is the first setting of the topic that rowcast
// cannot rely on, as an error wrapping ErrTopicLayout with the fix.
func topicSettingsProblem(cfg *Config, settings map[string]string, replicas int) error {
	if v := settings["cleanup.policy"]; strings.Contains(v, "compact") {
		return topicFix(cfg, "cleanup.policy="+v+": compaction would delete row changes", "cleanup.policy=delete")
	}
	if v := settings["unclean.leader.election.enable"]; v == "true" {
		return topicFix(cfg, "unclean.leader.election.enable=true: a replica that missed acknowledged messages could become "+
			"the leader and lose them, and sinks would meet a topic that went back", "unclean.leader.election.enable=false")
	}
	if err := checkMinInsync(cfg, settings["min.insync.replicas"], replicas); err != nil {
		return err
	}
	if n, err := strconv.Atoi(settings["max.message.bytes"]); err == nil && n < cfg.MessageBytes() {
		return topicFix(cfg, fmt.Sprintf("max.message.bytes=%d, below the %d of kafka.max_message_bytes: a row change larger than the topic "+
			"takes would stop the reader; raise it, or lower kafka.max_message_bytes", n, cfg.MessageBytes()),
			"max.message.bytes="+strconv.Itoa(cfg.MessageBytes()))
	}
	return nil
}

// checkMinInsync refuses a min.insync.replicas below the configured one (an
// acknowledged write could live on fewer brokers than asked for), or above
// the topic's replicas (every write would fail).
func checkMinInsync(cfg *Config, value string, replicas int) error {
	n, err := strconv.Atoi(value)
	switch {
	case err != nil:
		return nil // not reported: the broker decides
	case n < cfg.MinInsync():
		return topicFix(cfg, fmt.Sprintf("min.insync.replicas=%d, below the %d rowcast is configured with (kafka.min_insync_replicas): "+
			"an acknowledged write could be lost with fewer brokers than that", n, cfg.MinInsync()),
			"min.insync.replicas="+strconv.Itoa(cfg.MinInsync()))
	case replicas > 0 && n > replicas:
		return topicFix(cfg, fmt.Sprintf("min.insync.replicas=%d but only %d replicas: every acks=all write would fail", n, replicas),
			"min.insync.replicas="+strconv.Itoa(min(cfg.MinInsync(), replicas)))
	}
	return nil
}

// topicFix is the error for a topic setting, with the command that sets it.
func topicFix(cfg *Config, problem, setting string) error {
	return fmt.Errorf("topic %s has %s; fix: kafka-configs.sh --bootstrap-server %s --alter --entity-type topics --entity-name %s --add-config %s: %w",
		cfg.Topic, problem, strings.Join(cfg.Brokers, ","), cfg.Topic, setting, ErrTopicLayout)
}
