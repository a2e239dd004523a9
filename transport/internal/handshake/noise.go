package handshake

import (
	"crypto/subtle"
	"fmt"
	"hash"
	"io"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/hkdf"
)

// Noise protocol constants. Changing either one is a wire-incompatible
// change: both are hashed into every handshake transcript.
const (
	protocolName = "Noise_IK_25519_ChaChaPoly_BLAKE2s"
	// prologueLabel starts the Noise prologue; the initiation's cleartext
	// prefix (type, reserved, sender connection ID) follows it, so the
	// initiator's connection ID is part of the transcript.
	prologueLabel = "flightline v1"
)

// initialCK is the chaining key (and hash) after InitializeSymmetric. The
// protocol name is longer than 32 bytes, so Noise hashes it rather than
// padding it.
var initialCK = blake2s.Sum256([]byte(protocolName))

// initPrefixLen is the length of the cleartext prefix of initiations
// (type, reserved, sender conn ID) that the prologue binds.
const initPrefixLen = 12

// symmetricState is the Noise SymmetricState minus the CipherState: every
// MixKey in IK is followed by exactly one encryption, so the key is returned
// to the caller and the nonce is always zero.
type symmetricState struct {
	ck [32]byte // chaining key
	h  [32]byte // transcript hash
}

// newSymmetricState starts a handshake for the initiation whose cleartext
// prefix (bytes 0..11: type, reserved, sender conn ID) is prefix, to the
// responder whose static key is rs. It runs MixHash(prologue) with prologue =
// "flightline v1" || prefix, then the IK pre-message "<- s" (MixHash(rs)).
//
// Binding the prefix means an on-path rewrite of the initiator's connection
// ID makes the responder's first decryption fail instead of creating a
// connection that answers to another ID.
func newSymmetricState(prefix []byte, rs *PublicKey) symmetricState {
	h := newBlake2s()
	h.Write(initialCK[:])
	h.Write([]byte(prologueLabel))
	h.Write(prefix[:initPrefixLen])
	var h1 [32]byte
	h.Sum(h1[:0])
	return symmetricState{ck: initialCK, h: hashConcat(h1[:], rs[:])}
}

func (s *symmetricState) mixHash(data []byte) { s.h = hashConcat(s.h[:], data) }

// mixKey runs HKDF(ck, ikm) and returns the new encryption key.
func (s *symmetricState) mixKey(ikm []byte) [32]byte {
	var k [32]byte
	s.ck, k = kdf2(&s.ck, ikm)
	return k
}

// mixDH is mixKey(DH(priv, pub)). X25519 with a low-order point yields all
// zeros; that is rejected (ErrMalformed), since it would make the key
// independent of our secret.
func (s *symmetricState) mixDH(priv *PrivateKey, pub *PublicKey) ([32]byte, error) {
	shared, err := dh(priv, pub)
	if err != nil {
		return [32]byte{}, err
	}
	k := s.mixKey(shared[:])
	clear(shared[:])
	return k, nil
}

// encryptAndHash appends AEAD(k, 0, h, plaintext) to dst and mixes the
// ciphertext into h.
func (s *symmetricState) encryptAndHash(dst []byte, k *[32]byte, plaintext []byte) []byte {
	aead, err := chacha20poly1305.New(k[:])
	if err != nil {
		panic("handshake: chacha20poly1305 rejected a 32-byte key: " + err.Error())
	}
	var nonce [chacha20poly1305.NonceSize]byte
	out := aead.Seal(dst, nonce[:], plaintext, s.h[:])
	s.mixHash(out[len(dst):])
	return out
}

// decryptAndHash opens ciphertext with (k, 0, h), mixes the ciphertext into h
// and returns the plaintext. On failure h is unchanged and ErrDecrypt is
// returned.
func (s *symmetricState) decryptAndHash(k *[32]byte, ciphertext []byte) ([]byte, error) {
	aead, err := chacha20poly1305.New(k[:])
	if err != nil {
		panic("handshake: chacha20poly1305 rejected a 32-byte key: " + err.Error())
	}
	var nonce [chacha20poly1305.NonceSize]byte
	pt, err := aead.Open(nil, nonce[:], ciphertext, s.h[:])
	if err != nil {
		return nil, ErrDecrypt
	}
	s.mixHash(ciphertext)
	return pt, nil
}

// split is the Noise Split(): the first output is the initiator's sending
// secret, the second the responder's.
func (s *symmetricState) split() (i2r, r2i [32]byte) { return kdf2(&s.ck, nil) }

func (s *symmetricState) wipe() { clear(s.ck[:]); clear(s.h[:]) }

func dh(priv *PrivateKey, pub *PublicKey) ([32]byte, error) {
	var out [32]byte
	b, err := curve25519.X25519(priv[:], pub[:])
	if err != nil {
		return out, fmt.Errorf("%w: low-order public key", ErrMalformed)
	}
	copy(out[:], b)
	clear(b)
	return out, nil
}

func newBlake2s() hash.Hash {
	h, err := blake2s.New256(nil)
	if err != nil {
		panic("handshake: blake2s.New256(nil): " + err.Error())
	}
	return h
}

// kdf2 is the Noise HKDF with two outputs. Noise's HKDF is HKDF-Extract
// with salt=ck followed by HKDF-Expand with empty info (RFC 5869), so the
// library implementation computes exactly the same bytes.
func kdf2(ck *[32]byte, ikm []byte) (a, b [32]byte) {
	r := hkdf.New(newBlake2s, ikm, ck[:], nil)
	var out [64]byte
	if _, err := io.ReadFull(r, out[:]); err != nil {
		panic("handshake: hkdf read: " + err.Error())
	}
	copy(a[:], out[:32])
	copy(b[:], out[32:])
	clear(out[:])
	return a, b
}

// hashConcat returns BLAKE2s-256(a || b).
func hashConcat(a, b []byte) [32]byte {
	h := newBlake2s()
	h.Write(a)
	h.Write(b)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// mac returns keyed BLAKE2s-128(key, msg). key must be 1..32 bytes.
func mac(key, msg []byte) [macSize]byte {
	h, err := blake2s.New128(key)
	if err != nil {
		panic("handshake: blake2s.New128: " + err.Error())
	}
	h.Write(msg)
	var out [macSize]byte
	h.Sum(out[:0])
	return out
}

func macEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// Labels for the keys derived from a static public key (as in WireGuard).
const (
	labelMAC1   = "mac1----"
	labelCookie = "cookie--"
)

// mac1Key is the key of mac1 for messages sent to the holder of pub.
func mac1Key(pub *PublicKey) [32]byte { return hashConcat([]byte(labelMAC1), pub[:]) }

// cookieKey encrypts cookie replies sent by the holder of pub.
func cookieKey(pub *PublicKey) [32]byte { return hashConcat([]byte(labelCookie), pub[:]) }
