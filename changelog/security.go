package changelog

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// TLS configures the encryption of the links to the brokers and how their
// certificates are checked. The zero value is a plaintext link.
type TLS struct {
	// Enabled turns TLS on (a broker listener of type SSL or SASL_SSL).
	// Default false.
	Enabled bool
	// CAFile is a PEM file of the certificate authorities that may sign the
	// brokers' certificates. Default: the system's roots.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and its private key,
	// for brokers that ask for one (ssl.client.auth). Both or neither.
	// Default none.
	CertFile string
	KeyFile  string
	// ServerName is the name the brokers' certificates must carry. Default:
	// the host of the address dialed, as the broker advertises it.
	ServerName string
	// InsecureSkipVerify accepts any certificate, which lets anyone on the
	// path read and write the changelog: for tests only. Default false.
	InsecureSkipVerify bool
}

// SASL mechanisms, by their Kafka names.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// SASL configures the authentication to the brokers. The zero value
// (Mechanism "") authenticates nothing.
type SASL struct {
	// Mechanism is SASLPlain, SASLScramSHA256, SASLScramSHA512 or "" (none).
	Mechanism string
	// Username and Password are the credentials. Both required with a
	// mechanism.
	Username string
	Password string
}

// ErrKafkaAuth means a broker refused rowcast's credentials or could not be
// verified (its certificate, or the mechanism the listener takes): retrying
// cannot help. The wrapped message names the broker or the brokers, the
// mechanism and user, and the fix.
var ErrKafkaAuth = errors.New("kafka authentication failed")

// ClassAuth is the kind of a failed authentication or certificate check.
const ClassAuth = "auth"

// checkSecurity checks that the TLS files load and the SASL settings are
// complete.
func (c *Config) checkSecurity(p *problems) {
	if _, err := c.TLS.config(); err != nil {
		p.add("%v", err)
	}
	if _, err := c.SASL.mechanism(); err != nil {
		p.add("%v", err)
	}
}

