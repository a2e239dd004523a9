package handshake

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// CookieLifetime is how long a cookie secret is used by the responder and
// how long an initiator keeps a cookie.
const CookieLifetime = 2 * time.Minute

// cookieJar is the responder's rotating cookie secret.
//
// A cookie is BLAKE2s-128 keyed by the secret over the source address
// (IPv4 as 4 bytes, IPv6 as 16, IPv4-mapped IPv6 unmapped first, then the port
// big-endian). A new secret is drawn once the current one is CookieLifetime
// old. mac2 is checked against the cookie under the current secret and under
// the previous one while that is younger than 2*CookieLifetime, so a cookie
// handed out just before a rotation keeps working: every cookie is accepted
// for at least CookieLifetime after it was issued and never after its secret
// is 2*CookieLifetime old.
type cookieJar struct {
	mu       sync.Mutex
	cur      [32]byte
	born     time.Time // when cur was drawn; zero: no secret yet
	prev     [32]byte
	prevBorn time.Time // zero: no previous secret
}

// secrets returns the current secret and, when still usable, the previous
// one, rotating first when the current one is too old (or the clock went
// backwards).
func (j *cookieJar) secrets(now time.Time, rnd io.Reader) (cur, prev [32]byte, hasPrev bool, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.born.IsZero() || now.Sub(j.born) >= CookieLifetime || now.Before(j.born) {
		var fresh [32]byte
		if _, err := io.ReadFull(rnd, fresh[:]); err != nil {
			return cur, prev, false, fmt.Errorf("cookie secret: %w", err)
		}
		j.prev, j.prevBorn = j.cur, j.born
		j.cur, j.born = fresh, now
	}
	hasPrev = !j.prevBorn.IsZero() && !now.Before(j.prevBorn) && now.Sub(j.prevBorn) < 2*CookieLifetime
	return j.cur, j.prev, hasPrev, nil
}

// addrBytes is the cookie input for src.
func addrBytes(src netip.AddrPort) []byte {
	ip := src.Addr().Unmap().AsSlice() // nil for the zero Addr
	return binary.BigEndian.AppendUint16(ip, src.Port())
}

// makeCookieReply builds a cookie reply to an initiation whose mac1 is
// initMAC1 and whose sender is connID.
func makeCookieReply(key *[32]byte, cookie *[cookieSize]byte, connID uint64, initMAC1 []byte, rnd io.Reader) ([]byte, error) {
	msg := make([]byte, cookieBoxOff, CookieReplyLen)
	msg[0] = TypeCookieReply
	binary.BigEndian.PutUint64(msg[cookieReceiverOff:], connID)
	nonce := msg[cookieNonceOff:cookieBoxOff]
	if _, err := io.ReadFull(rnd, nonce); err != nil {
		return nil, fmt.Errorf("cookie nonce: %w", err)
	}
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		panic("handshake: xchacha20poly1305 rejected a 32-byte key: " + err.Error())
	}
	return aead.Seal(msg, nonce, cookie[:], initMAC1), nil
}

// openCookieReply validates a cookie reply addressed to connID and answering
// the initiation with mac1 initMAC1, and returns the cookie.
func openCookieReply(key *[32]byte, msg []byte, connID uint64, initMAC1 []byte) ([cookieSize]byte, error) {
	var c [cookieSize]byte
	if err := checkHeader(msg, TypeCookieReply, CookieReplyLen, CookieReplyLen); err != nil {
		return c, err
	}
	if id := binary.BigEndian.Uint64(msg[cookieReceiverOff:]); id != connID {
		return c, fmt.Errorf("%w: cookie reply for connection %#x, ours is %#x", ErrMalformed, id, connID)
	}
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		panic("handshake: xchacha20poly1305 rejected a 32-byte key: " + err.Error())
	}
	pt, err := aead.Open(c[:0], msg[cookieNonceOff:cookieBoxOff], msg[cookieBoxOff:], initMAC1)
	if err != nil || len(pt) != cookieSize {
		return [cookieSize]byte{}, fmt.Errorf("cookie reply: %w", ErrDecrypt)
	}
	return c, nil
}
