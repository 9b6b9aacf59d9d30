package service

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/pipeline/config"
	"github.com/rowcast/rowcast/pipeline/failover"
)

// StatusReport is what `rowcast status` prints.
type StatusReport struct {
	Cluster string        `json:"cluster"`
	Master  MasterStatus  `json:"master"`
	Topic   TopicStatus   `json:"topic"`
	Nodes   []ReplicaInfo `json:"replicas"`
	At      time.Time     `json:"at"`
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
}

// ReplicaInfo is one replica's applied position and lag.
type ReplicaInfo struct {
	Node          string  `json:"node"`
	Kind          string  `json:"kind"`
	State         string  `json:"state"` // caught-up, behind, no-checkpoint, unreachable, unsupported
	Offset        int64   `json:"applied_offset"`
	LagOffsets    int64   `json:"lag_offsets"`
	LagSeconds    float64 `json:"lag_seconds"`
	Epoch         uint64  `json:"epoch"`
	TxnSeq        uint64  `json:"txn_seq"`
	GTIDSet       string  `json:"gtid_set,omitempty"`
	ReadOnly      bool    `json:"read_only"`
	Worker        string  `json:"worker,omitempty"` // the worker's /healthz, when its http address is configured
	UpdatedAt     string  `json:"checkpoint_updated_at,omitempty"`
	Error         string  `json:"error,omitempty"`
	lastCommitRaw time.Time
}

// Status reads the master, the topic and every replica's checkpoint. Parts
// that cannot be read are reported in their Error field; the report is still
// returned.
func Status(ctx context.Context, cfg *config.Config, kc pipeline.KafkaConfig) StatusReport {
	rep := StatusReport{Cluster: cfg.Cluster, At: time.Now().UTC()}
	view, verr := failover.NewLocator(cfg, kc, zerolog.Nop()).Locate(ctx)
	cur := view.Current
	if verr != nil {
		cur = failover.Current{Master: cfg.Master, Epoch: 0, Offset: -1, From: "unknown"}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		rep.Master = masterStatus(ctx, cfg, cur.Master)
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
	for i := range rep.Nodes {
		r := &rep.Nodes[i]
		if r.State != "checkpointed" {
			continue
		}
		if rep.Topic.Error == "" {
			r.LagOffsets = max(0, rep.Topic.EndOffset-r.Offset)
		}
		r.State = "behind"
		if rep.Topic.Error == "" && r.LagOffsets == 0 {
			r.State = "caught-up"
		}
		if !r.lastCommitRaw.IsZero() {
			r.LagSeconds = rep.At.Sub(r.lastCommitRaw).Seconds()
		}
	}
	return rep
}

func openNode(ctx context.Context, n config.Node) (*sql.DB, error) {
	mc, err := n.MySQLConfig()
	if err != nil {
		return nil, err
	}
	mc.Timeout = 5 * time.Second
	mc.ReadTimeout = 10 * time.Second
	db, err := sql.Open("mysql", mc.FormatDSN())
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("node %s at %s: %w", n.Name, mc.Addr, err)
	}
	return db, nil
}

func masterStatus(ctx context.Context, cfg *config.Config, master string) MasterStatus {
	ms := MasterStatus{Node: master}
	n, _ := cfg.Node(master)
	db, err := openNode(ctx, n)
	if err != nil {
		ms.Error = err.Error()
		return ms
	}
	defer db.Close()
	var ver string
	if err := db.QueryRowContext(ctx, "SELECT VERSION(), @@read_only").Scan(&ver, &ms.ReadOnly); err != nil {
		ms.Error = err.Error()
		return ms
	}
	q := "SELECT @@gtid_executed"
	ms.Flavor = "mysql"
	if strings.Contains(ver, "MariaDB") {
		q, ms.Flavor = "SELECT @@gtid_binlog_pos", "mariadb"
	}
	if err := db.QueryRowContext(ctx, q).Scan(&ms.GTIDSet); err != nil {
		ms.Error = err.Error()
	}
	return ms
}

func topicStatus(ctx context.Context, kc pipeline.KafkaConfig) TopicStatus {
	ts := TopicStatus{Name: kc.Topic}
	var err error
	if ts.FirstOffset, err = pipeline.FirstOffset(ctx, kc); err == nil {
		ts.EndOffset, err = pipeline.EndOffset(ctx, kc)
	}
	if err != nil {
		ts.Error = err.Error()
	}
	return ts
}

func replicaStatus(ctx context.Context, cfg *config.Config, name, topic string) ReplicaInfo {
	n, _ := cfg.Node(name)
	ri := ReplicaInfo{Node: name, Kind: n.Kind, Offset: -1}
	ri.Worker = workerHealth(ctx, n.HTTP, "sink/"+name)
	if ri.Worker == "not running" && cfg.HTTP != "off" {
		// `rowcast run` serves every worker's health on the main address.
		ri.Worker = workerHealth(ctx, cfg.HTTP, "sink/"+name)
	}
	if n.Kind != config.KindMySQL {
		ri.State = "unsupported"
		ri.Error = "status of " + n.Kind + " replicas is not implemented yet"
		return ri
	}
	db, err := openNode(ctx, n)
	if err != nil {
		ri.State, ri.Error = "unreachable", err.Error()
		return ri
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, "SELECT @@read_only").Scan(&ri.ReadOnly); err != nil {
		ri.State, ri.Error = "unreachable", err.Error()
		return ri
	}
	st, found, err := checkpoint.NewMySQL(cfg.Sink.BookkeepingSchema).Load(ctx, db, topic, 0)
	var me *mysql.MySQLError
	switch {
	case errors.As(err, &me) && (me.Number == 1146 || me.Number == 1049): // no table, no schema
		ri.State = "no-checkpoint"
		return ri
	case err != nil:
		ri.State, ri.Error = "unreachable", err.Error()
		return ri
	case !found:
		ri.State = "no-checkpoint"
		return ri
	}
	ri.State = "checkpointed"
	ri.Offset, ri.Epoch, ri.TxnSeq, ri.GTIDSet = st.Offset, st.Epoch, st.TxnSeq, st.GTIDSet
	ri.lastCommitRaw = st.CommitTime
	if !st.UpdatedAt.IsZero() {
		ri.UpdatedAt = st.UpdatedAt.UTC().Format(time.RFC3339)
	}
	return ri
}

// workerHealth asks a process's /healthz about one component: healthy,
// unhealthy (with the reason), or not running.
func workerHealth(ctx context.Context, addr, component string) string {
	if addr == "" {
		return "not running"
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "not running"
	}
	defer resp.Body.Close()
	var body struct {
		Components map[string]string `json:"components"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	switch state, ok := body.Components[component]; {
	case !ok:
		return "not running"
	case state == "ok":
		return "healthy"
	default:
		return "unhealthy: " + state
	}
}
