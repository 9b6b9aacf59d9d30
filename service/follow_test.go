package service

import (
	"testing"

	"github.com/rowcast/rowcast/pipeline"
)

func TestEpochKey(t *testing.T) {
	k, err := (&pipeline.Codec{}).AppendKey(nil, &pipeline.Event{Kind: pipeline.KindEpoch, Epoch: &pipeline.EpochRecord{Epoch: 2}})
	if err != nil || string(k) != string(epochKey) || len(epochKey) == 0 {
		t.Fatalf("epoch key %q (%v), follower compares with %q", k, err, epochKey)
	}
}

func TestFollowerGaps(t *testing.T) {
	f := &follower{}
	for _, o := range []int64{3, 4, 5, 8, 9, 12} {
		f.acked(o)
	}
	got := f.gaps(0, 11)
	want := []span{{0, 2}, {6, 7}, {10, 10}}
	if len(got) != len(want) {
		t.Fatalf("gaps %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("gaps %v, want %v", got, want)
		}
	}
	// Spans below 11 are forgotten but the last; 12 is ours, 13.. foreign.
	if got := f.gaps(11, 15); len(got) != 2 || got[0] != (span{11, 11}) || got[1] != (span{13, 14}) {
		t.Fatalf("gaps %v", got)
	}
	if len(f.spans) != 1 {
		t.Fatalf("spans kept %v", f.spans)
	}
}
