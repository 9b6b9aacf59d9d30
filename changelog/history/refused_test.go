package history

import (
	"context"
	"testing"

	"github.com/rowcast/rowcast/changelog"
)

// Messages that failed the signature check are not in the history: a forged
// epoch record is no mark, and the walks read past forged messages.
func TestRefusedLeftOut(t *testing.T) {
	b := newBuilder(t)
	b.txn(1, 1, 1, 1, 1, 0, 1, true)
	forged := b.epoch(2, 1, "db3", "0-3-1")
	b.txn(1, 2, 1, 2, 1, 0, 1, true)
	b.topic.msgs[forged.Offset].SigErr = changelog.ErrUnsigned
	l := New(&b.topic, nil, nil)
	ctx := context.Background()
	marks, err := l.Scan(ctx, 0, 3)
	if err != nil || len(marks) != 0 {
		t.Errorf("Scan: %v, %v; want no epoch record", marks, err)
	}
	if _, ok, err := l.ScanBack(ctx, 0, 3); ok || err != nil {
		t.Errorf("ScanBack found a record (%v)", err)
	}
	es, err := l.Read(ctx, 0, 3)
	if err != nil || len(es) != 2 || es[1].Offset != 2 || l.Refused != 3 {
		t.Errorf("Read: %d entries, %v, %d refused so far", len(es), err, l.Refused)
	}
}

// A read window of refused messages only is not the end of the topic: the
// walks go on past it, both ways.
func TestRefusedWindowWalkedPast(t *testing.T) {
	b := newBuilder(t)
	b.txn(1, 1, 1, 1, 1, 0, 1, true)
	real := b.epoch(2, 1, "db2", "0-2-1")
	for i := 0; i < 3; i++ {
		off := b.txn(2, 2, 2, 2, 1, 0, 1, true) // forged copies
		b.topic.msgs[off].SigErr = changelog.ErrBadSignature
	}
	later := b.epoch(3, 1, "db1", "0-1-9")
	b.txn(3, 2, 1, 3, 1, 0, 1, true)
	ctx := context.Background()
	l := New(&b.topic, nil, nil)
	if m, ok, err := l.ScanBack(ctx, 0, later.Offset); !ok || err != nil || m.Offset != real.Offset {
		t.Errorf("ScanBack past the refused window: %+v, %v, %v; want offset %d", m, ok, err, real.Offset)
	}
	marks, err := l.Scan(ctx, real.Offset+1, int64(len(b.topic.msgs)))
	if err != nil || len(marks) != 1 || marks[0].Offset != later.Offset {
		t.Errorf("Scan past the refused window: %+v, %v; want the record at %d", marks, err, later.Offset)
	}
}
