package sink_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/sink"
	"github.com/rowcast/rowcast/sink/sinktest"
)

// TestRefusedMessages: messages that failed the signature check, in the
// middle of a transaction, between transactions and at the end, are never
// applied; every real transaction still is, and each refused offset is
// recorded with its reason and counted.
func TestRefusedMessages(t *testing.T) {
	w := sinktest.NewWorkload("db", 12, 40, false)
	var msgs []sink.Message
	var forged []int64
	forge := func() {
		forged = append(forged, int64(len(msgs)))
		msgs = append(msgs, sink.Message{Refused: changelog.ErrUnsigned})
	}
	for i, m := range w.Msgs {
		if i == 0 || i%7 == 3 {
			forge()
		}
		msgs = append(msgs, m)
	}
	forge()
	for _, live := range []bool{false, true} {
		m := sinktest.NewMemory("db")
		in := sinktest.NewInput(msgs)
		in.Live = live
		var c sinktest.Counters
		wk, err := run(t, m, in, sink.WorkerConfig{}, &c)
		if err != nil {
			t.Fatal(err)
		}
		sinktest.Compare(t, m, w.Script)
		if got := c.Get(sink.MessagesRefused); got != len(forged) {
			t.Errorf("live %v: %d refused, want %d", live, got, len(forged))
		}
		skips := m.Skips()
		if len(skips) != len(forged) {
			t.Fatalf("live %v: %d skip records, want %d", live, len(skips), len(forged))
		}
		for i, s := range skips {
			if s.Offset != forged[i] || s.Operator != sink.RefusedBy || s.Position != "" {
				t.Errorf("skip record %d: %+v, want offset %d by %s", i, s, forged[i], sink.RefusedBy)
			}
		}
		if st := wk.Status(); st.Offset != int64(len(msgs)) || st.TxnSeq != w.Seq() {
			t.Errorf("live %v: status %+v, want offset %d after txn %d", live, st, len(msgs), w.Seq())
		}
	}
}

// fakeIndex answers Confirm with verdicts in turn, the last one from then on.
type fakeIndex struct {
	verdicts []sink.EpochVerdict
	calls    int
}

func (f *fakeIndex) Confirm(context.Context, int64, pipeline.EpochRecord) (sink.EpochVerdict, error) {
	v := f.verdicts[min(f.calls, len(f.verdicts)-1)]
	f.calls++
	return v, nil
}

// epochScript is two transactions of epoch 1, the epoch 2 record and two
// transactions of epoch 2.
func epochScript() *sinktest.Script {
	s := script()
	for i := int64(1); i <= 4; i++ {
		if i == 3 {
			s.Epoch(2)
		}
		s.Insert("t", i, fmt.Sprint("v", i))
		s.Commit()
	}
	return s
}

// TestEpochConfirmed: a record of a new epoch is taken once the nodes'
// index holds it (the worker waits while it does not yet); one the index
// contradicts is refused, and the messages of its epoch then stop the worker:
// an epoch never comes from rows alone.
func TestEpochConfirmed(t *testing.T) {
	s := epochScript()
	idx := &fakeIndex{verdicts: []sink.EpochVerdict{sink.EpochNotIndexed, sink.EpochNotIndexed, sink.EpochConfirmed}}
	m := sinktest.NewMemory("db")
	var c sinktest.Counters
	wk, err := run(t, m, sinktest.NewInput(s.Msgs), sink.WorkerConfig{Epochs: idx, RetryInitial: time.Millisecond}, &c)
	if err != nil {
		t.Fatal(err)
	}
	sinktest.Compare(t, m, s)
	if st := wk.Status(); st.Epoch != 2 || idx.calls != 3 || c.Get(sink.Retries) != 2 {
		t.Errorf("status %+v after %d confirmations, %d retries; want epoch 2 after 3, 2", st, idx.calls, c.Get(sink.Retries))
	}

	m = sinktest.NewMemory("db")
	c = sinktest.Counters{}
	wk, err = run(t, m, sinktest.NewInput(s.Msgs), sink.WorkerConfig{Epochs: &fakeIndex{verdicts: []sink.EpochVerdict{sink.EpochContradicted}}}, &c)
	if !errors.Is(err, sink.ErrGap) || !strings.Contains(err.Error(), "no epoch record of epoch 2") {
		t.Fatalf("contradicted record: %v", err)
	}
	if st := wk.Status(); st.Epoch != 1 || st.TxnSeq != 2 || c.Get(sink.MessagesRefused) != 1 || len(m.Skips()) != 1 {
		t.Errorf("contradicted record: status %+v, %d refused, skips %+v", st, c.Get(sink.MessagesRefused), m.Skips())
	}
}

// withSums gives every message a digest, as KafkaInput does.
func withSums(msgs []sink.Message) []sink.Message {
	out := make([]sink.Message, len(msgs))
	for i, m := range msgs {
		m.Sum = uint64(i)*2654435761 + 1
		out[i] = m
	}
	return out
}

// TestDuplicateContent: a transaction published twice with the same bytes
// is skipped; one whose copy differs from what was applied stops the
// worker, also after a restart (the digest is read from the target).
func TestDuplicateContent(t *testing.T) {
	w := sinktest.NewWorkload("db", 13, 30, false)
	msgs := withSums(w.Msgs)
	k := w.After(11).Offset // transaction 12, of three rows, starts here
	var txn []sink.Message
	for _, m := range msgs[k:] {
		txn = append(txn, m)
		if m.Event.Pos.Last {
			break
		}
	}
	same := append(append(append([]sink.Message{}, msgs[:w.After(20).Offset]...), txn...), msgs[w.After(20).Offset:]...)
	m := sinktest.NewMemory("db")
	var c sinktest.Counters
	if _, err := run(t, m, sinktest.NewInput(same), sink.WorkerConfig{}, &c); err != nil {
		t.Fatal(err)
	}
	sinktest.Compare(t, m, w.Script)
	if c.Get(sink.DuplicatesSkipped) != len(txn) {
		t.Errorf("%d duplicates skipped, want %d", c.Get(sink.DuplicatesSkipped), len(txn))
	}

	changed := append([]sink.Message{}, txn...)
	changed[len(changed)-1].Sum++
	differs := append(append(append([]sink.Message{}, msgs[:w.After(20).Offset]...), changed...), msgs[w.After(20).Offset:]...)
	for _, restart := range []bool{false, true} {
		m := sinktest.NewMemory("db")
		in := sinktest.NewInput(differs)
		if restart {
			in.Stop = w.After(20).Offset // the copy comes to a new worker
			if _, err := run(t, m, in, sink.WorkerConfig{}, nil); err != nil {
				t.Fatal(err)
			}
			in.Stop = 0
		}
		_, err := run(t, m, in, sink.WorkerConfig{}, nil)
		if !errors.Is(err, sink.ErrDuplicateDiffers) {
			t.Fatalf("restart %v: %v, want a duplicate that differs", restart, err)
		}
	}
}
