package handshake

import (
	"errors"
	"fmt"
)

// Errors returned by Responder.Accept, Initiator.Finish, Initiator.HandleCookie
// and Opener.Open. They are usually wrapped with context; test with errors.Is.
var (
	// ErrMalformed: the message has the wrong type, length or a field
	// outside its range (reserved bytes, suite, payload length, connection ID,
	// low-order public key).
	ErrMalformed = errors.New("handshake: malformed message")
	// ErrMalformedPayload: an initiation authenticated (its sender holds the
	// static key it claims) but what it carries is invalid: unknown suite or
	// bad payload framing. It wraps ErrMalformed. Unlike junk, it is worth
	// telling an operator about: it is a broken or incompatible client.
	ErrMalformedPayload = fmt.Errorf("%w: invalid authenticated payload", ErrMalformed)
	// ErrMAC: mac1 did not verify. Either the message was corrupted or it was
	// built for a different static key (for example the initiator was
	// configured with the wrong responder public key).
	ErrMAC = errors.New("handshake: mac1 mismatch")
	// ErrDecrypt: an AEAD failed to open. In a handshake this means the
	// peer does not hold the keys it claims or the message belongs to a
	// different (stale) handshake; for packets it means tampering or the
	// wrong key, packet number or header.
	ErrDecrypt = errors.New("handshake: decryption failed")
	// ErrReplay: the initiation's timestamp is not newer than the newest
	// one already accepted from the same initiator key.
	ErrReplay = errors.New("handshake: replayed initiation")
	// ErrNotAllowed: the initiator authenticated but its static key is not
	// accepted by ResponderConfig.Allow.
	ErrNotAllowed = errors.New("handshake: initiator not allowed")
	// ErrPayloadTooLarge: an application payload exceeds MaxPayload.
	ErrPayloadTooLarge = errors.New("handshake: payload too large")
	// ErrFinished: Finish was already called successfully on this Initiator.
	ErrFinished = errors.New("handshake: initiator already finished")
)
