package failover

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rowcast/rowcast/config"
)

// runFenceCommand runs failover.fence_command before an emergency
// promotion writes its epoch record: the old master did not answer us, but
// may still answer its clients, and only something outside rowcast (a
// STONITH, a proxy switch) can stop them. It must exit 0 in time, or
// nothing is promoted.
func (pr *promotion) runFenceCommand(ctx context.Context) (string, error) {
	f := pr.p.Cfg.Failover
	timeout := f.FenceCommandTimeout.D()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, "/bin/sh", "-c", f.FenceCommand)
	cmd.Env = append(os.Environ(), pr.fenceEnv()...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// The shell's children die with it: a command that timed out must not
	// fence later, after the promotion was given up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start).Round(time.Millisecond)
	if errors.Is(cctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("it did not exit within failover.fence_command_timeout (%v) and was killed", timeout)
	}
	if err != nil {
		return "", fmt.Errorf("failover.fence_command failed (%v; output: %s): %s may still take writes from its clients, so nothing is promoted; "+
			"fence %s by hand or fix the command, then promote again", err, tail(out.String()), pr.cur.Master, pr.cur.Master)
	}
	return fmt.Sprintf("exited 0 in %v: %s", took, tail(out.String())), nil
}

// fenceEnv is what the fence command is told, in its environment.
func (pr *promotion) fenceEnv() []string {
	cfg := pr.p.Cfg
	return []string{
		"ROWCAST_CLUSTER=" + cfg.Cluster,
		"ROWCAST_TOPIC=" + pr.p.Kafka.Topic,
		"ROWCAST_OLD_MASTER=" + pr.cur.Master,
		"ROWCAST_OLD_MASTER_ADDR=" + nodeAddr(cfg, pr.cur.Master),
		"ROWCAST_NEW_MASTER=" + pr.o.Replica,
		"ROWCAST_NEW_MASTER_ADDR=" + nodeAddr(cfg, pr.o.Replica),
		"ROWCAST_EPOCH=" + strconv.FormatUint(pr.cur.Epoch, 10),
		"ROWCAST_NEW_EPOCH=" + strconv.FormatUint(pr.nextEpoch(), 10),
	}
}

// nodeAddr is the host:port of a mysql node, "" when its DSN has none.
func nodeAddr(cfg *config.Config, name string) string {
	n, _ := cfg.Node(name)
	mc, err := n.MySQLConfig()
	if err != nil {
		return ""
	}
	return mc.Addr
}

// tail is the last line or so of a command's output, for a message.
func tail(out string) string {
	out = strings.TrimSpace(out)
	if out == "" {
		return "none"
	}
	if len(out) > 300 {
		out = "..." + out[len(out)-300:]
	}
	return strings.ReplaceAll(out, "\n", " | ")
}
