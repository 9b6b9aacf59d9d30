package config

import (
	"os"
	"slices"
	"strings"
)

// KafkaTLS is kafka.tls: encryption of the links to the brokers and how
// their certificates are checked.
type KafkaTLS struct {
	// Enabled turns TLS on. Default: on when any other key of kafka.tls is
	// set, else off (plaintext).
	Enabled *bool `yaml:"enabled"`
	// CAFile is a PEM file of the CAs that may sign the brokers'
	// certificates. Default: the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its unencrypted
	// key, for brokers that ask for one (ssl.client.auth). Both or neither.
	// Default none.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name the brokers' certificates must carry. Default:
	// the host of each broker's address.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any broker certificate: for tests only,
	// since anyone on the path could then read and write the changelog.
	// Default false.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// On reports whether TLS is used: enabled, or any other key set.
func (t KafkaTLS) On() bool {
	if t.Enabled != nil {
		return *t.Enabled
	}
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify
}

// KafkaSASL is kafka.sasl: how rowcast authenticates to the brokers.
type KafkaSASL struct {
	// Mechanism is plain, scram-sha-256 or scram-sha-512. Default none (no
	// SASL). plain needs kafka.tls: it sends the password as it is.
	Mechanism string `yaml:"mechanism"`
	// Username is the SASL user. Required with a mechanism.
	Username string `yaml:"username"`
	// PasswordEnv names the environment variable that holds the password.
	// Either it or Password is required with a mechanism.
	PasswordEnv string `yaml:"password_env"`
	// Password is the password itself; write `password: ${VAR}` to take it
	// from the environment.
	Password string `yaml:"password"`

	envPassword string // PasswordEnv's value, read by Parse
	envSet      bool   // PasswordEnv's variable is set and not empty
}

// SASL mechanisms as written in kafka.sasl.mechanism.
var saslMechanisms = []string{"plain", "scram-sha-256", "scram-sha-512"}

// readPassword reads the variable PasswordEnv names.
func (s *KafkaSASL) readPassword(lookup func(string) (string, bool)) {
	if s.PasswordEnv == "" {
		return
	}
	v, ok := lookup(s.PasswordEnv)
	s.envPassword, s.envSet = v, ok && v != ""
}

// password is the password from PasswordEnv's variable or Password.
func (s KafkaSASL) password() string {
	if s.PasswordEnv != "" {
		return s.envPassword
	}
	return s.Password
}

// validateSecurity checks kafka.tls and kafka.sasl.
func (k Kafka) validateSecurity(add addFunc) {
	if k.TLS.On() {
		k.TLS.validate(add)
	}
	k.SASL.validate(add)
	if strings.EqualFold(k.SASL.Mechanism, "plain") && !k.TLS.On() {
		add("kafka.sasl.mechanism: plain sends the password in clear without TLS; add kafka.tls (the brokers' SASL_SSL listener) or use scram-sha-512")
	}
}

// validate checks that the TLS files exist and go together.
func (t KafkaTLS) validate(add addFunc) {
	if (t.CertFile == "") != (t.KeyFile == "") {
		add("kafka.tls.cert_file and kafka.tls.key_file go together: give both (a client certificate and its key) or neither")
	}
	for _, f := range []struct{ key, path, what string }{
		{"ca_file", t.CAFile, "the PEM certificate of the CA that signed the brokers' certificates"},
		{"cert_file", t.CertFile, "the PEM client certificate"},
		{"key_file", t.KeyFile, "the client certificate's PEM private key"},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			add("kafka.tls.%s: %v; give %s", f.key, err, f.what)
		}
	}
}

// validate checks the mechanism and that the credentials are complete.
func (s KafkaSASL) validate(add addFunc) {
	if s.Mechanism == "" {
		if s.Username != "" || s.Password != "" || s.PasswordEnv != "" {
			add("kafka.sasl.mechanism: required with a username or password; use %s", strings.Join(saslMechanisms, ", "))
		}
		return
	}
	if !slices.Contains(saslMechanisms, strings.ToLower(s.Mechanism)) {
		add("kafka.sasl.mechanism: %q; use %s", s.Mechanism, strings.Join(saslMechanisms, ", "))
	}
	if s.Username == "" {
		add("kafka.sasl.username: required with kafka.sasl.mechanism")
	}
	s.validatePassword(add)
}

// validatePassword checks that exactly one password source is given and
// that its variable is set.
func (s KafkaSASL) validatePassword(add addFunc) {
	switch {
	case s.PasswordEnv != "" && s.Password != "":
		add("kafka.sasl: password and password_env both given; keep one")
	case s.PasswordEnv != "" && !s.envSet:
		add("kafka.sasl.password_env: environment variable %s is not set or empty; export it with the password", s.PasswordEnv)
	case s.PasswordEnv == "" && s.Password == "":
		add("kafka.sasl.password_env: required with kafka.sasl.mechanism; name the environment variable that holds the password (or write password: ${VAR})")
	}
}
