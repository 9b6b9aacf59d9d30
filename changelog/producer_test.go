package changelog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"go.uber.org/goleak"

	"github.com/rowcast/rowcast/internal/testenv"
)

var producerCompressions = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// producerTestMessages returns n messages whose values are random bytes
// (half of each printable, so every codec compresses them a little), of
// sizes from 0 to maxValue, with a null key every 97th message and an empty
// value every 89th, and token i.
func producerTestMessages(n, maxValue int, seed uint64) []ProducerMessage {
	rng := rand.New(rand.NewPCG(seed, 7))
	msgs := make([]ProducerMessage, n)
	for i := range msgs {
		m := &msgs[i]
		if i%97 != 5 {
			m.Key = fmt.Appendf(nil, `{"db":"shop","table":"orders","pk":[%d]}`, i)
		}
		if i%89 != 7 {
			m.Value = make([]byte, rng.IntN(maxValue+1))
			for j := range m.Value {
				if j%2 == 0 {
					m.Value[j] = byte(rng.Uint32())
				} else {
					m.Value[j] = 'a' + byte(j%26)
				}
			}
		}
		m.Token = i
	}
	return msgs
}

// TestProducerEncodeRecordBatch decodes what the encoder writes with
// kafka-go's own decoder: the size prefix RawProduce expects, one v2 batch
// with the codec in its attributes and a valid CRC, and the records in order
// with one timestamp of the encoding time.
//
// A batch of an outsized message (beyond 4 batches) is encoded in chunks when
// compressed, and must read the same.
func TestProducerEncodeRecordBatch(t *testing.T) {
	small := producerTestMessages(500, 3000, 1)
	small[3].Value = bytes.Repeat([]byte("z"), 300_000) // beyond one page of kafka-go's buffers
	outsized := producerTestMessages(3, 3000, 2)
	outsized[1].Value = producerTestMessages(1, 0, 3)[0].Value
	for i := range 6 << 20 { // half random, half compressible, as above
		outsized[1].Value = append(outsized[1].Value, byte(i*2654435761>>13)|byte(i%2)<<7)
	}
	for _, comp := range producerCompressions {
		t.Run(comp, func(t *testing.T) { testEncodeRecordBatch(t, comp, small, false) })
		t.Run(comp+"/outsized", func(t *testing.T) { testEncodeRecordBatch(t, comp, outsized, comp != "none") })
	}
}

// testEncodeRecordBatch encodes msgs in one batch and reads it back; chunked
// says whether encode must use chunks (an outsized compressed batch).
func testEncodeRecordBatch(t *testing.T, comp string, msgs []ProducerMessage, chunked bool) {
	cfg := Config{Brokers: []string{"127.0.0.1:1"}, Topic: "rowcast.encode", Compression: comp}
	p := newTestProducer(t, cfg, zerolog.Nop(), ProducerOptions{})
	b := &producerBatch{}
	for _, m := range msgs {
		b.entries = append(b.entries, producerEntry{key: m.Key, value: m.Value, token: m.Token})
	}
	before := time.Now().Truncate(time.Millisecond)
	p.encode(b)
	after := time.Now()
	if b.err != nil {
		t.Fatal(b.err)
	}
	raw, err := io.ReadAll(b.reader())
	if err != nil {
		t.Fatal(err)
	}
	if (b.more != nil) != chunked {
		t.Errorf("encoded in %d chunks, want chunks: %v", 1+len(b.more), chunked)
	}
	rs := readRecordSet(t, raw, comp)
	var stamp time.Time
	for i := 0; ; i++ {
		r, err := rs.Records.ReadRecord()
		if errors.Is(err, io.EOF) {
			if i != len(msgs) {
				t.Fatalf("%d records, want %d", i, len(msgs))
			}
			break
		}
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		assertRecord(t, i, r, msgs[i])
		if i == 0 {
			stamp = r.Time
		}
		if !r.Time.Equal(stamp) || stamp.Before(before) || stamp.After(after) {
			t.Fatalf("record %d: time %v, want the encoding time (%v to %v)", i, r.Time, before, after)
		}
	}
}

