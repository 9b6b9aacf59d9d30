package changelog

import "testing"

// A fetch is sized by what it decompresses to: the ratio estimate rises at
// once to what a full fetch shows and decays halfway otherwise.
func TestFetchRatio(t *testing.T) {
	msgs := []Message{{Offset: 10}, {Offset: 11}}
	if got := fetchBytes(16<<20, 8); got != 2<<20 {
		t.Errorf("fetchBytes(16 MiB, 8) = %d", got)
	}
	if got := fetchBytes(16<<20, 1000); got != minFetchBytes {
		t.Errorf("fetchBytes never asks for less than %d: %d", minFetchBytes, got)
	}
	if got := fetchBytes(1000, 1); got != 1000 {
		t.Errorf("fetchBytes never asks for more than the room: %d", got)
	}
	cases := []struct {
		name       string
		ratio      float64
		size, maxB int
		hwm        int64
		want       float64
		msgs       []Message
	}{
		{"a full fetch that decompressed 40x", 8, 40 << 20, 1 << 20, 100, 40, msgs},
		{"a full fetch at 4x decays halfway", 8, 4 << 20, 1 << 20, 100, 6, msgs},
		{"the end of the topic says nothing", 8, 40 << 20, 1 << 20, 12, 8, msgs},
		{"an empty fetch says nothing", 8, 0, 1 << 20, 100, 8, nil},
		{"never above the cap", 8, 1 << 30, 1 << 20, 100, maxFetchRatio, msgs},
		{"never below 1", 1, 1 << 10, 1 << 20, 100, 1, msgs},
	}
	for _, c := range cases {
		if got := nextFetchRatio(c.ratio, c.msgs, c.size, c.maxB, c.hwm); got != c.want {
			t.Errorf("%s: ratio %v, want %v", c.name, got, c.want)
		}
	}
}