// config builds the crypto/tls config, or nil for a plaintext link.
func (t *TLS) config() (*tls.Config, error) {
	if !t.Enabled {
		if t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify {
			return nil, errors.New("kafka TLS: files or settings given but TLS.Enabled is false: enable it or remove them")
		}
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	roots, err := t.roots()
	if err != nil {
		return nil, err
	}
	cfg.RootCAs = roots
	if err := t.clientCert(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// roots loads CAFile, or returns nil for the system's roots.
func (t *TLS) roots() (*x509.CertPool, error) {
	if t.CAFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("kafka TLS.CAFile: %w: give the PEM file of the CA that signed the brokers' certificates", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("kafka TLS.CAFile %s holds no PEM certificate: give the CA's certificate (-----BEGIN CERTIFICATE-----)", t.CAFile)
	}
	return pool, nil
}

// clientCert adds the client certificate, when one is configured.
func (t *TLS) clientCert(cfg *tls.Config) error {
	if t.CertFile == "" && t.KeyFile == "" {
		return nil
	}
	if t.CertFile == "" || t.KeyFile == "" {
		return errors.New("kafka TLS: CertFile and KeyFile go together: give both (a client certificate and its key) or neither")
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return fmt.Errorf("kafka TLS.CertFile %s and KeyFile %s: %w: give a PEM certificate and its unencrypted private key", t.CertFile, t.KeyFile, err)
	}
	cfg.Certificates = []tls.Certificate{cert}
	return nil
}

// mechanism builds kafka-go's SASL mechanism, or nil for none.
func (s *SASL) mechanism() (sasl.Mechanism, error) {
	if s.Mechanism == "" {
		if s.Username != "" || s.Password != "" {
			return nil, errors.New("kafka SASL: credentials given without a mechanism: set SASL.Mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
		}
		return nil, nil
	}
	if s.Username == "" || s.Password == "" {
		return nil, fmt.Errorf("kafka SASL %s: Username and Password are required: give both", s.Mechanism)
	}
	switch s.Mechanism {
	case SASLPlain:
		return plain.Mechanism{Username: s.Username, Password: s.Password}, nil
	case SASLScramSHA256:
		return scram.Mechanism(scram.SHA256, s.Username, s.Password)
	case SASLScramSHA512:
		return scram.Mechanism(scram.SHA512, s.Username, s.Password)
	}
	return nil, fmt.Errorf("kafka SASL.Mechanism %q is not supported: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Mechanism)
}

// newTransport is the one place that builds the kafka-go Transport every
// Kafka client of rowcast uses: dial and request timeouts, TLS and SASL.
func newTransport(cfg *Config) (*kafka.Transport, error) {
	tc, err := cfg.TLS.config()
	if err != nil {
		return nil, err
	}
	mech, err := cfg.SASL.mechanism()
	if err != nil {
		return nil, err
	}
	dial := min(cfg.RequestTimeout, 10*time.Second)
	// The TCP connect gets kafka-go's default dialer's 3 s; the handshake
	// the rest of DialTimeout (kafka-go's deadline on the context).
	d := &brokerDialer{net: net.Dialer{Timeout: 3 * time.Second}, tls: tc}
	return &kafka.Transport{
		Dial:        d.dial,
		DialTimeout: dial,
		ClientID:    cfg.ClientID,
		SASL:        mech,
		// A connection a request was still using when close ran is closed
		// by this timeout rather than kafka-go's 30 s default.
		IdleTimeout: 5 * time.Second,
		// MetadataTopics stays empty (all topics): with a topic list, kafka-go
		// caches a topic that does not exist yet as present-with-an-error,
		// so the wait for a new topic in CreateTopics returns at once and the
		// first requests fail until the next refresh.
	}, nil
}

// brokerDialer connects to a broker and, with TLS, completes the handshake
// itself (rather than leaving it to kafka-go's first request), so that a
// certificate that does not verify is an error naming the broker.
type brokerDialer struct {
	net net.Dialer
	tls *tls.Config
}

func (d *brokerDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := d.net.DialContext(ctx, network, addr)
	if err != nil || d.tls == nil {
		return conn, err
	}
	cfg := d.tls
	if cfg.ServerName == "" {
		host, _, _ := net.SplitHostPort(addr)
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, handshakeError(addr, cfg.ServerName, err)
	}
	return tc, nil
}

// handshakeError names the broker and says what to do. A certificate that
// does not verify, or a broker that refuses or does not speak TLS, is an
// authError; anything else (the connection ends or times out) stays a
// network error, retried.
func handshakeError(addr, serverName string, err error) error {
	if fix, ok := tlsFix(err, serverName); ok {
		return &authError{broker: addr, what: "TLS handshake", err: err, fix: fix}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
		return fmt.Errorf("TLS handshake with kafka broker %s: %w (a listener without TLS closes the connection: check that the port is an SSL or SASL_SSL listener)", addr, err)
	}
	return fmt.Errorf("TLS handshake with kafka broker %s: %w", addr, err)
}

// tlsFix is the advice for a handshake that cannot succeed however often it
// is tried, and false for any other failure.
func tlsFix(err error, serverName string) (string, bool) {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
		record   tls.RecordHeaderError
		alert    tls.AlertError
	)
	switch {
	case errors.As(err, &unknown):
		return "the broker's certificate is not signed by a trusted CA: set kafka.tls.ca_file to the CA that signed it " +
			"(kafka.tls.insecure_skip_verify: true skips the check, for tests only)", true
	case errors.As(err, &hostname):
		return fmt.Sprintf("the broker's certificate is not valid for %q: set kafka.tls.server_name to a name it carries, or connect by that name", serverName), true
	case errors.As(err, &invalid):
		return "the broker's certificate is expired or not valid for a server: renew it", true
	case errors.As(err, &verify):
		return "the broker's certificate does not verify: check it against kafka.tls.ca_file", true
	case errors.As(err, &record):
		return "the port does not speak TLS: use the brokers' SSL or SASL_SSL listener, or remove kafka.tls for a PLAINTEXT one", true
	case errors.As(err, &alert):
		return "the broker refused the handshake: if it requires a client certificate (ssl.client.auth=required), " +
			"set kafka.tls.cert_file and key_file to one signed by a CA in its truststore", true
	}
	return "", false
}

// authError is a failure to authenticate to a broker or to verify it.
type authError struct {
	broker string // the address, or the bootstrap list (kafka-go does not say which broker answered SASL)
	what   string
	err    error
	fix    string
}

// Error leaves the fix out: kafkaFix appends it where the error is
// reported.
func (e *authError) Error() string {
	return fmt.Sprintf("%s with kafka broker %s failed: %v", e.what, e.broker, e.err)
}

func (e *authError) Unwrap() error { return e.err }

// Is makes errors.Is(err, ErrKafkaAuth) true.
func (e *authError) Is(target error) bool { return target == ErrKafkaAuth }

// authTransport is the kafka-go Transport with SASL errors, and TLS alerts
// that arrive after the handshake, turned into authErrors that name the
// mechanism, the user and the fix.
type authTransport struct {
	*kafka.Transport
	cfg *Config
}

func (t authTransport) RoundTrip(ctx context.Context, addr net.Addr, req kafka.Request) (kafka.Response, error) {
	res, err := t.Transport.RoundTrip(ctx, addr, req)
	if err == nil {
		return res, nil
	}
	var kerr kafka.Error
	if errors.As(err, &kerr) && isSASLError(kerr) {
		return res, &authError{broker: addr.String(), what: t.saslWhat(), err: err, fix: saslFix(kerr, t.cfg)}
	}
	// With TLS 1.3 a broker checks the client's certificate after the
	// client's side of the handshake is done: its refusal comes with the
	// first answer.
	var alert tls.AlertError
	if errors.As(err, &alert) {
		fix, _ := tlsFix(err, t.cfg.TLS.ServerName)
		return res, &authError{broker: addr.String(), what: "TLS", err: err, fix: fix}
	}
	return res, err
}

// saslWhat names the mechanism and the user, for an authError.
func (t authTransport) saslWhat() string {
	if t.cfg.SASL.Mechanism == "" {
		return "connection without SASL"
	}
	return "SASL " + t.cfg.SASL.Mechanism + " authentication as user " + strconv.Quote(t.cfg.SASL.Username)
}

// isSASLError reports whether kerr is a broker's answer to SASL.
func isSASLError(kerr kafka.Error) bool {
	switch kerr {
	case kafka.SASLAuthenticationFailed, kafka.UnsupportedSASLMechanism, kafka.IllegalSASLState:
		return true
	}
	return false
}

// saslFix is the advice for a SASL error.
func saslFix(kerr kafka.Error, cfg *Config) string {
	brokers := strings.Join(cfg.Brokers, ",")
	switch {
	case cfg.SASL.Mechanism == "":
		return fmt.Sprintf("the listener at %s requires SASL: set kafka.sasl (mechanism, username, password)", brokers)
	case kerr == kafka.SASLAuthenticationFailed && cfg.SASL.Mechanism == SASLPlain:
		return "check kafka.sasl.username and the password it reads from the environment, and that the user is in the listener's PLAIN JAAS config " +
			"(listener.name.<listener>.plain.sasl.jaas.config, user_<name>=\"<password>\")"
	case kerr == kafka.SASLAuthenticationFailed:
		return fmt.Sprintf("check kafka.sasl.username and the password it reads from the environment, and that the user has %s credentials on the brokers "+
			"(kafka-configs --bootstrap-server %s --alter --entity-type users --entity-name %s --add-config '%s=[password=...]')",
			cfg.SASL.Mechanism, brokers, cfg.SASL.Username, cfg.SASL.Mechanism)
	case kerr == kafka.UnsupportedSASLMechanism:
		return fmt.Sprintf("the listener at %s does not enable %s: set kafka.sasl.mechanism to one of its sasl.enabled.mechanisms", brokers, cfg.SASL.Mechanism)
	}
	return fmt.Sprintf("the listener at %s does not take SASL (a PLAINTEXT or SSL listener): use its SASL_SSL port, or remove kafka.sasl", brokers)
}

// closedHint is added to the advice for a broker that keeps closing the
// connection: a listener that requires TLS or SASL closes one without.
func closedHint(cfg *Config, err error) string {
	closed := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	if !closed || (cfg.TLS.Enabled && cfg.SASL.Mechanism != "") {
		return ""
	}
	return "; a listener that requires TLS or SASL closes the connection of a client without them: check kafka.tls and kafka.sasl against the listener (SSL, SASL_SSL)"
}
