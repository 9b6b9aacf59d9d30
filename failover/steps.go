package failover

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/changelog/history"
	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/pipeline"
)

// The steps of a promotion, in the order Promote runs them. Each returns
// the detail of its report.

// lookUpMaster finds the current master and checks the replica to promote.
func (pr *promotion) lookUpMaster(ctx context.Context) (string, error) {
	view, err := pr.loc.Locate(ctx)
	if err != nil {
		return "", err
	}
	pr.view, pr.cur = view, view.Current
	pr.res.OldMaster = pr.cur.Master
	if err := pr.checkReplica(); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s, epoch %d (%s)", pr.cur.Master, pr.cur.Epoch, pr.cur.From), nil
}

// checkReplica checks that the replica named is a mysql node that is not
// the master; only an emergency promotion may leave it to be picked.
func (pr *promotion) checkReplica() error {
	o, cur := pr.o, pr.cur
	if o.Replica == cur.Master {
		return fmt.Errorf("%s is already the master (epoch %d)", o.Replica, cur.Epoch)
	}
	if o.Replica == "" && !o.Force {
		return errors.New("name the replica to promote (--replica)")
	}
	if o.Replica == "" {
		return nil
	}
	if n, ok := pr.p.Cfg.Node(o.Replica); !ok || n.Kind != config.KindMySQL {
		return fmt.Errorf("%q is not a mysql node of the config", o.Replica)
	}
	return nil
}

// takeLease takes the promotion lease (released by the undo), then checks
// that no promotion ended between the lookup and the lease.
func (pr *promotion) takeLease(ctx context.Context) (string, error) {
	p := pr.p
	end, err := changelog.EndOffset(ctx, p.Kafka)
	if err != nil {
		return "", err
	}
	lease, err := acquireLease(ctx, p.Cfg, p.Kafka.Topic, pr.o.Holder, pr.o.LeaseTTL, end, p.Log, p.rec)
	if err != nil {
		return "", err
	}
	pr.lease = lease
	pr.undo = append(pr.undo, func(ctx context.Context) string { lease.Release(ctx); return "promotion lease released" })
	if pr.view, err = pr.loc.Locate(ctx); err != nil {
		return "", err
	}
	if now := pr.view.Current; now.Epoch != pr.cur.Epoch || now.Master != pr.cur.Master {
		return "", fmt.Errorf("the master changed meanwhile: %s, epoch %d; run the promotion again if it is still wanted", now.Master, now.Epoch)
	}
	pr.log = history.New(changelog.TopicOf(p.Kafka), &pipeline.Codec{Cluster: p.Cfg.Cluster}, pr.view.Marks)
	return fmt.Sprintf("on %d of %d mysql nodes, held by %s", len(lease.dbs), lease.total, pr.o.Holder), nil
}

// startProducer starts the producer of the epoch record.
func (pr *promotion) startProducer(ctx context.Context) (string, error) {
	prod, err := openRecordWriter(ctx, pr.p.Kafka, pr.p.Log, &pr.p.faults)
	if err != nil {
		return "", err
	}
	prod.timeout = pr.o.RecordTimeout
	pr.prod = prod
	pr.closers = append(pr.closers, prod.close)
	return "", nil
}

// checkMasterDown refuses an emergency promotion while the master answers.
func (pr *promotion) checkMasterDown(ctx context.Context) (string, error) {
	n, _ := pr.p.Cfg.AdminNode(pr.cur.Master)
	if db, err := n.Open(ctx, 2*time.Second); err == nil {
		db.Close()
		return "", fmt.Errorf("the master %s answers: promote without --force (a planned promotion fences it and loses nothing)", pr.cur.Master)
	}
	return pr.cur.Master + " does not answer", nil
}

// pick chooses the replica with the highest applied offset.
func (pr *promotion) pick(ctx context.Context) (string, error) {
	best, detail, err := pr.p.pick(ctx, pr.cur.Master)
	if err != nil {
		return "", err
	}
	pr.o.Replica = best
	return detail, nil
}

// connectReplica connects to the replica.
func (pr *promotion) connectReplica(ctx context.Context) (string, error) {
	srv, err := pr.connect(ctx, pr.o.Replica)
	pr.newSrv = srv
	return "", err
}

// connectBoth connects to the master and the replica, and checks that the
// replica applied the master's epoch.
func (pr *promotion) connectBoth(ctx context.Context) (string, error) {
	var err error
	if pr.oldSrv, err = pr.connect(ctx, pr.cur.Master); err != nil {
		return "", fmt.Errorf("%w (if the master is down, use --force)", err)
	}
	if pr.newSrv, err = pr.connect(ctx, pr.o.Replica); err != nil {
		return "", err
	}
	return "", pr.checkReplicaEpoch(ctx)
}

