package changelog

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
)

// TestKafkaBigMessageGate: two gated consumers of one topic in one process
// never hold big messages at once. The holder keeps the gate until its
// worker applied what it took (Applied), waits for that before it takes
// the next big message unless the worker starves (a transaction of several
// big rows), and a reserved big message of the process's producer keeps
// consumers out until Kafka has it, and waits for their fetches in flight.
func TestKafkaBigMessageGate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg, p := bigTopic(ctx, t)
	big := bytes.Repeat([]byte("b"), 3<<19) // 1.5 MiB: big for a prefetch of 1 MiB
	publish(ctx, t, p, []byte("s0"), big, []byte("s2"), big, big, []byte("s5"))

	cfg.PrefetchBytes, cfg.GateBigMessages = 1<<20, true
	a := newTestConsumer(t, cfg, 0, testLogger(t))
	defer a.Close()
	wantNext(ctx, t, "a", a, 0)
	wantNext(ctx, t, "a", a, 1)                    // a takes the gate
	b := newTestConsumer(t, cfg, 0, testLogger(t)) // after: its fetcher would race a's for the gate
	defer b.Close()
	wantNext(ctx, t, "b", b, 0)
	wantBlocked(ctx, t, "b's big message while a holds the gate", b)
	wantNext(ctx, t, "a", a, 2)
	wantBlocked(ctx, t, "a's second big message before its first is applied", a)
	if !a.AwaitsApplied() {
		t.Error("a waits for its first big message to be applied, but AwaitsApplied is false: its worker would not commit")
	}
	a.Idle(3) // its worker waits for more: a transaction of several big rows
	wantNext(ctx, t, "a (starving)", a, 3)
	a.Applied(4)
	wantNext(ctx, t, "b once a applied its big messages", b, 1)
	wantBlocked(ctx, t, "a's next big message while b holds the gate", a)
	b.Applied(2)
	wantNext(ctx, t, "a once b applied", a, 4)
	wantNext(ctx, t, "a", a, 5)

	// A reserved big message keeps the gate until Kafka has it: the
	// consumers wait for it; AwaitBig returns once it is acknowledged.
	a.Applied(6)
	if !p.ReserveBig(ctx, false) {
		t.Fatal("ReserveBig with nothing held: false")
	}
	if _, err := p.SendBatch(ctx, []ProducerMessage{{Key: []byte("k6"), Value: big, Reserved: true}}); err != nil {
		t.Fatal(err)
	}
	p.AwaitBig(ctx)
	if !bigMessages.isBig(cfg.Topic, 6) {
		t.Error("the reserved big message at offset 6 is not known to the gate after AwaitBig")
	}
	wantNext(ctx, t, "a", a, 6)

	// ReserveBig returns once the fetches in flight ended (but the
	// holder's): the broker would answer a fetch waiting at the end of the
	// topic with the big message, read whole even to be dropped.
	a.Applied(7)
	wantBlocked(ctx, t, "a at the end of the topic", a) // its fetches wait at the broker
	if !p.ReserveBig(ctx, false) {
		t.Fatal("ReserveBig with nothing held: false")
	}
	bigMessages.mu.Lock()
	busy := bigMessages.fetchesBeside(cfg.Topic)
	bigMessages.mu.Unlock()
	if busy {
		t.Error("ReserveBig returned while a consumer's fetch was in flight")
	}
	if _, err := p.SendBatch(ctx, []ProducerMessage{{Key: []byte("k7"), Value: big, Reserved: true}}); err != nil {
		t.Fatal(err)
	}
	p.AwaitBig(ctx)
	wantNext(ctx, t, "a", a, 7)
}