// readRecordSet decodes raw as RawProduce sends it: an int32 size, then one
// v2 record batch compressed with comp.
func readRecordSet(t *testing.T, raw []byte, comp string) *protocol.RecordSet {
	t.Helper()
	if size := binary.BigEndian.Uint32(raw); int(size) != len(raw)-4 {
		t.Fatalf("size prefix %d, want %d", size, len(raw)-4)
	}
	if crc, want := crc32.Checksum(raw[4+21:], castagnoli), binary.BigEndian.Uint32(raw[4+17:]); crc != want {
		t.Fatalf("CRC %08x, the batch says %08x", crc, want)
	}
	var rs protocol.RecordSet
	if _, err := rs.ReadFrom(bytes.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
	if want, _ := parseKafkaCompression(comp); rs.Version != 2 || rs.Attributes != protocol.Attributes(want) {
		t.Errorf("version %d attributes %v, want 2 and %s", rs.Version, rs.Attributes, comp)
	}
	return &rs
}

// assertRecord checks that record i holds m: offset i, the same key and
// value, null staying null.
func assertRecord(t *testing.T, i int, r *kafka.Record, m ProducerMessage) {
	t.Helper()
	key, value := readKafkaBytes(t, r.Key), readKafkaBytes(t, r.Value)
	if r.Offset != int64(i) || !sameBytes(key, m.Key) || !sameBytes(value, m.Value) {
		t.Fatalf("record %d: offset %d, key %q, %d value bytes", i, r.Offset, key, len(value))
	}
}

// sameBytes compares two keys or values, null apart from empty.
func sameBytes(a, b []byte) bool { return bytes.Equal(a, b) && (a == nil) == (b == nil) }

func readKafkaBytes(t *testing.T, b kafka.Bytes) []byte {
	t.Helper()
	if b == nil {
		return nil
	}
	out, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{}, out...)
}

// runProducer starts p.Run and returns a function that stops it and returns
// its error.
func runProducer(ctx context.Context, p *Producer) (stop func() error) {
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	return func() error {
		cancel()
		return <-done
	}
}

// orderedAcks records OnAck calls and checks that tokens come 0, 1, 2, ...
// at consecutive offsets (increasing ones if gaps is set).
type orderedAcks struct {
	t       testing.TB
	gaps    bool // offsets may skip (a retried batch was appended twice)
	mu      sync.Mutex
	offsets []int64
}

func (a *orderedAcks) onAck(token any, offset int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if tok := token.(int); tok != len(a.offsets) {
		a.t.Errorf("ack %d carries token %d", len(a.offsets), tok)
	}
	if n := len(a.offsets); n > 0 && (offset <= a.offsets[n-1] || !a.gaps && offset != a.offsets[n-1]+1) {
		a.t.Errorf("ack %d at offset %d after %d", n, offset, a.offsets[n-1])
	}
	a.offsets = append(a.offsets, offset)
}

func (a *orderedAcks) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.offsets)
}

// expectIdle checks the encoder's accounting once everything was
// acknowledged: nothing claimed, nothing left to claim.
func expectIdle(t *testing.T, p *Producer) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.claimed != 0 || p.unclaimed != 0 || p.head != len(p.q) {
		t.Errorf("after the last acknowledgement: %d claimed, %d bytes unclaimed, %d queued", p.claimed, p.unclaimed, len(p.q)-p.head)
	}
}

// expectTopic reads the whole topic back and compares it with msgs: the same
// keys (null stays null) and values, at offsets 0, 1, 2, ..., nothing more.
func expectTopic(t *testing.T, ctx context.Context, cfg Config, msgs []ProducerMessage) {
	t.Helper()
	cfg.FetchMaxWait = 50 * time.Millisecond
	c := newTestConsumer(t, cfg, 0, testLogger(t))
	defer c.Close()
	for i, want := range msgs {
		m, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("Next at %d: %v", i, err)
		}
		if m.Offset != int64(i) || !sameBytes(m.Key, want.Key) || !bytes.Equal(m.Value, want.Value) {
			t.Fatalf("offset %d holds offset %d key %q (%d value bytes), want message %d key %q (%d value bytes)",
				i, m.Offset, m.Key, len(m.Value), i, want.Key, len(want.Value))
		}
	}
	if end, err := c.EndOffset(ctx); err != nil || end != int64(len(msgs)) {
		t.Errorf("EndOffset %d, %v, want %d", end, err, len(msgs))
	}
}

