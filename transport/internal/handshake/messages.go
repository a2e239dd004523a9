package handshake

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// Message types: byte 0 of every flightline datagram. Package wire uses the
// same numbering and hands types 1-3 to this package.
const (
	TypeInitiation  = 1
	TypeResponse    = 2
	TypeCookieReply = 3
)

// MaxPayload is the largest application payload (transport parameters) an
// initiation or response carries.
const MaxPayload = 256

const (
	macSize       = 16
	tagSize       = 16 // ChaCha20-Poly1305 tag of handshake AEADs
	timestampSize = 12
	cookieSize    = 16
	xNonceSize    = 24
)

// Initiation (type 1):
//
//	type(1) | reserved(3)=0 | senderConnID(8) | ephemeral(32) |
//	AEAD(static)(32+16) | AEAD(payload)(15+n+16) | mac1(16) | mac2(16)
//
// payload = timestamp(12) | suite(1) | appPayloadLen(2) | appPayload(n)
const (
	initSenderOff    = 4
	initEphemeralOff = 12
	initStaticOff    = 44
	initPayloadOff   = initStaticOff + KeySize + tagSize // 92
	initPlainFixed   = timestampSize + 1 + 2             // 15
	// MinInitiationLen is the size of an initiation with an empty payload.
	MinInitiationLen = initPayloadOff + initPlainFixed + tagSize + 2*macSize // 155
	// MaxInitiationLen is the size of an initiation with a MaxPayload payload.
	MaxInitiationLen = MinInitiationLen + MaxPayload
)

// Response (type 2):
//
//	type(1) | reserved(3)=0 | senderConnID(8) | receiverConnID(8) |
//	ephemeral(32) | AEAD(payload)(2+n+16) | mac1(16) | mac2(16)
//
// payload = appPayloadLen(2) | appPayload(n)
const (
	respSenderOff    = 4
	respReceiverOff  = 12
	respEphemeralOff = 20
	respPayloadOff   = 52
	respPlainFixed   = 2
	// MinResponseLen is the size of a response with an empty payload.
	MinResponseLen = respPayloadOff + respPlainFixed + tagSize + 2*macSize // 102
	// MaxResponseLen is the size of a response with a MaxPayload payload.
	MaxResponseLen = MinResponseLen + MaxPayload
)

// Cookie reply (type 3):
//
//	type(1) | reserved(3)=0 | receiverConnID(8) | nonce(24) |
//	XChaCha20Poly1305(cookie)(16+16)
//
// The AEAD key is BLAKE2s-256("cookie--" || responder static public key) and
// the additional data is mac1 of the initiation being answered.
const (
	cookieReceiverOff = 4
	cookieNonceOff    = 12
	cookieBoxOff      = cookieNonceOff + xNonceSize // 36
	// CookieReplyLen is the fixed size of a cookie reply.
	CookieReplyLen = cookieBoxOff + cookieSize + tagSize // 68
)

// ReceiverConnID returns the connection ID chosen by the receiver of a
// response or cookie reply, so the transport can route the message to its
// Initiator without looking at the source address. ok is false for other
// types (initiations carry only the sender's ID) and for short messages.
func ReceiverConnID(msg []byte) (id uint64, ok bool) {
	if len(msg) < 1 {
		return 0, false
	}
	switch msg[0] {
	case TypeResponse:
		if len(msg) >= respReceiverOff+8 {
			return binary.BigEndian.Uint64(msg[respReceiverOff:]), true
		}
	case TypeCookieReply:
		if len(msg) >= cookieReceiverOff+8 {
			return binary.BigEndian.Uint64(msg[cookieReceiverOff:]), true
		}
	}
	return 0, false
}

// checkHeader validates the type byte, the reserved bytes and the length
// range shared by every handshake message.
func checkHeader(msg []byte, typ byte, minLen, maxLen int) error {
	if len(msg) < minLen || len(msg) > maxLen {
		return fmt.Errorf("%w: type %d message is %d bytes, want %d..%d", ErrMalformed, typ, len(msg), minLen, maxLen)
	}
	if msg[0] != typ {
		return fmt.Errorf("%w: type %d, want %d", ErrMalformed, msg[0], typ)
	}
	if msg[1]|msg[2]|msg[3] != 0 {
		return fmt.Errorf("%w: reserved bytes not zero", ErrMalformed)
	}
	return nil
}

// timestamp is a TAI64N label: 8 bytes of 2^62 + Unix seconds (leap seconds
// ignored) and 4 bytes of nanoseconds, both big-endian, so bytes.Compare on
// two timestamps orders them in time.
type timestamp [timestampSize]byte

const tai64Base = uint64(1) << 62

func makeTimestamp(t time.Time) timestamp {
	var ts timestamp
	binary.BigEndian.PutUint64(ts[:8], tai64Base+uint64(t.Unix()))
	binary.BigEndian.PutUint32(ts[8:], uint32(t.Nanosecond()))
	return ts
}

func (a timestamp) after(b timestamp) bool { return bytes.Compare(a[:], b[:]) > 0 }

// nanosSince returns a-b in nanoseconds, saturating at ±(2^63-1) and
// treating labels more than ~292 years apart as that far.
func (a timestamp) nanosSince(b timestamp) int64 {
	as, bs := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])
	an, bn := int64(binary.BigEndian.Uint32(a[8:])), int64(binary.BigEndian.Uint32(b[8:]))
	const maxSec = math.MaxInt64/1_000_000_000 - 1
	var ds int64
	switch {
	case as >= bs && as-bs > maxSec:
		return math.MaxInt64
	case bs > as && bs-as > maxSec:
		return -math.MaxInt64
	default:
		ds = int64(as - bs) // two's complement handles bs > as
	}
	return ds*1e9 + an - bn
}

// next returns the timestamp one nanosecond after a.
func (a timestamp) next() timestamp {
	sec := binary.BigEndian.Uint64(a[:8])
	ns := binary.BigEndian.Uint32(a[8:]) + 1
	if ns >= 1e9 {
		sec, ns = sec+1, 0
	}
	var ts timestamp
	binary.BigEndian.PutUint64(ts[:8], sec)
	binary.BigEndian.PutUint32(ts[8:], ns)
	return ts
}

// appendPayload appends appPayloadLen(2) | p.
func appendPayload(dst, p []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(p)))
	return append(dst, p...)
}

// parsePayload reads appPayloadLen(2) | appPayload and requires it to fill b
// exactly. The returned slice is a copy.
func parsePayload(b []byte) ([]byte, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: payload too short", ErrMalformed)
	}
	n := int(binary.BigEndian.Uint16(b))
	if n > MaxPayload || n != len(b)-2 {
		return nil, fmt.Errorf("%w: payload length field %d, have %d bytes", ErrMalformed, n, len(b)-2)
	}
	return bytes.Clone(b[2:]), nil
}