// connect connects to a node until close.
func (pr *promotion) connect(ctx context.Context, name string) (*server, error) {
	n, _ := pr.p.Cfg.AdminNode(name)
	srv, err := connect(ctx, n, 3*time.Second, pr.p.rec)
	if err != nil {
		return nil, err
	}
	pr.closers = append(pr.closers, func() { srv.close() })
	return srv, nil
}

// checkReplicaEpoch checks that the replica's checkpoint is of the topic
// and the master's epoch.
func (pr *promotion) checkReplicaEpoch(ctx context.Context) error {
	o, topic := pr.o, pr.p.Kafka.Topic
	st, found, err := pr.p.Cfg.CheckpointStore().Load(ctx, pr.newSrv.ex(), topic, 0)
	if err != nil || !found {
		return fmt.Errorf("%s has no checkpoint for topic %s (%v): it is not a replica of this cluster yet", o.Replica, topic, err)
	}
	if st.Epoch != pr.cur.Epoch {
		return fmt.Errorf("%s applied epoch %d, the master's epoch is %d: let its sink worker catch up first", o.Replica, st.Epoch, pr.cur.Epoch)
	}
	return nil
}

// fence makes the old master refuse writes; the undo restores its
// read_only as it was, also when fencing failed half way.
func (pr *promotion) fence(ctx context.Context) (string, error) {
	old := pr.oldSrv
	pr.fenceStart = time.Now()
	fr, err := old.fence(ctx, pr.o.Fence, pr.o.FenceTimeout)
	pr.undo = append(pr.undo, func(ctx context.Context) string { return undoFence(ctx, old, fr) })
	if err != nil {
		return "", err
	}
	detail := fmt.Sprintf("read_only=ON; %d open write transactions killed", fr.killed)
	if pr.o.Fence == FenceWait {
		detail = fmt.Sprintf("read_only=ON; waited %v for open write transactions", fr.waited.Round(time.Millisecond))
	}
	if !fr.visible {
		detail += " (open transactions not visible: the user lacks PROCESS; read_only alone stops users without READ_ONLY ADMIN/SUPER)"
	}
	return detail, nil
}

// undoFence restores the read_only the old master had before the fence.
func undoFence(ctx context.Context, old *server, fr fenceResult) string {
	if err := old.setReadOnly(ctx, fr.before); err != nil {
		return fmt.Sprintf("FAILED to restore read_only on %s (%v): restore it by hand", old.name, err)
	}
	return fmt.Sprintf("read_only of %s restored to %s", old.name, onOff(fr.before.ro))
}

// waitPublished waits for the reader to publish the fenced master's last
// transaction.
func (pr *promotion) waitPublished(ctx context.Context) (string, error) {
	set, err := pr.oldSrv.gtidSet(ctx)
	if err != nil {
		return "", err
	}
	how, err := pr.p.waitPublished(ctx, pr.o, pr.cur, set, pr.log)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s (%s)", set, how), nil
}

// waitReplica waits for the replica to apply the whole topic.
func (pr *promotion) waitReplica(ctx context.Context) (string, error) {
	end, err := changelog.EndOffset(ctx, pr.p.Kafka)
	if err != nil {
		return "", err
	}
	last, ok, err := pr.log.LastBefore(ctx, end, -1)
	if err != nil {
		return "", err
	}
	if ok {
		pr.lastSeq = last.TxnSeq
	}
	st, err := pr.p.waitApplied(ctx, pr.newSrv, pr.lastSeq, pr.cur.Epoch, pr.o.CatchupTimeout)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("applied up to e%d/t%d (checkpoint offset %d)", st.Epoch, st.TxnSeq, st.Offset), nil
}

// writeEpochRecord writes the epoch record that names the replica the
// master: the point of no return, after which every sink fences the old
// master's epoch.
func (pr *promotion) writeEpochRecord(ctx context.Context) (string, error) {
	ev, err := pr.epochEvent(ctx)
	if err != nil {
		return "", err
	}
	if err := pr.lease.Check(); err != nil {
		return "", err
	}
	if err := pr.prod.send(ctx, ev); err != nil {
		return "", fmt.Errorf("the epoch record could not be queued for Kafka: %w", err)
	}
	off, err := pr.prod.waitAck(ctx)
	if err != nil {
		if off, err = pr.confirmRecord(ctx, err); err != nil {
			return "", err
		}
	}
	rec := pr.record
	res := pr.res
	res.NewMaster, res.Epoch, res.RecordOffset, res.StartGTIDSet, res.TxnSeq = rec.Master, rec.Epoch, off, rec.StartGTIDSet, rec.TxnSeq
	return fmt.Sprintf("epoch %d, master %s, start %s, after t%d, at offset %d", rec.Epoch, rec.Master, rec.StartGTIDSet, rec.TxnSeq, off), nil
}

