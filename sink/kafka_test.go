package sink_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/internal/testenv"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// TestKafkaInput reads encoded events from a real topic: seek, decode, an
// undecodable message as Message.Err, and a worker applying them.
func TestKafkaInput(t *testing.T) {
	s := script()
	s.Insert("t", int64(1), "a")
	s.Insert("t", int64(2), "b")
	s.Commit()
	s.Delete("t", int64(1))
	s.Commit()
	codec := &pipeline.Codec{Cluster: "test"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	recs := append(encode(t, codec, s.Msgs), kafka.Message{Key: []byte(`{"control":"heartbeat"}`), Value: []byte(`{not json`)})
	topic := produce(ctx, t, recs)

	in := sink.NewKafkaInput(changelog.Config{Brokers: testenv.KafkaBrokers(), Topic: topic}, codec, sinktest.Logger(t), nil)
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
	s := script()
	const txns, rows = 60, 5 // 360 messages
	for i := range txns {
		for j := range rows {
			s.Insert("t", int64(i*rows+j), "v")
		}
		s.Commit()
	}
	codec := &pipeline.Codec{Cluster: "test"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := produce(ctx, t, encode(t, codec, s.Msgs))

	in := sink.NewKafkaInput(changelog.Config{Brokers: testenv.KafkaBrokers(), Topic: topic}, codec, sinktest.Logger(t), nil)
	defer in.Close()
	if err := in.SeekTo(3); err != nil {
		t.Fatal(err)
	}
	for off := int64(3); off < int64(len(s.Msgs)); off++ {
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
	applyUntil(ctx, t, mem, in, topic, txns*rows)
	sinktest.CompareRows(t, "t", mem.Rows(t, "t"), s.Expected("t"))
}

// encode encodes the messages of a script as Kafka records.
func encode(t *testing.T, codec *pipeline.Codec, msgs []sink.Message) []kafka.Message {
	t.Helper()
	var recs []kafka.Message
	for _, m := range msgs {
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
	return recs
}

// produce writes recs to a new topic of one partition and returns its name.
func produce(ctx context.Context, t *testing.T, recs []kafka.Message) string {
	t.Helper()
	topic := testenv.CreateTopic(t, 1)
	// A transport of its own: the default one caches metadata from before
	// the topic existed.
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(testenv.KafkaBrokers()...), Topic: topic, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, Transport: tr}
	defer w.Close()
	for {
		err := w.WriteMessages(ctx, recs...)
		if err == nil {
			return topic
		}
		if !errors.Is(err, kafka.UnknownTopicOrPartition) || ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// applyUntil runs a worker over in until mem holds rows rows of table t,
// then stops it.
func applyUntil(ctx context.Context, t *testing.T, mem *sinktest.Memory, in sink.Input, topic string, rows int) {
	t.Helper()
	wctx, wcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := sinktest.RunWorker(wctx, t, mem.Target(), in, sink.WorkerConfig{Topic: topic}, nil)
		done <- err
	}()
	for deadline := time.Now().Add(30 * time.Second); len(mem.Rows(t, "t")) < rows; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d rows applied, want %d", len(mem.Rows(t, "t")), rows)
		}
	}
	wcancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

// TestKafkaSnapshot: a snapshot's markers and rows survive the codec and
// the topic: the start marker keeps its table and definition, and a worker
// reading the topic replaces the table, loads it and ends its bootstrap.
func TestKafkaSnapshot(t *testing.T) {
	s, start := snapshotOfT()
	codec := &pipeline.Codec{Cluster: "test"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := produce(ctx, t, encode(t, codec, s.Msgs))

	in := sink.NewKafkaInput(changelog.Config{Brokers: testenv.KafkaBrokers(), Topic: topic}, codec, sinktest.Logger(t), nil)
	defer in.Close()
	if err := in.SeekTo(start); err != nil {
		t.Fatal(err)
	}
	m, err := in.Next(ctx)
	if want := s.Msgs[start].Event; err != nil || m.Err != nil || !sameMarker(m.Event, want) {
		t.Fatalf("start marker read back: %+v %v %v; want %+v", m.Event, err, m.Err, want)
	}
	if err := in.SeekTo(0); err != nil {
		t.Fatal(err)
	}
	mem := sinktest.NewMemory("db")
	applyAll(ctx, t, mem, in, topic, int64(len(s.Msgs)))
	sinktest.Compare(t, mem, s)
	if b := mem.Bootstrap(t); len(b) != 0 {
		t.Fatalf("bootstrap entries left: %+v", b)
	}
}

// sameMarker compares a snapshot marker read back with the one written.
func sameMarker(got, want *pipeline.Event) bool {
	return got.Kind == pipeline.KindSnapshot && got.Snapshot == want.Snapshot && got.Pos == want.Pos &&
		got.Statement == want.Statement && got.Database == want.Database && got.Table != nil &&
		got.Table.Name == want.Table.Name && len(got.Table.Columns) == len(want.Table.Columns)
}

// applyAll runs a worker over in until mem's checkpoint reaches offset,
// then stops it.
func applyAll(ctx context.Context, t *testing.T, mem *sinktest.Memory, in sink.Input, topic string, offset int64) {
	t.Helper()
	wctx, wcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := sinktest.RunWorker(wctx, t, mem.Target(), in, sink.WorkerConfig{Topic: topic}, nil)
		done <- err
	}()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if st, _ := mem.Checkpoint(); st.Offset >= offset {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker did not reach offset %d", offset)
		}
	}
	wcancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}
