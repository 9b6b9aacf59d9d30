package failover

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/pipeline"
	"github.com/rowcast/rowcast/pipeline/config"
)

// Auto is the automatic failover of the pipeline service (failover.mode:
// auto): it checks the master the service reads every CheckInterval and,
// once every check failed for UnreachableAfter, runs an emergency promotion
// of the replica with the highest applied offset. The pipeline service then
// follows the epoch record like any other.
//
// Several pipeline services may run it at once (an HA pair): the promotion
// lease lets one promote; the others find the master changed.
type Auto struct {
	Cfg   *config.Config
	Kafka pipeline.KafkaConfig
	Log   zerolog.Logger
	// Promote runs the promotion (tests); default a Promoter's.
	Promote func(ctx context.Context, o Options) (*Result, error)
}

// Watch implements the pipeline service's Watchdog. It returns when ctx
// ends.
func (a *Auto) Watch(ctx context.Context, master func() (string, uint64)) error {
	f := a.Cfg.Failover
	every, after := f.CheckInterval.D(), f.UnreachableAfter.D()
	log := a.Log.With().Str("component", "failover").Logger()
	promote := a.Promote
	if promote == nil {
		p := &Promoter{Cfg: a.Cfg, Kafka: a.Kafka, Log: log, OnStep: func(s Step) {
			log.Warn().Int("step", s.N).Str("name", s.Name).Dur("took", s.Took).Str("detail", s.Detail).Msg("automatic failover step")
		}}
		promote = p.Promote
	}
	log.Info().Dur("unreachable_after", after).Dur("check_interval", every).Msg("automatic failover armed")
	t := time.NewTicker(every)
	defer t.Stop()
	var downNode string
	var downSince time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		node, epoch := master()
		n, ok := a.Cfg.Node(node)
		if !ok {
			continue
		}
		db, err := openNode(ctx, n, every)
		if err == nil {
			err = db.PingContext(ctx)
			db.Close()
		}
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			if !downSince.IsZero() {
				log.Info().Str("master", node).Msg("the master answers again")
			}
			downNode, downSince = "", time.Time{}
			continue
		}
		if downNode != node || downSince.IsZero() {
			downNode, downSince = node, time.Now()
			log.Warn().Err(err).Str("master", node).Uint64("epoch", epoch).Dur("promote_after", after).Msg("the master does not answer")
			continue
		}
		if time.Since(downSince) < after {
			continue
		}
		log.Error().Str("master", node).Uint64("epoch", epoch).Dur("unreachable_for", time.Since(downSince).Round(time.Millisecond)).
			Msg("the master has been unreachable too long: promoting the replica with the highest applied offset")
		res, err := promote(ctx, Options{Force: true, Holder: Holder("auto-failover"), LeaseTTL: f.LeaseTTL.D(),
			CatchupTimeout: f.CatchupTimeout.D()})
		switch {
		case err == nil:
			log.Error().Str("old_master", res.OldMaster).Str("master", res.NewMaster).Uint64("epoch", res.Epoch).
				Int64("record_offset", res.RecordOffset).Dur("took", res.Total).Msg("automatic failover done: the new master takes writes")
			downNode, downSince = "", time.Time{}
		case errors.Is(err, ErrLeaseHeld):
			log.Warn().Err(err).Msg("another actor is promoting; waiting")
			downSince = time.Now()
		default:
			log.Error().Err(err).Msg("automatic failover failed; retrying after another unreachable period")
			downSince = time.Now()
		}
	}
}
