package service

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/pipeline"
)

// memTopic is a changelog held in memory; reads count the messages fetched,
// held the most bytes one read returned.
type memTopic struct {
	first int64
	msgs  []changelog.Message
	reads int
	held  int
}

func (m *memTopic) FirstOffset(context.Context) (int64, error) { return m.first, nil }
func (m *memTopic) EndOffset(context.Context) (int64, error)   { return int64(len(m.msgs)), nil }
func (m *memTopic) ReadAt(_ context.Context, off int64, max int) ([]changelog.Message, error) {
	end := min(int(off)+max, len(m.msgs))
	m.reads += end - int(off)
	m.hold(m.msgs[off:end])
	return m.msgs[off:end], nil
}

func (m *memTopic) ReadAtMost(ctx context.Context, off int64, max, maxBytes int) ([]changelog.Message, error) {
	n, size := 0, 0
	for _, msg := range m.msgs[off:min(int(off)+max, len(m.msgs))] {
		if size >= maxBytes {
			break
		}
		n, size = n+1, size+msg.Size()
	}
	return m.ReadAt(ctx, off, n)
}

func (m *memTopic) hold(msgs []changelog.Message) {
	size := 0
	for _, msg := range msgs {
		size += msg.Size()
	}
	m.held = max(m.held, size)
}

var testTable = &pipeline.Table{Database: "shop", Name: "t",
	Columns: []pipeline.Column{{Name: "id", Kind: pipeline.VInt, SQLType: "int(11)"}}, PrimaryKey: []int{0}}

type builder struct {
	t     *testing.T
	codec pipeline.Codec
	topic memTopic
}

func (b *builder) add(ev *pipeline.Event) {
	b.t.Helper()
	if ev.Flavor == "" {
		ev.Flavor = "mariadb"
	}
	if ev.CommitTime.IsZero() {
		ev.CommitTime = time.Unix(1700000000, 0)
	}
	k, err := b.codec.AppendKey(nil, ev)
	if err != nil {
		b.t.Fatal(err)
	}
	v, err := b.codec.AppendValue(nil, ev)
	if err != nil {
		b.t.Fatal(err)
	}
	b.topic.msgs = append(b.topic.msgs, changelog.Message{Offset: int64(len(b.topic.msgs)), Key: k, Value: v})
}

// txn appends rows [from, to) of transaction seq, flagging the last row when
// complete is true.
func (b *builder) txn(epoch, seq uint64, rows, from, to int, complete bool) {
	for r := from; r < to; r++ {
		ev := &pipeline.Event{Kind: pipeline.KindRow, Op: pipeline.OpInsert, Table: testTable,
			After: []any{int64(r)}, GTID: fmt.Sprintf("0-1-%d", seq),
			Pos: pipeline.Position{Epoch: epoch, TxnSeq: seq, Row: uint64(r)}}
		if complete && r == rows-1 {
			ev.Pos.Last = true
			ev.GTIDSet = fmt.Sprintf("0-1-%d", seq)
		}
		b.add(ev)
	}
}

