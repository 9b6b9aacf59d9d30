package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rowcast/rowcast/changelog"
)

// kafkaSecurityYAML is componentsYAML with kafka's tls and sasl sections.
func kafkaSecurityYAML(t *testing.T, tls, sasl string) string {
	t.Helper()
	return strings.Replace(componentsYAML, "compression: zstd}", "compression: zstd, tls: {"+tls+"}, sasl: {"+sasl+"}}", 1)
}

// pemFiles writes three files that stand for a CA, a certificate and a key
// (Parse checks that they exist; their content is changelog's to check).
func pemFiles(t *testing.T) (ca, cert, key string) {
	dir := t.TempDir()
	for _, name := range []string{"ca.pem", "client.pem", "client.key"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("pem"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
}

// TestKafkaSecurityMapping: kafka.tls and kafka.sasl reach the changelog
// config, the password from the variable password_env names or from a
// ${VAR} expansion, the mechanism by its Kafka name.
func TestKafkaSecurityMapping(t *testing.T) {
	ca, cert, key := pemFiles(t)
	env := func(name string) (string, bool) { return map[string]string{"KPW": "s3cret #1"}[name], name == "KPW" }
	tls := "ca_file: " + ca + ", cert_file: " + cert + ", key_file: " + key + ", server_name: kafka.internal"
	for _, sasl := range []string{"mechanism: scram-sha-512, username: rc, password_env: KPW", `mechanism: SCRAM-SHA-512, username: rc, password: "${KPW}"`} {
		cfg, err := Parse([]byte(kafkaSecurityYAML(t, tls, sasl)), env)
		if err != nil {
			t.Fatalf("%s: %v", sasl, err)
		}
		kc := cfg.ChangelogConfig()
		wantTLS := changelog.TLS{Enabled: true, CAFile: ca, CertFile: cert, KeyFile: key, ServerName: "kafka.internal"}
		wantSASL := changelog.SASL{Mechanism: changelog.SASLScramSHA512, Username: "rc", Password: "s3cret #1"}
		if kc.TLS != wantTLS || kc.SASL != wantSASL {
			t.Errorf("%s:\n got %+v %+v\nwant %+v %+v", sasl, kc.TLS, kc.SASL, wantTLS, wantSASL)
		}
	}
	cfg, err := Parse([]byte(kafkaSecurityYAML(t, "enabled: false, ca_file: /nowhere", "")), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if kc := cfg.ChangelogConfig(); kc.TLS != (changelog.TLS{}) || kc.SASL != (changelog.SASL{}) {
		t.Errorf("tls turned off, no sasl: %+v %+v", kc.TLS, kc.SASL)
	}
	cfg, err = Parse([]byte(kafkaSecurityYAML(t, "enabled: true", "")), noEnv)
	if err != nil || cfg.ChangelogConfig().TLS != (changelog.TLS{Enabled: true}) {
		t.Errorf("tls with the system's roots: %v", err)
	}
}

// TestKafkaSecurityValidate: incomplete or unsafe settings are refused,
// naming the key and the fix.
func TestKafkaSecurityValidate(t *testing.T) {
	ca, cert, _ := pemFiles(t)
	cases := []struct{ tls, sasl, want string }{
		{"ca_file: /nowhere/ca.pem", "", "kafka.tls.ca_file: stat /nowhere/ca.pem"},
		{"cert_file: " + cert, "", "kafka.tls.cert_file and kafka.tls.key_file go together"},
		{"", "mechanism: plain, username: rc, password_env: KPW", "plain sends the password in clear without TLS"},
		{"ca_file: " + ca, "mechanism: gssapi, username: rc, password_env: KPW", `kafka.sasl.mechanism: "gssapi"; use plain, scram-sha-256, scram-sha-512`},
		{"ca_file: " + ca, "mechanism: scram-sha-256, password_env: KPW", "kafka.sasl.username: required"},
		{"ca_file: " + ca, "mechanism: scram-sha-256, username: rc", "kafka.sasl.password_env: required"},
		{"ca_file: " + ca, "mechanism: scram-sha-256, username: rc, password_env: UNSET_VAR", "environment variable UNSET_VAR is not set"},
		{"ca_file: " + ca, "mechanism: scram-sha-256, username: rc, password_env: KPW, password: x", "password and password_env both given"},
		{"", "username: rc, password: x", "kafka.sasl.mechanism: required with a username or password"},
	}
	env := func(name string) (string, bool) { return "pw", name == "KPW" }
	for _, c := range cases {
		_, err := Parse([]byte(kafkaSecurityYAML(t, c.tls, c.sasl)), env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("tls {%s} sasl {%s}: %v, want it to say %q", c.tls, c.sasl, err, c.want)
		}
	}
}
