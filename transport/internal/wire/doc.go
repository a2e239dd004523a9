// Package wire is the byte-level codec of flightline's encrypted data packets:
// the 17-byte cleartext data-packet header, QUIC variable-length integers
// (RFC 9000 §16), and the frames carried in the decrypted payload.
//
// Everything here is allocation-free on the success path: encoders append to
// a caller-supplied slice (no allocation when it has capacity) and the Parser
// fills a caller-owned Frame whose byte fields alias the payload. That keeps
// the per-packet cost of the receive and send loops independent of the GC.
//
// The parser is the first code that looks at peer-controlled plaintext, so it
// never panics on input: every truncation, overflow or unknown type is
// reported as an error wrapping ErrTruncated, ErrMalformed or ErrUnknownFrame.
// Encoders, in contrast, are only fed values produced by this process; a value
// they cannot represent (for example a varint above MaxVarint) is a broken
// internal invariant and panics.
//
// The normative description of the format is docs/protocol.md.
package wire

import "errors"

// Sentinel errors. Parse errors wrap exactly one of them, with context (the
// frame type, its byte offset and the field) in the message.
var (
	// ErrTruncated means the input ended before a field, or a length field
	// claims more bytes than remain in the payload.
	ErrTruncated = errors.New("truncated")
	// ErrMalformed means every byte was present but the values are
	// inconsistent: an ACK range below zero, too many ACK ranges, a stream
	// offset+length above MaxVarint, or an unexpected packet type.
	ErrMalformed = errors.New("malformed")
	// ErrUnknownFrame means the payload contains a frame type this version
	// does not define. Frames are not self-delimiting, so parsing cannot
	// continue past it.
	ErrUnknownFrame = errors.New("unknown frame type")
)
