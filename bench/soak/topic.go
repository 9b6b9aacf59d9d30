package main

import (
	"context"
	"fmt"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/pipeline"
)

// topicAudit is the changelog as a sink sees it: each transaction once,
// when its last message arrives; copies of messages already seen (retried
// produces, transactions published again after the reader's crash) skipped
// by position; messages of an older epoch after an epoch record ignored, and
// a transaction left open by the record dropped.
type topicAudit struct {
	messages, txns int
	epoch          uint64
	applied        uint64 // the last complete transaction
	open           *openTxn
	ledger         []int64 // ids the complete transactions insert into the ledger
}

type openTxn struct {
	seq    uint64
	gtid   string
	rows   uint64
	ledger []int64
}

// auditTopic reads the whole topic and checks that it holds each transfer
// of the master's ledger in exactly one transaction: none lost, none
// doubled, in the reader's own output.
func (s *soak) auditTopic(ctx context.Context, want []int64, res *result) error {
	kc := changelog.Config{Brokers: []string{addr("kafka")}, Topic: s.c.topic}
	end, err := changelog.EndOffset(ctx, kc)
	if err != nil {
		return err
	}
	a := &topicAudit{epoch: 1}
	codec := &pipeline.Codec{}
	for off := int64(0); off < end; {
		msgs, err := changelog.ReadAt(ctx, kc, off, 5000)
		if err != nil {
			return fmt.Errorf("read the topic at offset %d: %w", off, err)
		}
		if len(msgs) == 0 {
			return fmt.Errorf("no message at offset %d of %d", off, end)
		}
		for _, m := range msgs {
			ev, err := codec.Decode(m.Key, m.Value)
			if err != nil {
				return fmt.Errorf("offset %d: %w", m.Offset, err)
			}
			if err := a.add(ev); err != nil {
				return fmt.Errorf("offset %d: %w", m.Offset, err)
			}
			off = m.Offset + 1
		}
	}
	res.topicMessages, res.topicTxns = a.messages, a.txns
	return a.check(want)
}

// add takes the next message of the topic.
func (a *topicAudit) add(ev *pipeline.Event) error {
	a.messages++
	if ev.Kind == pipeline.KindEpoch && ev.Epoch != nil && ev.Epoch.Epoch > a.epoch {
		a.epoch, a.open = ev.Epoch.Epoch, nil
		return nil
	}
	p := ev.Pos
	if !ev.InTxn() || p.Epoch < a.epoch || p.TxnSeq <= a.applied {
		return nil
	}
	copied, err := a.place(ev)
	if err != nil || copied {
		return err
	}
	a.open.rows++
	if id, ok := ledgerInsert(ev); ok {
		a.open.ledger = append(a.open.ledger, id)
	}
	if p.Last {
		a.ledger = append(a.ledger, a.open.ledger...)
		a.applied, a.open = p.TxnSeq, nil
		a.txns++
	}
	return nil
}

// place finds the open transaction of a message of a transaction not yet
// complete, opening it at its first row: copied when the message is a copy
// of one already seen, an error for a gap.
func (a *topicAudit) place(ev *pipeline.Event) (copied bool, err error) {
	p := ev.Pos
	if a.open == nil || a.open.seq != p.TxnSeq {
		if p.Row != 0 || p.TxnSeq != a.applied+1 {
			return false, fmt.Errorf("%s follows transaction %d: a gap", p, a.applied)
		}
		a.open = &openTxn{seq: p.TxnSeq, gtid: ev.GTID}
	}
	switch {
	case p.Row < a.open.rows:
		return true, nil
	case p.Row > a.open.rows:
		return false, fmt.Errorf("%s skips rows after %d", p, a.open.rows)
	case ev.GTID != a.open.gtid:
		return false, fmt.Errorf("%s has GTID %s, its transaction started with %s", p, ev.GTID, a.open.gtid)
	}
	return false, nil
}

// ledgerInsert is the transfer id of a row inserted into the ledger.
func ledgerInsert(ev *pipeline.Event) (int64, bool) {
	if ev.Kind != pipeline.KindRow || ev.Op != pipeline.OpInsert || ev.Table == nil || ev.Table.Name != "ledger" || len(ev.After) == 0 {
		return 0, false
	}
	var id int64
	_, err := fmt.Sscan(fmt.Sprint(ev.After[0]), &id)
	return id, err == nil
}

// check compares the transfers of the topic with the master's ledger.
func (a *topicAudit) check(want []int64) error {
	sortIDs(a.ledger)
	var twice []int64
	for i := 1; i < len(a.ledger); i++ {
		if a.ledger[i] == a.ledger[i-1] {
			twice = append(twice, a.ledger[i])
		}
	}
	if len(twice) > 0 {
		return fmt.Errorf("the topic holds %d transfers in two transactions, e.g. %v", len(twice), twice[:min(5, len(twice))])
	}
	missing, extra := minus(want, a.ledger), minus(a.ledger, want)
	if len(missing)+len(extra) > 0 {
		return fmt.Errorf("the topic's transfers differ from the master's ledger: %d missing, %d not on the master", len(missing), len(extra))
	}
	return nil
}
