package congestion

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/flightline/flightline/transport/internal/flight"
	"github.com/flightline/flightline/transport/internal/monotime"
)

// Controller is a pluggable congestion controller. The sender consults
// Window before putting a packet in flight and paces at PacingRate.
//
// Threading: OnAck, OnLoss and OnRTO may arrive from different goroutines
// (the transport calls OnAck from its receive loop, and OnLoss, OnRTO and
// replayed ACKs from its send loop), so implementations serialise them
// internally (CUBIC and BBR with a mutex; the fixed-rate controller keeps
// only an atomic). OnSent, OnAppLimited, Window, PacingRate and InSlowStart
// may be called from any goroutine. The transport never holds a ledger lock
// across any of these calls.
type Controller interface {
	// Name identifies the algorithm in statistics, e.g. "cubic".
	Name() string
	// OnSent is called for every ack-eliciting packet put on the wire (first
	// sends and retransmissions). inFlight is the flight size including it.
	OnSent(now monotime.Time, bytes int, inFlight int64)
	// OnAck is called once per ACK frame that acknowledged something new.
	OnAck(ev *AckEvent)
	// OnLoss is called when packets are declared lost. Loss-based
	// controllers react at most once per recovery episode (a loss of a
	// packet sent before the episode started is ignored).
	OnLoss(ev *LossEvent)
	// OnRTO is called when the retransmission timeout fires with no ACK progress.
	OnRTO(now monotime.Time)
	// OnAppLimited is called when the sender ran out of data while the
	// window and the pacer would have let it send more (the delivery-rate
	// sampler was marked application-limited at the same time).
	OnAppLimited(now monotime.Time, inFlight int64)
	// Window is the congestion window in bytes (atomic read: called from
	// sender goroutines).
	Window() int64
	// PacingRate is the rate for the pacer in bytes per second (0 = do not pace).
	PacingRate() float64
	// InSlowStart reports whether the controller is in slow start (for BBR:
	// Startup).
	InSlowStart() bool
}

// Quantizer is implemented by controllers that want the pacer's burst
// bounded (Pacer.SetQuantum): BBR's send quantum.
type Quantizer interface {
	// SendQuantum is the largest burst in bytes (0: the pacer's default).
	SendQuantum() int
}

// AckEvent describes one ACK frame.
type AckEvent struct {
	Now monotime.Time
	// AckedBytes is the bytes newly acknowledged.
	AckedBytes int
	// LargestSentAt is the newest acknowledged packet's send time.
	LargestSentAt monotime.Time
	// RTT has already been updated with this ACK's sample (nil in some tests).
	RTT *RTT
	// InFlight is the flight size after the acknowledged packets were removed.
	InFlight int64
	// Sample is the ACK's delivery-rate sample from the flight ledger
	// (Sample.Acked false when the caller has none, e.g. unit tests of
	// window-based controllers).
	Sample flight.RateSample
	// MarkAppLimited, when set, marks the connection application-limited in
	// the sampler (BBR does it in ProbeRTT so the deliberately low rate
	// samples of that phase are not taken as the path's rate).
	MarkAppLimited func()
}

// LossEvent describes packets declared lost by one loss-detection pass.
type LossEvent struct {
	Now monotime.Time
	// LostBytes is the bytes declared lost.
	LostBytes int
	// LostSentAt is the send time of the newest lost packet.
	LostSentAt monotime.Time
	// InFlight is the flight size after the loss was declared (lost packets
	// stay charged until their resends are acknowledged).
	InFlight int64
	// Packets are the lost packets with the delivery-rate snapshot of their
	// last send, in ascending packet-number order (may be nil in tests).
	Packets []flight.Resend
	// TotalLost is the sampler's lifetime lost bytes after this declaration.
	TotalLost uint64
	// TotalDelivered is the sampler's lifetime delivered bytes.
	TotalDelivered uint64
}

// Defaults for Config fields left at zero.
const (
	DefaultMaxDatagramSize      = 1452 // link.MaxPacketSize: 1500 MTU - IPv6 - UDP
	DefaultInitialWindowPackets = 32
	DefaultMinWindowPackets     = 2
	DefaultMaxWindow            = 64 << 20
)

// Config sizes a controller's window. Zero (or negative) fields take the
// documented defaults; see withDefaults for how inconsistent values are
// repaired instead of rejected.
type Config struct {
	// MaxDatagramSize is the wire size of a full packet (the "segment" of the
	// RFCs). Default 1452.
	MaxDatagramSize int
	// InitialWindowPackets is the window before any feedback. Default 32:
	// flightline runs on low-latency paths where the RFC 9002 value of 10
	// wastes several round trips.
	InitialWindowPackets int
	// MinWindowPackets is the floor the window never goes below. Default 2
	// (RFC 9002 kMinimumWindow).
	MinWindowPackets int
	// MaxWindow caps the window in bytes so a long slow start on a huge path
	// cannot blow up the send buffers. Default 64 MiB.
	MaxWindow int64
}

// withDefaults fills zero fields and repairs inconsistent ones: the minimum
// window is at least one packet, the initial window at least the minimum,
// and MaxWindow at least the initial window.
func (c Config) withDefaults() Config {
	if c.MaxDatagramSize <= 0 {
		c.MaxDatagramSize = DefaultMaxDatagramSize
	}
	if c.InitialWindowPackets <= 0 {
		c.InitialWindowPackets = DefaultInitialWindowPackets
	}
	if c.MinWindowPackets <= 0 {
		c.MinWindowPackets = DefaultMinWindowPackets
	}
	c.InitialWindowPackets = max(c.InitialWindowPackets, c.MinWindowPackets)
	if c.MaxWindow <= 0 {
		c.MaxWindow = DefaultMaxWindow
	}
	c.MaxWindow = max(c.MaxWindow, int64(c.InitialWindowPackets)*int64(c.MaxDatagramSize))
	return c
}

func (c Config) minWindow() int64 { return int64(c.MinWindowPackets) * int64(c.MaxDatagramSize) }

func (c Config) initialWindow() int64 {
	return int64(c.InitialWindowPackets) * int64(c.MaxDatagramSize)
}

// atomicFloat64 is a float64 readable from any goroutine.
type atomicFloat64 struct{ bits atomic.Uint64 }

func (f *atomicFloat64) Load() float64   { return math.Float64frombits(f.bits.Load()) }
func (f *atomicFloat64) Store(v float64) { f.bits.Store(math.Float64bits(v)) }

// rateFor returns factor*window/srtt in bytes per second.
func rateFor(factor float64, window int64, srtt time.Duration) float64 {
	if srtt <= 0 {
		srtt = DefaultInitialRTT
	}
	return factor * float64(window) / srtt.Seconds()
}