// TestKafkaProducerCompressions sends messages with every codec, in small
// batches so that the encoder works ahead of requests, part of them queued
// before Run (a backlog of full batches) and part while it runs, one larger
// than a batch, and reads them back with the consumer.
func TestKafkaProducerCompressions(t *testing.T) {
	for _, comp := range producerCompressions {
		t.Run(comp, func(t *testing.T) {
			topic := testenv.CreateTopic(t, 1)
			leaks := goleak.IgnoreCurrent()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cfg := testConfig(topic)
			cfg.Compression = comp
			cfg.MaxBatchBytes = 64 << 10
			cfg.MaxBufferedBytes = 1 << 20
			msgs := producerTestMessages(6000, 700, 2)
			msgs[4321].Value = bytes.Repeat([]byte("big"), 30_000) // alone in its batch
			acks := &orderedAcks{t: t}
			p := newTestProducer(t, cfg, testLogger(t), ProducerOptions{OnAck: acks.onAck})
			if _, err := p.SendBatch(ctx, msgs[:1000]); err != nil {
				t.Fatal(err)
			}
			stop := runProducer(ctx, p)
			for i := 1000; i < len(msgs); i += 100 {
				if _, err := p.SendBatch(ctx, msgs[i:i+100]); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if n := acks.count(); n != len(msgs) || acks.offsets[0] != 0 {
				t.Fatalf("%d acks from offset %d, want %d from 0", n, acks.offsets[0], len(msgs))
			}
			if err := stop(); !errors.Is(err, context.Canceled) {
				t.Errorf("Run returned %v, want context.Canceled", err)
			}
			verifyNoLeaks(t, leaks) // the encoder and the producer's connections are gone
			expectIdle(t, p)
			expectTopic(t, ctx, cfg, msgs)
		})
	}
}

// TestKafkaProducerRetriesConnectionFaults breaks the producer's connection
// to the broker on some produce requests: either before the request leaves
// (nothing is appended) or after it was written, losing the answer (the
// broker may have appended the batch). The producer retries the same batch,
// with the next one encoded and waiting, and the topic ends up holding every
// message in order, a retried batch possibly twice.
func TestKafkaProducerRetriesConnectionFaults(t *testing.T) {
	topic := testenv.CreateTopic(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := testConfig(topic)
	cfg.Compression = "none" // produce requests of predictable size
	cfg.MaxBatchBytes = 32 << 10
	cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	metrics := &kindMetrics{}
	acks := &orderedAcks{t: t, gaps: true}
	p := newTestProducer(t, cfg, testLogger(t).Level(zerolog.ErrorLevel), ProducerOptions{OnAck: acks.onAck, Metrics: metrics})
	// The faults hit the n-th produce request, counting retries.
	f := &connFaults{at: map[int]string{1: "refuse", 2: "refuse", 4: "lose", 5: "lose", 7: "refuse", 9: "lose"}}
	// While a request fails, the next batch is claimed too (encoded ahead):
	// more messages than the batch in flight holds.
	var ahead atomic.Int32
	f.onLose = func() {
		p.mu.Lock()
		if inFlight, _ := p.fitBatch(p.head); p.claimed > inFlight {
			ahead.Add(1)
		}
		p.mu.Unlock()
	}
	conn, err := newKafkaConn(&p.cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.conn = conn
	p.conn.transport.Dial = f.dial
	msgs := producerTestMessages(3000, 400, 3)
	if _, err := p.SendBatch(ctx, msgs[:1500]); err != nil {
		t.Fatal(err)
	}
	stop := runProducer(ctx, p)
	if _, err := p.SendBatch(ctx, msgs[1500:]); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v", err)
	}
	if n := acks.count(); n != len(msgs) {
		t.Fatalf("%d acks, want %d", n, len(msgs))
	}
	if got := f.done(); got != len(f.at) {
		t.Fatalf("%d of %d faults happened", got, len(f.at))
	}
	if ahead.Load() == 0 {
		t.Error("no batch was claimed ahead of a failing request")
	}
	t.Logf("%d produce requests, produce errors %v", f.requests(), metrics.kinds())

	cfg.FetchMaxWait = 50 * time.Millisecond
	c := newTestConsumer(t, cfg, 0, testLogger(t))
	defer c.Close()
	dups := readInOrder(t, ctx, c, len(msgs), func(m Message) int {
		return slices.IndexFunc(msgs, func(pm ProducerMessage) bool { return bytes.Equal(pm.Key, m.Key) && bytes.Equal(pm.Value, m.Value) })
	})
	t.Logf("%d messages in order, %d duplicates from answers lost", len(msgs), dups)
}

// readInOrder reads the n messages of a topic written with retries:
// index(m) says which message m is, -1 for none. Each must come in order;
// copies of messages already read (a retried produce) are allowed and
// counted.
func readInOrder(t *testing.T, ctx context.Context, c *Consumer, n int, index func(Message) int) (dups int) {
	t.Helper()
	for want := 0; want < n; {
		m, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("Next after %d messages: %v", want, err)
		}
		switch i := index(m); {
		case i == want:
			want++
		case i >= 0 && i < want:
			dups++
		default:
			t.Fatalf("offset %d holds message %d, want %d: a message was lost or reordered", m.Offset, i, want)
		}
	}
	return dups
}

// connFaults dials connections that break on chosen produce requests (any
// request above 8 KiB: with compression none, only produce requests are that
// large): "refuse" closes the connection instead of writing the request,
// "lose" writes it and closes the connection instead of reading the answer.
type connFaults struct {
	at     map[int]string
	onLose func() // called before an answer is lost

	mu     sync.Mutex
	n      int // large requests seen
	faults int // faults done
}

func (f *connFaults) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &faultyConn{Conn: conn, f: f}, nil
}

