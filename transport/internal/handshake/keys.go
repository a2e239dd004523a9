package handshake

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"

	"golang.org/x/crypto/curve25519"
)

// KeySize is the size of X25519 private and public keys.
const KeySize = 32

// PrivateKey is a clamped X25519 scalar.
type PrivateKey [KeySize]byte

// PublicKey is an X25519 public key (a Montgomery u-coordinate).
type PublicKey [KeySize]byte

// GenerateKey returns a new private key from crypto/rand.
func GenerateKey() (PrivateKey, error) { return generateKey(rand.Reader) }

func generateKey(r io.Reader) (PrivateKey, error) {
	var k PrivateKey
	if _, err := io.ReadFull(r, k[:]); err != nil {
		return PrivateKey{}, fmt.Errorf("generate key: %w", err)
	}
	k.clamp()
	return k, nil
}

// clamp applies the RFC 7748 clamping so the stored scalar is exactly the one
// X25519 uses; String then round-trips to the same key on every
// implementation.
func (k *PrivateKey) clamp() {
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
}

// Public returns the public key of k.
func (k PrivateKey) Public() PublicKey {
	var p PublicKey
	curve25519.ScalarBaseMult((*[32]byte)(&p), (*[32]byte)(&k))
	return p
}

// dhKey is a private key prepared for X25519. crypto/ecdh computes the
// public key (a full scalar multiplication) whenever a private key is built
// from bytes, and x/crypto's curve25519.X25519 builds one on every call, so
// each DH through it cost two multiplications. A key used more than once —
// a static key, or an ephemeral whose public key is sent and which then
// takes part in two DHs — is prepared once and reused: the responder does
// five multiplications per handshake instead of nine (four with a cached
// static-static DH, see staticCache).
//
// Secrets: crypto/ecdh keeps its own copy of the scalar, which this
// package cannot wipe; it becomes garbage when the dhKey does (as the
// copies curve25519.X25519 made did). Our own copies are still cleared.
type dhKey struct{ k *ecdh.PrivateKey }

func newDHKey(k *PrivateKey) (dhKey, error) {
	p, err := ecdh.X25519().NewPrivateKey(k[:])
	if err != nil { // only in FIPS 140-only mode, which forbids X25519
		return dhKey{}, fmt.Errorf("x25519 key: %w", err)
	}
	return dhKey{p}, nil
}

// public returns the public key; computing it was part of newDHKey.
func (d dhKey) public() PublicKey {
	var p PublicKey
	copy(p[:], d.k.PublicKey().Bytes())
	return p
}

// IsZero reports whether k is the zero key (an unset config field).
func (k PrivateKey) IsZero() bool {
	var z PrivateKey
	return subtle.ConstantTimeCompare(k[:], z[:]) == 1
}

// IsZero reports whether k is the zero key.
func (k PublicKey) IsZero() bool { return k == PublicKey{} }

// String returns k in standard base64. It is the secret itself: do not log it.
func (k PrivateKey) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// String returns k in standard base64.
func (k PublicKey) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// ParsePrivateKey decodes a base64 private key and clamps it.
func ParsePrivateKey(s string) (PrivateKey, error) {
	var k PrivateKey
	if err := decodeKey(s, k[:]); err != nil {
		return PrivateKey{}, fmt.Errorf("parse private key: %w", err)
	}
	k.clamp()
	return k, nil
}

// ParsePublicKey decodes a base64 public key.
func ParsePublicKey(s string) (PublicKey, error) {
	var k PublicKey
	if err := decodeKey(s, k[:]); err != nil {
		return PublicKey{}, fmt.Errorf("parse public key: %w", err)
	}
	return k, nil
}

func decodeKey(s string, dst []byte) error {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	if len(b) != len(dst) {
		return fmt.Errorf("got %d bytes, want %d", len(b), len(dst))
	}
	copy(dst, b)
	return nil
}
