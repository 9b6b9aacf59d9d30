package service

import (
	"bytes"
	"context"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/pipeline"
)

// SkipInfo is a source transaction an operator had the reader leave out
// (`rowcast pipeline --skip-gtid`), as the topic records it.
type SkipInfo struct {
	Offset int64  `json:"offset"`
	GTID   string `json:"gtid"`
	Reason string `json:"reason"`
}

// skipWindow is how many messages at the topic's tail status looks through
// for skip records.
const skipWindow = 10000

var heartbeatKey = []byte(`{"control":"heartbeat"}`)

// recentSkips finds the skip records among the last skipWindow messages
// before end.
func recentSkips(ctx context.Context, kc changelog.Config, first, end int64) ([]SkipInfo, error) {
	var out []SkipInfo
	codec := &pipeline.Codec{}
	for off := max(first, end-skipWindow); off < end; {
		msgs, err := changelog.ReadAt(ctx, kc, off, int(min(end-off, 2000)))
		if err != nil || len(msgs) == 0 {
			return out, err
		}
		for _, m := range msgs {
			off = m.Offset + 1
			if s, ok := skipOf(codec, m); ok {
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// skipOf is the skip record m carries, if any.
func skipOf(codec *pipeline.Codec, m changelog.Message) (SkipInfo, bool) {
	if m.SigErr != nil || !bytes.Equal(m.Key, heartbeatKey) || !bytes.Contains(m.Value, []byte(`"skip":`)) {
		return SkipInfo{}, false
	}
	ev, err := codec.Decode(m.Key, m.Value)
	if err != nil || ev.Skip == nil {
		return SkipInfo{}, false
	}
	return SkipInfo{Offset: m.Offset, GTID: ev.Skip.GTID, Reason: ev.Skip.Reason}, true
}
