package sink_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/pipeline/testenv"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// TestKafkaInput reads encoded events from a real topic: seek, decode, an
// undecodable message as Message.Err, and a worker applying them.
func TestKafkaInput(t *testing.T) {
	topic := testenv.CreateTopic(t, 1)
	s := script()
	s.Insert("t", int64(1), "a")
	s.Insert("t", int64(2), "b")
	s.Commit()
	s.Delete("t", int64(1))
	s.Commit()
	codec := &pipeline.Codec{Cluster: "test"}
	var recs []kafka.Message
	for _, m := range s.Msgs {
		k, err := codec.AppendKey(nil, m.Event)
		if err != nil {
			t.Fatal(err)
		}
		v, err := codec.AppendValue(nil, m.Event)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, kafka.Message{Key: k, Value: v})
	}
	recs = append(recs, kafka.Message{Key: []byte(`{"control":"heartbeat"}`), Value: []byte(`{not json`)})
	// A transport of its own: the default one caches metadata from before
	// the topic existed.
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(testenv.KafkaBrokers()...), Topic: topic, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, Transport: tr}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		err := w.WriteMessages(ctx, recs...)
		if err == nil {
			break
		}
		if !errors.Is(err, kafka.UnknownTopicOrPartition) || ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.Close()

	in := sink.NewKafkaInput(pipeline.KafkaConfig{Brokers: testenv.KafkaBrokers(), Topic: topic}, codec, sinktest.Logger(t), nil)
	defer in.Close()
	if err := in.SeekTo(2); err != nil {
		t.Fatal(err)
	}
	m, err := in.Next(ctx)
	if err != nil || m.Offset != 2 || m.Err != nil || m.Event.Pos != s.Msgs[2].Event.Pos || m.Size == 0 {
		t.Fatalf("message at 2: %+v %v", m, err)
	}
	if err := in.SeekTo(int64(len(s.Msgs))); err != nil {
		t.Fatal(err)
	}
	if m, err = in.Next(ctx); err != nil || !errors.Is(m.Err, pipeline.ErrMalformed) {
		t.Fatalf("undecodable message: %+v %v", m, err)
	}

	// A worker applies the topic up to the bad message, which it names.
	mem := sinktest.NewMemory("db")
	_, err = sinktest.RunWorker(ctx, t, mem.Target(), in, sink.WorkerConfig{Topic: topic}, nil)
	if !errors.Is(err, pipeline.ErrMalformed) {
		t.Fatalf("worker: %v", err)
	}
	sinktest.CompareRows(t, "t", mem.Rows(t, "t"), []string{"2|b"})
}

// TestKafkaInputMany: many messages, decoded ahead of the worker, all
// arrive in order, the last ones without waiting for messages that do not
// exist, and a worker applies them all.
func TestKafkaInputMany(t *testing.T) {
	topic := testenv.CreateTopic(t, 1)
	s := script()
	const txns, rows = 60, 5 // 360 messages
	for i := range txns {
		for j := range rows {
			s.Insert("t", int64(i*rows+j), "v")
		}
		s.Commit()
	}
	codec := &pipeline.Codec{Cluster: "test"}
	var recs []kafka.Message
	for _, m := range s.Msgs {
		k, err := codec.AppendKey(nil, m.Event)
		if err != nil {
			t.Fatal(err)
		}
		v, err := codec.AppendValue(nil, m.Event)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, kafka.Message{Key: k, Value: v})
	}
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(testenv.KafkaBrokers()...), Topic: topic, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, Transport: tr}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		err := w.WriteMessages(ctx, recs...)
		if err == nil {
			break
		}
		if !errors.Is(err, kafka.UnknownTopicOrPartition) || ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.Close()

	in := sink.NewKafkaInput(pipeline.KafkaConfig{Brokers: testenv.KafkaBrokers(), Topic: topic}, codec, sinktest.Logger(t), nil)
	defer in.Close()
	if err := in.SeekTo(3); err != nil {
		t.Fatal(err)
	}
	for off := int64(3); off < int64(len(recs)); off++ {
		// The last message must not wait for more.
		mctx, mcancel := context.WithTimeout(ctx, 10*time.Second)
		m, err := in.Next(mctx)
		mcancel()
		if err != nil || m.Offset != off || m.Err != nil || m.Event.Pos != s.Msgs[off].Event.Pos {
			t.Fatalf("message at %d: %+v %v", off, m, err)
		}
	}
	if n := in.Buffered(); n != 0 {
		t.Errorf("Buffered %d after the last message", n)
	}

	mem := sinktest.NewMemory("db")
	wctx, wcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := sinktest.RunWorker(wctx, t, mem.Target(), in, sink.WorkerConfig{Topic: topic}, nil)
		done <- err
	}()
	for deadline := time.Now().Add(30 * time.Second); len(mem.Rows(t, "t")) < txns*rows; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d rows applied, want %d", len(mem.Rows(t, "t")), txns*rows)
		}
	}
	wcancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	sinktest.CompareRows(t, "t", mem.Rows(t, "t"), s.Expected("t"))
}
