// Package clonetest starts MariaDB servers of a test's own, empty, beside the
// local stack: the nodes that clone tests copy into. Each has its own datadir
// and port, runs with the stack's my.cnf (scripts/lib/mariadb.cnf.in), and is
// stopped by its PID when the test ends.
package clonetest

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/internal/freeport"
)

// Ports are where servers are started: the first free one, from a random
// place in the range, so that tests of several packages rarely race.
const (
	FirstPort = 3321
	LastPort  = 3339
)

// Server is one mariadbd started by a test.
type Server struct {
	Port   int
	Dir    string
	cmd    *exec.Cmd
	exited chan struct{}
}

// Addr is host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// DSN is root's go-sql-driver DSN over TCP (no password).
func (s *Server) DSN() string { return "root@tcp(" + s.Addr() + ")/" }

// DB opens root on the server and closes it when the test ends.
func (s *Server) DB(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", s.DSN()+"?interpolateParams=true")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Start starts an empty MariaDB server for the test (a few seconds: the
// datadir is installed first) and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("mariadb-install-db"); err != nil {
		t.Fatalf("mariadb-install-db is not on the PATH: install the MariaDB server package, as for the local stack: %v", err)
	}
	start := FirstPort + rand.IntN(LastPort-FirstPort+1)
	var last error
	for i := range LastPort - FirstPort + 1 {
		port := FirstPort + (start-FirstPort+i)%(LastPort-FirstPort+1)
		if !freeport.Free(port) {
			continue
		}
		s, err := launch(t, port)
		if err == nil {
			return s
		}
		last = err
	}
	t.Fatalf("no MariaDB server could be started on ports %d-%d: %v", FirstPort, LastPort, last)
	return nil
}

// launch installs a datadir and starts mariadbd on port; an error means the
// port was taken meanwhile or the server did not come up.
func launch(t testing.TB, port int) (*Server, error) {
	dir, err := os.MkdirTemp("", "rcclone")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Port: port, Dir: dir}
	if err := s.install(); err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	if err := s.run(); err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	if err := s.awaitRoot(); err != nil {
		s.stop()
		os.RemoveAll(dir)
		return nil, err
	}
	t.Cleanup(func() {
		s.stop()
		os.RemoveAll(dir)
	})
	return s, nil
}

func (s *Server) cnf() string  { return filepath.Join(s.Dir, "my.cnf") }
func (s *Server) sock() string { return filepath.Join(s.Dir, "mariadbd.sock") }

// install writes my.cnf from the stack's template and installs the datadir.
func (s *Server) install() error {
	_, file, _, _ := runtime.Caller(0)
	tmpl, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "scripts", "lib", "mariadb.cnf.in"))
	if err != nil {
		return fmt.Errorf("read the stack's my.cnf template: %w", err)
	}
	text := strings.NewReplacer("@NAME@", "clonetest", "@USER@", currentUser(), "@PORT@", strconv.Itoa(s.Port),
		"@DIR@", s.Dir, "@SERVER_ID@", strconv.Itoa(s.Port)).Replace(string(tmpl))
	if err := os.MkdirAll(filepath.Join(s.Dir, "tmp"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(s.cnf(), []byte(text), 0o644); err != nil {
		return err
	}
	out, err := exec.Command("mariadb-install-db", "--defaults-file="+s.cnf(), "--auth-root-authentication-method=normal",
		"--skip-test-db", "--skip-name-resolve").CombinedOutput()
	if err != nil {
		return fmt.Errorf("mariadb-install-db: %v\n%s", err, out)
	}
	return nil
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

// run starts mariadbd in a process group of its own.
func (s *Server) run() error {
	out, err := os.Create(filepath.Join(s.Dir, "mariadbd.out"))
	if err != nil {
		return err
	}
	bin := "mariadbd"
	if _, err := exec.LookPath(bin); err != nil {
		bin = "/usr/sbin/mariadbd"
	}
	s.cmd = exec.Command(bin, "--defaults-file="+s.cnf())
	s.cmd.Stdout, s.cmd.Stderr = out, out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start mariadbd: %w", err)
	}
	s.exited = make(chan struct{})
	go func() { s.cmd.Wait(); out.Close(); close(s.exited) }()
	return nil
}

// awaitRoot waits until root answers on the socket, then lets root in over
// TCP from 127.0.0.1 without a password, as the local stack does, without
// writing the binlog.
func (s *Server) awaitRoot() error {
	sock := mysql.NewConfig()
	sock.User, sock.Net, sock.Addr = "root", "unix", s.sock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-s.exited:
			log, _ := os.ReadFile(filepath.Join(s.Dir, "error.log"))
			return fmt.Errorf("mariadbd on port %d exited during startup:\n%s", s.Port, tail(log, 2000))
		default:
		}
		err := grantRoot(sock.FormatDSN())
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mariadbd on port %d: no answer after 60s: %w", s.Port, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func grantRoot(dsn string) error {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, q := range []string{
		"SET SESSION sql_log_bin = 0",
		"CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'",
		"GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// Stop stops the server now (SIGTERM to its PID, SIGKILL after a minute);
// the test's cleanup does it otherwise.
func (s *Server) Stop() { s.stop() }

func (s *Server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	for i, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		_ = s.cmd.Process.Signal(sig)
		select {
		case <-s.exited:
			return
		case <-time.After([]time.Duration{60 * time.Second, 10 * time.Second}[i]):
		}
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
