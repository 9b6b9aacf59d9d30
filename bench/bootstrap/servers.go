package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"golang.org/x/sync/errgroup"
)

// server is one mariadbd of this benchmark: its own datadir, port and
// socket under the bench directory, with the local stack's my.cnf
// (scripts/lib/mariadb.cnf.in) unchanged, so that every node has the same
// settings. It is stopped by its PID.
type server struct {
	name     string
	port     int
	serverID int
	dir      string
	cmd      *exec.Cmd
	exited   chan struct{}
	root     *sql.DB // root over TCP
}

func (s *server) cnfPath() string  { return filepath.Join(s.dir, "my.cnf") }
func (s *server) pidPath() string  { return filepath.Join(s.dir, "mariadbd.pid") }
func (s *server) sockPath() string { return filepath.Join(s.dir, "mariadbd.sock") }
func (s *server) dataDir() string  { return filepath.Join(s.dir, "data") }
func (s *server) addr() string     { return "127.0.0.1:" + strconv.Itoa(s.port) }

// dsn is root's DSN over TCP, as the rowcast config names the node.
func (s *server) dsn() string { return "root@tcp(" + s.addr() + ")/" }

func (s *server) pid() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// pidFunc is the server's pid at each call, for a CPU meter.
func (s *server) pidFunc() func() int { return s.pid }

// startAll starts the servers at once, each on a fresh datadir unless keep
// says to start it on the one it has.
func startAll(ctx context.Context, template string, servers []*server, keep func(*server) bool) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range servers {
		g.Go(func() error { return s.start(gctx, template, keep(s)) })
	}
	return g.Wait()
}

// start starts mariadbd, on a fresh datadir unless reuse and one is there;
// it returns once root can log in over TCP.
func (s *server) start(ctx context.Context, template string, reuse bool) error {
	s.stopStale()
	if !reuse || !s.installed() {
		if err := s.create(ctx, template); err != nil {
			return err
		}
	}
	if err := s.launch(); err != nil {
		return err
	}
	if err := s.awaitRoot(ctx); err != nil {
		return err
	}
	var err error
	if s.root, err = sql.Open("mysql", s.dsn()+"?interpolateParams=true"); err != nil {
		return err
	}
	s.root.SetMaxOpenConns(8)
	return s.root.PingContext(ctx)
}

// restart stops the server and starts it on a fresh datadir.
func (s *server) restart(ctx context.Context, template string) error {
	s.stop()
	return s.start(ctx, template, false)
}

// installed reports whether the directory holds an installed datadir.
func (s *server) installed() bool {
	_, err := os.Stat(filepath.Join(s.dataDir(), "mysql"))
	return err == nil
}

// stopStale stops a mariadbd left running by an earlier run of this
// benchmark on the same directory (its pid file names it, and its command
// line names our my.cnf), by its PID.
func (s *server) stopStale() {
	b, err := os.ReadFile(s.pidPath())
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(s.cnfPath())) {
		return
	}
	logf("%s: stopping mariadbd pid %d left by an earlier run", s.name, pid)
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for range 600 {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// create makes a fresh directory with my.cnf and an installed datadir.
func (s *server) create(ctx context.Context, template string) error {
	if err := os.RemoveAll(s.dir); err != nil {
		return err
	}
	if len(s.sockPath()) > 107 {
		return fmt.Errorf("%s: socket path %s is too long for a unix socket: use a shorter --dir", s.name, s.sockPath())
	}
	if err := os.MkdirAll(filepath.Join(s.dir, "tmp"), 0o755); err != nil {
		return err
	}
	if err := s.render(template); err != nil {
		return err
	}
	install := exec.CommandContext(ctx, "mariadb-install-db", "--defaults-file="+s.cnfPath(),
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve")
	if out, err := install.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: mariadb-install-db: %w\n%s", s.name, err, tail(out, 2000))
	}
	return nil
}

// render writes my.cnf from the stack's template.
func (s *server) render(template string) error {
	t, err := os.ReadFile(template)
	if err != nil {
		return fmt.Errorf("read the stack's my.cnf template: %w", err)
	}
	u, err := user.Current()
	if err != nil {
		return err
	}
	text := strings.NewReplacer("@NAME@", "bench-bootstrap-"+s.name, "@USER@", u.Username, "@PORT@", strconv.Itoa(s.port),
		"@DIR@", s.dir, "@SERVER_ID@", strconv.Itoa(s.serverID)).Replace(string(t))
	return os.WriteFile(s.cnfPath(), []byte(text), 0o644)
}

// launch starts mariadbd on the directory, in a process group of its own:
// a ^C on the terminal reaches the benchmark, which then stops it cleanly.
func (s *server) launch() error {
	out, err := os.Create(filepath.Join(s.dir, "mariadbd.out"))
	if err != nil {
		return err
	}
	s.cmd = exec.Command(mariadbd(), "--defaults-file="+s.cnfPath())
	s.cmd.Stdout, s.cmd.Stderr = out, out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("%s: start mariadbd: %w", s.name, err)
	}
	s.exited = make(chan struct{})
	go func() { s.cmd.Wait(); out.Close(); close(s.exited) }()
	return nil
}

