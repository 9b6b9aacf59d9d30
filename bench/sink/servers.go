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
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"golang.org/x/sync/errgroup"
)

// server is one mariadbd of this benchmark: its own datadir, port and
// socket under the bench directory, started and stopped by its PID. Its
// my.cnf is the local stack's (scripts/lib/mariadb.cnf.in) with a few lines
// added, so that every node has the replicas' settings: binlog on, ROW/FULL,
// innodb_flush_log_at_trx_commit, sync_binlog, buffer pool and log size.
type server struct {
	name     string
	port     int
	serverID int
	dir      string
	cmd      *exec.Cmd
	exited   chan struct{}
	root     *sql.DB // root over TCP, interpolateParams
}

// extraSettings are added to the stack's template on every node:
//   - log_slave_updates: the native replica binlogs what it applies, as the
//     sink's target binlogs what the sink writes (it is an ordinary client
//     there), so both pay for their binlog;
//   - slave_parallel_threads=0: the native replica is serial (the default,
//     stated);
//   - skip_slave_start: replication starts when the benchmark says so.
var extraSettings = []string{
	"# Added by bench/sink:",
	"log_slave_updates           = ON",
	"slave_parallel_threads      = 0",
	"skip_slave_start",
}

func (s *server) cnfPath() string  { return filepath.Join(s.dir, "my.cnf") }
func (s *server) pidPath() string  { return filepath.Join(s.dir, "mariadbd.pid") }
func (s *server) sockPath() string { return filepath.Join(s.dir, "mariadbd.sock") }
func (s *server) addr() string     { return "127.0.0.1:" + strconv.Itoa(s.port) }

// dsn is root's DSN over TCP.
func (s *server) dsn() string {
	c := gomysql.NewConfig()
	c.User, c.Net, c.Addr = "root", "tcp", s.addr()
	c.InterpolateParams = true
	c.Params = map[string]string{"time_zone": "'+00:00'"}
	return c.FormatDSN()
}

func (s *server) pid() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
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
	text := string(t)
	for k, v := range map[string]string{"@NAME@": "bench-" + s.name, "@USER@": u.Username, "@PORT@": strconv.Itoa(s.port),
		"@DIR@": s.dir, "@SERVER_ID@": strconv.Itoa(s.serverID)} {
		text = strings.ReplaceAll(text, k, v)
	}
	if m := placeholder.FindString(text); m != "" {
		return fmt.Errorf("%s: placeholder %s has no value", template, m)
	}
	extra := strings.Join(extraSettings, "\n") + "\n\n"
	if i := strings.Index(text, "\n[client]"); i >= 0 {
		text = text[:i+1] + extra + text[i+1:]
	} else {
		text += "\n" + extra
	}
	return os.WriteFile(s.cnfPath(), []byte(text), 0o644)
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

// startAll starts the servers at once.
func startAll(ctx context.Context, template string, servers []*server) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range servers {
		g.Go(func() error { return s.start(gctx, template) })
	}
	return g.Wait()
}

// start creates a fresh datadir and starts mariadbd; it returns once root
// can log in over TCP.
func (s *server) start(ctx context.Context, template string) error {
	s.stopStale()
	if err := s.create(ctx, template); err != nil {
		return err
	}
	if err := s.launch(); err != nil {
		return err
	}
	if err := s.awaitBootstrap(ctx); err != nil {
		return err
	}
	var err error
	if s.root, err = sql.Open("mysql", s.dsn()); err != nil {
		return err
	}
	s.root.SetMaxOpenConns(8)
	s.root.SetMaxIdleConns(8)
	return s.root.PingContext(ctx)
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

// launch starts mariadbd on the directory.
func (s *server) launch() error {
	out, err := os.Create(filepath.Join(s.dir, "mariadbd.out"))
	if err != nil {
		return err
	}
	s.cmd = exec.Command(mariadbd(), "--defaults-file="+s.cnfPath())
	s.cmd.Stdout, s.cmd.Stderr = out, out
	// Its own process group: a ^C on the terminal reaches the benchmark,
	// which then shuts the server down cleanly.
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
	if _, err := os.Stat("/usr/sbin/mariadbd"); err == nil {
		return "/usr/sbin/mariadbd"
	}
	return "mariadbd"
}

// awaitBootstrap logs in as root over the socket once the server answers,
// and creates root@127.0.0.1 (no password), as scripts/lib/mariadb.sh
// does, without writing the binlog.
func (s *server) awaitBootstrap(ctx context.Context) error {
	sock := gomysql.NewConfig()
	sock.User, sock.Net, sock.Addr = "root", "unix", s.sockPath()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("%s: mariadbd exited during startup; see %s", s.name, filepath.Join(s.dir, "error.log"))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		err := s.bootstrap(ctx, sock.FormatDSN())
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no answer after 60s: %w", s.name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *server) bootstrap(ctx context.Context, dsn string) error {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, q := range []string{
		"SET SESSION sql_log_bin = 0",
		"CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'",
		"ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY ''",
		"GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
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
		case <-time.After([]time.Duration{60 * time.Second, 30 * time.Second, 10 * time.Second}[i]):
		}
	}
	logf("warning: %s: mariadbd pid %d did not exit", s.name, s.pid())
}

// status reads SHOW GLOBAL STATUS as numbers.
func (s *server) status(ctx context.Context) (map[string]float64, error) {
	rows, err := s.root.QueryContext(ctx, "SHOW GLOBAL STATUS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]float64{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			out[k] = f
		}
	}
	return out, rows.Err()
}

// removeData removes the datadir (tables and binlogs, GBs); the logs stay.
func (s *server) removeData() {
	if err := os.RemoveAll(filepath.Join(s.dir, "data")); err != nil {
		logf("warning: %v", err)
	}
}

// statusKeys are the server counters reported per measurement.
var statusKeys = []string{"Com_commit", "Com_begin", "Com_insert", "Com_update", "Questions", "Handler_commit",
	"Innodb_rows_inserted", "Innodb_rows_updated", "Innodb_data_fsyncs", "Innodb_os_log_written",
	"Binlog_commits", "Binlog_group_commits", "Bytes_received"}

func statusDelta(a, b map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for _, k := range statusKeys {
		out[k] = b[k] - a[k]
	}
	return out
}

// settings are the server's durability and binlog settings, for the report.
func (s *server) settings(ctx context.Context) (string, error) {
	var out []string
	for _, v := range []string{"log_bin", "log_slave_updates", "binlog_format", "sync_binlog", "innodb_flush_log_at_trx_commit",
		"innodb_buffer_pool_size", "slave_parallel_threads"} {
		val, err := s.variable(ctx, v)
		if err != nil {
			return "", err
		}
		if v == "innodb_buffer_pool_size" {
			n, _ := strconv.ParseInt(val, 10, 64)
			val = fmt.Sprintf("%dM", n>>20)
		}
		out = append(out, v+"="+val)
	}
	return strings.Join(out, ", "), nil
}

// variable reads one global variable.
func (s *server) variable(ctx context.Context, name string) (string, error) {
	var v sql.NullString
	err := s.root.QueryRowContext(ctx, "SELECT @@GLOBAL."+name).Scan(&v)
	return v.String, err
}

// execAll runs statements on one connection.
func execAll(ctx context.Context, db *sql.DB, stmts ...string) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%.60s: %w", q, err)
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

var placeholder = regexp.MustCompile(`@[A-Z][A-Z0-9_]*@`)
