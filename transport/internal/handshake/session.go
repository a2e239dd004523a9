package handshake

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"

	"golang.org/x/crypto/hkdf"
)

// Packet protection parameters shared by both suites.
const (
	aeadKeySize = 32
	ivSize      = 12
	// Overhead is the AEAD tag size added to every sealed packet.
	Overhead = 16
)

// HKDF-Expand info labels for the per-direction key and IV.
const (
	infoKey = "flightline v1 key"
	infoIV  = "flightline v1 iv"
)

// Session holds the packet protection state of one connection: Send seals
// what this side sends and Recv opens what the peer sent, both at key
// generation 0. SendSecret and RecvSecret are the generation-0 secrets the
// key update ratchets from (TrafficSecret.Next); Send and Recv were built
// from them.
type Session struct {
	Suite      Suite
	Send       *Sealer
	Recv       *Opener
	SendSecret *TrafficSecret
	RecvSecret *TrafficSecret
}

// Sealer encrypts outgoing packets under one key generation and counts
// them (the AEAD confidentiality limit is per key). It is not safe for
// concurrent use: one goroutine (the sender) owns it.
type Sealer struct {
	aead   cipher.AEAD
	iv     [ivSize]byte
	nonce  [ivSize]byte // scratch, kept here so Seal does not allocate
	gen    uint64
	sealed uint64
}

// Opener decrypts incoming packets under one key generation and counts
// successes and authentication failures. It is not safe for concurrent
// use: one goroutine (the receiver) owns it.
type Opener struct {
	aead   cipher.AEAD
	iv     [ivSize]byte
	nonce  [ivSize]byte
	gen    uint64
	opened uint64
	failed uint64
}

// Gen is the key generation the sealer protects packets under.
func (s *Sealer) Gen() uint64 { return s.gen }

// Sealed is the number of packets sealed with this key.
func (s *Sealer) Sealed() uint64 { return s.sealed }

// Gen is the key generation the opener accepts.
func (o *Opener) Gen() uint64 { return o.gen }

// Opened is the number of packets that authenticated under this key.
func (o *Opener) Opened() uint64 { return o.opened }

// Failed is the number of packets that failed authentication under this key.
func (o *Opener) Failed() uint64 { return o.failed }

// Overhead returns the number of bytes Seal adds (16).
func (s *Sealer) Overhead() int { return s.aead.Overhead() }

// Overhead returns the number of bytes Open removes (16).
func (o *Opener) Overhead() int { return o.aead.Overhead() }

// Seal encrypts plaintext as packet number pn, authenticating aad (the
// cleartext packet header), and appends ciphertext||tag to dst. The nonce is
// IV XOR pn with pn big-endian in the last 8 bytes, so a packet number must
// never be sealed twice under one Session. To seal in place, pass
// plaintext[:0] as dst with room for Overhead more bytes. It does not
// allocate when dst has enough capacity.
func (s *Sealer) Seal(dst, aad []byte, pn uint64, plaintext []byte) []byte {
	s.sealed++
	makeNonce(&s.nonce, &s.iv, pn)
	return s.aead.Seal(dst, s.nonce[:], plaintext, aad)
}

// Open authenticates and decrypts ciphertext (which includes the tag) as
// packet number pn with aad, appending the plaintext to dst. It returns
// ErrDecrypt (unwrapped, so the failure path does not allocate) when the
// key, pn, aad or ciphertext do not match. To open in place, pass
// ciphertext[:0] as dst. Callers check a ReplayWindow before Open and mark
// it only after Open succeeds.
func (o *Opener) Open(dst, aad []byte, pn uint64, ciphertext []byte) ([]byte, error) {
	makeNonce(&o.nonce, &o.iv, pn)
	out, err := o.aead.Open(dst, o.nonce[:], ciphertext, aad)
	if err != nil {
		o.failed++
		return nil, ErrDecrypt
	}
	o.opened++
	return out, nil
}

func makeNonce(nonce, iv *[ivSize]byte, pn uint64) {
	*nonce = *iv
	x := binary.BigEndian.Uint64(nonce[4:]) ^ pn
	binary.BigEndian.PutUint64(nonce[4:], x)
}

// deriveKeyIV expands one Split() output into a packet key and IV: two
// separate RFC 5869 HKDF-Expand calls with BLAKE2s-256 as the hash, the
// secret as PRK (no Extract step: the secret already is the output of the
// Noise HKDF) and the info labels infoKey and infoIV. Each output is shorter
// than one hash block, so each is the first bytes of
// HMAC-BLAKE2s(secret, info || 0x01).
func deriveKeyIV(secret *[32]byte) (key [aeadKeySize]byte, iv [ivSize]byte, err error) {
	if _, err := io.ReadFull(hkdf.Expand(newBlake2s, secret[:], []byte(infoKey)), key[:]); err != nil {
		return key, iv, fmt.Errorf("derive key: %w", err)
	}
	if _, err := io.ReadFull(hkdf.Expand(newBlake2s, secret[:], []byte(infoIV)), iv[:]); err != nil {
		return key, iv, fmt.Errorf("derive iv: %w", err)
	}
	return key, iv, nil
}

// deriveDirection expands one Split() output into an AEAD and an IV.
func deriveDirection(suite Suite, secret *[32]byte) (cipher.AEAD, [ivSize]byte, error) {
	key, iv, err := deriveKeyIV(secret)
	if err != nil {
		return nil, iv, err
	}
	aead, err := suite.newAEAD(key[:])
	clear(key[:])
	if err != nil {
		return nil, iv, err
	}
	return aead, iv, nil
}

// newSession builds a Session that seals with sendSecret and opens with
// recvSecret.
func newSession(suite Suite, sendSecret, recvSecret *[32]byte) (*Session, error) {
	sa, siv, err := deriveDirection(suite, sendSecret)
	if err != nil {
		return nil, fmt.Errorf("send keys: %w", err)
	}
	ra, riv, err := deriveDirection(suite, recvSecret)
	if err != nil {
		return nil, fmt.Errorf("receive keys: %w", err)
	}
	return &Session{
		Suite:      suite,
		Send:       &Sealer{aead: sa, iv: siv},
		Recv:       &Opener{aead: ra, iv: riv},
		SendSecret: &TrafficSecret{suite: suite, secret: *sendSecret},
		RecvSecret: &TrafficSecret{suite: suite, secret: *recvSecret},
	}, nil
}

// NewSessionPair returns two matching sessions with fresh random keys: what a
// seals, b opens, and the other way round. It exists for tests and
// benchmarks of packages that need protected packets without a handshake.
func NewSessionPair(suite Suite) (a, b *Session, err error) {
	if !suite.valid() {
		return nil, nil, fmt.Errorf("new session pair: unknown suite %d", uint8(suite))
	}
	var s1, s2 [32]byte
	if _, err := io.ReadFull(rand.Reader, s1[:]); err != nil {
		return nil, nil, fmt.Errorf("new session pair: %w", err)
	}
	if _, err := io.ReadFull(rand.Reader, s2[:]); err != nil {
		return nil, nil, fmt.Errorf("new session pair: %w", err)
	}
	if a, err = newSession(suite, &s1, &s2); err != nil {
		return nil, nil, fmt.Errorf("new session pair: %w", err)
	}
	if b, err = newSession(suite, &s2, &s1); err != nil {
		return nil, nil, fmt.Errorf("new session pair: %w", err)
	}
	return a, b, nil
}
