package config

import (
	"fmt"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/rowcast/rowcast/changelog"
)

// DefaultSigningKeyEnv is where the changelog signing key is read from
// unless kafka.signing.key_env names another variable.
const DefaultSigningKeyEnv = "ROWCAST_SIGNING_KEY"

// Signing is kafka.signing: the key every message of the changelog is signed
// with (HMAC-SHA256), and the previous key, still accepted while a rotation
// is under way. Signing is on unless the file says `signing: off`: without a
// key in the environment every command that touches the topic refuses to
// start. docs/SECURITY.md, "Signed changelog".
type Signing struct {
	// Off turns signing and checking off (`signing: off`): sinks then apply
	// whatever anyone with write access to the topic writes.
	Off bool
	// KeyEnv names the environment variable holding the current key (at
	// least 16 bytes; e.g. `openssl rand -hex 32`). Default
	// ROWCAST_SIGNING_KEY.
	KeyEnv string `yaml:"key_env"`
	// PreviousKeyEnv names the variable holding the key being rotated out:
	// messages it signed still verify. Default: none.
	PreviousKeyEnv string `yaml:"previous_key_env"`
	// TrustUnsignedBefore lets messages below this offset pass unsigned: a
	// topic written before signing was turned on. Default 0: none.
	TrustUnsignedBefore int64 `yaml:"trust_unsigned_before"`
}

// signingFields is Signing as the YAML mapping writes it.
type signingFields struct {
	KeyEnv              string `yaml:"key_env"`
	PreviousKeyEnv      string `yaml:"previous_key_env"`
	TrustUnsignedBefore int64  `yaml:"trust_unsigned_before"`
}

// UnmarshalYAML takes `off` or a mapping of key_env, previous_key_env and
// trust_unsigned_before; any other field is an error.
func (s *Signing) UnmarshalYAML(n *yaml.Node) error {
	var word string
	if n.Kind == yaml.ScalarNode && n.Decode(&word) == nil {
		if word != "off" {
			return fmt.Errorf("line %d: kafka.signing: %q; write off, or a mapping with key_env", n.Line, word)
		}
		*s = Signing{Off: true}
		return nil
	}
	if err := knownKeys(n, "key_env", "previous_key_env", "trust_unsigned_before"); err != nil {
		return err
	}
	var f signingFields
	if err := n.Decode(&f); err != nil {
		return err
	}
	*s = Signing{KeyEnv: f.KeyEnv, PreviousKeyEnv: f.PreviousKeyEnv, TrustUnsignedBefore: f.TrustUnsignedBefore}
	return nil
}

// knownKeys refuses a mapping field that is not one of names: a typo never
// passes silently.
func knownKeys(n *yaml.Node, names ...string) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: kafka.signing: want off or a mapping", n.Line)
	}
	for i := 0; i < len(n.Content); i += 2 {
		k := n.Content[i]
		if !contains(names, k.Value) {
			return fmt.Errorf("line %d: kafka.signing: unknown field %q", k.Line, k.Value)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (s *Signing) setDefaults() {
	if !s.Off {
		setDefault(&s.KeyEnv, DefaultSigningKeyEnv)
	}
}

func (s Signing) validate(add addFunc) {
	if s.TrustUnsignedBefore < 0 {
		add("kafka.signing.trust_unsigned_before: %d; use the first offset written with signing on, or leave it out", s.TrustUnsignedBefore)
	}
	if s.KeyEnv != "" && s.KeyEnv == s.PreviousKeyEnv {
		add("kafka.signing: key_env and previous_key_env are both %s; name the rotated-out key's variable in previous_key_env", s.KeyEnv)
	}
}

// keys reads the keys from the environment. An unset or short current key
// is an error with the fix; nil, nil when signing is off.
func (s Signing) keys() (*changelog.SigningKeys, error) {
	if s.Off {
		return nil, nil
	}
	cur := os.Getenv(s.KeyEnv)
	if cur == "" {
		return nil, fmt.Errorf("kafka.signing: environment variable %s is empty: export the changelog signing key "+
			"(e.g. %s=$(openssl rand -hex 32), the same for every rowcast process of the cluster), "+
			"or write `kafka: {signing: off}` to run without signatures (docs/SECURITY.md)", s.KeyEnv, s.KeyEnv)
	}
	var prev []byte
	if s.PreviousKeyEnv != "" {
		prev = []byte(os.Getenv(s.PreviousKeyEnv))
	}
	k, err := changelog.NewSigningKeys([]byte(cur), prev)
	if err != nil {
		return nil, fmt.Errorf("kafka.signing (%s, %s): %w", s.KeyEnv, s.PreviousKeyEnv, err)
	}
	k.TrustBefore = s.TrustUnsignedBefore
	return k, nil
}