// next counts a large request and returns its fault, if any.
func (f *connFaults) next() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	fault := f.at[f.n]
	if fault != "" {
		f.faults++
	}
	return fault
}

func (f *connFaults) done() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.faults
}

func (f *connFaults) requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// faultyConn follows the requests written on it: kafka-go writes each one
// from its start (an int32 size) and reads its answer before the next.
type faultyConn struct {
	net.Conn
	f       *connFaults
	remain  int  // bytes of the current request not yet written
	loseAns bool // close instead of reading the current answer
}

func (c *faultyConn) Write(b []byte) (int, error) {
	if c.remain == 0 && len(b) >= 4 {
		c.remain = 4 + int(binary.BigEndian.Uint32(b))
		c.loseAns = false
		if c.remain > 8<<10 {
			switch c.f.next() {
			case "refuse":
				c.Conn.Close()
				return 0, fmt.Errorf("test fault before the request: %w", net.ErrClosed)
			case "lose":
				c.loseAns = true
			}
		}
	}
	n, err := c.Conn.Write(b)
	c.remain = max(c.remain-n, 0)
	return n, err
}

func (c *faultyConn) Read(b []byte) (int, error) {
	if c.loseAns && c.remain == 0 {
		time.Sleep(50 * time.Millisecond) // let the broker read the request
		if c.f.onLose != nil {
			c.f.onLose()
		}
		c.Conn.Close()
		return 0, fmt.Errorf("test fault after the request: %w", net.ErrClosed)
	}
	return c.Conn.Read(b)
}

// TestKafkaProducerSplitsBacklog: the topic's max.message.bytes is far below
// MaxBatchBytes and several full batches are queued, so a batch is encoded
// ahead whenever one is refused as too large. The refused batch and the one
// encoded ahead are both batched again, smaller, and everything arrives once
// and in order.
func TestKafkaProducerSplitsBacklog(t *testing.T) {
	for _, comp := range []string{"none", "lz4"} {
		t.Run(comp, func(t *testing.T) {
			topic := testenv.UniqueName(t, "rc")
			createTopicWith(t, topic, kafka.ConfigEntry{ConfigName: "max.message.bytes", ConfigValue: "20000"})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cfg := testConfig(topic)
			cfg.Compression = comp
			cfg.MaxBatchBytes = 256 << 10
			log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel)
			acks := &orderedAcks{t: t}
			p := newTestProducer(t, cfg, log, ProducerOptions{OnAck: acks.onAck})
			msgs := producerTestMessages(3000, 600, 4)
			if _, err := p.SendBatch(ctx, msgs); err != nil {
				t.Fatal(err)
			}
			stop := runProducer(ctx, p)
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if err := stop(); !errors.Is(err, context.Canceled) {
				t.Errorf("Run returned %v", err)
			}
			if n := acks.count(); n != len(msgs) || acks.offsets[0] != 0 {
				t.Fatalf("%d acks, want %d from offset 0", n, len(msgs))
			}
			expectIdle(t, p)
			p.mu.Lock()
			batchBytes := p.batchBytes
			p.mu.Unlock()
			if batchBytes > 20000 {
				t.Errorf("batch limit %d after the splits, want at most the topic's 20000", batchBytes)
			}
			expectTopic(t, ctx, cfg, msgs)
		})
	}
}

