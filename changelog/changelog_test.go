package changelog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"go.uber.org/goleak"

	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
)

func testConfig(topic string) Config {
	return Config{Brokers: testenv.KafkaBrokers(), Topic: topic}
}

func testLogger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
}

func TestKafkaConfigValidate(t *testing.T) {
	cfg := Config{Brokers: []string{"127.0.0.1:9092"}, Topic: "rowcast.test"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	want := Config{
		Brokers: cfg.Brokers, Topic: cfg.Topic, Partitions: 1, ReplicationFactor: 1,
		Retention: 7 * 24 * time.Hour, Compression: "lz4", MaxBatchBytes: 1 << 20, MaxBatchMessages: 10000,
		Linger: 2 * time.Millisecond, MaxBufferedBytes: 64 << 20, RequestTimeout: 30 * time.Second,
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second, ClientID: "rowcast",
		PrefetchBytes: 16 << 20, FetchMaxWait: 500 * time.Millisecond,
	}
	if fmt.Sprint(cfg) != fmt.Sprint(want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", cfg, want)
	}

	bad := Config{Brokers: []string{"nohost"}, Topic: "bad topic", Partitions: 3, Compression: "brotli",
		Retention: -2, MaxBackoff: time.Millisecond, MinBackoff: time.Second}
	err := bad.Validate()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, s := range []string{`"nohost" is not host:port`, `Topic "bad topic"`, "Partitions is 3", `unknown compression "brotli"`,
		"Retention is -2ns", "MaxBackoff (1ms) is shorter than MinBackoff (1s)"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	if err := (&Config{}).Validate(); err == nil || !strings.Contains(err.Error(), "Brokers is empty") || !strings.Contains(err.Error(), "Topic is empty") {
		t.Errorf("empty config: %v", err)
	}
}

func TestKafkaEnsureTopic(t *testing.T) {
	testenv.Need(t, "kafka")
	ctx := context.Background()
	topic := testenv.UniqueName(t, "rc")
	t.Cleanup(func() { testenv.DeleteTopic(t, topic) })
	cfg := testConfig(topic)
	cfg.Retention = 36 * time.Hour

	created, err := EnsureTopic(ctx, cfg)
	if err != nil || !created {
		t.Fatalf("first EnsureTopic: created %v, err %v", created, err)
	}
	created, err = EnsureTopic(ctx, cfg)
	if err != nil || created {
		t.Fatalf("second EnsureTopic: created %v, err %v", created, err)
	}

	c := freshKafkaClient(t)
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(md.Topics) != 1 || len(md.Topics[0].Partitions) != 1 {
		t.Fatalf("metadata of %s: %+v, %v", topic, md, err)
	}
	got := topicConfig(t, topic, "retention.ms", "cleanup.policy", "message.timestamp.type")
	want := map[string]string{"retention.ms": "129600000", "cleanup.policy": "delete", "message.timestamp.type": "CreateTime"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("topic config %v, want %v", got, want)
	}

	forever := testenv.UniqueName(t, "rc")
	t.Cleanup(func() { testenv.DeleteTopic(t, forever) })
	cfg.Topic, cfg.Retention = forever, -1
	if _, err := EnsureTopic(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if got := topicConfig(t, forever, "retention.ms")["retention.ms"]; got != "-1" {
		t.Errorf("retention.ms %s, want -1", got)
	}
}

func TestKafkaEnsureTopicRefusesLayout(t *testing.T) {
	ctx := context.Background()
	two := testenv.CreateTopic(t, 2)
	_, err := EnsureTopic(ctx, testConfig(two))
	if !errors.Is(err, ErrTopicLayout) || !strings.Contains(err.Error(), two+" has 2 partitions") {
		t.Errorf("two partitions: %v", err)
	}

	compacted := testenv.UniqueName(t, "rc")
	createTopicWith(t, compacted, kafka.ConfigEntry{ConfigName: "cleanup.policy", ConfigValue: "compact"})
	_, err = EnsureTopic(ctx, testConfig(compacted))
	if !errors.Is(err, ErrTopicLayout) || !strings.Contains(err.Error(), "cleanup.policy=compact") {
		t.Errorf("compacted: %v", err)
	}
}

// TestKafkaProduceConsumeInOrder sends 100k messages and reads them back:
// same keys, values and offsets, in order, and the acknowledgements too.
func TestKafkaProduceConsumeInOrder(t *testing.T) {
	topic := testenv.CreateTopic(t, 1)
	leaks := goleak.IgnoreCurrent()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 100_000
	cfg := testConfig(topic)
	cfg.MaxBufferedBytes = 1 << 20 // the queue turns over ~20 times

	var acks []int64
	p := newTestProducer(t, cfg, testLogger(t), ProducerOptions{OnAck: func(token any, offset int64) {
		if tok := token.(int); tok != len(acks) {
			t.Errorf("ack %d carries token %d", len(acks), tok)
		}
		acks = append(acks, offset)
	}})
	stop := runProducer(ctx, p)
	start := time.Now()
	sendTestKVs(t, ctx, p, n)
	t.Logf("produced %d messages in %v", n, time.Since(start))
	assertConsecutiveAcks(t, acks, n)
	if m, b := p.Buffered(); m != 0 || b != 0 {
		t.Errorf("after Flush %d messages, %d bytes buffered", m, b)
	}
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
	if err := p.Send(ctx, []byte("k"), []byte("v"), nil); !errors.Is(err, ErrProducerClosed) {
		t.Errorf("Send after Run: %v", err)
	}

	cfg.PrefetchBytes = 256 << 10
	c := newTestConsumer(t, cfg, 0, testLogger(t))
	readTestKVs(t, ctx, c, n, start)
	assertConsumedAll(t, ctx, c, n)
	verifyNoLeaks(t, leaks)
}

// sendTestKVs queues testKV(0..n-1), the first half with Send and the rest
// with SendBatch in batches of 1000 (n/2 is a multiple), with token i, and
// flushes.
func sendTestKVs(t *testing.T, ctx context.Context, p *Producer, n int) {
	t.Helper()
	for i := 0; i < n/2; i++ {
		key, value := testKV(i)
		if err := p.Send(ctx, key, value, i); err != nil {
			t.Fatal(err)
		}
	}
	batch := make([]ProducerMessage, 0, 1000)
	for i := n / 2; i < n; i++ {
		key, value := testKV(i)
		batch = append(batch, ProducerMessage{Key: key, Value: value, Token: i})
		if len(batch) < cap(batch) {
			continue
		}
		if k, err := p.SendBatch(ctx, batch); err != nil || k != len(batch) {
			t.Fatalf("SendBatch: %d, %v", k, err)
		}
		batch = batch[:0]
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// assertConsecutiveAcks checks that n messages were acknowledged at offsets
// 0 to n-1.
func assertConsecutiveAcks(t *testing.T, acks []int64, n int) {
	t.Helper()
	if len(acks) != n {
		t.Fatalf("%d acks, want %d", len(acks), n)
	}
	for i, off := range acks {
		if off != int64(i) {
			t.Fatalf("message %d acknowledged at offset %d", i, off)
		}
	}
}

// readTestKVs reads testKV(0..n-1) at offsets 0 to n-1, stamped after start.
func readTestKVs(t *testing.T, ctx context.Context, c *Consumer, n int, start time.Time) {
	t.Helper()
	for i := 0; i < n; i++ {
		m, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("Next at %d: %v", i, err)
		}
		key, value := testKV(i)
		if m.Offset != int64(i) || !bytes.Equal(m.Key, key) || !bytes.Equal(m.Value, value) {
			t.Fatalf("message %d: offset %d key %q value %q", i, m.Offset, m.Key, m.Value)
		}
		if m.Time.Before(start.Add(-time.Second)) || m.Time.After(time.Now().Add(time.Second)) {
			t.Fatalf("message %d: time %v outside the test's run", i, m.Time)
		}
	}
}

// assertConsumedAll checks a consumer that read the n messages of its
// topic: its offsets, Next waiting at the end, and Next after Close.
func assertConsumedAll(t *testing.T, ctx context.Context, c *Consumer, n int64) {
	t.Helper()
	if c.Offset() != n || c.HighWatermark() != n {
		t.Errorf("offset %d, high watermark %d, want %d", c.Offset(), c.HighWatermark(), n)
	}
	if end, err := c.EndOffset(ctx); err != nil || end != n {
		t.Errorf("EndOffset %d, %v", end, err)
	}
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	if _, err := c.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next at the end: %v, want a deadline", err)
	}
	cancelShort()
	c.Close()
	if _, err := c.Next(ctx); !errors.Is(err, ErrConsumerClosed) {
		t.Errorf("Next after Close: %v", err)
	}
}

// newTestProducer is NewProducer, failing the test on an error.
func newTestProducer(t testing.TB, cfg Config, log zerolog.Logger, opts ProducerOptions) *Producer {
	t.Helper()
	p, err := NewProducer(cfg, log, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newTestConsumer is NewConsumer, failing the test on an error.
func newTestConsumer(t testing.TB, cfg Config, offset int64, log zerolog.Logger) *Consumer {
	t.Helper()
	c, err := NewConsumer(cfg, offset, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testKV(i int) (key, value []byte) {
	return []byte("k" + strconv.Itoa(i)), []byte(fmt.Sprintf("value-%08d-%s", i, strings.Repeat("x", i%17)))
}

// TestKafkaSendBlocksWhenFull fills a tiny queue before Run starts: Send
// blocks, wakes on its context, and resumes once Run drains the queue.
func TestKafkaSendBlocksWhenFull(t *testing.T) {
	topic := testenv.CreateTopic(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := testConfig(topic)
	cfg.MaxBatchBytes = 200
	cfg.MaxBufferedBytes = 3 * (10 + producerEntryOverhead) // three 10-byte messages
	var mu sync.Mutex
	var acked []any
	p := newTestProducer(t, cfg, testLogger(t), ProducerOptions{OnAck: func(tok any, off int64) {
		mu.Lock()
		acked = append(acked, tok)
		mu.Unlock()
	}})
	fillQueue(t, ctx, p)

	sent := make(chan error, 1)
	go func() { sent <- p.Send(ctx, []byte("key3"), []byte("value3"), 3) }()
	select {
	case err := <-sent:
		t.Fatalf("Send returned %v before Run drained the queue", err)
	case <-time.After(100 * time.Millisecond):
	}
	stop := runProducer(ctx, p)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	stop()
	mu.Lock()
	if fmt.Sprint(acked) != "[0 1 2 3]" {
		t.Errorf("acked %v", acked)
	}
	mu.Unlock()
	if end, err := EndOffset(ctx, cfg); err != nil || end != 4 {
		t.Errorf("EndOffset %d, %v, want 4", end, err)
	}
}

// fillQueue fills the queue of p, which is not running and holds three
// 10-byte messages: a fourth Send blocks until its deadline, and so does a
// Flush.
func fillQueue(t *testing.T, ctx context.Context, p *Producer) {
	t.Helper()
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("Flush of nothing: %v", err)
	}
	for i := 0; i < 3; i++ {
		if err := p.Send(ctx, []byte("key0"), []byte("value0"), i); err != nil {
			t.Fatal(err)
		}
	}
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	err := p.Send(short, []byte("key0"), []byte("value0"), 99)
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send into a full queue returned %v, want it to block until its deadline", err)
	}
	if m, b := p.Buffered(); m != 3 || b != p.cfg.MaxBufferedBytes {
		t.Fatalf("buffered %d messages %d bytes, want 3 and %d", m, b, p.cfg.MaxBufferedBytes)
	}
	shortFlush, cancelFlush := context.WithTimeout(ctx, 100*time.Millisecond)
	if err := p.Flush(shortFlush); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Flush without Run: %v", err)
	}
	cancelFlush()
}

// TestKafkaProducerUnreachable: with no broker the producer keeps retrying
// and keeps every message until its context ends.
func TestKafkaProducerUnreachable(t *testing.T) {
	cfg := Config{Brokers: []string{"127.0.0.1:1"}, Topic: "rowcast.unreachable", MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	metrics := &countingMetrics{}
	p, err := NewProducer(cfg, testLogger(t).Level(zerolog.ErrorLevel), ProducerOptions{
		OnAck:   func(any, int64) { t.Error("a message was acknowledged without a broker") },
		Metrics: metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := p.Send(context.Background(), []byte("k"), []byte("v"), i); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	err = p.Run(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run returned %v, want the context's deadline", err)
	}
	if m, _ := p.Buffered(); m != 5 {
		t.Errorf("%d messages still queued, want 5", m)
	}
	if e := metrics.errors(); e < 3 {
		t.Errorf("%d produce errors counted, want retries", e)
	}
	if err := p.Flush(context.Background()); !errors.Is(err, ErrProducerClosed) {
		t.Errorf("Flush after Run: %v", err)
	}

	c, err := NewConsumer(cfg, 0, testLogger(t).Level(zerolog.ErrorLevel), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	short, cancelShort := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancelShort()
	if _, err := c.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next without a broker: %v, want the deadline", err)
	}
}

// TestKafkaProducerFatal: a batch the broker refuses for good stops Run with
// an error naming the topic and the fix, and nothing is acknowledged.
func TestKafkaProducerFatal(t *testing.T) {
	topic := testenv.UniqueName(t, "rc")
	createTopicWith(t, topic, kafka.ConfigEntry{ConfigName: "max.message.bytes", ConfigValue: "2000"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := testConfig(topic)
	cfg.Compression = "none"
	produceAboveMaxMessageBytes(t, ctx, cfg)

	cfg.Topic = testenv.UniqueName(t, "rc") // never created
	cfg.RequestTimeout = time.Second
	p := newTestProducer(t, cfg, testLogger(t).Level(zerolog.ErrorLevel), ProducerOptions{})
	if err := p.Send(ctx, []byte("k"), []byte("v"), 1); err != nil {
		t.Fatal(err)
	}
	if err := p.Run(ctx); !errors.Is(err, ErrTopicNotFound) {
		t.Errorf("producing to a missing topic: %v, want ErrTopicNotFound", err)
	}
	if _, err := EndOffset(ctx, cfg); !errors.Is(err, ErrTopicNotFound) {
		t.Errorf("EndOffset of a missing topic: %v, want ErrTopicNotFound", err)
	}
}

// produceAboveMaxMessageBytes produces to a topic whose max.message.bytes is
// 2000: first batches above it, which the producer splits, then one message
// above it, which stops Run.
func produceAboveMaxMessageBytes(t *testing.T, ctx context.Context, cfg Config) {
	t.Helper()
	var acked []int64
	p := newTestProducer(t, cfg, testLogger(t), ProducerOptions{OnAck: func(tok any, off int64) {
		if tok.(int) != len(acked) {
			t.Errorf("ack %d carries token %v", len(acked), tok)
		}
		acked = append(acked, off)
	}})
	// 20 messages of 300 bytes make a first request of ~6 kB, above the
	// topic's 2000 bytes: the producer splits batches and keeps the order.
	for i := 0; i < 20; i++ {
		if err := p.Send(ctx, []byte("k"), bytes.Repeat([]byte{'a' + byte(i)}, 300), i); err != nil {
			t.Fatal(err)
		}
	}
	runErr := make(chan error, 1)
	go func() { runErr <- p.Run(ctx) }()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(acked) != fmt.Sprint([]int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}) {
		t.Errorf("acknowledged offsets %v", acked)
	}
	// One message above the limit cannot be split: Run stops.
	if err := p.Send(ctx, []byte("big"), bytes.Repeat([]byte("x"), 5000), pipeline.Position{TxnSeq: 7, Row: 3}); err != nil {
		t.Fatal(err)
	}
	err := <-runErr
	if !errors.Is(err, kafka.MessageSizeTooLarge) {
		t.Fatalf("Run returned %v, want MessageSizeTooLarge", err)
	}
	assertSays(t, err, cfg.Topic, "messages 20 to 20", "e0/t7/r3", "max.message.bytes")
	t.Log(err)
	got, err := ReadAt(ctx, cfg, 0, 100)
	if err != nil || len(got) != 20 || got[19].Value[0] != 'a'+19 {
		t.Errorf("topic holds %d messages, %v", len(got), err)
	}
}

// assertSays checks that err says each of want.
func assertSays(t *testing.T, err error, want ...string) {
	t.Helper()
	for _, s := range want {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}

// TestKafkaTopicInspection checks FirstOffset, EndOffset, ReadAt and
// OffsetForTime against three batches produced at known times.
func TestKafkaTopicInspection(t *testing.T) {
	topic := testenv.CreateTopic(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := testConfig(topic)

	assertEmptyTopic(t, ctx, cfg)
	var starts []time.Time
	for b := 0; b < 3; b++ {
		time.Sleep(20 * time.Millisecond)
		starts = append(starts, time.Now())
		produceN(t, cfg, b*10, 10)
	}
	if first, err := FirstOffset(ctx, cfg); err != nil || first != 0 {
		t.Errorf("FirstOffset %d, %v", first, err)
	}
	if end, err := EndOffset(ctx, cfg); err != nil || end != 30 {
		t.Errorf("EndOffset %d, %v, want 30", end, err)
	}
	for _, tc := range []struct {
		from       int64
		max        int
		wantFirst  int64
		wantLength int
	}{{0, 5, 0, 5}, {7, 100, 7, 23}, {29, 1, 29, 1}, {30, 5, 0, 0}, {12, 10, 12, 10}} {
		assertReadAt(t, ctx, cfg, tc.from, tc.max, tc.wantFirst, tc.wantLength)
	}
	if _, err := ReadAt(ctx, cfg, 31, 1); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Errorf("ReadAt past the end: %v", err)
	}
	for i, at := range starts {
		if off, err := OffsetForTime(ctx, cfg, at); err != nil || off != int64(i*10) {
			t.Errorf("OffsetForTime(start of batch %d) = %d, %v; want %d", i, off, err, i*10)
		}
	}
	if off, err := OffsetForTime(ctx, cfg, time.Time{}); err != nil || off != 0 {
		t.Errorf("OffsetForTime(zero) = %d, %v", off, err)
	}
	if off, err := OffsetForTime(ctx, cfg, time.Now().Add(time.Hour)); err != nil || off != 30 {
		t.Errorf("OffsetForTime(future) = %d, %v; want 30", off, err)
	}
}

// assertEmptyTopic checks what the topic helpers say of an empty topic.
func assertEmptyTopic(t *testing.T, ctx context.Context, cfg Config) {
	t.Helper()
	if first, err := FirstOffset(ctx, cfg); err != nil || first != 0 {
		t.Errorf("FirstOffset of an empty topic: %d, %v", first, err)
	}
	if end, err := EndOffset(ctx, cfg); err != nil || end != 0 {
		t.Errorf("EndOffset of an empty topic: %d, %v", end, err)
	}
	if got, err := ReadAt(ctx, cfg, 0, 10); err != nil || len(got) != 0 {
		t.Errorf("ReadAt an empty topic: %v, %v", got, err)
	}
	if off, err := OffsetForTime(ctx, cfg, time.Now()); err != nil || off != 0 {
		t.Errorf("OffsetForTime on an empty topic: %d, %v", off, err)
	}
}

// assertReadAt checks that ReadAt(from, max) returns wantLength messages
// testKV(wantFirst...) at their offsets.
func assertReadAt(t *testing.T, ctx context.Context, cfg Config, from int64, max int, wantFirst int64, wantLength int) {
	t.Helper()
	got, err := ReadAt(ctx, cfg, from, max)
	if err != nil || len(got) != wantLength {
		t.Errorf("ReadAt(%d, %d): %d messages, %v; want %d", from, max, len(got), err, wantLength)
		return
	}
	for i, m := range got {
		key, value := testKV(int(wantFirst) + i)
		if m.Offset != wantFirst+int64(i) || !bytes.Equal(m.Key, key) || !bytes.Equal(m.Value, value) {
			t.Errorf("ReadAt(%d, %d)[%d] = offset %d key %q", from, max, i, m.Offset, m.Key)
		}
	}
}

// produceN sends messages testKV(from..from+n-1) in one producer session and
// waits for them.
func produceN(t testing.TB, cfg Config, from, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := newTestProducer(t, cfg, testLogger(t), ProducerOptions{})
	stop := runProducer(ctx, p)
	for i := from; i < from+n; i++ {
		k, v := testKV(i)
		if err := p.Send(ctx, k, v, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	stop()
}

// TestKafkaOffsetOutOfRange deletes the first records of a topic: reading
// them is ErrOffsetOutOfRange naming both offsets, never a silent skip.
func TestKafkaOffsetOutOfRange(t *testing.T) {
	topic := testenv.CreateTopic(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := testConfig(topic)
	produceN(t, cfg, 0, 10)
	deleteRecords(t, topic, 5)

	if first, err := FirstOffset(ctx, cfg); err != nil || first != 5 {
		t.Fatalf("FirstOffset after deleting records: %d, %v; want 5", first, err)
	}
	c := newTestConsumer(t, cfg, 2, testLogger(t))
	defer c.Close()
	_, err := c.Next(ctx)
	if !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("Next at a deleted offset: %v, want ErrOffsetOutOfRange", err)
	}
	assertSays(t, err, "offset 2 is no longer retained", "earliest available offset is 5", topic)
	if _, err := ReadAt(ctx, cfg, 4, 10); !errors.Is(err, ErrOffsetOutOfRange) || !strings.Contains(err.Error(), "offset 4") {
		t.Errorf("ReadAt a deleted offset: %v", err)
	}
	got, err := ReadAt(ctx, cfg, 5, 100)
	if err != nil || len(got) != 5 || got[0].Offset != 5 || got[4].Offset != 9 {
		t.Errorf("ReadAt(5): %d messages, %v", len(got), err)
	}

	cfg.RequestTimeout = time.Second
	ahead := newTestConsumer(t, cfg, 50, testLogger(t).Level(zerolog.ErrorLevel))
	defer ahead.Close()
	_, err = ahead.Next(ctx)
	if !errors.Is(err, ErrOffsetOutOfRange) || !strings.Contains(err.Error(), "offset 50 is beyond the end") {
		t.Errorf("Next beyond the end: %v", err)
	}
}

// TestKafkaConsumerFollows reads messages produced after it started waiting.
func TestKafkaConsumerFollows(t *testing.T) {
	topic := testenv.CreateTopic(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := testConfig(topic)
	cfg.FetchMaxWait = 50 * time.Millisecond
	c := newTestConsumer(t, cfg, 0, testLogger(t))
	defer c.Close()
	go func() {
		time.Sleep(300 * time.Millisecond)
		produceN(t, cfg, 0, 3)
	}()
	for i := 0; i < 3; i++ {
		m, err := c.Next(ctx)
		if err != nil || m.Offset != int64(i) {
			t.Fatalf("Next: %+v, %v", m, err)
		}
	}
}

func TestKafkaLoggerBridge(t *testing.T) {
	var buf bytes.Buffer
	log := zerolog.New(&buf).Level(zerolog.DebugLevel)
	Logger(log).Printf("writing %d messages\n", 3)
	ErrorLogger(log).Printf("error %s", "boom")
	Logger(log.Level(zerolog.InfoLevel)).Printf("hidden")
	want := `{"level":"debug","component":"kafka-go","message":"writing 3 messages"}` + "\n" +
		`{"level":"warn","component":"kafka-go","message":"error boom"}` + "\n"
	if buf.String() != want {
		t.Errorf("got %s", buf.String())
	}
}

// TestDisruptiveKafkaBrokerRestart restarts the shared local broker while a producer
// and a consumer run, and checks that no message is lost or reordered
// (duplicates from retried produce requests are allowed). It stops Kafka for
// other tests for a few seconds, so scripts/test runs it in its serial
// phase with ROWCAST_DISRUPTIVE=1; it uses `scripts/stack stop kafka` and
// `scripts/stack start kafka`.
func TestDisruptiveKafkaBrokerRestart(t *testing.T) {
	if os.Getenv("ROWCAST_DISRUPTIVE") != "1" {
		t.Skip("stops shared services: scripts/test runs it in its serial phase (ROWCAST_DISRUPTIVE=1)")
	}
	_, file, _, _ := runtime.Caller(0)
	stack := filepath.Join(filepath.Dir(file), "..", "scripts", "stack")
	topic := testenv.CreateTopic(t, 1)
	t.Cleanup(func() {
		// testenv's client reuses kafka-go's DefaultTransport, whose pooled
		// connections died with the broker: its first request fails with
		// EOF. Delete the topic with a fresh transport first.
		c := freshKafkaClient(t)
		if _, err := c.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{topic}}); err != nil {
			t.Logf("delete topic %s: %v", topic, err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := testConfig(topic)
	cfg.MaxBackoff = time.Second

	var mu sync.Mutex
	acked := 0
	p := newTestProducer(t, cfg, testLogger(t), ProducerOptions{OnAck: func(tok any, _ int64) {
		mu.Lock()
		if tok.(int) != acked {
			t.Errorf("ack of %v, want %d", tok, acked)
		}
		acked++
		mu.Unlock()
	}})
	stop := runProducer(ctx, p)
	const n = 20000
	sendDone := sendSlowly(ctx, p, n)
	time.Sleep(200 * time.Millisecond)
	down := time.Now()
	for _, action := range []string{"stop", "start"} {
		out, err := exec.CommandContext(ctx, stack, action, "kafka").CombinedOutput()
		if err != nil {
			t.Fatalf("scripts/stack %s kafka: %v\n%s", action, err, out)
		}
	}
	t.Logf("broker restarted in %v", time.Since(down))
	if err := <-sendDone; err != nil {
		t.Fatalf("send and flush across the restart: %v", err)
	}
	stop()

	c := newTestConsumer(t, cfg, 0, testLogger(t))
	defer c.Close()
	dups := readInOrder(t, ctx, c, n, func(m Message) int {
		i, _ := strconv.Atoi(strings.TrimPrefix(string(m.Key), "k"))
		return i
	})
	t.Logf("%d messages in order across the restart, %d duplicates", n, dups)
}

// sendSlowly sends testKV(0..n-1) with token i, spread over about a
// second, and flushes; the channel gets the first error or Flush's.
func sendSlowly(ctx context.Context, p *Producer, n int) <-chan error {
	done := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			k, v := testKV(i)
			if err := p.Send(ctx, k, v, i); err != nil {
				done <- err
				return
			}
			if i%100 == 0 {
				time.Sleep(5 * time.Millisecond) // spread the sends over ~1 s of restart
			}
		}
		done <- p.Flush(ctx)
	}()
	return done
}

type countingMetrics struct {
	mu   sync.Mutex
	errs int
}

func (m *countingMetrics) Produced(int, int, time.Duration) {}
func (m *countingMetrics) Fetched(int, int, time.Duration)  {}
func (m *countingMetrics) RequestError(op, kind string) {
	m.mu.Lock()
	m.errs++
	m.mu.Unlock()
}
func (m *countingMetrics) errors() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.errs
}

// createTopicWith creates a one-partition topic with configs and deletes it
// when the test ends.
func createTopicWith(t *testing.T, topic string, configs ...kafka.ConfigEntry) {
	t.Helper()
	c := testenv.KafkaClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: 1, ReplicationFactor: 1, ConfigEntries: configs,
	}}})
	if err == nil {
		err = res.Errors[topic]
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	t.Cleanup(func() { testenv.DeleteTopic(t, topic) })
	testenv.WaitTopic(t, topic)
}

// freshKafkaClient returns a client with its own Transport. kafka-go answers
// Metadata requests from the transport's cache, refreshed every few seconds,
// so testenv's client (kafka-go's DefaultTransport, shared by the whole test
// binary) may not see yet a topic another client created.
func freshKafkaClient(t *testing.T) *kafka.Client {
	testenv.Need(t, "kafka")
	tr := &kafka.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &kafka.Client{Addr: kafka.TCP(testenv.KafkaBrokers()...), Timeout: 30 * time.Second, Transport: tr}
}

// topicConfig reads some of a topic's configuration.
func topicConfig(t *testing.T, topic string, names ...string) map[string]string {
	t.Helper()
	c := freshKafkaClient(t)
	res, err := c.DescribeConfigs(context.Background(), &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: names,
	}}})
	if err != nil || len(res.Resources) != 1 || res.Resources[0].Error != nil {
		t.Fatalf("describe configs of %s: %+v, %v", topic, res, err)
	}
	out := map[string]string{}
	for _, e := range res.Resources[0].ConfigEntries {
		out[e.ConfigName] = e.ConfigValue
	}
	return out
}

// deleteRecords deletes the records of partition 0 of topic below offset
// with a DeleteRecords (v1) request, which kafka-go v0.4.51 does not offer.
// The local stack has one broker, the leader of every partition.
func deleteRecords(t *testing.T, topic string, before int64) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", testenv.Addr("kafka"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))

	var b bytes.Buffer
	w := func(v any) { binary.Write(&b, binary.BigEndian, v) }
	str := func(s string) { w(int16(len(s))); b.WriteString(s) }
	w(int16(21))   // api key DeleteRecords
	w(int16(1))    // version
	w(int32(7))    // correlation id
	str("rowcast") // client id
	w(int32(1))    // topics
	str(topic)
	w(int32(1)) // partitions
	w(int32(0))
	w(before)
	w(int32(20000)) // timeout ms
	frame := binary.BigEndian.AppendUint32(nil, uint32(b.Len()))
	if _, err := conn.Write(append(frame, b.Bytes()...)); err != nil {
		t.Fatal(err)
	}

	var size int32
	if err := binary.Read(conn, binary.BigEndian, &size); err != nil {
		t.Fatalf("DeleteRecords response: %v", err)
	}
	resp := make([]byte, size)
	if _, err := io.ReadFull(conn, resp); err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(resp)
	var corr, throttle, ntopics, nparts, part int32
	var low int64
	var code, nameLen int16
	binary.Read(r, binary.BigEndian, &corr)
	binary.Read(r, binary.BigEndian, &throttle)
	binary.Read(r, binary.BigEndian, &ntopics)
	binary.Read(r, binary.BigEndian, &nameLen)
	r.Seek(int64(nameLen), io.SeekCurrent)
	binary.Read(r, binary.BigEndian, &nparts)
	binary.Read(r, binary.BigEndian, &part)
	binary.Read(r, binary.BigEndian, &low)
	if err := binary.Read(r, binary.BigEndian, &code); err != nil || corr != 7 || ntopics != 1 || nparts != 1 {
		t.Fatalf("DeleteRecords response malformed: %x", resp)
	}
	if code != 0 || low != before {
		t.Fatalf("DeleteRecords: error code %d, low watermark %d, want 0 and %d", code, low, before)
	}
}

// BenchmarkProducer measures acknowledged 500-byte messages per second to
// the local broker: acks=all, one request in flight, default batching, for
// each compression. Values are JSON-like with random digits, so they compress
// about as well as row images do. The bytes per op are the producer's copy of
// each message into its slabs.
func BenchmarkProducer(b *testing.B) {
	values := make([][]byte, 64)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range values {
		v := []byte(`{"before":null,"after":{"id":`)
		for len(v) < 490 {
			v = fmt.Appendf(v, `%d,"name":"customer %d","amount":"%d.%02d",`, rng.IntN(1e9), rng.IntN(1e6), rng.IntN(1e5), rng.IntN(100))
		}
		values[i] = append(v[:490], `},"op":"c"}`...)[:500]
	}
	key := []byte(`{"db":"shop","table":"orders","pk":[123456]}`)
	for _, comp := range []string{"none", "lz4", "zstd"} {
		b.Run(comp, func(b *testing.B) {
			topic := testenv.CreateTopic(b, 1)
			cfg := testConfig(topic)
			cfg.Compression = comp
			acked := 0
			p, err := NewProducer(cfg, zerolog.Nop(), ProducerOptions{OnAck: func(any, int64) { acked++ }})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			b.SetBytes(int64(len(key) + 500))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := p.Send(ctx, key, values[i%len(values)], nil); err != nil {
					b.Fatal(err)
				}
			}
			if err := p.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			cancel()
			<-done
			if acked != b.N {
				b.Fatalf("acked %d of %d", acked, b.N)
			}
		})
	}
}
