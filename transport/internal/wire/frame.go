package wire

import "fmt"

// FrameType is the first byte of a frame. All defined types are below 0x40,
// so the one-byte form is also the minimal QUIC varint encoding; the parser
// rejects any other byte as ErrUnknownFrame.
type FrameType uint8

// Frame types. STREAM occupies 0x08..0x0f: the low three bits are flags (see
// the streamXxxBit constants) and the parser reports every variant as
// FrameStream with Fin set from the flag.
const (
	FramePadding           FrameType = 0x00
	FramePing              FrameType = 0x01
	FrameAck               FrameType = 0x02
	FrameResetStream       FrameType = 0x04
	FrameStopSending       FrameType = 0x05
	FrameStream            FrameType = 0x08
	FrameMaxData           FrameType = 0x10
	FrameMaxStreamData     FrameType = 0x11
	FrameMaxStreams        FrameType = 0x12
	FrameDataBlocked       FrameType = 0x14
	FrameStreamDataBlocked FrameType = 0x15
	FramePathChallenge     FrameType = 0x1a
	FramePathResponse      FrameType = 0x1b
	FrameConnectionClose   FrameType = 0x1c
	FrameMessage           FrameType = 0x30
)

// STREAM type flag bits (RFC 9000 §19.8).
const (
	streamFinBit  = 0x01
	streamLenBit  = 0x02
	streamOffBit  = 0x04
	streamTypeMax = FrameStream | 0x07
)

// AckEliciting reports whether a packet containing a frame of type t must be
// acknowledged. Everything is except ACK (acking ACKs would never end),
// PADDING and CONNECTION_CLOSE (the sender is going away), as in RFC 9002 §2.
func (t FrameType) AckEliciting() bool {
	switch t {
	case FrameAck, FramePadding, FrameConnectionClose:
		return false
	}
	return true
}

// String returns the RFC-style name of t, e.g. "STREAM" for any of 0x08..0x0f.
func (t FrameType) String() string {
	switch {
	case t == FramePadding:
		return "PADDING"
	case t == FramePing:
		return "PING"
	case t == FrameAck:
		return "ACK"
	case t == FrameResetStream:
		return "RESET_STREAM"
	case t == FrameStopSending:
		return "STOP_SENDING"
	case t >= FrameStream && t <= streamTypeMax:
		return "STREAM"
	case t == FrameMaxData:
		return "MAX_DATA"
	case t == FrameMaxStreamData:
		return "MAX_STREAM_DATA"
	case t == FrameMaxStreams:
		return "MAX_STREAMS"
	case t == FrameDataBlocked:
		return "DATA_BLOCKED"
	case t == FrameStreamDataBlocked:
		return "STREAM_DATA_BLOCKED"
	case t == FramePathChallenge:
		return "PATH_CHALLENGE"
	case t == FramePathResponse:
		return "PATH_RESPONSE"
	case t == FrameConnectionClose:
		return "CONNECTION_CLOSE"
	case t == FrameMessage:
		return "MESSAGE"
	}
	return fmt.Sprintf("FrameType(0x%02x)", uint8(t))
}

// PathDataLen is the size of the PATH_CHALLENGE/PATH_RESPONSE payload, and
// PathFrameLen the size of either frame (RFC 9000 §19.17, §19.18).
const (
	PathDataLen  = 8
	PathFrameLen = 1 + PathDataLen
)

// AckRange is an inclusive range of acknowledged packet numbers:
// Smallest <= Largest.
type AckRange struct{ Smallest, Largest uint64 }

// MaxAckRanges bounds the ranges of one ACK frame (the first range included).
// It sizes the Parser's fixed storage and caps what a peer can make us walk;
// AppendAck drops the oldest ranges beyond it.
const MaxAckRanges = 64

// Frame is one decoded frame. It is a flat struct rather than an interface so
// that parsing never allocates; which fields are meaningful depends on Type:
//
//	PING                 (none)
//	ACK                  Ranges, AckDelay
//	RESET_STREAM         StreamID, ErrorCode, FinalSize
//	STOP_SENDING         StreamID, ErrorCode
//	STREAM               StreamID, Offset, Data, Fin
//	MAX_DATA             Max
//	MAX_STREAM_DATA      StreamID, Max
//	MAX_STREAMS          Max
//	DATA_BLOCKED         Max (the limit the sender is blocked at)
//	STREAM_DATA_BLOCKED  StreamID, Max (the limit)
//	PATH_CHALLENGE       PathData
//	PATH_RESPONSE        PathData (echoing a challenge)
//	CONNECTION_CLOSE     ErrorCode, Reason
//	MESSAGE              Data
//
// The parser zeroes the Frame before filling it, so unused fields are zero.
type Frame struct {
	// Type is the frame type; every STREAM variant is reported as
	// FrameStream. PADDING is never reported.
	Type FrameType
	// StreamID identifies the stream of stream-scoped frames.
	StreamID uint64
	// Offset is the stream offset of Data[0] (STREAM).
	Offset uint64
	// Data is the STREAM or MESSAGE payload. It aliases the buffer given to
	// Parser.Reset (not a copy) with its capacity clipped to its length, so
	// appending to it never overwrites the next frame.
	Data []byte
	// Fin marks the last byte of the stream: Offset+len(Data) is its final
	// size (STREAM).
	Fin bool
	// ErrorCode is the application or transport error code (RESET_STREAM,
	// STOP_SENDING, CONNECTION_CLOSE).
	ErrorCode uint64
	// FinalSize is the final size of a reset stream (RESET_STREAM).
	FinalSize uint64
	// Max is the new limit of MAX_* frames and the blocking limit of
	// *_BLOCKED frames.
	Max uint64
	// Reason is the human-readable CONNECTION_CLOSE reason; it aliases the
	// payload like Data.
	Reason []byte
	// PathData is the unpredictable payload of PATH_CHALLENGE, echoed by
	// PATH_RESPONSE. It is a copy, not an alias.
	PathData [PathDataLen]byte
	// AckDelay is the ACK delay in microseconds as sent by the peer
	// (unscaled).
	AckDelay uint64
	// Ranges are the acknowledged packet-number ranges of an ACK, in
	// descending order, non-overlapping and non-adjacent; Ranges[0].Largest
	// is the largest acknowledged. It aliases storage inside the Parser and
	// is only valid until the next Parser call.
	Ranges []AckRange
}
