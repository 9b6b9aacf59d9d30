package changelog

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
	out  []byte
	more [][]byte // the rest of an outsized batch, after out (encodeOutsized)
	err  error    // encoding failed; Run reports it (compressing into memory cannot fail today)

	recs []byte       // small records gathered before compression
	sigs []byte       // the entries' signatures
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
// none encoded ahead: Run waits for this batch), and then after Linger for it
// to fill, or at once if a Flush waits. Claiming only full batches ahead
// keeps batches as large as the queue allows.
func (p *Producer) claim(ctx context.Context, b *producerBatch) error {
	var linger lingerTimer
	defer linger.stop()
	for {
		lingered, claimed := p.tryClaim(b, &linger)
		if claimed {
			return nil
		}
		select {
		case <-p.wake:
		case <-lingered:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// tryClaim claims the next batch into b when it may go now (see claim).
// Otherwise it returns the channel of the Linger timer to wait on besides
// the wake-ups, nil when no batch waits for Linger.
func (p *Producer) tryClaim(b *producerBatch, linger *lingerTimer) (<-chan time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	start := p.head + p.claimed
	queued := len(p.q) - start
	if queued == 0 {
		return nil, false
	}
	// As fitBatch would find: more than one batch queued, or exactly
	// MaxBatchMessages, or the batch byte limit reached.
	full := queued >= p.cfg.MaxBatchMessages || kafkaBatchOverhead+p.unclaimed >= p.batchBytes
	idle := p.claimed == 0
	now := time.Now()
	if idle && linger.until.IsZero() {
		linger.until = now.Add(p.cfg.Linger)
	}
	switch {
	case full || idle && p.lingered(now, linger.until):
		p.take(b, start)
		return nil, true
	case idle:
		return linger.arm(), false
	}
	return nil, false
}

// lingered reports whether a partial batch may go: Linger is over, or a
// Flush waits.
func (p *Producer) lingered(now, until time.Time) bool {
	return p.flushing > 0 || p.cfg.Linger < 0 || !now.Before(until)
}

// take copies the batch that starts at q[start] into b. p.mu is held.
func (p *Producer) take(b *producerBatch, start int) {
	n, size := p.fitBatch(start)
	b.entries = append(b.entries[:0], p.q[start:start+n]...)
	b.gen = p.gen
	p.claimed += n
	p.unclaimed -= size - kafkaBatchOverhead
}

// lingerTimer is claim's timer for Linger, made on first use.
type lingerTimer struct {
	until time.Time // when the batch waiting for Linger may go
	t     *time.Timer
}

// arm sets the timer to until and returns its channel.
func (l *lingerTimer) arm() <-chan time.Time {
	if l.t == nil {
		l.t = time.NewTimer(time.Until(l.until))
	} else {
		l.t.Reset(time.Until(l.until))
	}
	return l.t.C
}

func (l *lingerTimer) stop() {
	if l.t != nil {
		l.t.Stop()
	}
}

// fitBatch counts the messages from q[start] on that fit in one request, at
// least one, and their encoded size bound (kafkaBatchOverhead included).
func (p *Producer) fitBatch(start int) (n, size int) {
	size = kafkaBatchOverhead
	for i := range p.q[start:] {
		e := &p.q[start+i]
		s := len(e.key) + len(e.value) + p.recOverhead
		if n == p.cfg.MaxBatchMessages || (n > 0 && size+s > p.batchBytes) {
			break
		}
		n++
		size += s
	}
	return n, size
}

// encode writes b's messages into b.out as one v2 record batch, with the
// configured compression, in the form RawProduce sends: an int32 size, then
// the batch (the layout kafka-go's RecordSet.WriteTo writes for Produce,
// protocol/record_v2.go, and Kafka's DefaultRecordBatch).
//
// lz4 is written as Kafka's Java producer writes it (64 KiB blocks, no
// content checksum); why rowcast encodes batches itself: docs/DESIGN.md,
// "The changelog producer".
//
// Timestamps: every record is stamped with the time the batch is encoded, up
// to one request before it is sent, and a retry sends the same stamp. Batches are encoded in queue order, so
// timestamps never decrease along the partition, which OffsetForTime relies
// on.
func (p *Producer) encode(b *producerBatch) {
	b.err = nil
	b.more = nil
	p.sign(b)
	bound := encodedBound(b.entries, p.recOverhead)
	if p.compression != 0 && bound > outsizedBatch(p.cfg.MaxBatchBytes) {
		p.encodeOutsized(b)
		return
	}
	out := growBytes(b.out[:0], 4+bound)
	out = appendBatchHeader(out, p.compression, len(b.entries))
	out, err := p.appendRecordSet(out, b)
	if err != nil {
		b.err = err
		return
	}
	b.out = out
	b.sealBatch()
}

// encodeOutsized encodes a compressed batch of an outsized message into
// chunks: its bound is the message's size, most likely far from what it
// compresses to, and growing one slice would hold it twice for a moment.
func (p *Producer) encodeOutsized(b *producerBatch) {
	w := chunkWriter{chunks: [][]byte{appendBatchHeader(make([]byte, 0, outChunkBytes), p.compression, len(b.entries))}}
	err := p.compressRecords(b, &w)
	if b.lz4 != nil {
		b.lz4.Reset(nil) // it would keep w, and with it the chunks
	}
	if err != nil {
		b.err = err
		return
	}
	b.out, b.more = w.chunks[0], w.chunks[1:]
	b.sealBatch()
}

// sealBatch fills in the sizes and the CRC of the batch encoded in b.out
// and b.more.
func (b *producerBatch) sealBatch() {
	n := len(b.out)
	crc := crc32.Checksum(b.out[4+21:], castagnoli)
	for _, c := range b.more {
		n += len(c)
		crc = crc32.Update(crc, castagnoli, c)
	}
	binary.BigEndian.PutUint32(b.out[0:], uint32(n-4))      // size of the record set
	binary.BigEndian.PutUint32(b.out[4+8:], uint32(n-4-12)) // batch length: after the length field
	binary.BigEndian.PutUint32(b.out[4+17:], crc)
}

// outsizedBatch is the bound from which a batch (of one message larger than
// the batches) is encoded in chunks and not kept for the next batch.
func outsizedBatch(maxBatchBytes int) int { return 4 * maxBatchBytes }

// outChunkBytes is the size of the chunks of an outsized batch.
const outChunkBytes = 1 << 20

// chunkWriter is an io.Writer into chunks of outChunkBytes.
type chunkWriter struct{ chunks [][]byte }

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		last := &w.chunks[len(w.chunks)-1]
		if len(*last) == cap(*last) {
			w.chunks = append(w.chunks, make([]byte, 0, outChunkBytes))
			continue
		}
		m := min(len(p), cap(*last)-len(*last))
		*last = append(*last, p[:m]...)
		p = p[m:]
	}
	return n, nil
}

// sign gives each of b's entries its signature, when the producer signs.
// It runs here, on the encoder's goroutine, off the serial path of Send.
func (p *Producer) sign(b *producerBatch) {
	if p.cfg.Signing == nil {
		return
	}
	b.sigs = growBytes(b.sigs[:0], len(b.entries)*sigValueLen)
	for i := range b.entries {
		e := &b.entries[i]
		start := len(b.sigs)
		b.sigs = p.cfg.Signing.Sign(b.sigs, p.cfg.Topic, e.key, e.value)
		e.sig = b.sigs[start:len(b.sigs):len(b.sigs)]
	}
}

// appendRecords appends entries as v2 records, uncompressed: length,
// attributes 0, timestamp delta 0, offset delta, key, value (-1 for null),
// and the signature header when the entry has one.
func appendRecords(recs []byte, entries []producerEntry) []byte {
	for i := range entries {
		recs = appendRecord(recs, i, &entries[i])
	}
	return recs
}

func appendRecord(recs []byte, i int, e *producerEntry) []byte {
	recs = appendRecordHead(recs, i, e)
	recs = append(recs, e.value...)
	return appendHeaders(recs, e)
}

// appendHeaders appends a record's headers: none, or the signature.
func appendHeaders(recs []byte, e *producerEntry) []byte {
	if e.sig == nil {
		return append(recs, 0) // header count
	}
	recs = binary.AppendVarint(recs, 1)
	recs = appendNullBytes(recs, []byte(SigHeader))
	return appendNullBytes(recs, e.sig)
}

// headersLen is the size appendHeaders writes.
func headersLen(e *producerEntry) int {
	if e.sig == nil {
		return 1
	}
	return varintLen(1) + nullBytesLen([]byte(SigHeader)) + nullBytesLen(e.sig)
}

// appendRecordHead appends a record up to its value's bytes.
func appendRecordHead(recs []byte, i int, e *producerEntry) []byte {
	length := 1 + 1 + varintLen(int64(i)) + nullBytesLen(e.key) + nullBytesLen(e.value) + headersLen(e)
	recs = binary.AppendVarint(recs, int64(length))
	recs = append(recs, 0, 0) // attributes, timestamp delta
	recs = binary.AppendVarint(recs, int64(i))
	recs = appendNullBytes(recs, e.key)
	if e.value == nil {
		return binary.AppendVarint(recs, -1)
	}
	return binary.AppendVarint(recs, int64(len(e.value)))
}

// directValueBytes is the value size from which writeRecords hands a value
// to the compressor as it is, not through b.recs: a big row is not copied
// once more before it is compressed.
const directValueBytes = 64 << 10

// writeRecords writes b's records to w, uncompressed, gathering small ones
// in b.recs first.
func (b *producerBatch) writeRecords(w io.Writer) error {
	recs := b.recs[:0]
	for i := range b.entries {
		e := &b.entries[i]
		if len(e.value) < directValueBytes {
			recs = appendRecord(recs, i, e)
			continue
		}
		if _, err := w.Write(appendRecordHead(recs, i, e)); err != nil {
			return err
		}
		if _, err := w.Write(e.value); err != nil {
			return err
		}
		recs = appendHeaders(recs[:0], e)
	}
	b.recs = recs[:0]
	_, err := w.Write(recs)
	return err
}

// encodedBound bounds the encoded size of entries, compressed or not: lz4
// and the others grow incompressible input by well under 1/64 and a few
// bytes.
func encodedBound(entries []producerEntry, recOverhead int) int {
	n := encodedSize(entries, recOverhead)
	return n + n/64 + 1024
}

func growBytes(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	return append(b, make([]byte, n)...)[:len(b)]
}

// appendBatchHeader appends room for the record set's size and a record
// batch header of n records; encode fills in the sizes and the CRC.
func appendBatchHeader(out []byte, compression kafka.Compression, n int) []byte {
	out = append(out, make([]byte, 4+kafkaBatchOverhead)...)
	hdr := out[4:]
	binary.BigEndian.PutUint64(hdr[0:], 0)           // base offset, assigned by the broker
	binary.BigEndian.PutUint32(hdr[12:], 0xffffffff) // partition leader epoch: -1
	hdr[16] = 2                                      // magic
	binary.BigEndian.PutUint16(hdr[21:], uint16(compression)&7)
	binary.BigEndian.PutUint32(hdr[23:], uint32(n-1)) // last offset delta
	ts := uint64(time.Now().UnixMilli())
	binary.BigEndian.PutUint64(hdr[27:], ts)                 // first timestamp
	binary.BigEndian.PutUint64(hdr[35:], ts)                 // max timestamp
	binary.BigEndian.PutUint64(hdr[43:], 0xffffffffffffffff) // producer id: -1
	binary.BigEndian.PutUint16(hdr[51:], 0xffff)             // producer epoch: -1
	binary.BigEndian.PutUint32(hdr[53:], 0xffffffff)         // base sequence: -1
	binary.BigEndian.PutUint32(hdr[57:], uint32(n))
	return out
}

// appendRecordSet appends b's records, compressed as configured.
func (p *Producer) appendRecordSet(out []byte, b *producerBatch) ([]byte, error) {
	if p.compression == 0 {
		return appendRecords(out, b.entries), nil
	}
	w := bytesAppender{b: out}
	if err := p.compressRecords(b, &w); err != nil {
		return out, err
	}
	return w.b, nil
}

// compressRecords writes b's records to w, compressed as configured.
func (p *Producer) compressRecords(b *producerBatch, w io.Writer) error {
	zw, err := p.compressor(b, w)
	if err != nil {
		return err
	}
	if err := b.writeRecords(zw); err != nil {
		return err
	}
	return zw.Close()
}

// compressor returns the writer that compresses into w: b's own lz4 writer,
// set up as Kafka's Java producer writes lz4, or kafka-go's codec.
func (p *Producer) compressor(b *producerBatch, w io.Writer) (io.WriteCloser, error) {
	if p.compression != kafka.Lz4 {
		return p.compression.Codec().NewWriter(w), nil
	}
	if b.lz4 == nil {
		b.lz4 = lz4.NewWriter(nil)
	}
	b.lz4.Reset(w)
	if err := b.lz4.Apply(lz4.BlockSizeOption(lz4.Block64Kb), lz4.ChecksumOption(false)); err != nil {
		return nil, err
	}
	return b.lz4, nil
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

// reader reads b's encoded batch from its start, for one attempt of the
// produce request.
func (b *producerBatch) reader() io.Reader {
	b.rd.Reset(b.out)
	if b.more == nil {
		return &b.rd
	}
	rs := make([]io.Reader, 0, 1+len(b.more))
	rs = append(rs, &b.rd)
	for _, c := range b.more {
		rs = append(rs, bytes.NewReader(c))
	}
	return io.MultiReader(rs...)
}
