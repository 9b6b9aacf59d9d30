package failover

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/changelog/history"
	"github.com/rowcast/rowcast/checkpoint"
	"github.com/rowcast/rowcast/pipeline"
)

// waitPublished waits until the pipeline service has read the master up to
// set and Kafka acknowledged everything it queued: from its /healthz
// details when it serves them, else from the topic (a message of the
// epoch whose GTID set holds set: a transaction's last message or a
// heartbeat).
func (p *Promoter) waitPublished(ctx context.Context, o Options, cur Current, set string, log *history.Log) (string, error) {
	w := publishWatch{p: p, cur: cur, set: set, log: log, addr: o.PipelineHTTP}
	w.useHTTP = w.addr != "" && w.addr != "off"
	deadline := time.Now().Add(o.CatchupTimeout)
	for {
		if how, err := w.check(ctx); err != nil || how != "" {
			return how, err
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the pipeline service has not published the master's transactions up to %s within %v: is it running and reading %s? (`rowcast status`)",
				set, o.CatchupTimeout, cur.Master)
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return "", err
		}
	}
}

// publishWatch watches the reader publish the master's transactions up to
// set: through the pipeline service's /healthz while it answers for this
// topic, master and epoch, else through the topic.
type publishWatch struct {
	p       *Promoter
	cur     Current
	set     string
	log     *history.Log
	addr    string
	useHTTP bool
}

// check says how the transactions up to set were seen published, "" when
// they were not yet.
func (w *publishWatch) check(ctx context.Context) (string, error) {
	if w.useHTTP {
		if how, err := w.viaHTTP(ctx); err != nil || how != "" {
			return how, err
		}
	}
	if w.useHTTP {
		return "", nil
	}
	return w.viaTopic(ctx)
}

// viaHTTP asks the pipeline service; it stops using it when it has no
// position, or one of another topic, master or epoch.
func (w *publishWatch) viaHTTP(ctx context.Context) (string, error) {
	pos, err := pipelinePosition(ctx, w.addr)
	switch {
	case err != nil:
		w.p.Log.Info().Err(err).Msg("the pipeline service's /healthz gives no position: watching the topic")
		w.useHTTP = false
	case pos.Topic != w.p.Kafka.Topic || pos.Master != w.cur.Master || pos.Epoch != w.cur.Epoch:
		w.p.Log.Info().Str("topic", pos.Topic).Str("master", pos.Master).Uint64("epoch", pos.Epoch).
			Msg("the process at the pipeline address reads another topic, master or epoch: watching the topic")
		w.useHTTP = false
	default:
		in, err := history.Contains("", pos.ReadGTIDSet, w.set)
		if err != nil || !in || pos.Queued != 0 {
			return "", err
		}
		return "pipeline /healthz", nil
	}
	return "", nil
}

// viaTopic looks for a message of the master's epoch near the topic's end
// whose GTID set holds set.
func (w *publishWatch) viaTopic(ctx context.Context) (string, error) {
	end, err := changelog.EndOffset(ctx, w.p.Kafka)
	if err != nil {
		return "", err
	}
	pt, ok, err := w.log.LastBefore(ctx, end, 1000)
	if err != nil || !ok || pt.Epoch != w.cur.Epoch || pt.Kind == pipeline.KindEpoch {
		return "", err
	}
	in, err := history.Contains("", pt.GTIDSet, w.set)
	if err != nil || !in {
		return "", err
	}
	return fmt.Sprintf("topic offset %d", pt.Offset), nil
}

// pipelinePos is the part of the pipeline service's Position promote reads.
type pipelinePos struct {
	Topic       string `json:"topic"`
	Master      string `json:"master"`
	Epoch       uint64 `json:"epoch"`
	ReadGTIDSet string `json:"read_gtid_set"`
	Queued      int    `json:"queued"`
}

func pipelinePosition(ctx context.Context, addr string) (pipelinePos, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return pipelinePos{}, err
	}
	defer resp.Body.Close()
	var body struct {
		Details struct {
			Pipeline *pipelinePos `json:"pipeline"`
		} `json:"details"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return pipelinePos{}, err
	}
	if body.Details.Pipeline == nil || body.Details.Pipeline.Master == "" {
		return pipelinePos{}, fmt.Errorf("http://%s/healthz has no pipeline position", addr)
	}
	return *body.Details.Pipeline, nil
}

// waitApplied waits until the replica's checkpoint holds transaction seq
// of the epoch (its sink worker must be running).
func (p *Promoter) waitApplied(ctx context.Context, s *server, seq, epoch uint64, timeout time.Duration) (checkpoint.State, error) {
	store := p.Cfg.CheckpointStore()
	deadline := time.Now().Add(timeout)
	for {
		st, found, err := store.Load(ctx, s.ex(), p.Kafka.Topic, 0)
		if err != nil {
			return st, err
		}
		if found && st.TxnSeq >= seq && st.Epoch >= epoch {
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("%s applied up to e%d/t%d, the topic holds up to e%d/t%d: is its sink worker running? (`rowcast status`)",
				s.name, st.Epoch, st.TxnSeq, epoch, seq)
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return st, err
		}
	}
}