// epochEvent is the epoch record of the next epoch: the replica becomes the
// master from its GTID set now.
func (pr *promotion) epochEvent(ctx context.Context) (*pipeline.Event, error) {
	startSet, err := pr.newSrv.gtidSet(ctx)
	if err != nil {
		return nil, err
	}
	sid, err := pr.newSrv.serverID(ctx)
	if err != nil {
		return nil, err
	}
	epoch := pr.nextEpoch()
	pr.record = pipeline.EpochRecord{Epoch: epoch, Master: pr.o.Replica, StartGTIDSet: startSet, Flavor: pr.newSrv.flavor(), TxnSeq: pr.lastSeq}
	return &pipeline.Event{Kind: pipeline.KindEpoch, GTIDSet: startSet, Flavor: pr.record.Flavor, ServerID: sid,
		CommitTime: time.Now().UTC(), Pos: pipeline.Position{Epoch: epoch, TxnSeq: pr.lastSeq, Last: true}, Epoch: &pr.record}, nil
}

// nextEpoch is the epoch of the record: one past every epoch the topic
// has seen.
func (pr *promotion) nextEpoch() uint64 {
	epoch := pr.cur.Epoch + 1
	for _, m := range pr.view.Marks {
		epoch = max(epoch, m.Record.Epoch+1)
	}
	return epoch
}

// checkNoOtherFirst checks that no other record of our epoch or newer
// precedes ours: another promoter whose lease expired under it may have
// written first, and the first record of an epoch is the one everyone
// honours.
func (pr *promotion) checkNoOtherFirst(ctx context.Context) error {
	off, epoch := pr.res.RecordOffset, pr.record.Epoch
	others, err := pr.log.Scan(ctx, min(pr.lease.FromOffset, off), off)
	if err != nil {
		return fmt.Errorf("epoch record written at offset %d, but the check for a competing promotion failed (%w): check `rowcast status` before making %s writable by hand", off, err, pr.o.Replica)
	}
	for _, m := range others {
		if m.Record.Epoch >= epoch {
			return fmt.Errorf("%w: the epoch %d record at offset %d (master %s) precedes ours at offset %d, which every sink ignores; %s stays read-only",
				ErrLostRace, m.Record.Epoch, m.Offset, m.Record.Master, off, pr.o.Replica)
		}
	}
	return nil
}

// makeWritable lets the new master take writes.
func (pr *promotion) makeWritable(ctx context.Context) (string, error) {
	if err := pr.newSrv.setReadOnly(ctx, readOnly{}); err != nil {
		return "", fmt.Errorf("epoch %d is written but %s stays read-only (%w): SET GLOBAL read_only=OFF on it by hand", pr.record.Epoch, pr.o.Replica, err)
	}
	if !pr.fenceStart.IsZero() {
		pr.res.WriteDowntime = time.Since(pr.fenceStart)
	}
	detail := "read_only=OFF"
	if pr.res.WriteDowntime > 0 {
		detail += fmt.Sprintf("; writes were refused for %v", pr.res.WriteDowntime.Round(time.Millisecond))
	}
	return detail, nil
}

// recordEpochIndex writes the epoch record into the nodes' index. When it
// fails the lease stays taken, so that readers scan the topic from its
// offset.
func (pr *promotion) recordEpochIndex(ctx context.Context) error {
	err := pr.lease.RecordEpoch(ctx, epochRow{Offset: pr.res.RecordOffset, Record: pr.record, PromotedBy: pr.o.Holder, PromotedAt: time.Now()})
	if err != nil {
		pr.lease.leave()
	}
	return err
}

// pick returns the reachable replica (not master) with the highest applied
// offset; ties go to the config's order.
func (p *Promoter) pick(ctx context.Context, master string) (string, string, error) {
	best, bestOff := "", int64(-1)
	var seen []string
	for _, name := range Replicas(p.Cfg, master) {
		off, note := p.applied(ctx, name)
		if note == "" {
			continue
		}
		seen = append(seen, name+": "+note)
		if off > bestOff {
			best, bestOff = name, off
		}
	}
	if best == "" {
		return "", "", fmt.Errorf("no replica can be promoted (%s)", strings.Join(seen, ", "))
	}
	return best, fmt.Sprintf("%s (%s)", best, strings.Join(seen, ", ")), nil
}

// applied is the offset a replica's checkpoint holds (-1 when it has none
// or does not answer) and a note saying so; no note for a node that is not
// mysql.
func (p *Promoter) applied(ctx context.Context, name string) (int64, string) {
	n, _ := p.Cfg.AdminNode(name)
	if n.Kind != config.KindMySQL {
		return -1, ""
	}
	nd, err := openNode(ctx, n, 2*time.Second, p.rec)
	if err != nil {
		return -1, "unreachable"
	}
	defer nd.close()
	st, found, err := p.Cfg.CheckpointStore().Load(ctx, nd.ex(), p.Kafka.Topic, 0)
	if err != nil || !found {
		return -1, "no checkpoint"
	}
	return st.Offset, fmt.Sprintf("offset %d", st.Offset)
}
