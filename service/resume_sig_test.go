package service

import (
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/pipeline"
)

// A message that failed the signature check at the tail, however plausible
// its position (a later transaction, closed, with a GTID set), is not a
// resume point: the walk passes over it to the last signed one. A topic of
// such messages only is an error.
func TestFindResumePassesOverRefused(t *testing.T) {
	b := &builder{t: t}
	b.txn(1, 1, 1, 0, 1, true)
	b.txn(1, 2, 1, 0, 1, true)
	b.txn(1, 50, 1, 0, 1, true) // forged
	b.topic.msgs[2].SigErr = changelog.ErrUnsigned
	got, err := findResume(context.Background(), &b.topic, &pipeline.Codec{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	want := Resume{Found: true, GTIDSet: "0-1-2", NextTxnSeq: 3, Epoch: 1, Offset: 1, End: 3, Refused: 1}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}

	b = &builder{t: t}
	b.txn(1, 7, 1, 0, 1, true)
	b.topic.msgs[0].SigErr = changelog.ErrBadSignature
	if _, err := findResume(context.Background(), &b.topic, &pipeline.Codec{}, zerolog.Nop()); err == nil ||
		!strings.Contains(err.Error(), "fail the signature check") {
		t.Errorf("a topic of refused messages only: %v", err)
	}
}