func TestFindResume(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name  string
		build func(b *builder)
		want  Resume
	}{
		{"empty topic", func(*builder) {}, Resume{NextTxnSeq: 1, Epoch: 1, Offset: -1}},
		{"complete tail", func(b *builder) {
			b.txn(1, 1, 3, 0, 3, true)
			b.txn(1, 2, 2, 0, 2, true)
		}, Resume{Found: true, GTIDSet: "0-1-2", NextTxnSeq: 3, Epoch: 1, Offset: 4, End: 5}},
		{"partial tail", func(b *builder) {
			b.txn(1, 1, 2, 0, 2, true)
			b.txn(1, 2, 10, 0, 6, false) // cut by a crash after row 5
		}, Resume{Found: true, GTIDSet: "0-1-1", NextTxnSeq: 2, Epoch: 1, Offset: 1, End: 8}},
		{"partial then partial copy with retried duplicates", func(b *builder) {
			b.txn(1, 7, 1, 0, 1, true)
			b.txn(1, 8, 10, 0, 4, false)
			b.txn(1, 8, 10, 0, 5, false)
			b.txn(1, 8, 10, 3, 5, false) // a retried produce repeats rows 3-4
		}, Resume{Found: true, GTIDSet: "0-1-7", NextTxnSeq: 8, Epoch: 1, Offset: 0, End: 12}},
		{"heartbeat at the end", func(b *builder) {
			b.txn(2, 4, 1, 0, 1, true)
			b.add(&pipeline.Event{Kind: pipeline.KindHeartbeat, GTIDSet: "0-1-4,1-1-9", Pos: pipeline.Position{Epoch: 2, TxnSeq: 4, Last: true}})
		}, Resume{Found: true, GTIDSet: "0-1-4,1-1-9", NextTxnSeq: 5, Epoch: 2, Offset: 1, End: 2}},
		{"epoch record at the end", func(b *builder) {
			b.txn(1, 4, 1, 0, 1, true)
			b.add(&pipeline.Event{Kind: pipeline.KindEpoch, Pos: pipeline.Position{Epoch: 2, TxnSeq: 4, Last: true},
				Epoch: &pipeline.EpochRecord{Epoch: 2, Master: "db2", StartGTIDSet: "0-2-50", Flavor: "mariadb", TxnSeq: 4}})
		}, Resume{Found: true, GTIDSet: "0-2-50", NextTxnSeq: 5, Epoch: 2, Offset: 1, End: 2, Master: "db2"}},
		{"stray old-epoch transaction after newer ones", func(b *builder) {
			b.txn(1, 4, 1, 0, 1, true)
			b.txn(2, 5, 1, 0, 1, true)
			b.txn(1, 5, 2, 0, 1, false) // stray old reader, cut
			b.txn(2, 6, 1, 0, 1, true)
		}, Resume{Found: true, GTIDSet: "0-1-6", NextTxnSeq: 7, Epoch: 2, Offset: 3, End: 4}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := &builder{t: t}
			c.build(b)
			got, err := findResume(ctx, &b.topic, &pipeline.Codec{}, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// A million-row transaction cut at the tail must not be read message by
// message: the walk jumps over the rows that precede the last one.
func TestFindResumeJumpsOverLongPartialTransaction(t *testing.T) {
	b := &builder{t: t}
	b.txn(1, 1, 1, 0, 1, true)
	// Encoding a million rows takes a while; 50k rows with the window of
	// 2000 shows the same: without jumping this reads 50k messages.
	b.txn(1, 2, 1_000_000, 0, 50_000, false)
	got, err := findResume(context.Background(), &b.topic, &pipeline.Codec{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if !got.Found || got.NextTxnSeq != 2 || got.Offset != 0 {
		t.Fatalf("got %+v", got)
	}
	if b.topic.reads > 2*resumeWindow+2 {
		t.Fatalf("read %d messages to skip a 50k-row partial transaction", b.topic.reads)
	}
}

// A tail of big rows is read about one at a time: here a reader that
// crashed on a big transaction each time it published its first row.
func TestFindResumeHoldsBigRowsOneAtATime(t *testing.T) {
	b := &builder{t: t}
	b.txn(1, 1, 1, 0, 1, true)
	table := &pipeline.Table{Database: "shop", Name: "blobs", Columns: []pipeline.Column{
		{Name: "id", Kind: pipeline.VInt, SQLType: "int(11)"}, {Name: "doc", Kind: pipeline.VString, SQLType: "longtext"}}, PrimaryKey: []int{0}}
	const rowBytes, rows = 1 << 20, 24
	doc := strings.Repeat("x", rowBytes)
	for range rows {
		b.add(&pipeline.Event{Kind: pipeline.KindRow, Op: pipeline.OpInsert, Table: table, After: []any{int64(1), doc},
			GTID: "0-1-2", Pos: pipeline.Position{Epoch: 1, TxnSeq: 2}})
	}
	got, err := findResume(context.Background(), &b.topic, &pipeline.Codec{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if !got.Found || got.NextTxnSeq != 2 || got.Offset != 0 {
		t.Fatalf("got %+v", got)
	}
	if limit := resumeBytes + 2*rowBytes; b.topic.held > limit {
		t.Fatalf("one read held %d bytes of messages, want at most %d", b.topic.held, limit)
	}
}

// Undecodable messages at the tail are passed over: the resume point is the
// last decodable one before them.
func TestFindResumePassesOverUndecodable(t *testing.T) {
	b := &builder{t: t}
	b.txn(1, 1, 1, 0, 1, true)
	b.txn(1, 2, 2, 0, 1, false) // cut: its first row, then garbage
	b.garbage(3)
	got, err := findResume(context.Background(), &b.topic, &pipeline.Codec{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	want := Resume{Found: true, GTIDSet: "0-1-1", NextTxnSeq: 2, Epoch: 1, Offset: 0, End: 5, Undecodable: 3}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

// A topic of undecodable messages only, or more of them than the bound,
// holds no resume point: an error names an offset and how to inspect it.
func TestFindResumeMalformed(t *testing.T) {
	for _, c := range []struct {
		name    string
		garbage int
		says    []string
	}{
		{"none decodable", 2, []string{"2 messages that cannot be decoded", "rowcast tail"}},
		{"above the bound", maxUndecodable + 1, []string{"changelog offset 1 cannot be decoded", "rowcast tail --from-offset 1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := &builder{t: t}
			if c.garbage > maxUndecodable {
				b.txn(1, 1, 1, 0, 1, true)
			}
			b.garbage(c.garbage)
			_, err := findResume(context.Background(), &b.topic, &pipeline.Codec{}, zerolog.Nop())
			for _, s := range c.says {
				if err == nil || !strings.Contains(err.Error(), s) {
					t.Fatalf("got %v, want it to say %q", err, s)
				}
			}
		})
	}
}

// garbage appends n messages that do not decode.
func (b *builder) garbage(n int) {
	for range n {
		b.topic.msgs = append(b.topic.msgs, changelog.Message{Offset: int64(len(b.topic.msgs)), Key: []byte("x"), Value: []byte("{garbage")})
	}
}

// A snapshot chunk cut by a crash at the end of the topic is reported, to
// be ended rather than published again; a cut source transaction is not.
func TestFindResumeCutSnapshotChunk(t *testing.T) {
	b := &builder{t: t}
	b.txn(1, 1, 1, 0, 1, true)
	for r := 0; r < 3; r++ {
		b.add(&pipeline.Event{Kind: pipeline.KindRow, Op: pipeline.OpRead, Table: testTable, After: []any{int64(r)},
			Pos: pipeline.Position{Epoch: 1, TxnSeq: 2, Row: uint64(r)}})
	}
	got, err := findResume(context.Background(), &b.topic, &pipeline.Codec{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if got.NextTxnSeq != 2 || got.CutRead == nil || got.CutRead.Pos != (pipeline.Position{Epoch: 1, TxnSeq: 2, Row: 2}) || got.CutRead.After[0] != int64(2) {
		t.Fatalf("got %+v (cut %+v)", got, got.CutRead)
	}
	b.txn(1, 3, 5, 0, 2, false)
	if got, _ := findResume(context.Background(), &b.topic, &pipeline.Codec{}, zerolog.Nop()); got.CutRead != nil {
		t.Fatalf("a cut source transaction reported as a cut chunk: %+v", got.CutRead)
	}
}
