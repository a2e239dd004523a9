package handshake

import (
	"crypto/cipher"
	"fmt"
	"io"

	"golang.org/x/crypto/hkdf"
)

// infoKeyUpdate is the HKDF-Expand label that ratchets a traffic secret to
// the next key generation (docs/protocol.md §5.3).
const infoKeyUpdate = "flightline v1 ku"

// TrafficSecret is one direction's packet protection secret at one key
// generation: generation 0 is the Split() output, generation n+1 is
// HKDF-Expand(secret_n, "flightline v1 ku", 32). Each generation's key and IV
// are derived from its secret exactly as the first ones (§5.1). The packet's
// key phase bit is the generation's low bit.
//
// A TrafficSecret is owned by one goroutine (the sender for the send
// direction, the receive loop for the other). Erase it once the next
// generation is derived and its keys built: an old secret that is gone
// cannot decrypt recorded traffic of its generation after a compromise of
// the current one.
type TrafficSecret struct {
	suite  Suite
	secret [32]byte
	gen    uint64
}

// Gen is the key generation: the number of key updates before it.
func (t *TrafficSecret) Gen() uint64 { return t.gen }

// Phase is the key phase bit packets sealed under this generation carry.
func (t *TrafficSecret) Phase() uint8 { return uint8(t.gen & 1) }

// Next returns the next generation's secret. It cannot fail: HKDF-Expand
// of 32 bytes with BLAKE2s is far below its output limit.
func (t *TrafficSecret) Next() *TrafficSecret {
	n := &TrafficSecret{suite: t.suite, gen: t.gen + 1}
	if _, err := io.ReadFull(hkdf.Expand(newBlake2s, t.secret[:], []byte(infoKeyUpdate)), n.secret[:]); err != nil {
		panic(fmt.Sprintf("handshake: key update: %v", err)) // unreachable: 32 bytes of HKDF output
	}
	return n
}

// Erase zeroes the secret. The TrafficSecret must not be used afterwards.
func (t *TrafficSecret) Erase() { clear(t.secret[:]) }

// NewSealer builds the sealer of this generation.
func (t *TrafficSecret) NewSealer() *Sealer {
	aead, iv := t.mustDerive()
	return &Sealer{aead: aead, iv: iv, gen: t.gen}
}

// NewOpener builds the opener of this generation.
func (t *TrafficSecret) NewOpener() *Opener {
	aead, iv := t.mustDerive()
	return &Opener{aead: aead, iv: iv, gen: t.gen}
}

// mustDerive derives this generation's AEAD and IV. The suite was
// validated when the session was made and the key size is fixed, so
// failure here is a bug in this package, not input from a peer.
func (t *TrafficSecret) mustDerive() (cipher.AEAD, [ivSize]byte) {
	aead, iv, err := deriveDirection(t.suite, &t.secret)
	if err != nil {
		panic(fmt.Sprintf("handshake: derive generation %d keys: %v", t.gen, err))
	}
	return aead, iv
}
