package service

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/internal/mysqlerr"
)

// Conflict is one master-master conflict as recorded by the sink that met
// it, in its node's bookkeeping schema.
type Conflict struct {
	Node       string `json:"node"`
	DetectedAt string `json:"detected_at"`
	Topic      string `json:"topic"`
	OriginGTID string `json:"origin_gtid"`
	Table      string `json:"table"`
	Key        string `json:"key"`
	Op         string `json:"op"`
	Incoming   string `json:"incoming"`
	Current    string `json:"current_row"`
	Policy     string `json:"policy"`
	Resolution string `json:"resolution"`
}

// ConflictsReport lists the conflicts of every master, and the masters that
// could not be read.
type ConflictsReport struct {
	Conflicts []Conflict        `json:"conflicts"`
	Errors    map[string]string `json:"errors,omitempty"`
}

// Conflicts reads the conflicts table of every master of a master-master
// config (or of the config's master otherwise).
func Conflicts(ctx context.Context, cfg *config.Config) ConflictsReport {
	nodes := cfg.Masters
	if !cfg.MasterMaster() {
		nodes = []string{cfg.Master}
	}
	rep := ConflictsReport{Errors: map[string]string{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, name := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cs, err := nodeConflicts(ctx, cfg, name)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				rep.Errors[name] = err.Error()
			}
			rep.Conflicts = append(rep.Conflicts, cs...)
		}()
	}
	wg.Wait()
	return rep
}

func nodeConflicts(ctx context.Context, cfg *config.Config, name string) ([]Conflict, error) {
	n, _ := cfg.Node(name)
	db, err := n.Open(ctx, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, fmt.Sprintf("SELECT CAST(`detected_at` AS CHAR), `topic`, `origin_gtid`, `table_name`, `row_key`, `op`, `incoming`, `current_row`, `policy`, `resolution` FROM `%s`.`conflicts` ORDER BY `id`", cfg.Sink.BookkeepingSchema))
	if mysqlerr.Missing(err) {
		return nil, nil // no conflict was ever recorded there
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Conflict
	for rows.Next() {
		c := Conflict{Node: name}
		if err := rows.Scan(&c.DetectedAt, &c.Topic, &c.OriginGTID, &c.Table, &c.Key, &c.Op, &c.Incoming, &c.Current, &c.Policy, &c.Resolution); err != nil {
			return out, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
