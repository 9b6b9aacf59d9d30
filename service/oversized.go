package service

import (
	"fmt"

	"github.com/rowcast/rowcast/pipeline"
)

// oversized is the producer token of a message that may be larger than the
// topic takes (its max.message.bytes): should the broker refuse it, the
// producer's error names it by this token, so the operator learns which
// table, transaction and binlog position it is, not only an offset count.
type oversized struct {
	acked *Acked // the transaction's, when the message is its last
	desc  string
}

func (o *oversized) String() string { return o.desc }

// messageMargin is what Kafka adds to a record in a batch of one, at most.
const messageMargin = 512

// sizeToken returns token, or an oversized one that carries it when the
// message of ev (size bytes of key and value, before compression) may not
// fit kafka.max_message_bytes.
func (p *Publisher) sizeToken(ev *pipeline.Event, size int, token any) any {
	limit := p.cfg.Kafka.MessageBytes()
	if size+messageMargin <= limit {
		return token
	}
	acked, _ := token.(*Acked)
	return &oversized{acked: acked, desc: describeOversized(ev, size, limit)}
}

// describeOversized names a message too large for limit: its table, its
// position, its transaction, where it is in the master's binlog, its size.
func describeOversized(ev *pipeline.Event, size, limit int) string {
	what := ev.Kind.String() + " message"
	if ev.Table != nil {
		what = fmt.Sprintf("%s of %s.%s", what, ev.Table.Database, ev.Table.Name)
	}
	gtid := ev.GTID
	if gtid == "" {
		gtid = "(none)"
	}
	return fmt.Sprintf("%s at %s, gtid %s, binlog %s:%d, %d bytes before compression, kafka.max_message_bytes %d; "+
		"if the broker refuses it, raise the topic's max.message.bytes and kafka.max_message_bytes above it, "+
		"or leave the transaction out with `rowcast pipeline --skip-gtid %s` and re-seed the table",
		what, ev.Pos, gtid, ev.File, ev.Offset, size, limit, gtid)
}
