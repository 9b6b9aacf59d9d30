package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/rowcast/rowcast/changelog"
)

const signingBase = "cluster: shop\nmaster: db1\nnodes:\n  - {name: db1, dsn: 'u:p@tcp(h:1)/'}\n  - {name: db2, dsn: 'u:p@tcp(h:2)/'}\n"

// Signing is on by default and fails closed without a key; `off` turns it
// off; the key and the previous key come from the variables named.
func TestSigningConfig(t *testing.T) {
	t.Setenv(DefaultSigningKeyEnv, "")
	cfg, err := Parse([]byte(signingBase+"kafka: {brokers: ['k:9092']}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	kc := cfg.ChangelogConfig()
	if kc.Signing != nil || kc.SigningErr == nil || !strings.Contains(kc.Validate().Error(), "ROWCAST_SIGNING_KEY is empty") {
		t.Errorf("no key: signing %v, error %v", kc.Signing, kc.Validate())
	}

	cfg, err = Parse([]byte(signingBase+"kafka: {brokers: ['k:9092'], signing: off}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if kc := cfg.ChangelogConfig(); kc.Signing != nil || kc.Validate() != nil {
		t.Errorf("signing off: keys %v, validate %v", kc.Signing, kc.Validate())
	}

	t.Setenv("K_NEW", "new-key-0123456789abcdef")
	t.Setenv("K_OLD", "old-key-0123456789abcdef")
	cfg, err = Parse([]byte(signingBase+"kafka: {brokers: ['k:9092'], signing: {key_env: K_NEW, previous_key_env: K_OLD, trust_unsigned_before: 7}}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	kc = cfg.ChangelogConfig()
	if kc.Signing == nil || kc.SigningErr != nil || kc.Signing.TrustBefore != 7 {
		t.Fatalf("keys: %v, %v", kc.Signing, kc.SigningErr)
	}
	old, _ := changelog.NewSigningKeys([]byte("old-key-0123456789abcdef"), nil)
	sig := old.Sign(nil, "t", []byte("k"), []byte("v"))
	if err := kc.Signing.Verify("t", 9, []byte("k"), []byte("v"), sig); err != nil {
		t.Errorf("a message of the previous key: %v", err)
	}
	if err := kc.Signing.Verify("t", 9, []byte("k"), []byte("v"), nil); !errors.Is(err, changelog.ErrUnsigned) {
		t.Errorf("unsigned message: %v", err)
	}
}

// TestSigningConfigRefused: a typo or an impossible setting of
// kafka.signing is an error, never ignored.
func TestSigningConfigRefused(t *testing.T) {
	for _, bad := range []string{"signing: on", "signing: {key: abc}", "signing: {key_env: A, previous_key_env: A}", "signing: {trust_unsigned_before: -1}"} {
		if _, err := Parse([]byte(signingBase+"kafka: {brokers: ['k:9092'], "+bad+"}\n"), noEnv); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}
