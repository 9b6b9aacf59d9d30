package dbtls

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/internal/testenv"
)

func TestCheckNamesTheContradiction(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{CertFile: "c.pem"}, "cert_file and key_file go together"},
		{Options{KeyFile: "k.pem"}, "cert_file and key_file go together"},
		{Options{InsecureSkipVerify: true, CAFile: "ca.pem"}, "ca_file and server_name would be ignored"},
		{Options{InsecureSkipVerify: true, ServerName: "db"}, "ca_file and server_name would be ignored"},
	} {
		err := c.o.Check()
		if !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want ErrOptions with %q", c.o, err, c.want)
		}
	}
	if err := (Options{CAFile: "ca.pem", CertFile: "c", KeyFile: "k", ServerName: "db"}).Check(); err != nil {
		t.Errorf("consistent options: %v", err)
	}
}

func TestBuildReadsTheFiles(t *testing.T) {
	f := testenv.WriteTLSFiles(t)
	cfg, err := Options{CAFile: f.CA, CertFile: f.Cert, KeyFile: f.Key, ServerName: "db.example"}.Build()
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("roots %v, certificates %d, name %s, min %x, skip %v",
		cfg.RootCAs != nil, len(cfg.Certificates), cfg.ServerName, cfg.MinVersion, cfg.InsecureSkipVerify)
	if want := "roots true, certificates 1, name db.example, min 303, skip false"; got != want {
		t.Fatalf("config: %s, want %s", got, want)
	}
}

func TestBuildRefusesBadFiles(t *testing.T) {
	f := testenv.WriteTLSFiles(t)
	for _, o := range []Options{{CAFile: f.Dir + "/missing.pem"}, {CAFile: f.Key}, {CertFile: f.CA, KeyFile: f.Key}} {
		if _, err := o.Build(); !errors.Is(err, ErrFiles) {
			t.Errorf("%+v: got %v, want ErrFiles", o, err)
		}
	}
}

// TestHandshake connects the built config to a TLS listener whose
// certificate the test CA signed: verified with that CA, refused with another.
func TestHandshake(t *testing.T) {
	server := testenv.WriteTLSFiles(t)
	other := testenv.WriteTLSFiles(t)
	addr := serveTLS(t, server)
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{CAFile: server.CA}, ""},
		{Options{CAFile: server.CA, ServerName: "localhost"}, ""},
		{Options{CAFile: other.CA}, "certificate signed by unknown authority"},
		{Options{CAFile: server.CA, ServerName: "db.example"}, "not db.example"},
		{Options{InsecureSkipVerify: true}, ""},
	} {
		cfg, err := c.o.Build()
		if err != nil {
			t.Fatal(err)
		}
		err = dial(addr, ForAddr(cfg, addr))
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: handshake error %v, want %q", c.o, err, c.want)
		}
	}
}

func serveTLS(t *testing.T, f testenv.TLSFiles) string {
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	return ln.Addr().String()
}

func dial(addr string, cfg *tls.Config) error {
	c, err := tls.Dial("tcp", addr, cfg)
	if err == nil {
		c.Close()
	}
	return err
}

func TestRegisterOncePerOptions(t *testing.T) {
	f := testenv.WriteTLSFiles(t)
	a, err := Register(Options{CAFile: f.CA})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Register(Options{CAFile: f.CA})
	c, _ := Register(Options{CAFile: f.CA, ServerName: "db"})
	if a != b || a == c || !strings.HasPrefix(a, "rowcast-") {
		t.Fatalf("names %q %q %q: want one per options", a, b, c)
	}
	if _, err := Register(Options{CertFile: "x"}); !errors.Is(err, ErrOptions) {
		t.Fatalf("bad options registered: %v", err)
	}
}

// TestRegisteredReachesTheDriver: the driver finds the config by name, and
// fills in the server's host.
func TestRegisteredReachesTheDriver(t *testing.T) {
	name, err := Register(Options{CAFile: testenv.WriteTLSFiles(t).CA})
	if err != nil {
		t.Fatal(err)
	}
	mc, err := mysql.ParseDSN("u:p@tcp(10.1.2.3:3306)/?tls=" + name)
	if err != nil {
		t.Fatal(err)
	}
	if mc.TLS == nil || mc.TLS.RootCAs == nil || mc.TLS.ServerName != "10.1.2.3" {
		t.Fatalf("driver's TLS config %+v", mc.TLS)
	}
}

func TestForAddr(t *testing.T) {
	if ForAddr(nil, "h:1") != nil {
		t.Fatal("nil became a config")
	}
	base := &tls.Config{}
	if got := ForAddr(base, "db.internal:3306"); got.ServerName != "db.internal" || base.ServerName != "" {
		t.Fatalf("ServerName %q (base %q)", got.ServerName, base.ServerName)
	}
	if got := ForAddr(&tls.Config{ServerName: "x"}, "h:1"); got.ServerName != "x" {
		t.Fatalf("set name overwritten: %q", got.ServerName)
	}
	if got := ForAddr(&tls.Config{InsecureSkipVerify: true}, "h:1"); got.ServerName != "" {
		t.Fatalf("unverified config got a name %q", got.ServerName)
	}
}
