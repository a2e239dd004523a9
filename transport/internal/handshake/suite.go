package handshake

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// Suite is the AEAD that protects packets after the handshake. The initiator
// chooses it; the handshake messages themselves always use ChaCha20-Poly1305.
// Its numeric value is carried in the initiation payload.
type Suite uint8

// Packet protection suites. Both use 32-byte keys, 12-byte nonces and
// 16-byte tags.
const (
	SuiteAESGCM           Suite = 1 // AES-256-GCM
	SuiteChaCha20Poly1305 Suite = 2 // ChaCha20-Poly1305 (RFC 8439)
)

// String returns the name ParseSuite accepts.
func (s Suite) String() string {
	switch s {
	case SuiteAESGCM:
		return "aes-gcm"
	case SuiteChaCha20Poly1305:
		return "chacha20-poly1305"
	}
	return fmt.Sprintf("suite(%d)", uint8(s))
}

// ParseSuite parses "aes-gcm" or "chacha20-poly1305".
func ParseSuite(name string) (Suite, error) {
	switch name {
	case "aes-gcm":
		return SuiteAESGCM, nil
	case "chacha20-poly1305":
		return SuiteChaCha20Poly1305, nil
	}
	return 0, fmt.Errorf("unknown suite %q (want aes-gcm or chacha20-poly1305)", name)
}

func (s Suite) valid() bool { return s == SuiteAESGCM || s == SuiteChaCha20Poly1305 }

// newAEAD builds the suite's AEAD from a 32-byte key.
func (s Suite) newAEAD(key []byte) (cipher.AEAD, error) {
	switch s {
	case SuiteAESGCM:
		b, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("aes: %w", err)
		}
		a, err := cipher.NewGCM(b)
		if err != nil {
			return nil, fmt.Errorf("gcm: %w", err)
		}
		return a, nil
	case SuiteChaCha20Poly1305:
		a, err := chacha20poly1305.New(key)
		if err != nil {
			return nil, fmt.Errorf("chacha20-poly1305: %w", err)
		}
		return a, nil
	}
	return nil, fmt.Errorf("%w: unknown suite %d", ErrMalformed, uint8(s))
}
