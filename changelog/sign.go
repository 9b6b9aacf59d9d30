package changelog

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"sync"

	"github.com/segmentio/kafka-go"
)

// Signing: every message the reader and promote write carries an
// HMAC-SHA256 in a record header, over the topic, its key and its value
// (which holds its position); readers that have the keys check it.
// docs/FORMAT.md, "Signature", and docs/DESIGN.md, "The topic is a trust
// boundary".

// SigHeader is the name of the record header that carries a message's
// signature.
const SigHeader = "rowcast-sig"

// sigVersion starts the header's value (as a byte) and the MAC's input, so
// that a later scheme cannot be confused with this one.
const sigVersion = "1"

// sigScheme is the header value's first byte.
const sigScheme = 1

// minKeyBytes is the shortest key accepted: HMAC-SHA256 keys should carry at
// least 128 bits.
const minKeyBytes = 16

// Errors of the signature check, wrapped in Message.SigErr.
var (
	// ErrUnsigned means a message carries no signature header.
	ErrUnsigned = errors.New("message is not signed")
	// ErrBadSignature means a message's signature does not match its
	// content, or was made with a key that is not configured.
	ErrBadSignature = errors.New("message signature does not verify")
)

// SigningKeys sign and verify changelog messages: Current signs, and a
// message verifies with Current or Previous (so that a key can be rotated
// without a moment in which the sinks refuse what the reader writes). Safe
// for concurrent use.
type SigningKeys struct {
	current, previous *sigKey
	// TrustBefore lets messages below this offset pass unsigned: the history
	// of a topic written before signing was turned on. 0: none.
	TrustBefore int64
}

type sigKey struct {
	id    [4]byte // from the key itself: tells which key signed
	macs  sync.Pool
	bytes []byte
}

// NewSigningKeys returns keys that sign with current and also accept
// previous (nil: none).
func NewSigningKeys(current, previous []byte) (*SigningKeys, error) {
	if len(current) < minKeyBytes {
		return nil, fmt.Errorf("signing key has %d bytes, want at least %d: make one with `openssl rand -hex 32`", len(current), minKeyBytes)
	}
	k := &SigningKeys{current: newSigKey(current)}
	if len(previous) > 0 {
		if len(previous) < minKeyBytes {
			return nil, fmt.Errorf("previous signing key has %d bytes, want at least %d", len(previous), minKeyBytes)
		}
		k.previous = newSigKey(previous)
	}
	return k, nil
}

func newSigKey(b []byte) *sigKey {
	k := &sigKey{bytes: append([]byte(nil), b...)}
	sum := sha256.Sum256(append([]byte("rowcast key id\x00"), b...))
	copy(k.id[:], sum[:4])
	k.macs.New = func() any { return &macState{h: hmac.New(sha256.New, k.bytes)} }
	return k
}

// KeyID is the id of the signing key, as the header names it.
func (k *SigningKeys) KeyID() string { return hex.EncodeToString(k.current.id[:]) }

// sigValueLen is the length of a header value: the scheme's byte, the key
// id and the MAC, binary: the MAC does not compress, so every byte of it
// counts in the topic.
const sigValueLen = 1 + 4 + sha256.Size

// sigHeaderLen is the encoded size of a record's header section holding the
// signature alone: the header count, the name's and the value's lengths
// (varints of one byte each) and their bytes.
var sigHeaderLen = 1 + 1 + len(SigHeader) + 1 + sigValueLen

// Sign appends the signature header's value for a message of topic to dst.
func (k *SigningKeys) Sign(dst []byte, topic string, key, value []byte) []byte {
	st := k.current.get()
	defer k.current.macs.Put(st)
	sum := st.mac(topic, key, value)
	dst = append(dst, sigScheme)
	dst = append(dst, k.current.id[:]...)
	return append(dst, sum...)
}

// Verify checks sig, the signature header's value of the message at offset
// (nil when it has none).
func (k *SigningKeys) Verify(topic string, offset int64, key, value, sig []byte) error {
	if sig == nil {
		if offset < k.TrustBefore {
			return nil
		}
		return ErrUnsigned
	}
	if len(sig) != sigValueLen || sig[0] != sigScheme {
		return fmt.Errorf("%w: malformed %s header", ErrBadSignature, SigHeader)
	}
	id := sig[1:5]
	sk := k.byID(id)
	if sk == nil {
		return fmt.Errorf("%w: signed with key %x, which is neither the current (%x) nor the previous key", ErrBadSignature, id, k.current.id)
	}
	st := sk.get()
	defer sk.macs.Put(st)
	if !hmac.Equal(st.mac(topic, key, value), sig[5:]) {
		return fmt.Errorf("%w: key %x", ErrBadSignature, id)
	}
	return nil
}

func (k *SigningKeys) byID(id []byte) *sigKey {
	switch {
	case string(id) == string(k.current.id[:]):
		return k.current
	case k.previous != nil && string(id) == string(k.previous.id[:]):
		return k.previous
	}
	return nil
}

// macState is one HMAC in use, with scratch space, so that signing and
// checking allocate nothing.
type macState struct {
	h    hash.Hash
	head []byte // the input's head: domain, topic and their lengths
	sum  [sha256.Size]byte
}

func (k *sigKey) get() *macState { return k.macs.Get().(*macState) }

// mac is the HMAC of a message. The input frames each part with its
// length, so that bytes cannot move from the key to the value.
func (st *macState) mac(topic string, key, value []byte) []byte {
	st.h.Reset()
	st.head = append(st.head[:0], sigDomain...)
	st.head = binary.BigEndian.AppendUint64(st.head, uint64(len(topic)))
	st.head = append(st.head, topic...)
	st.head = binary.BigEndian.AppendUint64(st.head, uint64(len(key)))
	st.h.Write(st.head)
	st.h.Write(key)
	st.head = binary.BigEndian.AppendUint64(st.head[:0], uint64(len(value)))
	st.h.Write(st.head)
	st.h.Write(value)
	return st.h.Sum(st.sum[:0])
}

// sigDomain starts every MAC's input.
var sigDomain = []byte("rowcast-sig-v" + sigVersion + "\x00")

// verify checks m's signature among its record headers, when c has keys.
func (c *Config) verify(m *Message, headers []kafka.Header) error {
	if c.Signing == nil {
		return nil
	}
	return c.verifySig(m, sigHeader(headers))
}

// sigHeader is the value of the signature header, nil when there is none
// (an empty one is not nil).
func sigHeader(headers []kafka.Header) []byte {
	var sig []byte
	for _, h := range headers {
		if h.Key == SigHeader {
			sig = h.Value
			if sig == nil {
				sig = []byte{}
			}
		}
	}
	return sig
}

// ErrNotVerified is the SigErr of a message whose check was deferred
// (Config.DeferVerify) and not yet run by Consumer.Verify.
var ErrNotVerified = errors.New("message signature not checked yet")

// Verify runs the deferred signature check of m, which c returned, and sets
// its SigErr; safe from any goroutine, once per message.
func (c *Consumer) Verify(m *Message) {
	if !errors.Is(m.SigErr, ErrNotVerified) {
		return
	}
	m.SigErr = c.cfg.verifySig(m, m.sig)
	m.sig = nil
}

func (c *Config) verifySig(m *Message, sig []byte) error {
	if err := c.Signing.Verify(c.Topic, m.Offset, m.Key, m.Value, sig); err != nil {
		return fmt.Errorf("changelog offset %d: %w", m.Offset, err)
	}
	return nil
}
