package sink

import (
	"bytes"
	"testing"
)

// BenchmarkMessageDigest is what the duplicate check adds to every message
// a sink reads: the digest of a row's message of about 1.4 KB.
func BenchmarkMessageDigest(b *testing.B) {
	key, value := bytes.Repeat([]byte("k"), 60), bytes.Repeat([]byte("v"), 1390)
	b.SetBytes(int64(len(key) + len(value)))
	b.ReportAllocs()
	var sum uint64
	for b.Loop() {
		sum ^= MessageDigest(key, value)
	}
	if sum == 1 {
		b.Log(sum)
	}
}
