package testenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// TLSNode is the stack's optional TLS-only MariaDB (require_secure_transport),
// started by `scripts/stack start db4`, not by `up`.
const TLSNode = "db4"

// TLSStartAdvice is what a test says when the TLS node does not answer.
const TLSStartAdvice = "start the stack's TLS-only MariaDB with `scripts/stack start db4` and export what `scripts/stack env` prints (ROWCAST_DB4_PORT, ROWCAST_DB4_CA)"

// TLSCAFile is the CA that signed the TLS node's certificate:
// ROWCAST_DB4_CA, else db4/tls/ca.pem under ROWCAST_STATE_DIR. It fails
// the test (skips it only as Need does) when there is none.
func TLSCAFile(t testing.TB) string {
	t.Helper()
	Need(t, TLSNode)
	path := os.Getenv("ROWCAST_DB4_CA")
	if path == "" && os.Getenv("ROWCAST_STATE_DIR") != "" {
		path = filepath.Join(os.Getenv("ROWCAST_STATE_DIR"), TLSNode, "tls", "ca.pem")
	}
	if _, err := os.Stat(path); path == "" || err != nil {
		t.Fatalf("no CA file of %s (ROWCAST_DB4_CA=%q): %s", TLSNode, path, TLSStartAdvice)
	}
	return path
}

var tlsRegister sync.Mutex

// TLSRootDSN is RootDSN for the TLS node, verified against its CA.
func TLSRootDSN(t testing.TB, db string) string {
	t.Helper()
	ca := TLSCAFile(t)
	pemBytes, err := os.ReadFile(ca)
	if err != nil {
		t.Fatalf("read %s: %v", ca, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("%s holds no PEM certificate", ca)
	}
	tlsRegister.Lock()
	defer tlsRegister.Unlock()
	const name = "rowcast-testenv-db4"
	if err := mysql.RegisterTLSConfig(name, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}); err != nil {
		t.Fatalf("register TLS config: %v", err)
	}
	c, err := mysql.ParseDSN(RootDSN(TLSNode, db))
	if err != nil {
		t.Fatal(err)
	}
	c.TLSConfig = name
	return c.FormatDSN()
}

// TLSDB opens root on the TLS node over TLS and closes it when the test ends.
func TLSDB(t testing.TB) *sql.DB {
	t.Helper()
	conn, err := sql.Open("mysql", TLSRootDSN(t, ""))
	if err != nil {
		t.Fatalf("open %s: %v", TLSNode, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.PingContext(ctx); err != nil {
		conn.Close()
		t.Fatalf("%s at %s does not answer root over TLS (%v): %s", TLSNode, Addr(TLSNode), err, TLSStartAdvice)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TLSFiles are PEM files that WriteTLSFiles makes.
type TLSFiles struct {
	CA        string // the CA's certificate
	Cert, Key string // a leaf for 127.0.0.1 and localhost, server and client use
	Dir       string
	caCert    *x509.Certificate
	caKey     *ecdsa.PrivateKey
}

// WriteTLSFiles makes a fresh CA and a leaf certificate signed by it in a
// temporary directory: for tests of TLS settings, and for a CA that the TLS
// node does not trust.
func WriteTLSFiles(t testing.TB) TLSFiles {
	t.Helper()
	dir := t.TempDir()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "rowcast test CA " + filepath.Base(dir)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	f := TLSFiles{Dir: dir, CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "leaf.pem"),
		Key: filepath.Join(dir, "leaf-key.pem"), caCert: caCert, caKey: caKey}
	writePEM(t, f.CA, "CERTIFICATE", caDER)
	f.writeLeaf(t)
	return f
}

// writeLeaf signs a certificate for 127.0.0.1 and localhost with the CA.
func (f TLSFiles) writeLeaf(t testing.TB) {
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.caCert, &key.PublicKey, f.caKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, f.Cert, "CERTIFICATE", der)
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, f.Key, "EC PRIVATE KEY", keyDER)
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
