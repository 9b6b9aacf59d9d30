package service

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/failover"
	"github.com/rowcast/rowcast/internal/mysqlerr"
	"github.com/rowcast/rowcast/sink/clickhouse"
)

// StatusReport is what `rowcast status` prints.
type StatusReport struct {
	Cluster string        `json:"cluster"`
	Master  MasterStatus  `json:"master"`
	Topic   TopicStatus   `json:"topic"`
	Reader  ReaderStatus  `json:"reader"`
	Nodes   []ReplicaInfo `json:"replicas"`
	// Snapshots are the topic's newest snapshots on the master, running
	// and requested ones first.
	Snapshots []SnapshotStatus `json:"snapshots,omitempty"`
	At        time.Time        `json:"at"`
}

// MasterStatus is the current master and its binlog position.
type MasterStatus struct {
	// Node is the current master: the one the newest epoch record in the
	// topic names, else the config's master.
	Node string `json:"node"`
	// Epoch is the master generation (1 before any promotion).
	Epoch uint64 `json:"epoch"`
	// From says how Node was found: "config" or "epoch record"; EpochOffset
	// is the record's offset (-1 for the config).
	From        string `json:"from"`
	EpochOffset int64  `json:"epoch_record_offset"`
	// Warnings are conditions the lookup of the master worked around.
	Warnings []string `json:"warnings,omitempty"`
	Flavor   string   `json:"flavor,omitempty"`
	GTIDSet  string   `json:"gtid_set,omitempty"`
	ReadOnly bool     `json:"read_only"`
	Error    string   `json:"error,omitempty"`
}

// TopicStatus is the changelog topic's extent.
type TopicStatus struct {
	Name        string `json:"name"`
	FirstOffset int64  `json:"first_offset"`
	EndOffset   int64  `json:"end_offset"`
	Error       string `json:"error,omitempty"`
	// Skips are the transactions left out on an operator's request that
	// the topic's last messages record.
	Skips []SkipInfo `json:"skips,omitempty"`
}

// ReplicaInfo is one replica's applied position and lag.
type ReplicaInfo struct {
	Node       string  `json:"node"`
	Kind       string  `json:"kind"`
	State      string  `json:"state"` // caught-up, behind, no-checkpoint, unreachable, unsupported
	Offset     int64   `json:"applied_offset"`
	LagOffsets int64   `json:"lag_offsets"`
	LagSeconds float64 `json:"lag_seconds"`
	Epoch      uint64  `json:"epoch"`
	TxnSeq     uint64  `json:"txn_seq"`
	GTIDSet    string  `json:"gtid_set,omitempty"`
	ReadOnly   bool    `json:"read_only"`
	Worker     string  `json:"worker,omitempty"` // the worker's /healthz, when its http address is configured
	// WorkerState is what the worker reports of itself in its /healthz:
	// running, or stopped with the error, the offset and the fix.
	WorkerState *WorkerReport `json:"worker_state,omitempty"`
	// Bootstrapping lists the replica's tables that a snapshot or a clone
	// is still loading ("db.table").
	Bootstrapping []string `json:"bootstrapping,omitempty"`
	UpdatedAt     string   `json:"checkpoint_updated_at,omitempty"`
	Error         string   `json:"error,omitempty"`
	lastCommitRaw time.Time
}

// Status reads the master, the topic and every replica's checkpoint. Parts
// that cannot be read are reported in their Error field; the report is still
// returned.
func Status(ctx context.Context, cfg *config.Config, kc changelog.Config) StatusReport {
	rep := StatusReport{Cluster: cfg.Cluster, At: time.Now().UTC()}
	view, verr := failover.NewLocator(cfg, kc, zerolog.Nop()).Locate(ctx)
	cur := view.Current
	if verr != nil {
		cur = failover.Current{Master: cfg.Master, Epoch: 0, Offset: -1, From: "unknown"}
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); rep.Reader = readerHealth(ctx, cfg.HTTP) }()
	go func() {
		defer wg.Done()
		rep.Master, rep.Snapshots = masterStatus(ctx, cfg, cur.Master, kc.Topic)
		rep.Master.Epoch, rep.Master.From, rep.Master.EpochOffset, rep.Master.Warnings = cur.Epoch, cur.From, cur.Offset, view.Warnings
		if verr != nil {
			rep.Master.Error = strings.TrimPrefix(rep.Master.Error+"; ", "; ") + "current master unknown: " + verr.Error()
		}
	}()
	go func() { defer wg.Done(); rep.Topic = topicStatus(ctx, kc) }()
	replicas := failover.Replicas(cfg, cur.Master)
	rep.Nodes = make([]ReplicaInfo, len(replicas))
	for i, name := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep.Nodes[i] = replicaStatus(ctx, cfg, name, kc.Topic)
		}()
	}
	wg.Wait()
	if rep.Topic.Error == "" {
		rep.Reader.compare(ctx, kc, rep.Topic.EndOffset, rep.Master)
	}
	for i := range rep.Nodes {
		rep.Nodes[i].setLag(rep.Topic, rep.Reader, rep.At)
	}
	return rep
}

