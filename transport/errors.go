package transport

import (
	"errors"
	"fmt"
	"os"
)

// Errors returned by the transport. Stream-level failures wrap one of these
// in a *StreamError so callers can tell which stream failed and why, while
// the connection itself keeps running.
var (
	// ErrClosed is returned by operations on a closed endpoint, connection or stream.
	ErrClosed = errors.New("flightline: closed")
	// ErrHandshakeTimeout means no valid handshake response arrived in time:
	// the peer is unreachable, not listening, or has a different key.
	ErrHandshakeTimeout = errors.New("flightline: handshake timed out (peer unreachable, not listening, or its public key differs)")
	// ErrIdleTimeout closes a connection that heard nothing from its peer for Config.IdleTimeout.
	ErrIdleTimeout = errors.New("flightline: idle timeout")
	// ErrPeerClosed means the peer closed the connection.
	ErrPeerClosed = errors.New("flightline: connection closed by peer")
	// ErrWindowWaitTimeout aborts a stream that could not get congestion-window space in time.
	ErrWindowWaitTimeout = errors.New("flightline: congestion window wait timed out")
	// ErrRetransmitLimit aborts a stream whose data was resent Config.MaxRetransmits times without acknowledgement.
	ErrRetransmitLimit = errors.New("flightline: retransmission limit reached")
	// ErrUpstreamInactive aborts a stream fed by ReadFrom whose source stalled.
	ErrUpstreamInactive = errors.New("flightline: upstream source inactive")
	// ErrSendFailed aborts a stream whose packet could not be handed to the datapath.
	ErrSendFailed = errors.New("flightline: datapath send failed")
	// ErrTooManyStreams is returned by OpenStream when the peer's stream limit is reached.
	ErrTooManyStreams = errors.New("flightline: peer stream limit reached")
	// ErrMessageTooLarge is returned by SendMessage for payloads above Config.MaxMessageSize.
	ErrMessageTooLarge = errors.New("flightline: message too large")
	// ErrDeadline is returned when a stream deadline passes. It is a
	// net.Error whose Timeout() is true and it unwraps to
	// os.ErrDeadlineExceeded, so code written for net.Conn deadlines
	// (errors.Is(err, os.ErrDeadlineExceeded)) works unchanged.
	ErrDeadline error = &deadlineError{}
)

type deadlineError struct{}

func (*deadlineError) Error() string   { return "flightline: deadline exceeded" }
func (*deadlineError) Timeout() bool   { return true }
func (*deadlineError) Temporary() bool { return true }
func (*deadlineError) Unwrap() error   { return os.ErrDeadlineExceeded }

// StreamErrorCode is an application-chosen code carried by stream resets.
type StreamErrorCode uint64

// Codes the transport itself uses in RESET_STREAM / STOP_SENDING frames.
const (
	CodeCancelled       StreamErrorCode = 0
	CodeInternal        StreamErrorCode = 1 << 40
	CodeWindowWait      StreamErrorCode = CodeInternal + 1
	CodeRetransmitLimit StreamErrorCode = CodeInternal + 2
	CodeUpstream        StreamErrorCode = CodeInternal + 3
	CodeSendFailed      StreamErrorCode = CodeInternal + 4
	CodeConnClosed      StreamErrorCode = CodeInternal + 5
)

// StreamError reports that one stream was reset, locally or by the peer.
type StreamError struct {
	StreamID uint64
	Code     StreamErrorCode
	Remote   bool  // the peer reset the stream
	Err      error // local cause, if any (ErrWindowWaitTimeout, ...)
}

func (e *StreamError) Error() string {
	who := "locally"
	if e.Remote {
		who = "by peer"
	}
	if e.Err != nil {
		return fmt.Sprintf("flightline: stream %d reset %s (code %d): %v", e.StreamID, who, e.Code, e.Err)
	}
	return fmt.Sprintf("flightline: stream %d reset %s (code %d)", e.StreamID, who, e.Code)
}

func (e *StreamError) Unwrap() error { return e.Err }

// ConnError reports why a connection ended.
type ConnError struct {
	Code   uint64
	Reason string
	Remote bool
	Err    error
}

func (e *ConnError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("flightline: connection closed: %v", e.Err)
	}
	who := "locally"
	if e.Remote {
		who = "by peer"
	}
	return fmt.Sprintf("flightline: connection closed %s (code %d): %s", who, e.Code, e.Reason)
}

func (e *ConnError) Unwrap() error { return e.Err }