// mariadbd is the server binary: on the PATH, else where Debian puts it.
func mariadbd() string {
	if p, err := exec.LookPath("mariadbd"); err == nil {
		return p
	}
	return "/usr/sbin/mariadbd"
}

// awaitRoot waits until root answers on the socket, then lets root in over
// TCP from 127.0.0.1 without a password, as scripts/lib/mariadb.sh does,
// without writing the binlog.
func (s *server) awaitRoot(ctx context.Context) error {
	sock := gomysql.NewConfig()
	sock.User, sock.Net, sock.Addr = "root", "unix", s.sockPath()
	deadline := time.Now().Add(120 * time.Second)
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("%s: mariadbd exited during startup; see %s", s.name, filepath.Join(s.dir, "error.log"))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		err := grantRoot(ctx, sock.FormatDSN())
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no answer after 120s: %w", s.name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func grantRoot(ctx context.Context, dsn string) error {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	return execAll(ctx, db,
		"SET SESSION sql_log_bin = 0",
		"CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'",
		"ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY ''",
		"GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION")
}

// stop shuts the server down cleanly (SHUTDOWN over SQL, then SIGTERM and
// SIGKILL to its PID if it does not go).
func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	if s.root != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = s.root.ExecContext(ctx, "SHUTDOWN")
		cancel()
		s.root.Close()
		s.root = nil
	}
	for i, sig := range []syscall.Signal{0, syscall.SIGTERM, syscall.SIGKILL} {
		if sig != 0 {
			_ = s.cmd.Process.Signal(sig)
		}
		select {
		case <-s.exited:
			s.cmd = nil
			return
		case <-time.After([]time.Duration{120 * time.Second, 30 * time.Second, 10 * time.Second}[i]):
		}
	}
	logf("warning: %s: mariadbd pid %d did not exit", s.name, s.pid())
}

// removeData removes the datadir (tables and binlogs, GBs); the logs stay.
func (s *server) removeData() {
	if err := os.RemoveAll(s.dataDir()); err != nil {
		logf("warning: %v", err)
	}
}

// settings are the server's durability and binlog settings, for the report.
func (s *server) settings(ctx context.Context) (string, error) {
	var out []string
	for _, v := range []string{"log_bin", "binlog_format", "sync_binlog", "innodb_flush_log_at_trx_commit",
		"innodb_buffer_pool_size", "innodb_log_file_size"} {
		var val sql.NullString
		if err := s.root.QueryRowContext(ctx, "SELECT @@GLOBAL."+v).Scan(&val); err != nil {
			return "", err
		}
		out = append(out, v+"="+mebibytes(v, val.String))
	}
	return strings.Join(out, ", "), nil
}

// mebibytes writes the sizes among the settings in MiB.
func mebibytes(name, val string) string {
	n, err := strconv.ParseInt(val, 10, 64)
	if err != nil || !strings.HasSuffix(name, "_size") {
		return val
	}
	return fmt.Sprintf("%dM", n>>20)
}

// flush makes the server write its dirty pages, at most limit long: with
// innodb_max_dirty_pages_pct at 0 until at most 1% of the buffer pool is
// dirty, then back to its setting.
func (s *server) flush(ctx context.Context, limit time.Duration) error {
	if s.calm(ctx) {
		return nil
	}
	var pct string
	if err := s.root.QueryRowContext(ctx, "SELECT @@GLOBAL.innodb_max_dirty_pages_pct").Scan(&pct); err != nil {
		return err
	}
	if _, err := s.root.ExecContext(ctx, "SET GLOBAL innodb_max_dirty_pages_pct = 0"); err != nil {
		return err
	}
	deadline := time.Now().Add(limit)
	for !s.calm(ctx) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(200 * time.Millisecond)
	}
	_, err := s.root.ExecContext(context.WithoutCancel(ctx), "SET GLOBAL innodb_max_dirty_pages_pct = "+pct)
	return err
}

// calm reports whether at most 1% of the server's buffer pool is dirty.
func (s *server) calm(ctx context.Context) bool {
	var name string
	var dirty, total int64
	s.root.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'").Scan(&name, &dirty)
	s.root.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_total'").Scan(&name, &total)
	return dirty*100 <= total
}

// execAll runs statements in order on one connection.
func execAll(ctx context.Context, db *sql.DB, stmts ...string) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%.80s: %w", q, err)
		}
	}
	return nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
