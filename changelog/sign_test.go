package changelog

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/rowcast/rowcast/internal/testenv"
)

func testKeys(t testing.TB, current, previous string) *SigningKeys {
	t.Helper()
	var prev []byte
	if previous != "" {
		prev = []byte(previous)
	}
	k, err := NewSigningKeys([]byte(current), prev)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const (
	keyA = "key-a-0123456789abcdef"
	keyB = "key-b-0123456789abcdef"
)

// A signature verifies with the key that made it, current or previous, and
// with nothing else; changing the topic, the key or the value breaks it.
func TestSignVerify(t *testing.T) {
	a := testKeys(t, keyA, "")
	sig := a.Sign(nil, "t", []byte("k"), []byte("v"))
	if len(sig) != sigValueLen {
		t.Fatalf("signature %q has %d bytes, want %d", sig, len(sig), sigValueLen)
	}
	rotated := testKeys(t, keyB, keyA)
	for _, c := range []struct {
		name       string
		keys       *SigningKeys
		topic      string
		key, value string
		sig        []byte
		want       error
	}{
		{"same key", a, "t", "k", "v", sig, nil},
		{"previous key after rotation", rotated, "t", "k", "v", sig, nil},
		{"unknown key", testKeys(t, keyB, ""), "t", "k", "v", sig, ErrBadSignature},
		{"other topic", a, "u", "k", "v", sig, ErrBadSignature},
		{"other value", a, "t", "k", "w", sig, ErrBadSignature},
		{"bytes moved from key to value", a, "t", "", "kv", sig, ErrBadSignature},
		{"unsigned", a, "t", "k", "v", nil, ErrUnsigned},
		{"garbage", a, "t", "k", "v", []byte("1:zz"), ErrBadSignature},
	} {
		err := c.keys.Verify(c.topic, 5, []byte(c.key), []byte(c.value), c.sig)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: Verify = %v, want %v", c.name, err, c.want)
		}
	}
	if err := rotated.Verify("t", 5, []byte("k"), []byte("v"), rotated.Sign(nil, "t", []byte("k"), []byte("v"))); err != nil {
		t.Errorf("the new key's own signature: %v", err)
	}
	a.TrustBefore = 6
	if err := a.Verify("t", 5, []byte("k"), []byte("v"), nil); err != nil {
		t.Errorf("unsigned below TrustBefore: %v", err)
	}
	if err := a.Verify("t", 6, []byte("k"), []byte("v"), nil); !errors.Is(err, ErrUnsigned) {
		t.Errorf("unsigned at TrustBefore: %v", err)
	}
	if _, err := NewSigningKeys([]byte("short"), nil); err == nil {
		t.Error("a 5-byte key was accepted")
	}
}

// Messages the producer signs verify when read back, through the consumer
// and ReadAt, compressed or not; a message written by another client without
// the key is marked, not dropped.
func TestKafkaSignedRoundTrip(t *testing.T) {
	for _, comp := range []string{"none", "lz4"} {
		t.Run(comp, func(t *testing.T) {
			topic := testenv.CreateTopic(t, 1)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cfg := testConfig(topic)
			cfg.Compression = comp
			cfg.Signing = testKeys(t, keyA, "")
			produceN(t, cfg, 0, 50)
			testenv.ProduceUnsigned(t, topic, []byte("forged"), []byte("{}"))
			testenv.ProduceUnsigned(t, topic, []byte("forged"), []byte("{}"), kafka.Header{Key: SigHeader, Value: cfg.Signing.Sign(nil, topic, []byte("other"), []byte("{}"))})
			produceN(t, cfg, 50, 10)
			msgs, err := ReadAt(ctx, cfg, 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			assertSigned(t, msgs, 62, map[int64]error{50: ErrUnsigned, 51: ErrBadSignature})

			cfg.Signing = testKeys(t, keyB, keyA) // rotated: the old key still verifies
			c := newTestConsumer(t, cfg, 0, testLogger(t))
			defer c.Close()
			var got []Message
			for len(got) < 62 {
				m, err := c.Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, m)
			}
			assertSigned(t, got, 62, map[int64]error{50: ErrUnsigned, 51: ErrBadSignature})

			// Deferred: every message is ErrNotVerified until Verify checks it.
			cfg.DeferVerify = true
			d := newTestConsumer(t, cfg, 0, testLogger(t))
			defer d.Close()
			got = got[:0]
			for len(got) < 62 {
				m, err := d.Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !errors.Is(m.SigErr, ErrNotVerified) {
					t.Fatalf("offset %d before Verify: SigErr %v, want ErrNotVerified", m.Offset, m.SigErr)
				}
				d.Verify(&m)
				d.Verify(&m) // a second check changes nothing
				got = append(got, m)
			}
			assertSigned(t, got, 62, map[int64]error{50: ErrUnsigned, 51: ErrBadSignature})
		})
	}
}

func assertSigned(t *testing.T, msgs []Message, n int, bad map[int64]error) {
	t.Helper()
	if len(msgs) != n {
		t.Fatalf("read %d messages, want %d", len(msgs), n)
	}
	for _, m := range msgs {
		want := bad[m.Offset]
		if !errors.Is(m.SigErr, want) || (want == nil) != (m.SigErr == nil) {
			t.Errorf("offset %d: SigErr %v, want %v", m.Offset, m.SigErr, want)
		}
	}
}

// The producer's own record batches carry the signature header, compressed
// or not, and kafka-go's reader finds it: what a broker stores and a
// consumer reads.
func TestEncodeSignedBatch(t *testing.T) {
	for _, comp := range []string{"none", "lz4", "zstd"} {
		cfg := Config{Brokers: []string{"127.0.0.1:1"}, Topic: "rowcast.test", Compression: comp, Signing: testKeys(t, keyA, "")}
		p, err := NewProducer(cfg, zerolog.Nop(), ProducerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b := &producerBatch{entries: []producerEntry{
			{key: []byte("k0"), value: []byte("v0")},
			{key: []byte("k1"), value: bytes.Repeat([]byte("x"), directValueBytes+10)},
		}}
		p.encode(b)
		if b.err != nil {
			t.Fatal(b.err)
		}
		var rs protocol.RecordSet
		if _, err := rs.ReadFrom(bytes.NewReader(b.out)); err != nil {
			t.Fatalf("%s: %v", comp, err)
		}
		n := 0
		for {
			r, err := rs.Records.ReadRecord()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", comp, err)
			}
			m := Message{Offset: int64(n)}
			m.Key, _ = io.ReadAll(r.Key)
			m.Value, _ = io.ReadAll(r.Value)
			if err := cfg.verify(&m, r.Headers); err != nil || len(r.Headers) != 1 {
				t.Errorf("%s: record %d: %v, headers %v", comp, n, err, r.Headers)
			}
			n++
		}
		if n != 2 {
			t.Errorf("%s: %d records, want 2", comp, n)
		}
		if got, bound := len(b.out)-4, encodedSize(b.entries, p.recOverhead); comp == "none" && got > bound {
			t.Errorf("encoded %d bytes, above the bound %d fitBatch counts with", got, bound)
		}
	}
}
