package config

import (
	"fmt"

	"github.com/go-sql-driver/mysql"

	"github.com/rowcast/rowcast/internal/dbtls"
)

// NodeTLS is a mysql node's tls: section. Its presence makes every link to
// the node TLS (the binlog stream, the reader's checks and snapshots, sinks,
// verify, promotion, status, clone, replay); the certificate is verified
// unless insecure_skip_verify is set. See docs/SECURITY.md, "MySQL links".
type NodeTLS struct {
	// CAFile is a PEM file of the CAs that sign the server's certificate.
	// Default: the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// accounts that REQUIRE X509. Both or neither. Default none.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name the server's certificate must carry. Default:
	// the host of the dsn.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify encrypts without checking the server's
	// certificate. Default false; excludes ca_file and server_name.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

func (t *NodeTLS) options() dbtls.Options {
	return dbtls.Options{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile,
		ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
}

// ConnDSN is the go-sql-driver DSN rowcast connects to a mysql node with:
// the dsn as written, with tls=<name> of the node's tls: section when it has
// one (a name registered in this process).
func (n Node) ConnDSN() (string, error) {
	mc, err := n.MySQLConfig()
	if err != nil {
		return "", err
	}
	if n.TLS == nil {
		return n.DSN, nil
	}
	return mc.FormatDSN(), nil
}

// withTLS applies the node's TLS settings to its parsed dsn, or refuses
// settings that some link could not honour.
func (n Node) withTLS(mc *mysql.Config) (*mysql.Config, error) {
	name, err := n.registerTLS(mc)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", n.Name, err)
	}
	if name == "" {
		return mc, nil
	}
	mc.TLSConfig, mc.TLS = name, nil
	// Parsed again, the driver takes the registered config and fills in the
	// server name from the address.
	return mysql.ParseDSN(mc.FormatDSN())
}

// registerTLS checks the node's TLS settings against its parsed dsn and
// registers its tls: section; the name it returns ("" without a section)
// goes into the DSN as tls=<name>. Errors start with the field at fault.
func (n Node) registerTLS(mc *mysql.Config) (string, error) {
	switch {
	case mc.AllowFallbackToPlaintext:
		// go-mysql cannot fall back, and rowcast never does silently.
		return "", fmt.Errorf("dsn: tls=preferred (allowFallbackToPlaintext) would let a link fall back to plaintext, " +
			"which rowcast refuses and the binlog stream cannot do: write tls=true with a tls: section " +
			"(ca_file), or tls=skip-verify to encrypt without verifying")
	case n.TLS == nil:
		return "", nil
	case mc.TLSConfig != "" && mc.TLSConfig != "true":
		return "", fmt.Errorf("tls: the dsn sets tls=%s as well: set TLS in one place (remove tls= from the dsn, or the tls: section)", mc.TLSConfig)
	}
	name, err := dbtls.Register(n.TLS.options())
	if err != nil {
		return "", fmt.Errorf("tls: %w", err)
	}
	return name, nil
}

// validateTLS reports TLS settings that a link to the node cannot honour.
func (n Node) validateTLS(add addFunc, where string) {
	if n.Kind != KindMySQL {
		if n.TLS != nil {
			add("%s.tls: only mysql nodes take a tls: section; a %s node's link is set by its dsn (an https:// URL): remove tls:", where, n.Kind)
		}
		return
	}
	mc, err := mysql.ParseDSN(n.DSN)
	if err != nil {
		return // validateDSN reports it
	}
	if _, err := n.registerTLS(mc); err != nil {
		add("%s.%v", where, err)
	}
}
