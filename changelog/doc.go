// Package changelog is rowcast's Kafka client for the changelog topic: the
// Producer that publishes the reader's messages to its one partition in commit
// order, the Consumer a sink worker reads them with, and the topic helpers
// (EnsureTopic, FirstOffset, EndOffset, OffsetForTime, ReadAt). It moves the
// bytes pipeline.Codec writes and does not look inside them; the history
// subpackage decodes them to read positions and epochs back.
package changelog
