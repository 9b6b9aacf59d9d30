package service

import (
	"context"
	"fmt"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/changelog/history"
	"github.com/rowcast/rowcast/pipeline"
)

// ReaderStatus is the reader as `rowcast status` sees it: whether a healthy
// reader answers, and how far the master is ahead of the topic. A replica
// that holds the whole topic is only caught up when nothing is missing from
// the topic itself.
type ReaderStatus struct {
	// Health is the reader's /healthz at Addr: healthy, unhealthy: why,
	// not running, or unknown when the config has http: off.
	Health string `json:"health"`
	Addr   string `json:"addr,omitempty"`
	// TopicGTIDSet is the master's GTID set after the newest transaction or
	// heartbeat in the topic; TopicCommitTime is that message's commit time.
	TopicGTIDSet    string    `json:"topic_gtid_set,omitempty"`
	TopicCommitTime time.Time `json:"topic_commit_time,omitzero"`
	// MasterAhead counts the master's transactions missing from the topic
	// (those of excluded databases too, until the next heartbeat); -1 when
	// unknown.
	MasterAhead int64  `json:"master_ahead_txns"`
	Error       string `json:"error,omitempty"`
}

// readerHealthUnknown is the reader's health when the config serves no
// /healthz to ask.
const readerHealthUnknown = "unknown"

// lastPointLimit bounds how far back status looks for the topic's newest
// position.
const lastPointLimit = 20000

// healthy reports whether the reader answered healthy.
func (r ReaderStatus) healthy() bool { return r.Health == "healthy" }

// stalled reports whether the master has transactions the topic lacks while
// no healthy reader answers to publish them.
func (r ReaderStatus) stalled() bool { return r.MasterAhead > 0 && !r.healthy() }

// readerHealth asks the process at addr (the config's http address, where
// `rowcast pipeline` and `rowcast run` serve /healthz) about the reader.
func readerHealth(ctx context.Context, addr string) ReaderStatus {
	rs := ReaderStatus{Health: readerHealthUnknown, MasterAhead: -1}
	if addr == "" || addr == "off" {
		return rs
	}
	rs.Addr = addr
	rs.Health = WorkerHealth(ctx, addr, "pipeline")
	return rs
}

// compare reads the topic's newest position before end and counts the
// master's transactions after it.
func (r *ReaderStatus) compare(ctx context.Context, kc changelog.Config, end int64, ms MasterStatus) {
	if ms.GTIDSet == "" || ms.Flavor == "" {
		return
	}
	log := history.New(changelog.TopicOf(kc), &pipeline.Codec{}, nil)
	pt, ok, err := log.LastBefore(ctx, end, lastPointLimit)
	switch {
	case err != nil:
		r.Error = "topic position: " + err.Error()
		return
	case !ok:
		r.Error = fmt.Sprintf("no transaction or heartbeat in the topic's last %d messages", lastPointLimit)
		return
	}
	r.TopicGTIDSet, r.TopicCommitTime = pt.GTIDSet, pt.CommitTime
	n, err := transactionsAhead(ms.Flavor, ms.GTIDSet, pt.GTIDSet)
	if err != nil {
		r.Error = err.Error()
		return
	}
	r.MasterAhead = n
}

// transactionsAhead counts the transactions of the master's GTID set that
// the topic's set lacks.
func transactionsAhead(flavor, master, topic string) (int64, error) {
	m, err := mysql.ParseGTIDSet(flavor, master)
	if err != nil {
		return -1, fmt.Errorf("master GTID set %q: %w", master, err)
	}
	tp, err := mysql.ParseGTIDSet(flavor, topic)
	if err != nil {
		return -1, fmt.Errorf("topic GTID set %q: %w", topic, err)
	}
	if flavor == mysql.MariaDBFlavor {
		// The master's position is read before the topic's, so under load
		// the topic may be past it in a domain: that counts as nothing ahead.
		return mariadbAhead(m.(*mysql.MariadbGTIDSet), tp.(*mysql.MariadbGTIDSet))
	}
	if !m.Contain(tp) {
		return -1, fmt.Errorf("the topic's GTID set %s is not contained in the master's %s: the topic comes from another master or history", topic, master)
	}
	return mysqlCount(*m.(*mysql.MysqlGTIDSet)) - mysqlCount(*tp.(*mysql.MysqlGTIDSet)), nil
}

// mariadbAhead sums, per replication domain, how many sequence numbers the
// master is past the topic.
func mariadbAhead(master, topic *mysql.MariadbGTIDSet) (int64, error) {
	for domain := range topic.Sets {
		if _, ok := master.Sets[domain]; !ok {
			return -1, fmt.Errorf("the topic's GTID set %s has domain %d, which the master's %s lacks: the topic comes from another master or history", topic, domain, master)
		}
	}
	var n int64
	for domain, g := range master.Sets {
		seen := uint64(0)
		if tg, ok := topic.Sets[domain]; ok {
			seen = tg.SequenceNumber
		}
		if g.SequenceNumber > seen {
			n += int64(g.SequenceNumber - seen)
		}
	}
	return n, nil
}

// mysqlCount is the number of transactions in a MySQL GTID set.
func mysqlCount(s mysql.MysqlGTIDSet) int64 {
	var n int64
	for _, tags := range s {
		for _, intervals := range tags {
			for _, iv := range intervals {
				n += iv.Stop - iv.Start
			}
		}
	}
	return n
}