// bigTopic creates a topic that takes messages of 4 MiB and runs a producer
// of it until the test ends.
func bigTopic(ctx context.Context, t *testing.T) (Config, *Producer) {
	t.Helper()
	cfg := testConfig(testenv.UniqueName(t, "big"))
	cfg.MaxMessageBytes = 4 << 20
	t.Cleanup(func() { testenv.DeleteTopic(t, cfg.Topic) })
	if _, err := EnsureTopic(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	p := newTestProducer(t, cfg, testLogger(t), ProducerOptions{})
	stop := runProducer(ctx, p)
	t.Cleanup(func() { stop() })
	return cfg, p
}

// publish sends values with keys k0, k1, ... and waits for Kafka to have
// them.
func publish(ctx context.Context, t *testing.T, p *Producer, values ...[]byte) {
	t.Helper()
	for i, v := range values {
		if err := p.Send(ctx, []byte("k"+strconv.Itoa(i)), v, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// wantNext reads c's next message and checks its offset.
func wantNext(ctx context.Context, t *testing.T, who string, c *Consumer, offset int64) {
	t.Helper()
	nctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	m, err := c.Next(nctx)
	if err != nil || m.Offset != offset {
		t.Fatalf("%s: Next = offset %d, %v; want offset %d", who, m.Offset, err, offset)
	}
}

// wantBlocked checks that c's next message does not come within 2 s.
func wantBlocked(ctx context.Context, t *testing.T, what string, c *Consumer) {
	t.Helper()
	nctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if m, err := c.Next(nctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s: got offset %d (%v), want it held back", what, m.Offset, err)
	}
}

// TestKafkaSinksApplyBig: SinksApplyBig reports a gated consumer that has
// fetched everything before the last big message of the topic and whose
// worker has not applied it; not one that applied it, started past it, or
// closed. (A consumer behind the message: TestGateApplyingBehind.)
func TestKafkaSinksApplyBig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg, p := bigTopic(ctx, t)
	publish(ctx, t, p, []byte("s0"))
	cfg.PrefetchBytes, cfg.GateBigMessages = 1<<20, true
	a := newTestConsumer(t, cfg, 0, testLogger(t))
	defer a.Close()
	past := newTestConsumer(t, cfg, 2, testLogger(t)) // starts after the big message
	defer past.Close()
	wantNext(ctx, t, "a", a, 0)
	if p.SinksApplyBig() {
		t.Fatal("SinksApplyBig before any big message")
	}

	if !p.ReserveBig(ctx, false) {
		t.Fatal("ReserveBig with nothing held: false")
	}
	if _, err := p.SendBatch(ctx, []ProducerMessage{{Key: []byte("k1"), Value: bytes.Repeat([]byte("b"), 3<<19), Reserved: true}}); err != nil {
		t.Fatal(err)
	}
	p.AwaitBig(ctx)
	if !p.SinksApplyBig() {
		t.Error("SinksApplyBig false while a has fetched everything before the big message")
	}
	wantNext(ctx, t, "a", a, 1)
	a.Applied(1)
	if !p.SinksApplyBig() {
		t.Error("SinksApplyBig false while a's worker has applied what came before the big message only")
	}
	a.Applied(2)
	if p.SinksApplyBig() {
		t.Error("SinksApplyBig true once a's worker applied the big message")
	}

	b := newTestConsumer(t, cfg, 0, testLogger(t))
	wantNext(ctx, t, "b", b, 0)
	if !p.SinksApplyBig() {
		t.Error("SinksApplyBig false while b has fetched everything before the big message")
	}
	b.Close()
	if p.SinksApplyBig() {
		t.Error("SinksApplyBig true after b closed")
	}
}

// TestGateApplyingBehind: a consumer that has not fetched up to the last big
// message counts as about to apply it for bigCatchUp after it was noted (a
// sink at the end of the topic fetches the messages batched before it
// first), then no longer (a sink far behind must not hold the reader).
func TestGateApplyingBehind(t *testing.T) {
	g := &bigGate{free: make(chan struct{}), consumers: map[*Consumer]bool{}, seen: map[string][]int64{}, seenAt: map[string]time.Time{}}
	behind, ahead, other := &Consumer{cfg: Config{Topic: "t"}}, &Consumer{cfg: Config{Topic: "t"}}, &Consumer{cfg: Config{Topic: "u"}}
	behind.delivered.Store(5)
	behind.applied.Store(5)
	ahead.delivered.Store(20)
	ahead.applied.Store(20)
	other.delivered.Store(10)
	other.applied.Store(0)
	for _, c := range []*Consumer{behind, ahead, other} {
		g.join(c)
	}
	if g.applying("t") {
		t.Fatal("applying before any big message")
	}
	g.note("t", 10)
	if !g.applying("t") {
		t.Error("a consumer behind the big message just noted does not count")
	}
	g.seenAt["t"] = time.Now().Add(-bigCatchUp)
	if g.applying("t") {
		t.Error("a consumer behind the big message counts after bigCatchUp")
	}
	behind.delivered.Store(10)
	if !g.applying("t") {
		t.Error("a consumer that fetched everything before the big message does not count")
	}
	behind.applied.Store(11)
	if g.applying("t") {
		t.Error("a consumer that applied the big message counts")
	}
	g.leave(behind)
	behind.applied.Store(0)
	if g.applying("t") {
		t.Error("a consumer that left counts")
	}
}
