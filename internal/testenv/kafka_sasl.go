package testenv

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// KafkaSASL is the local stack's second Kafka listener, SASL_SSL: TLS with a
// certificate of the stack's own CA, and one user for SASL PLAIN,
// SCRAM-SHA-256 and SCRAM-SHA-512 (scripts/lib/kafka.sh).
type KafkaSASL struct {
	// Brokers is the listener's address.
	Brokers []string
	// CAFile is the PEM certificate of the CA that signed the broker's.
	CAFile string
	// CertFile and KeyFile are a client certificate of the same CA.
	CertFile, KeyFile string
	// User and Password are the SASL credentials.
	User, Password string
}

// KafkaSASLAdvice is what a test says when the SASL_SSL listener does not
// answer.
const KafkaSASLAdvice = "the local stack's Kafka has no SASL_SSL listener there: restart Kafka with the current scripts " +
	"(`scripts/stack stop kafka && scripts/stack start kafka`) and `eval \"$(scripts/stack env)\"`, " +
	"or point ROWCAST_KAFKA_SASL_PORT, ROWCAST_KAFKA_CA_FILE, ROWCAST_KAFKA_SASL_USER and ROWCAST_KAFKA_SASL_PASSWORD at a SASL_SSL listener"

// NeedKafkaSASL returns the SASL_SSL listener, after checking that it
// accepts connections and that its CA file exists. Like Need, it fails the
// test otherwise (skips it with ROWCAST_ALLOW_SKIP=1 outside CI).
func NeedKafkaSASL(t testing.TB) KafkaSASL {
	t.Helper()
	k := kafkaSASL()
	err := probeKafkaSASL(k)
	if err == nil {
		return k
	}
	msg := fmt.Sprintf("kafka SASL_SSL listener at %s: %v: %s", k.Brokers[0], err, KafkaSASLAdvice)
	if os.Getenv("ROWCAST_ALLOW_SKIP") == "1" && !InCI() {
		t.Skip(msg)
	}
	t.Fatal(msg)
	return k
}

// kafkaSASL reads the listener's settings from the environment that
// `scripts/stack env` prints, with the stack's defaults.
func kafkaSASL() KafkaSASL {
	tlsDir := filepath.Join(stateDir(), "kafka", "tls")
	return KafkaSASL{
		Brokers:  []string{net.JoinHostPort(Host(), kafkaSASLPort())},
		CAFile:   env("ROWCAST_KAFKA_CA_FILE", filepath.Join(tlsDir, "ca.pem")),
		CertFile: env("ROWCAST_KAFKA_CLIENT_CERT", filepath.Join(tlsDir, "client.pem")),
		KeyFile:  env("ROWCAST_KAFKA_CLIENT_KEY", filepath.Join(tlsDir, "client.key")),
		User:     env("ROWCAST_KAFKA_SASL_USER", "rowcast"),
		Password: env("ROWCAST_KAFKA_SASL_PASSWORD", "rowcast-kafka"),
	}
}

// kafkaSASLPort is ROWCAST_KAFKA_SASL_PORT, or the Kafka port plus 10 as in
// scripts/lib/kafka.sh.
func kafkaSASLPort() string {
	if p := os.Getenv("ROWCAST_KAFKA_SASL_PORT"); p != "" {
		return p
	}
	n, err := strconv.Atoi(port("kafka"))
	if err != nil {
		return "9102"
	}
	return strconv.Itoa(n + 10)
}

// stateDir is ROWCAST_STATE_DIR, or the .stack directory of the module the
// test runs in.
func stateDir() string {
	if d := os.Getenv("ROWCAST_STATE_DIR"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	for err == nil {
		if _, serr := os.Stat(filepath.Join(dir, "go.mod")); serr == nil {
			return filepath.Join(dir, ".stack")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return ".stack"
}

// probeKafkaSASL checks the listener's port and CA file, once per process.
func probeKafkaSASL(k KafkaSASL) error {
	probeMu.Lock()
	defer probeMu.Unlock()
	if err, done := probed["kafka_sasl"]; done {
		return err
	}
	c, err := net.DialTimeout("tcp", k.Brokers[0], 2*time.Second)
	if err == nil {
		c.Close()
		_, err = os.Stat(k.CAFile)
	}
	probed["kafka_sasl"] = err
	return err
}
