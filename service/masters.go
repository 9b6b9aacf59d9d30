package service

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/internal/mysqlerr"
)

// MastersReport is where each master of a master-master topology stands in
// every other: its GTID domain's seq_no in each master's binlog.
type MastersReport struct {
	Masters []MasterPosition `json:"masters"`
}

// MasterPosition is one master: its domain, its own last seq_no, and, for
// every other master, the seq_no of that master's domain up to which it
// has applied the other's binlog (its checkpoint of the other's topic: the
// other's GTID position after the last transaction or heartbeat it
// applied) and the seq_no its own binlog holds.
type MasterPosition struct {
	Name    string            `json:"name"`
	Domain  uint32            `json:"gtid_domain_id"`
	Own     uint64            `json:"own_seq_no"`
	Applied map[string]uint64 `json:"applied_seq_no_by_master"`
	Binlog  map[string]uint64 `json:"binlog_seq_no_by_master"`
	Error   string            `json:"error,omitempty"`
}

// MastersStatus asks every master for its binlog's GTID position and its
// checkpoints of the other masters' topics.
func MastersStatus(ctx context.Context, cfg *config.Config) MastersReport {
	rep := MastersReport{Masters: make([]MasterPosition, len(cfg.Masters))}
	var wg sync.WaitGroup
	for i, name := range cfg.Masters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep.Masters[i] = masterPosition(ctx, cfg, name)
		}()
	}
	wg.Wait()
	return rep
}

func masterPosition(ctx context.Context, cfg *config.Config, name string) MasterPosition {
	n, _ := cfg.Node(name)
	mp := MasterPosition{Name: name, Applied: map[string]uint64{}, Binlog: map[string]uint64{}}
	if n.GTIDDomainID != nil {
		mp.Domain = *n.GTIDDomainID
	}
	db, err := n.Open(ctx, 5*time.Second)
	if err != nil {
		mp.Error = err.Error()
		return mp
	}
	defer db.Close()
	var pos string
	if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&pos); err != nil {
		mp.Error = fmt.Sprintf("read gtid_binlog_pos: %v", err)
		return mp
	}
	binlog := seqByDomain(pos)
	mp.Own = binlog[mp.Domain]
	for _, m := range cfg.Masters {
		o, _ := cfg.Node(m)
		if m == name || o.GTIDDomainID == nil {
			continue
		}
		mp.Binlog[m] = binlog[*o.GTIDDomainID]
		st, _, err := cfg.CheckpointStore().Load(ctx, db, cfg.Kafka.Topic+"."+m, 0)
		if err != nil && !mysqlerr.Missing(err) {
			mp.Error = fmt.Sprintf("read the checkpoint of %s's topic: %v", m, err)
			continue
		}
		mp.Applied[m] = seqByDomain(st.GTIDSet)[*o.GTIDDomainID]
	}
	return mp
}

// seqByDomain reads a MariaDB GTID position, "0-1-5,7-3-9"; an
// unreadable one reads as empty.
func seqByDomain(pos string) map[uint32]uint64 {
	out := map[uint32]uint64{}
	set, err := mysql.ParseMariadbGTIDSet(strings.ReplaceAll(pos, "\n", ""))
	if err != nil {
		return out
	}
	for d, g := range set.(*mysql.MariadbGTIDSet).Sets {
		out[d] = g.SequenceNumber
	}
	return out
}
