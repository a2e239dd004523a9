package flight

import (
	"math"
	"time"

	"github.com/flightline/flightline/transport/internal/monotime"
)

// StreamID names the stream whose frames a tracked packet carries. Every
// tracked packet carries data of at most one stream; packets without stream
// data are tagged Control.
type StreamID = uint64

// Control tags packets that carry no stream data (flow-control updates,
// resets, messages, pings). DropStream refuses it: control packets are only
// released by ACK, abandon or Close.
const Control StreamID = math.MaxUint64

// Range is an inclusive range of packet numbers, as carried in an ACK frame.
type Range struct{ Smallest, Largest uint64 }

// Sent describes a packet whose socket send succeeded. Size is the unit of
// the ledger: the wire bytes that were charged for it with Charge.
type Sent struct {
	PN      uint64
	Stream  StreamID
	Size    int
	SentAt  monotime.Time
	Payload []byte // copied into a record-owned buffer; the caller keeps ownership
}

// Acked reports a record released by an ACK. SentAt is the time of the send
// the ACK refers to (PNs are never reused, so it is a valid RTT sample);
// FirstSentAt is the first send of the data.
type Acked struct {
	PN          uint64
	Stream      StreamID
	Size        int
	SentAt      monotime.Time
	FirstSentAt monotime.Time
	Sends       int
	snap        snapshot // delivery-rate state at SentAt (sampler.go)
}

// Resend is a record handed out for retransmission. The record stays tracked
// and charged; the caller sends Payload under a new PN and then calls
// Ledger.Refresh(PN, newPN, now), or Ledger.ResendFailed(PN) if that send
// failed. Payload is a sub-slice of the caller's arena, never of the record.
type Resend struct {
	PN      uint64
	Stream  StreamID
	Size    int
	Sends   int
	SentAt  monotime.Time // last send of the record: recovery-episode checks in congestion control
	Payload []byte
	// The delivery-rate snapshot of that last send, for a controller's
	// per-packet loss response (draft-ietf-ccwg-bbr-06 §"Probing for
	// Bandwidth In ProbeBW": where inside the flight loss crossed the
	// threshold): the flight size right after it was sent, the bytes
	// declared lost before it was sent, and whether it was sent
	// application-limited.
	TxInFlight int64
	LostBefore uint64
	AppLimited bool
}

// Abandoned reports a record removed and released after it reached the send
// limit. The connection fails its stream (or the connection for Control).
type Abandoned struct {
	PN     uint64
	Stream StreamID
	Size   int
}

// LossParams are the inputs of RFC 9002 loss detection (section 6.1).
type LossParams struct {
	Now          monotime.Time
	LargestAcked uint64
	HaveLargest  bool // false before the first ACK: nothing can be declared lost
	// PacketThreshold is kPacketThreshold; zero means DefaultPacketThreshold.
	PacketThreshold uint64
	// LossDelay is 9/8 * max(srtt, latest_rtt) (RFC 9002 6.1.2). Zero
	// declares every packet below LargestAcked lost.
	LossDelay time.Duration
	// MaxSends bounds retransmission: a record whose Sends >= MaxSends is
	// abandoned instead of resent. Zero or negative means DefaultMaxSends.
	MaxSends int
}

// Defaults.
const (
	DefaultShards          = 8
	MaxShards              = 256
	DefaultPacketThreshold = 3  // RFC 9002 kPacketThreshold
	DefaultMaxSends        = 13 // first send + 12 retransmissions
)

// Config configures a Tracker or Ledger. The zero value is a production
// configuration.
type Config struct {
	// Shards is the number of record stripes. Zero means DefaultShards; other
	// values are rounded up to a power of two and clamped to [1, MaxShards].
	Shards int
	// Check runs the accounting checker after every Ledger operation:
	// flight == Σ Size(tracked) + pending, panicking on mismatch. It
	// serialises the checker against all operations with an RWMutex, so it is
	// for tests and debugging. Forced on in _test builds.
	Check bool
	// Strict turns accounting violations (flight or pending below zero,
	// tracking a tracked PN, ReleaseUnsent of a tracked PN) into panics.
	// Otherwise they are counted (Underflows, Violations) and logged, never
	// clamped. Forced on in _test builds and -race builds.
	Strict bool
	// Logf receives violation reports when not Strict. Nil discards them.
	Logf func(format string, args ...any)
}

func (c Config) shards() int {
	n := c.Shards
	if n <= 0 {
		return DefaultShards
	}
	if n > MaxShards {
		return MaxShards
	}
	p := 1
	for p < n {
		p <<= 1
	}
	return p
}

// forceTestChecks is set by export_test.go: every Ledger built by NewLedger in
// a _test binary runs with Check and Strict.
var forceTestChecks = false
