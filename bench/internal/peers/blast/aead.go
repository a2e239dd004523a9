package blast

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// sealer is the packet protection of the encrypted ceiling
// (udp-gso-aead-blast): every data datagram's payload is sealed with
// AES-256-GCM, flightline's default suite, with the 16-byte header as
// associated data and a nonce made of the sequence number, and opened and
// verified by the server. No handshake, no reliability: the key is derived
// from Spec.Seed on both sides, which is fine for a benchmark and nothing
// else. It measures what any encrypted UDP transport must at least spend
// here: the blast's syscalls and copies plus one seal and one open per
// datagram.
//
// A nil *sealer is the plain blast: no overhead, nothing sealed. A sealer
// is used by one goroutine (the client's send loop or the server's receive
// loop), so it keeps its nonce buffer instead of allocating one per call.
type sealer struct {
	aead  cipher.AEAD
	nonce [12]byte
}

// aeadKeyLabel separates the blast's key from anything else derived from a
// seed.
const aeadKeyLabel = "flightline blast aead key"

func newSealer(seed uint64) (*sealer, error) {
	var in [len(aeadKeyLabel) + 8]byte
	copy(in[:], aeadKeyLabel)
	binary.BigEndian.PutUint64(in[len(aeadKeyLabel):], seed)
	key := sha256.Sum256(in[:])
	b, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, fmt.Errorf("blast aead: %w", err)
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		return nil, fmt.Errorf("blast aead: %w", err)
	}
	return &sealer{aead: a}, nil
}

// overhead is the bytes sealing adds to a datagram.
func (s *sealer) overhead() int {
	if s == nil {
		return 0
	}
	return s.aead.Overhead()
}

func (s *sealer) setNonce(seq uint64) []byte {
	binary.BigEndian.PutUint64(s.nonce[4:], seq)
	return s.nonce[:]
}

// seal encrypts in place the n payload bytes behind b's header (datagram
// seq) and returns the datagram; cap(b) must leave room for the tag.
func (s *sealer) seal(b []byte, seq uint64, n int) []byte {
	if s == nil {
		return b[:headerLen+n]
	}
	pt := b[headerLen : headerLen+n]
	ct := s.aead.Seal(pt[:0], s.setNonce(seq), pt, b[:headerLen])
	return b[:headerLen+len(ct)]
}

var errOpen = errors.New("authentication failed")

// open decrypts in place the sealed payload of data datagram b (sequence
// number seq) and returns the plaintext payload.
func (s *sealer) open(b []byte, seq uint64) ([]byte, error) {
	if s == nil {
		return b[headerLen:], nil
	}
	ct := b[headerLen:]
	pt, err := s.aead.Open(ct[:0], s.setNonce(seq), ct, b[:headerLen])
	if err != nil {
		return nil, fmt.Errorf("datagram %d: %w", seq, errOpen)
	}
	return pt, nil
}