// TestKafkaProducerLingerAndFlush: while no request is in flight a partial
// batch waits Linger for more messages, and a Flush sends it at once.
func TestKafkaProducerLingerAndFlush(t *testing.T) {
	topic := testenv.CreateTopic(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := testConfig(topic)
	cfg.Linger = 300 * time.Millisecond
	acks := &orderedAcks{t: t}
	p := newTestProducer(t, cfg, testLogger(t), ProducerOptions{OnAck: acks.onAck})
	stop := runProducer(ctx, p)
	defer stop()
	msgs := producerTestMessages(3, 50, 5)
	start := time.Now()
	if err := p.Send(ctx, msgs[0].Key, msgs[0].Value, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := acks.count(); n != 0 {
		t.Fatalf("a message was sent %v after Send, before Linger", time.Since(start))
	}
	if err := p.Send(ctx, msgs[1].Key, msgs[1].Value, 1); err != nil {
		t.Fatal(err)
	}
	for acks.count() < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	if d := time.Since(start); d < cfg.Linger-10*time.Millisecond {
		t.Errorf("first batch sent after %v, before Linger %v", d, cfg.Linger)
	}
	if fmt.Sprint(acks.offsets) != "[0 1]" {
		t.Errorf("offsets %v: the two messages were not one batch", acks.offsets)
	}

	if err := p.Send(ctx, msgs[2].Key, msgs[2].Value, 2); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > cfg.Linger/2 {
		t.Errorf("Flush took %v: it waited for Linger (%v)", d, cfg.Linger)
	}
	expectTopic(t, ctx, cfg, msgs)
}

// kindMetrics counts request errors by kind.
type kindMetrics struct {
	mu   sync.Mutex
	errs map[string]int
}

func (m *kindMetrics) Produced(int, int, time.Duration) {}
func (m *kindMetrics) Fetched(int, int, time.Duration)  {}
func (m *kindMetrics) RequestError(op, kind string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.errs == nil {
		m.errs = map[string]int{}
	}
	m.errs[op+"/"+kind]++
}

func (m *kindMetrics) count(kind string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.errs["produce/"+kind]
}

func (m *kindMetrics) kinds() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return fmt.Sprint(m.errs)
}

// BenchmarkProducerThroughput measures acknowledged messages per second to
// the local broker (acks=all, one request in flight, default batching) with
// messages shaped like rowcast's: a ~45-byte key and a ~600-byte JSON value,
// all different (random digits), so that a batch compresses about as a
// batch of row changes does, not by repeating the same few values. Every
// message is queued before the timer starts, so the producer alone is
// measured, as in a backlog. It uses only the public API.
func BenchmarkProducerThroughput(b *testing.B) {
	const pool = 1 << 14 // more distinct messages than fit in a batch
	rng := rand.New(rand.NewPCG(1, 2))
	msgs := make([]ProducerMessage, pool)
	size := 0
	for i := range msgs {
		v := fmt.Appendf(nil, `{"before":null,"after":{"id":%d`, rng.IntN(1e9))
		for len(v) < 580 {
			v = fmt.Appendf(v, `,"c%d":"customer %d","amount":"%d.%02d"`, len(v), rng.IntN(1e6), rng.IntN(1e5), rng.IntN(100))
		}
		v = append(v, `},"op":"c","source":{"db":"shop","table":"orders"}}`...)
		msgs[i] = ProducerMessage{Key: fmt.Appendf(nil, `{"db":"shop","table":"orders","pk":[%d]}`, i), Value: v}
		size += len(msgs[i].Key) + len(v)
	}
	for _, comp := range []string{"none", "lz4", "zstd"} {
		b.Run(comp, func(b *testing.B) {
			topic := testenv.CreateTopic(b, 1)
			cfg := testConfig(topic)
			cfg.Compression = comp
			cfg.MaxBufferedBytes = 1 << 30
			var requests, acked int
			var inRequests time.Duration
			p, err := NewProducer(cfg, zerolog.Nop(), ProducerOptions{
				OnAck:   func(any, int64) { acked++ },
				Metrics: &benchMetrics{requests: &requests, busy: &inRequests},
			})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			for i := 0; i < b.N; i += pool {
				if _, err := p.SendBatch(ctx, msgs[:min(pool, b.N-i)]); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(size / pool))
			b.ReportAllocs()
			b.ResetTimer()
			stop := runProducer(ctx, p)
			if err := p.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			stop()
			if acked != b.N {
				b.Fatalf("acked %d of %d", acked, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(b.N)/float64(requests), "msgs/request")
			b.ReportMetric(100*inRequests.Seconds()/b.Elapsed().Seconds(), "%in-requests")
		})
	}
}

// benchMetrics sums produce requests and their latency. Produced is called
// from Run's goroutine only.
type benchMetrics struct {
	requests *int
	busy     *time.Duration
}

func (m *benchMetrics) Produced(_, _ int, d time.Duration) { *m.requests++; *m.busy += d }
func (m *benchMetrics) Fetched(int, int, time.Duration)    {}
func (m *benchMetrics) RequestError(string, string)        {}

// BenchmarkProducerEncode measures the encoder alone on full 1 MiB batches of
// BenchmarkProducerThroughput-like messages: the CPU that encoding and
// compressing takes per batch, which Run overlaps with the request in
// flight.
func BenchmarkProducerEncode(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	batch := &producerBatch{}
	size := 0
	for i := 0; size < DefaultKafkaMaxBatchBytes; i++ {
		v := fmt.Appendf(nil, `{"before":null,"after":{"id":%d`, rng.IntN(1e9))
		for len(v) < 580 {
			v = fmt.Appendf(v, `,"c%d":"customer %d","amount":"%d.%02d"`, len(v), rng.IntN(1e6), rng.IntN(1e5), rng.IntN(100))
		}
		k := fmt.Appendf(nil, `{"db":"shop","table":"orders","pk":[%d]}`, i)
		batch.entries = append(batch.entries, producerEntry{key: k, value: v})
		size += len(k) + len(v)
	}
	for _, comp := range []string{"none", "lz4", "zstd", "snappy", "gzip"} {
		b.Run(comp, func(b *testing.B) {
			p, err := NewProducer(Config{Brokers: []string{"127.0.0.1:1"}, Topic: "rowcast.bench", Compression: comp}, zerolog.Nop(), ProducerOptions{})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				p.encode(batch)
			}
			b.ReportMetric(float64(size)/float64(len(batch.out)), "ratio")
		})
	}
	// The same batch signed: what signing adds to the encoder goroutine.
	b.Run("lz4-signed", func(b *testing.B) {
		keys, _ := NewSigningKeys([]byte("bench-key-0123456789abcdef"), nil)
		p, err := NewProducer(Config{Brokers: []string{"127.0.0.1:1"}, Topic: "rowcast.bench", Compression: "lz4", Signing: keys},
			zerolog.Nop(), ProducerOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(size))
		b.ReportAllocs()
		for b.Loop() {
			p.encode(batch)
		}
		b.ReportMetric(float64(size)/float64(len(batch.out)), "ratio")
	})
	// Baseline: the same batch through kafka-go's own encoder with its lz4
	// codec (4 MiB blocks, content checksum), as (*kafka.Client).Produce
	// encodes it.
	b.Run("lz4-kafka-go", func(b *testing.B) {
		recs := make([]kafka.Record, len(batch.entries))
		var buf bytes.Buffer
		b.SetBytes(int64(size))
		b.ReportAllocs()
		for b.Loop() {
			for i, e := range batch.entries {
				recs[i] = kafka.Record{Key: kafka.NewBytes(e.key), Value: kafka.NewBytes(e.value)}
			}
			buf.Reset()
			rs := protocol.RecordSet{Version: 2, Attributes: protocol.Attributes(kafka.Lz4), Records: kafka.NewRecordReader(recs...)}
			if _, err := rs.WriteTo(&buf); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(size)/float64(buf.Len()), "ratio")
	})
}

// TestKafkaProducerDropsSentBigValue: a big value given to the producer is
// let go once its batch is encoded, yet arrives whole, and the queue's byte
// count still returns to zero.
func TestKafkaProducerDropsSentBigValue(t *testing.T) {
	topic := testenv.CreateTopic(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := testConfig(topic)
	acks := 0
	p := newTestProducer(t, cfg, testLogger(t), ProducerOptions{OnAck: func(any, int64) { acks++ }})
	stop := runProducer(ctx, p)
	big := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB
	want := append([]byte{}, big...)
	msgs := []ProducerMessage{{Key: []byte("small"), Value: []byte("v")}, {Key: []byte("big"), Value: big, Owned: true}}
	if _, err := p.SendBatch(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if m, b := p.Buffered(); m != 0 || b != 0 || acks != 2 {
		t.Fatalf("after Flush: %d messages, %d bytes buffered, %d acks", m, b, acks)
	}
	stop()
	c := newTestConsumer(t, cfg, 0, testLogger(t))
	defer c.Close()
	for _, key := range []string{"small", "big"} {
		m, err := c.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Key) != key || (key == "big" && !bytes.Equal(m.Value, want)) {
			t.Fatalf("message %q: %d bytes, want the value sent", m.Key, len(m.Value))
		}
	}
}
