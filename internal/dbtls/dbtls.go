// Package dbtls builds the TLS settings of a MySQL link once and gives the
// same *tls.Config to both MySQL clients rowcast uses: go-sql-driver (SQL
// connections), which finds it by a registered name in the DSN, and go-mysql
// (the binlog stream), which takes it in BinlogSyncerConfig.TLSConfig.
package dbtls

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"sync"

	"github.com/go-sql-driver/mysql"
)

// Options are a link's TLS settings. The zero value verifies the server
// against the system's roots under the host name of the address.
type Options struct {
	// CAFile is a PEM file of the CAs that sign the server's certificate.
	// Default "": the system's roots.
	CAFile string
	// CertFile and KeyFile are the PEM client certificate and its key, for
	// accounts that REQUIRE X509. Both or neither. Default none.
	CertFile, KeyFile string
	// ServerName is the name the server's certificate must carry. Default
	// "": the host of the address connected to.
	ServerName string
	// InsecureSkipVerify encrypts without checking who answers. Default
	// false; it excludes CAFile and ServerName.
	InsecureSkipVerify bool
}

// Check reports settings that contradict each other, naming the field and
// the fix.
func (o Options) Check() error {
	switch {
	case (o.CertFile == "") != (o.KeyFile == ""):
		return fmt.Errorf("%w: cert_file and key_file go together: set both or neither", ErrOptions)
	case o.InsecureSkipVerify && (o.CAFile != "" || o.ServerName != ""):
		return fmt.Errorf("%w: insecure_skip_verify checks no certificate, so ca_file and server_name would be ignored: remove them or verify", ErrOptions)
	}
	return nil
}

// Build reads the files and makes the *tls.Config (TLS 1.2 at least).
func (o Options) Build() (*tls.Config, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         o.ServerName,
		InsecureSkipVerify: o.InsecureSkipVerify, //nolint:gosec // only when the operator sets it explicitly
	}
	var err error
	if cfg.RootCAs, err = readCAs(o.CAFile); err != nil {
		return nil, err
	}
	if cfg.Certificates, err = readPair(o.CertFile, o.KeyFile); err != nil {
		return nil, err
	}
	return cfg, nil
}

// readPair reads a client certificate and its key; none when certFile is "".
func readPair(certFile, keyFile string) ([]tls.Certificate, error) {
	if certFile == "" {
		return nil, nil
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: client certificate %s with key %s: %v", ErrFiles, certFile, keyFile, err)
	}
	return []tls.Certificate{pair}, nil
}

// readCAs reads a PEM bundle of CA certificates; nil (the system's roots)
// when path is "".
func readCAs(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: ca_file: %v", ErrFiles, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: ca_file %s holds no PEM certificate", ErrFiles, path)
	}
	return pool, nil
}

var (
	registerMu sync.Mutex
	registered = map[Options]string{}
)

// Register builds o's config and registers it with go-sql-driver; the name
// it returns goes into a DSN as tls=<name>. The same options give the same
// name, and their files are read once per process.
func Register(o Options) (string, error) {
	registerMu.Lock()
	defer registerMu.Unlock()
	if name, ok := registered[o]; ok {
		return name, nil
	}
	cfg, err := o.Build()
	if err != nil {
		return "", err
	}
	name := registryName(o)
	if err := mysql.RegisterTLSConfig(name, cfg); err != nil {
		return "", fmt.Errorf("register TLS config %s: %w", name, err)
	}
	registered[o] = name
	return name, nil
}

// registryName is unique to the options, and never one of the driver's
// reserved values (true, false, skip-verify, preferred).
func registryName(o Options) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%q %q %q %q %t", o.CAFile, o.CertFile, o.KeyFile, o.ServerName, o.InsecureSkipVerify))
	return "rowcast-" + hex.EncodeToString(sum[:8])
}

// ForAddr returns cfg ready for a connection to addr (host:port): a copy
// whose ServerName is the host when cfg sets none and verifies. go-sql-driver
// does this itself; go-mysql does not, and Go's TLS refuses to verify
// without a name. Nil stays nil.
func ForAddr(cfg *tls.Config, addr string) *tls.Config {
	if cfg == nil {
		return nil
	}
	c := cfg.Clone()
	if c.ServerName == "" && !c.InsecureSkipVerify {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			c.ServerName = host
		}
	}
	return c
}
