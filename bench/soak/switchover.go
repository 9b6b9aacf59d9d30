package main

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"time"
)

var refusedRe = regexp.MustCompile(`writes refused for (\S+)`)

// switchAway is the planned switchover from db1 to db2.
func (s *soak) switchAway(ctx context.Context) (string, error) { return s.switchTo(ctx, "db2") }

// switchHome is the planned switchover back to db1.
func (s *soak) switchHome(ctx context.Context) (string, error) { return s.switchTo(ctx, "db1") }

// switchTo is a planned switchover as docs/OPERATIONS.md has an operator do
// it: once the reader and the replica's sink are healthy, `rowcast promote`;
// the writers follow the new master; the promoted replica's sink stops by
// itself; the old master rejoins (with nothing lost) and gets a sink.
func (s *soak) switchTo(ctx context.Context, to string) (string, error) {
	from := s.currentMaster()
	if err := s.waitUntil(ctx, 3*time.Minute, "the reader and "+to+"'s sink to be healthy", func() bool {
		return healthy(s.pipeHTTP) && healthy(s.nodeHTTP[to])
	}); err != nil {
		return "", err
	}
	sink, err := s.procs.expectExit(sinkRole(to))
	if err != nil {
		return "", err
	}
	out, code := s.procs.command(ctx, 3*time.Minute, "promote", "--config", s.cfg, "--replica", to)
	if code != 0 {
		return "", fmt.Errorf("rowcast promote --replica %s: exit %d\n%s", to, code, out)
	}
	s.mu.Lock()
	s.master = to
	s.mu.Unlock()
	s.load.follow(to)
	if err := sink.waitExit(time.Minute); err != nil {
		return "", fmt.Errorf("the sink of the promoted %s: %w", to, err)
	}
	if err := s.rejoin(ctx, from); err != nil {
		return "", err
	}
	refused := "?"
	if m := refusedRe.FindStringSubmatch(out); m != nil {
		refused = m[1]
	}
	return fmt.Sprintf("%s -> %s, writes refused for %s; %s rejoined", from, to, refused, from), nil
}

// rejoin makes the old master a replica (which must report no loss after a
// planned switchover) and starts its sink.
func (s *soak) rejoin(ctx context.Context, node string) error {
	loss := filepath.Join(s.o.dir, fmt.Sprintf("loss-%s-%d.jsonl", node, time.Now().Unix()))
	out, code := s.procs.command(ctx, 3*time.Minute, "rejoin", "--config", s.cfg, "--node", node, "--loss-file", loss)
	if code != 0 {
		return fmt.Errorf("rowcast rejoin --node %s: exit %d (3: transactions lost in a planned switchover)\n%s", node, code, out)
	}
	return s.startSink(node)
}