// setLag measures a checkpointed replica against the topic's end and the
// report's time, and says whether it is behind: also when it holds the whole
// topic but the master has transactions that no running reader publishes.
func (r *ReplicaInfo) setLag(topic TopicStatus, reader ReaderStatus, at time.Time) {
	if r.State != "checkpointed" {
		return
	}
	if topic.Error == "" {
		r.LagOffsets = max(0, topic.EndOffset-r.Offset)
	}
	r.State = "behind"
	if topic.Error == "" && r.LagOffsets == 0 && !reader.stalled() {
		r.State = "caught-up"
	}
	if !r.lastCommitRaw.IsZero() {
		r.LagSeconds = at.Sub(r.lastCommitRaw).Seconds()
	}
}

// masterStatus reads the master's position and the topic's snapshots.
func masterStatus(ctx context.Context, cfg *config.Config, master, topic string) (MasterStatus, []SnapshotStatus) {
	ms := MasterStatus{Node: master}
	n, _ := cfg.Node(master)
	db, err := n.Open(ctx, 5*time.Second)
	if err != nil {
		ms.Error = err.Error()
		return ms, nil
	}
	defer db.Close()
	ms.position(ctx, db)
	snaps, err := SnapshotsOf(ctx, db, cfg.CheckpointStore(), topic)
	if err != nil {
		ms.Error = strings.TrimPrefix(ms.Error+"; ", "; ") + err.Error()
	}
	return ms, snaps
}

// position reads the master's flavor, read_only flag and GTID position.
func (ms *MasterStatus) position(ctx context.Context, db *sql.DB) {
	var ver string
	if err := db.QueryRowContext(ctx, "SELECT VERSION(), @@read_only").Scan(&ver, &ms.ReadOnly); err != nil {
		ms.Error = err.Error()
		return
	}
	q := "SELECT @@gtid_executed"
	ms.Flavor = "mysql"
	if strings.Contains(ver, "MariaDB") {
		q, ms.Flavor = "SELECT @@gtid_binlog_pos", "mariadb"
	}
	if err := db.QueryRowContext(ctx, q).Scan(&ms.GTIDSet); err != nil {
		ms.Error = err.Error()
	}
}

func topicStatus(ctx context.Context, kc changelog.Config) TopicStatus {
	ts := TopicStatus{Name: kc.Topic}
	var err error
	if ts.FirstOffset, err = changelog.FirstOffset(ctx, kc); err == nil {
		ts.EndOffset, err = changelog.EndOffset(ctx, kc)
	}
	if err == nil {
		ts.Skips, err = recentSkips(ctx, kc, ts.FirstOffset, ts.EndOffset)
	}
	if err != nil {
		ts.Error = err.Error()
	}
	return ts
}

