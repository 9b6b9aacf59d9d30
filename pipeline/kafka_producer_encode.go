package pipeline

import (
	"bytes"
	"context"
	"io"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

// The Producer's encoder: a goroutine beside Run that takes batches from the
// queue and encodes them, so that the next batch is encoded and compressed
// while the current one is in flight (see Producer).

// producerBatch is the messages of one produce request and their encoding.
// Run and the encoder pass two of them back and forth (Producer.free and
// Producer.ready) and reuse their memory.
type producerBatch struct {
	entries []producerEntry // copied from the queue, in order
	gen     uint64          // Producer.gen when they were claimed
	// buf is the record set as RawProduce sends it: RecordSet.WriteTo's
	// output, an int32 size and then one v2 record batch.
	buf bytes.Buffer
	err error // encoding failed; Run reports it (kafka-go's encoder cannot fail on a bytes.Buffer today)

	recs producerRecords
	rd   bytes.Reader // buf for one attempt of the request
}

// encodeBatches is the encoder's loop: take a free buffer, claim the next
// batch into it, encode it and hand it to Run, until ctx ends.
func (p *Producer) encodeBatches(ctx context.Context) {
	for {
		var b *producerBatch
		select {
		case b = <-p.free:
		case <-ctx.Done():
			return
		}
		if p.claim(ctx, b) != nil {
			return
		}
		p.encode(b)
		select {
		case p.ready <- b:
		case <-ctx.Done():
			return
		}
	}
}

// claim waits for the next batch and copies it from the queue into b: as
// many unclaimed messages as fit in MaxBatchMessages and the batch byte
// limit. A full batch is claimed at once, even while a request is in flight.
// A partial one only once nothing else is claimed (no request in flight,
// none encoded ahead: Run waits for this batch), and then, as before the
// encoder existed, after Linger for it to fill, or at once if a Flush waits.
// Claiming only full batches ahead keeps batches as large as when requests
// were encoded one after the other.
func (p *Producer) claim(ctx context.Context, b *producerBatch) error {
	var lingerUntil time.Time
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		p.mu.Lock()
		start := p.head + p.claimed
		queued := len(p.q) - start
		// As fitBatch would find: more than one batch queued, or exactly
		// MaxBatchMessages, or the batch byte limit reached.
		full := queued >= p.cfg.MaxBatchMessages || kafkaBatchOverhead+p.unclaimed >= p.batchBytes
		idle := p.claimed == 0
		now := time.Now()
		if queued > 0 && idle && lingerUntil.IsZero() {
			lingerUntil = now.Add(p.cfg.Linger)
		}
		if queued > 0 && (full || idle && (p.flushing > 0 || p.cfg.Linger < 0 || !now.Before(lingerUntil))) {
			n, size := p.fitBatch(start)
			b.entries = append(b.entries[:0], p.q[start:start+n]...)
			b.gen = p.gen
			p.claimed += n
			p.unclaimed -= size - kafkaBatchOverhead
			p.mu.Unlock()
			return nil
		}
		p.mu.Unlock()

		var tc <-chan time.Time
		if queued > 0 && idle {
			if timer == nil {
				timer = time.NewTimer(time.Until(lingerUntil))
			} else {
				timer.Reset(time.Until(lingerUntil))
			}
			tc = timer.C
		}
		select {
		case <-p.wake:
		case <-tc:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// fitBatch counts the messages from q[start] on that fit in one request, at
// least one, and their encoded size bound (kafkaBatchOverhead included).
func (p *Producer) fitBatch(start int) (n, size int) {
	size = kafkaBatchOverhead
	for i := range p.q[start:] {
		e := &p.q[start+i]
		s := len(e.key) + len(e.value) + kafkaRecordOverhead
		if n == p.cfg.MaxBatchMessages || (n > 0 && size+s > p.batchBytes) {
			break
		}
		n++
		size += s
	}
	return n, size
}

// encode writes b's messages into b.buf as one v2 record batch, with the
// configured compression.
//
// It runs kafka-go's own encoder, the one (*kafka.Client).Produce runs inside
// its request, so the bytes are those Produce sent: RawProduce writes a
// RawRecordSet verbatim where Produce writes RecordSet.WriteTo's output
// (protocol/record.go). Version 2 is what Produce chooses for Produce API v3
// and later (produce.Request.Prepare), which every broker since Kafka 0.11
// speaks and Kafka 4 requires.
//
// Timestamps: the records carry none, so kafka-go stamps the whole batch with
// the time it encodes it (writeToVersion2), as Produce did; that is now up to
// one request earlier than the send, and a retry sends the first stamp again.
// Batches are encoded in queue order, so timestamps still never decrease
// along the partition, which OffsetForTime relies on.
func (p *Producer) encode(b *producerBatch) {
	b.buf.Reset()
	b.recs.reset(b.entries)
	rs := protocol.RecordSet{Version: 2, Attributes: protocol.Attributes(p.compression) & 7, Records: &b.recs}
	_, b.err = rs.WriteTo(&b.buf)
}

// producerRecords exposes a batch to kafka-go's encoder without copying or
// allocating: kafka-go reads one record at a time and each key and value
// once (protocol.forEachRecord), so two readers are reused for every record.
type producerRecords struct {
	batch  []producerEntry
	i      int
	rec    kafka.Record
	kr, vr kafkaBytes
}

func (r *producerRecords) reset(batch []producerEntry) { r.batch, r.i = batch, 0 }

func (r *producerRecords) ReadRecord() (*kafka.Record, error) {
	if r.i >= len(r.batch) {
		return nil, io.EOF
	}
	e := &r.batch[r.i]
	r.i++
	r.rec = kafka.Record{}
	if e.key != nil {
		r.kr.b = e.key
		r.rec.Key = &r.kr
	}
	if e.value != nil {
		r.vr.b = e.value
		r.rec.Value = &r.vr
	}
	return &r.rec, nil
}

// kafkaBytes is kafka.Bytes over a byte slice. WriteTo lets io.Copy hand the
// slice to the encoder directly.
type kafkaBytes struct{ b []byte }

func (k *kafkaBytes) Len() int     { return len(k.b) }
func (k *kafkaBytes) Close() error { return nil }

func (k *kafkaBytes) Read(p []byte) (int, error) {
	if len(k.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, k.b)
	k.b = k.b[n:]
	return n, nil
}

func (k *kafkaBytes) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(k.b)
	k.b = k.b[n:]
	return int64(n), err
}
