// Package handshake authenticates flightline peers and protects their
// packets.
//
// # Handshake
//
// The key exchange is Noise_IK_25519_ChaChaPoly_BLAKE2s
// (https://noiseprotocol.org/noise.html, pattern IK) with the prologue
// "flightline v1" followed by the initiation's cleartext prefix (type,
// reserved, sender connection ID); the response's cleartext prefix (type,
// reserved, both connection IDs) is mixed into the transcript before its
// first token. Both connection IDs are therefore authenticated: an on-path
// rewrite fails decryption.
//
//	<- s
//	...
//	-> e, es, s, ss   initiation (type 1)
//	<- e, ee, se      response   (type 2)
//
// The initiator knows the responder's static key in advance, so the exchange
// takes one round trip and both sides end with forward-secret keys. The
// initiation carries a TAI64N-like timestamp inside its encrypted payload;
// the responder remembers the newest timestamp per authenticated initiator
// key, plus the timestamps it accepted within ReorderWindow (2 s) below it,
// and rejects an initiation older than that window or already accepted
// (ErrReplay). The window exists because one client key may dial many
// connections at once and their initiations can arrive out of order. That
// is the only per-peer state a Responder keeps.
//
// Every handshake message ends in two MACs, as in WireGuard:
//
//   - mac1 is keyed by a hash of the receiver's static public key, so a
//     responder can drop junk (and initiations meant for another key) before
//     doing any Diffie-Hellman.
//   - mac2 is keyed by a cookie: a MAC of the initiator's source address
//     under a responder secret that rotates every two minutes. When the
//     responder is under load it answers initiations without a valid mac2
//     with a cookie reply (type 3) and keeps no state; only an initiator that
//     can receive packets at its source address learns the cookie.
//
// Responders never hold cookies, so the mac2 of a response is zero and is
// not checked.
//
// Wire layouts are documented next to the size constants in messages.go and,
// normatively, in docs/protocol.md, whose test vectors vectors_test.go
// checks. All integers are big-endian.
//
// # Packet protection
//
// After the handshake both sides run the Noise Split() on the chaining key,
// giving one secret per direction (initiator→responder, responder→initiator).
// Each secret is expanded with two HKDF-Expand-BLAKE2s calls (no Extract;
// the secret is the PRK) into a 32-byte AEAD key (info "flightline v1 key")
// and a 12-byte IV (info "flightline v1 iv"). A packet
// with number pn is sealed with nonce = IV XOR pn (pn big-endian in the last 8
// bytes), the cleartext header as additional data, and the negotiated suite:
// AES-256-GCM or ChaCha20-Poly1305. ReplayWindow is the RFC 6479 sliding
// window the receiver runs over packet numbers.
//
// BLAKE2s is not a FIPS 140 approved hash: with GODEBUG=fips140=only the
// key derivation panics. That mode is not supported.
package handshake
