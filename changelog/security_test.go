package changelog

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rowcast/rowcast/internal/testenv"
)

// saslConfig is a config for the local stack's SASL_SSL listener with the
// given mechanism, its CA and its user.
func saslConfig(k testenv.KafkaSASL, topic, mechanism string) Config {
	return Config{Brokers: k.Brokers, Topic: topic,
		TLS:  TLS{Enabled: true, CAFile: k.CAFile},
		SASL: SASL{Mechanism: mechanism, Username: k.User, Password: k.Password}}
}

// TestKafkaSASLMechanisms creates a topic, produces and reads it back
// through the SASL_SSL listener with each mechanism (and once with a client
// certificate as well).
func TestKafkaSASLMechanisms(t *testing.T) {
	k := testenv.NeedKafkaSASL(t)
	topic := testenv.UniqueName(t, "rc")
	t.Cleanup(func() { testenv.DeleteTopic(t, topic) })
	ctx := context.Background()
	cfg := saslConfig(k, topic, SASLScramSHA512)
	if created, err := EnsureTopic(ctx, cfg); err != nil || !created {
		t.Fatalf("EnsureTopic over SASL_SSL: created %v, %v", created, err)
	}
	cert := saslConfig(k, topic, SASLPlain)
	cert.TLS.CertFile, cert.TLS.KeyFile = k.CertFile, k.KeyFile
	for i, cfg := range []Config{saslConfig(k, topic, SASLPlain), saslConfig(k, topic, SASLScramSHA256), cfg, cert} {
		produceN(t, cfg, i*10, 10)
		msgs, err := ReadAt(ctx, cfg, int64(i*10), 100)
		if err != nil {
			t.Fatalf("%s: ReadAt: %v", cfg.SASL.Mechanism, err)
		}
		if len(msgs) != 10 || string(msgs[9].Key) != string(mustKey(i*10+9)) {
			t.Fatalf("%s: read %d messages back, want 10 ending with key %s", cfg.SASL.Mechanism, len(msgs), mustKey(i*10+9))
		}
	}
}

func mustKey(i int) []byte { k, _ := testKV(i); return k }

// TestKafkaSASLWrongPassword: a wrong password is an error at once (not
// after the retries), naming the broker, the mechanism, the user and the
// fix, for the one-shot helpers and for a consumer.
func TestKafkaSASLWrongPassword(t *testing.T) {
	k := testenv.NeedKafkaSASL(t)
	for _, mech := range []string{SASLPlain, SASLScramSHA512} {
		cfg := saslConfig(k, "rowcast.wrong", mech)
		cfg.SASL.Password = "not-" + k.Password
		start := time.Now()
		_, err := EndOffset(context.Background(), cfg)
		if !errors.Is(err, ErrKafkaAuth) || time.Since(start) > 10*time.Second {
			t.Fatalf("%s with a wrong password: %v after %v, want ErrKafkaAuth at once", mech, err, time.Since(start))
		}
		assertSays(t, err, k.Brokers[0], mech, `user "`+k.User+`"`, "SASL Authentication Failed", "check kafka.sasl.username")
		t.Logf("%s: %v", mech, err)

		c := newTestConsumer(t, cfg, 0, testLogger(t))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = c.Next(ctx)
		cancel()
		c.Close()
		if !errors.Is(err, ErrKafkaAuth) {
			t.Fatalf("%s: consumer with a wrong password: %v, want ErrKafkaAuth", mech, err)
		}
	}
}

// TestKafkaTLSVerify: a broker certificate of an unknown CA, or not valid
// for the server name, is refused at once with the fix, unless
// InsecureSkipVerify says otherwise.
func TestKafkaTLSVerify(t *testing.T) {
	k := testenv.NeedKafkaSASL(t)
	ctx := context.Background()
	cfg := saslConfig(k, "rowcast.tls", SASLScramSHA512)
	cfg.TLS.CAFile = ""
	_, err := EndOffset(ctx, cfg)
	if !errors.Is(err, ErrKafkaAuth) {
		t.Fatalf("system roots only: %v, want ErrKafkaAuth", err)
	}
	assertSays(t, err, "TLS handshake with kafka broker "+k.Brokers[0], "certificate signed by unknown authority", "set kafka.tls.ca_file")
	t.Logf("unknown CA: %v", err)

	cfg.TLS.CAFile, cfg.TLS.ServerName = k.CAFile, "kafka.example.com"
	_, err = EndOffset(ctx, cfg)
	if !errors.Is(err, ErrKafkaAuth) {
		t.Fatalf("wrong server name: %v, want ErrKafkaAuth", err)
	}
	assertSays(t, err, `not valid for "kafka.example.com"`, "kafka.tls.server_name")

	cfg.TLS = TLS{Enabled: true, InsecureSkipVerify: true}
	if _, err := EndOffset(ctx, cfg); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("insecure_skip_verify: %v, want the topic's absence (the link works)", err)
	}
}

// TestKafkaPlaintextAtTLSListener: a client without TLS at a TLS listener
// gets, once its retries run out, advice naming kafka.tls.
func TestKafkaPlaintextAtTLSListener(t *testing.T) {
	k := testenv.NeedKafkaSASL(t)
	cfg := Config{Brokers: k.Brokers, Topic: "rowcast.plain", RequestTimeout: 2 * time.Second, FetchMaxWait: time.Second}
	_, err := EndOffset(context.Background(), cfg)
	if err == nil {
		t.Fatal("a plaintext client read a TLS listener")
	}
	assertSays(t, err, "check kafka.tls and kafka.sasl")
}

// TestKafkaSecurityValidate: files that do not load and incomplete settings
// are refused by Validate, naming the field and the fix.
func TestKafkaSecurityValidate(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		tls  TLS
		sasl SASL
		want string
	}{
		{TLS{Enabled: true, CAFile: filepath.Join(dir, "missing.pem")}, SASL{}, "TLS.CAFile: open"},
		{TLS{Enabled: true, CAFile: notPEM}, SASL{}, "holds no PEM certificate"},
		{TLS{Enabled: true, CertFile: notPEM}, SASL{}, "CertFile and KeyFile go together"},
		{TLS{Enabled: true, CertFile: notPEM, KeyFile: notPEM}, SASL{}, "give a PEM certificate and its unencrypted private key"},
		{TLS{CAFile: notPEM}, SASL{}, "TLS.Enabled is false"},
		{TLS{}, SASL{Mechanism: "GSSAPI", Username: "u", Password: "p"}, `SASL.Mechanism "GSSAPI" is not supported`},
		{TLS{}, SASL{Mechanism: SASLScramSHA512, Username: "u"}, "Username and Password are required"},
		{TLS{}, SASL{Username: "u", Password: "p"}, "credentials given without a mechanism"},
	}
	for _, c := range cases {
		cfg := Config{Brokers: []string{"127.0.0.1:9092"}, Topic: "t", TLS: c.tls, SASL: c.sasl}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v %+v: %v, want it to say %q", c.tls, c.sasl, err, c.want)
		}
	}
}
