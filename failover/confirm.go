package failover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/changelog/history"
	"github.com/rowcast/rowcast/pipeline"
)

// faults are failures tests inject into a promotion; the zero value
// injects none.
type faults struct {
	// loseAck drops Kafka's acknowledgement of the epoch record: the record
	// lands in the topic and the promotion never hears of it.
	loseAck bool
	// loseRecord drops the epoch record before it is sent: it never lands,
	// and no acknowledgement comes.
	loseRecord bool
	// readKafka changes the Kafka config of the reads that look for an
	// unacknowledged record (an unreachable broker, say).
	readKafka func(changelog.Config) changelog.Config
}

// UnknownOutcomeError is a promotion whose epoch record was sent but
// neither acknowledged nor found, because the topic could not be read: the
// record may be in the topic, or land there later. Nothing is undone: the
// old master stays fenced and the promotion lease is left to expire
// unreleased (so that every lookup scans the topic from its offset).
type UnknownOutcomeError struct {
	Record    pipeline.EpochRecord
	OldMaster string
	// Fenced is whether the old master was fenced (a planned promotion).
	Fenced bool
	// FromOffset is where the record may be: at or after it.
	FromOffset int64
	// NoAck is why no acknowledgement came; Err why the topic could not be
	// read.
	NoAck, Err error
}

func (e *UnknownOutcomeError) Error() string {
	r := e.Record
	kept, notThere := fmt.Sprintf("%s stays fenced (read_only=ON)", e.OldMaster), fmt.Sprintf("SET GLOBAL read_only=OFF on %s (or run the promotion again)", e.OldMaster)
	if !e.Fenced {
		kept, notThere = fmt.Sprintf("%s was not fenced (it did not answer)", e.OldMaster), "run the promotion again"
	}
	return fmt.Sprintf("the epoch record (epoch %d, master %s) was not acknowledged (%v) and the topic cannot be read to tell whether it landed (%v): "+
		"nothing is undone: %s, %s stays read-only, and the promotion lease is left to expire unreleased, so lookups scan the topic from offset %d. "+
		"Once Kafka answers, run `rowcast status`: if it names %s at epoch %d, the promotion happened: SET GLOBAL read_only=OFF on %s by hand; "+
		"if it still names %s, the record is not there: %s",
		r.Epoch, r.Master, e.NoAck, e.Err, kept, r.Master, e.FromOffset, r.Master, r.Epoch, r.Master, e.OldMaster, notThere)
}

func (e *UnknownOutcomeError) Unwrap() error { return e.Err }

// confirmRecord decides about an epoch record that was sent but not
// acknowledged (noAck): it stops the producer, so that nothing of ours
// reaches the topic any more, then reads the topic for the record. Found,
// the promotion goes on with it; not found now nor after RecordSettle, the
// promotion is aborted (undoing the fence is safe); the topic unreadable,
// an UnknownOutcomeError keeps everything as it is. Why the second read:
// docs/DESIGN.md, "An unacknowledged epoch record".
func (pr *promotion) confirmRecord(ctx context.Context, noAck error) (int64, error) {
	pr.prod.close()
	pr.p.Log.Warn().Err(noAck).Uint64("epoch", pr.record.Epoch).Msg("the epoch record was not acknowledged: producer stopped, reading the topic for it")
	off, end, err := pr.findRecord(ctx)
	if err == nil && off < 0 {
		if err = sleep(ctx, pr.o.RecordSettle); err == nil {
			off, end, err = pr.findRecord(ctx)
		}
	}
	switch {
	case err != nil:
		return 0, &UnknownOutcomeError{Record: pr.record, OldMaster: pr.cur.Master, Fenced: pr.oldSrv != nil,
			FromOffset: pr.lease.FromOffset, NoAck: noAck, Err: err}
	case off < 0:
		return 0, fmt.Errorf("the epoch record was not acknowledged (%w) and is not in the topic (offsets %d to %d, read twice %v apart, the producer stopped)",
			noAck, pr.lease.FromOffset, end, pr.o.RecordSettle)
	}
	pr.p.Log.Warn().Int64("offset", off).Uint64("epoch", pr.record.Epoch).Msg("the unacknowledged epoch record is in the topic: the promotion goes on")
	return off, nil
}

// findRecord reads the topic from the lease's offset to its end for our
// epoch record: its offset, -1 when it is not there.
func (pr *promotion) findRecord(ctx context.Context) (off, end int64, err error) {
	kc := pr.p.Kafka
	if pr.p.faults.readKafka != nil {
		kc = pr.p.faults.readKafka(kc)
	}
	if end, err = changelog.EndOffset(ctx, kc); err != nil {
		return -1, 0, err
	}
	log := history.New(changelog.TopicOf(kc), &pipeline.Codec{Cluster: pr.p.Cfg.Cluster}, nil)
	marks, err := log.Scan(ctx, pr.lease.FromOffset, end)
	if err != nil {
		return -1, end, err
	}
	for _, m := range marks {
		if m.Record == pr.record {
			return m.Offset, end, nil
		}
	}
	return -1, end, nil
}

// fail ends a promotion stopped before its point of no return: what its
// steps did is undone, unless the epoch record may be in the topic.
func (pr *promotion) fail(ctx context.Context) error {
	var unknown *UnknownOutcomeError
	if errors.As(pr.err, &unknown) {
		pr.lease.leave()
		return fmt.Errorf("promotion stopped at %q: %w", pr.failed, pr.err)
	}
	return pr.abort(ctx)
}

// Defaults of Options.RecordTimeout and Options.RecordSettle.
const (
	defaultRecordTimeout = 30 * time.Second
	// Kafka's replica.lag.time.max.ms: a record the leader appended becomes
	// readable once its followers copied it or left the in-sync set.
	defaultRecordSettle = 30 * time.Second
)
