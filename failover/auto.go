package failover

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/changelog"
	"github.com/rowcast/rowcast/config"
)

// Auto is the automatic failover of the pipeline service (failover.mode:
// auto): it checks the master the service reads every CheckInterval and,
// once every check failed for UnreachableAfter and a majority of the
// vantage points (this host and failover.observers) sees it down, runs an
// emergency promotion of the replica with the highest applied offset. The
// pipeline service then follows the epoch record like any other.
//
// Several pipeline services may run it at once (an HA pair): the promotion
// lease lets one promote; the others find the master changed.
type Auto struct {
	Cfg   *config.Config
	Kafka changelog.Config
	Log   zerolog.Logger
	// Promote runs the promotion (tests); default a Promoter's.
	Promote func(ctx context.Context, o Options) (*Result, error)
}

// Watch implements the pipeline service's Watchdog. It returns when ctx
// ends.
func (a *Auto) Watch(ctx context.Context, master func() (string, uint64)) error {
	w := a.newWatch()
	w.armed()
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		node, epoch := master()
		n, ok := a.Cfg.AdminNode(node)
		if !ok {
			continue
		}
		err := ping(ctx, n, w.every)
		if ctx.Err() != nil {
			return nil
		}
		w.checked(ctx, node, epoch, err)
	}
}

// watch is what Watch keeps between checks: since when which master does
// not answer.
type watch struct {
	every, after time.Duration
	log          zerolog.Logger
	promote      func(ctx context.Context, o Options) (*Result, error)
	opts         Options
	ballot       *ballot

	downNode  string
	downSince time.Time
	tally     tally  // the last one counted
	logged    string // the key of the last tally logged
}

func (a *Auto) newWatch() *watch {
	f := a.Cfg.Failover
	w := &watch{every: f.CheckInterval.D(), after: f.UnreachableAfter.D(), log: a.Log.With().Str("component", "failover").Logger(), promote: a.Promote,
		opts: Options{Force: true, Holder: Holder("auto-failover"), LeaseTTL: f.LeaseTTL.D(), CatchupTimeout: f.CatchupTimeout.D()}, ballot: newBallot(a.Cfg)}
	if w.promote == nil {
		log := w.log
		p := &Promoter{Cfg: a.Cfg, Kafka: a.Kafka, Log: log, OnStep: func(s Step) {
			log.Warn().Int("step", s.N).Str("name", s.Name).Dur("took", s.Took).Str("detail", s.Detail).Msg("automatic failover step")
		}}
		w.promote = p.Promote
	}
	return w
}

// armed logs the watch's settings, and warns when too few vantage points
// can outvote this host.
func (w *watch) armed() {
	n := len(w.ballot.observers) + 1
	w.log.Info().Dur("unreachable_after", w.after).Dur("check_interval", w.every).Int("vantage_points", n).Msg("automatic failover armed")
	if n < 3 {
		w.log.Warn().Int("vantage_points", n).Msg("automatic failover: fewer than 3 vantage points, so this host's view alone can decide that the master is down, " +
			"and a network partition between it and the master makes a second master: list at least two failover.observers (docs/OPERATIONS.md, \"The partition case\")")
	}
}

// ping checks that a node answers.
func ping(ctx context.Context, n config.Node, timeout time.Duration) error {
	db, err := n.Open(ctx, timeout)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.PingContext(ctx)
}

// checked takes in the outcome of one check of the master: it promotes once
// the same master has not answered for the whole period.
func (w *watch) checked(ctx context.Context, node string, epoch uint64, err error) {
	switch {
	case err == nil:
		if !w.downSince.IsZero() {
			w.log.Info().Str("master", node).Msg("the master answers again")
		}
		w.downNode, w.downSince, w.logged = "", time.Time{}, ""
	case w.downNode != node || w.downSince.IsZero():
		w.downNode, w.downSince = node, time.Now()
		w.log.Warn().Err(err).Str("master", node).Uint64("epoch", epoch).Dur("promote_after", w.after).Msg("the master does not answer")
	case time.Since(w.downSince) >= w.after && w.confirmed(ctx, node):
		w.failover(ctx, node, epoch)
	}
}

// confirmed asks the other vantage points: a majority, this host included,
// must see the master down. The tally is logged when a view changes.
func (w *watch) confirmed(ctx context.Context, node string) bool {
	w.tally = w.ballot.count(ctx, node, time.Since(w.downSince))
	ok := w.tally.majority()
	if k := w.tally.key(); k != w.logged {
		w.logged = k
		verdict := ": no majority, not promoting"
		if ok {
			verdict = ": a majority"
		}
		w.log.Warn().Str("master", node).Msg(w.tally.String() + verdict)
	}
	return ok
}

// failover runs an emergency promotion; after a failure the next one waits
// for another unreachable period.
func (w *watch) failover(ctx context.Context, node string, epoch uint64) {
	w.log.Error().Str("master", node).Uint64("epoch", epoch).Dur("unreachable_for", time.Since(w.downSince).Round(time.Millisecond)).
		Str("vantage_points", w.tally.String()).Msg("the master has been unreachable too long: promoting the replica with the highest applied offset")
	res, err := w.promote(ctx, w.opts)
	switch {
	case err == nil:
		w.log.Error().Str("old_master", res.OldMaster).Str("master", res.NewMaster).Uint64("epoch", res.Epoch).
			Int64("record_offset", res.RecordOffset).Dur("took", res.Total).Msg("automatic failover done: the new master takes writes")
		w.downNode, w.downSince, w.logged = "", time.Time{}, ""
	case errors.Is(err, ErrLeaseHeld):
		w.log.Warn().Err(err).Msg("another actor is promoting; waiting")
		w.downSince = time.Now()
	default:
		w.log.Error().Err(err).Msg("automatic failover failed; retrying after another unreachable period")
		w.downSince = time.Now()
	}
}
