package changelog

import (
	"bytes"
	"io"
	"testing"

	"github.com/pierrec/lz4/v4"
	"github.com/rs/zerolog"
)

// A batch mixing small values, a null one and values big enough to be
// compressed straight from their entries holds, once decompressed, the
// records appendRecords writes.
func TestEncodeBigValuesAsAppendRecords(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), directValueBytes/8)
	b := &producerBatch{entries: []producerEntry{
		{key: []byte("k0"), value: []byte("small")},
		{key: []byte("k1"), value: big},
		{key: []byte("k2"), value: nil},
		{key: []byte("k3"), value: big[:directValueBytes]},
		{key: []byte("k4"), value: []byte("tail")},
	}}
	p, err := NewProducer(Config{Brokers: []string{"127.0.0.1:1"}, Topic: "rowcast.test", Compression: "lz4"}, zerolog.Nop(), ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.encode(b)
	if b.err != nil {
		t.Fatal(b.err)
	}
	got, err := io.ReadAll(lz4.NewReader(bytes.NewReader(b.out[4+kafkaBatchOverhead:])))
	if err != nil {
		t.Fatal(err)
	}
	if want := appendRecords(nil, b.entries); !bytes.Equal(got, want) {
		t.Fatalf("decompressed records: %d bytes, want the %d appendRecords writes", len(got), len(want))
	}
}