func replicaStatus(ctx context.Context, cfg *config.Config, name, topic string) ReplicaInfo {
	n, _ := cfg.Node(name)
	ri := ReplicaInfo{Node: name, Kind: n.Kind, Offset: -1}
	ri.Worker, ri.WorkerState = workerStatus(ctx, n.HTTP, "sink/"+name)
	if ri.Worker == WorkerNotRunning && cfg.HTTP != "off" {
		// `rowcast run` serves every worker's health on the main address.
		ri.Worker, ri.WorkerState = workerStatus(ctx, cfg.HTTP, "sink/"+name)
	}
	if n.Kind == config.KindClickHouse {
		return clickhouseStatus(ctx, cfg, ri, topic)
	}
	if n.Kind != config.KindMySQL {
		ri.State = "unsupported"
		ri.Error = "status of " + n.Kind + " replicas is not implemented"
		return ri
	}
	db, err := n.Open(ctx, 5*time.Second)
	if err != nil {
		ri.State, ri.Error = "unreachable", err.Error()
		return ri
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, "SELECT @@read_only").Scan(&ri.ReadOnly); err != nil {
		ri.State, ri.Error = "unreachable", err.Error()
		return ri
	}
	ri.checkpoint(cfg.CheckpointStore().Load(ctx, db, topic, 0))
	ri.bootstrapping(cfg.CheckpointStore().LoadBootstrap(ctx, db, topic))
	return ri
}

// clickhouseStatus reads a ClickHouse replica's checkpoint and bootstrap
// entries from its bookkeeping database. ClickHouse has no read_only to
// report.
func clickhouseStatus(ctx context.Context, cfg *config.Config, ri ReplicaInfo, topic string) ReplicaInfo {
	cc, err := cfg.ClickHouseTargetConfig(ri.Node)
	if err != nil {
		ri.State, ri.Error = "unreachable", err.Error()
		return ri
	}
	cc.Topic, cc.Timeout = topic, 5*time.Second
	ri.checkpoint(clickhouse.LoadCheckpoint(ctx, cc))
	ri.bootstrapping(clickhouse.LoadBootstrap(ctx, cc))
	return ri
}

// bootstrapping lists the tables a snapshot or a clone is loading.
func (ri *ReplicaInfo) bootstrapping(tables map[string]checkpoint.Bootstrap, err error) {
	if err != nil {
		return // no table yet, or an older replica
	}
	for name := range tables {
		ri.Bootstrapping = append(ri.Bootstrapping, name)
	}
	sort.Strings(ri.Bootstrapping)
}

// checkpoint fills in what the replica's checkpoint says, or its state when
// it has none or it cannot be read.
func (ri *ReplicaInfo) checkpoint(st checkpoint.State, found bool, err error) {
	switch {
	case mysqlerr.Missing(err): // no table, no schema
		ri.State = "no-checkpoint"
		return
	case err != nil:
		ri.State, ri.Error = "unreachable", err.Error()
		return
	case !found:
		ri.State = "no-checkpoint"
		return
	}
	ri.State = "checkpointed"
	ri.Offset, ri.Epoch, ri.TxnSeq, ri.GTIDSet = st.Offset, st.Epoch, st.TxnSeq, st.GTIDSet
	ri.lastCommitRaw = st.CommitTime
	if !st.UpdatedAt.IsZero() {
		ri.UpdatedAt = st.UpdatedAt.UTC().Format(time.RFC3339)
	}
}

// WorkerNotRunning is WorkerHealth's answer when no process at the address
// runs the component.
const WorkerNotRunning = "not running"

// WorkerHealth asks a process's /healthz (at addr; "" is none) about one
// component: healthy, unhealthy (with the reason), or WorkerNotRunning.
func WorkerHealth(ctx context.Context, addr, component string) string {
	h, _ := workerStatus(ctx, addr, component)
	return h
}

// healthz is the body of a process's /healthz.
type healthz struct {
	Components map[string]string          `json:"components"`
	Details    map[string]json.RawMessage `json:"details"`
}

// workerStatus is WorkerHealth's answer and the worker's own report, when
// the process serves one.
func workerStatus(ctx context.Context, addr, component string) (string, *WorkerReport) {
	body, ok := getHealthz(ctx, addr)
	if !ok {
		return WorkerNotRunning, nil
	}
	var rep *WorkerReport
	if raw, found := body.Details[component]; found && json.Unmarshal(raw, &rep) != nil {
		rep = nil
	}
	switch state, ok := body.Components[component]; {
	case !ok:
		return WorkerNotRunning, nil
	case state == "ok":
		return "healthy", rep
	default:
		return "unhealthy: " + state, rep
	}
}

// getHealthz reads the /healthz of the process at addr ("" is none).
func getHealthz(ctx context.Context, addr string) (healthz, bool) {
	var body healthz
	if addr == "" {
		return body, false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return body, false
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&body)
	return body, true
}
