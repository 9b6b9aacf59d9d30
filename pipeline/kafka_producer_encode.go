package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"io"
	"time"

	"github.com/pierrec/lz4/v4"
	"github.com/segmentio/kafka-go"
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
	// out is the record set as RawProduce sends it: an int32 size and then
	// one v2 record batch (see encode).
	out []byte
	err error // encoding failed; Run reports it (compressing into memory cannot fail today)

	recs []byte       // the records before compression
	lz4  *lz4.Writer  // reused between batches
	rd   bytes.Reader // out for one attempt of the request
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
// configured compression, in the form RawProduce sends: an int32 size, then
// the batch (the layout kafka-go's RecordSet.WriteTo writes for Produce,
// protocol/record_v2.go, and Kafka's DefaultRecordBatch).
//
// It encodes the records itself rather than through kafka-go's encoder: the
// records have no headers and one timestamp, so each is a few varints around
// its key and value, appended to a byte slice. lz4 is written as Kafka's own
// Java producer writes it (64 KiB blocks, no content checksum, which the
// Java reader does not verify anyway): pierrec/lz4 with kafka-go's defaults
// (4 MiB blocks, content checksum) compresses these batches ~1.5-2 times
// slower (BenchmarkProducerEncode). The other codecs are kafka-go's.
//
// Timestamps: every record is stamped with the time the batch is encoded,
// as Produce did; that is now up to one request earlier than the send, and a
// retry sends the first stamp again. Batches are encoded in queue order, so
// timestamps never decrease along the partition, which OffsetForTime relies
// on.
func (p *Producer) encode(b *producerBatch) {
	b.err = nil
	// Records, uncompressed: length, attributes 0, timestamp delta 0,
	// offset delta, key, value (-1 for null), no headers.
	recs := b.recs[:0]
	for i := range b.entries {
		e := &b.entries[i]
		length := 1 + 1 + varintLen(int64(i)) + nullBytesLen(e.key) + nullBytesLen(e.value) + 1
		recs = binary.AppendVarint(recs, int64(length))
		recs = append(recs, 0, 0) // attributes, timestamp delta
		recs = binary.AppendVarint(recs, int64(i))
		recs = appendNullBytes(recs, e.key)
		recs = appendNullBytes(recs, e.value)
		recs = append(recs, 0) // header count
	}
	b.recs = recs

	out := b.out[:0]
	out = append(out, make([]byte, 4+kafkaBatchOverhead)...)
	hdr := out[4:]
	binary.BigEndian.PutUint64(hdr[0:], 0)           // base offset, assigned by the broker
	binary.BigEndian.PutUint32(hdr[12:], 0xffffffff) // partition leader epoch: -1
	hdr[16] = 2                                      // magic
	binary.BigEndian.PutUint16(hdr[21:], uint16(p.compression)&7)
	binary.BigEndian.PutUint32(hdr[23:], uint32(len(b.entries)-1)) // last offset delta
	ts := uint64(time.Now().UnixMilli())
	binary.BigEndian.PutUint64(hdr[27:], ts)                 // first timestamp
	binary.BigEndian.PutUint64(hdr[35:], ts)                 // max timestamp
	binary.BigEndian.PutUint64(hdr[43:], 0xffffffffffffffff) // producer id: -1
	binary.BigEndian.PutUint16(hdr[51:], 0xffff)             // producer epoch: -1
	binary.BigEndian.PutUint32(hdr[53:], 0xffffffff)         // base sequence: -1
	binary.BigEndian.PutUint32(hdr[57:], uint32(len(b.entries)))

	if p.compression == 0 {
		out = append(out, recs...)
	} else {
		w := bytesAppender{b: out}
		var zw io.WriteCloser
		if p.compression == kafka.Lz4 {
			if b.lz4 == nil {
				b.lz4 = lz4.NewWriter(nil)
			}
			b.lz4.Reset(&w)
			if err := b.lz4.Apply(lz4.BlockSizeOption(lz4.Block64Kb), lz4.ChecksumOption(false)); err != nil {
				b.err = err
				return
			}
			zw = b.lz4
		} else {
			zw = p.compression.Codec().NewWriter(&w)
		}
		if _, err := zw.Write(recs); err != nil {
			b.err = err
			return
		}
		if err := zw.Close(); err != nil {
			b.err = err
			return
		}
		out = w.b
	}
	binary.BigEndian.PutUint32(out[0:], uint32(len(out)-4))      // size of the record set
	binary.BigEndian.PutUint32(out[4+8:], uint32(len(out)-4-12)) // batch length: after the length field
	binary.BigEndian.PutUint32(out[4+17:], crc32.Checksum(out[4+21:], castagnoli))
	b.out = out
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func varintLen(v int64) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutVarint(buf[:], v)
}

func nullBytesLen(b []byte) int {
	if b == nil {
		return varintLen(-1)
	}
	return varintLen(int64(len(b))) + len(b)
}

func appendNullBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

// bytesAppender is an io.Writer appending to a byte slice.
type bytesAppender struct{ b []byte }

func (w *bytesAppender) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
