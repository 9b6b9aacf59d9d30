package sink_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// TestKafkaInputBigRows: two workers of one process apply a topic of rows
// larger than their decode budget (a row alone, two in one transaction, one
// fetched with small ones behind it) through the process's big message
// gate; both apply every row.
func TestKafkaInputBigRows(t *testing.T) {
	s := script()
	big := strings.Repeat("b", 3<<19) // 1.5 MiB; the inputs decode 512 KiB ahead
	s.Insert("t", int64(1), big)
	s.Commit()
	s.Insert("t", int64(2), big)
	s.Insert("t", int64(3), big)
	s.Commit()
	for i := range 5 {
		s.Insert("t", int64(4+i), "v")
	}
	s.Commit()
	codec := &pipeline.Codec{Cluster: "test"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := changelog.Config{Brokers: testenv.KafkaBrokers(), Topic: testenv.UniqueName(t, "big"), MaxMessageBytes: 8 << 20}
	produceEach(ctx, t, cfg, encode(t, codec, s.Msgs))

	cfg.PrefetchBytes = 1 << 20
	mems := []*sinktest.Memory{sinktest.NewMemory("db"), sinktest.NewMemory("db")}
	wctx, wcancel := context.WithCancel(ctx)
	done := make(chan error, len(mems))
	for _, mem := range mems {
		in := sink.NewKafkaInput(cfg, codec, sinktest.Logger(t), nil)
		defer in.Close()
		go func() {
			_, err := sinktest.RunWorker(wctx, t, mem.Target(), in, sink.WorkerConfig{Topic: cfg.Topic}, nil)
			done <- err
		}()
	}
	for deadline := time.Now().Add(time.Minute); len(mems[0].Rows(t, "t")) < 8 || len(mems[1].Rows(t, "t")) < 8; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after a minute the workers applied %d and %d rows of 8", len(mems[0].Rows(t, "t")), len(mems[1].Rows(t, "t")))
		}
	}
	wcancel()
	for range mems {
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	}
	for _, mem := range mems {
		sinktest.CompareRows(t, "t", mem.Rows(t, "t"), s.Expected("t"))
	}
}

// produceEach writes recs to a new topic the way the reader does: with
// rowcast's producer, a big message in a batch of its own.
func produceEach(ctx context.Context, t *testing.T, cfg changelog.Config, recs []kafka.Message) {
	t.Helper()
	t.Cleanup(func() { testenv.DeleteTopic(t, cfg.Topic) })
	if _, err := changelog.EnsureTopic(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	p, err := changelog.NewProducer(cfg, sinktest.Logger(t), changelog.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(pctx) }()
	defer func() {
		stop()
		<-done
	}()
	for _, r := range recs {
		if err := p.Send(ctx, r.Key, r.Value, nil); err != nil {
			t.Fatal(err)
		}
		if len(r.Value) >= 1<<20 {
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}
