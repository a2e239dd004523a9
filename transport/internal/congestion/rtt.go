package congestion

import (
	"sync/atomic"
	"time"
)

const (
	// DefaultInitialRTT is the RTT assumed before the first sample
	// (RFC 9002 §6.2.2 recommends 333 ms for the open Internet; flightline
	// targets data-centre and LAN paths, where quic-go and Linux both use
	// ~100 ms as a safe upper guess).
	DefaultInitialRTT = 100 * time.Millisecond

	// TimerGranularity is the assumed timer resolution (RFC 9002 kGranularity).
	// It keeps PTO and RTO from collapsing to srtt when rttvar is tiny.
	TimerGranularity = time.Millisecond

	// DefaultMaxRTO is the upper clamp for RTO when the caller passes 0
	// (RFC 6298 §2.5 allows a maximum of at least 60 s).
	DefaultMaxRTO = 60 * time.Second
)

// RTT estimates the path round-trip time per RFC 9002 §5.
//
// Update is called by one goroutine (the ACK processor). Every getter may be
// called concurrently from any goroutine: each value is stored in its own
// atomic, so a reader racing with Update may see a new srtt next to the
// previous rttvar. That mix is harmless for timers and statistics, and it
// keeps readers lock-free.
type RTT struct {
	smoothed  atomic.Int64 // time.Duration
	rttvar    atomic.Int64 // time.Duration
	min       atomic.Int64 // time.Duration; 0 until the first sample
	latest    atomic.Int64 // time.Duration; 0 until the first sample
	hasSample atomic.Bool
}

// NewRTT returns an estimator that reports initial (DefaultInitialRTT if
// <= 0) as the smoothed RTT and initial/2 as rttvar until the first sample,
// as RFC 9002 §5.3 prescribes.
func NewRTT(initial time.Duration) *RTT {
	if initial <= 0 {
		initial = DefaultInitialRTT
	}
	r := &RTT{}
	r.smoothed.Store(int64(initial))
	r.rttvar.Store(int64(initial / 2))
	return r
}

// Update folds one RTT sample into the estimate (RFC 9002 §5.3).
//
// sample is the time from sending the largest newly acknowledged packet to
// receiving its ACK; ackDelay is the delay the peer reported, clamped to
// maxAckDelay (the peer promised never to delay longer; a peer that
// advertises 0 acknowledges immediately, so nothing is subtracted). The ack
// delay is subtracted only when the result stays >= min_rtt, so a peer
// cannot drive the estimate below the physically observed minimum.
// Non-positive samples are ignored: they can only come from a clock or
// accounting error and would poison min_rtt.
//
// Update must not be called concurrently with itself.
func (r *RTT) Update(sample, ackDelay, maxAckDelay time.Duration) {
	if sample <= 0 {
		return
	}
	r.latest.Store(int64(sample))
	if !r.hasSample.Load() {
		// First sample: no ack-delay adjustment (RFC 9002 §5.3).
		r.min.Store(int64(sample))
		r.smoothed.Store(int64(sample))
		r.rttvar.Store(int64(sample / 2))
		r.hasSample.Store(true)
		return
	}
	minRTT := time.Duration(r.min.Load())
	if sample < minRTT {
		minRTT = sample
		r.min.Store(int64(minRTT))
	}
	ackDelay = max(min(ackDelay, maxAckDelay), 0)
	adjusted := sample
	if sample-ackDelay >= minRTT {
		adjusted = sample - ackDelay
	}
	srtt := time.Duration(r.smoothed.Load())
	rttvar := time.Duration(r.rttvar.Load())
	diff := srtt - adjusted
	if diff < 0 {
		diff = -diff
	}
	// rttvar = 3/4 rttvar + 1/4 |srtt - adjusted|; srtt = 7/8 srtt + 1/8 adjusted.
	// rttvar uses the old srtt, so it is computed first.
	r.rttvar.Store(int64((3*rttvar + diff) / 4))
	r.smoothed.Store(int64((7*srtt + adjusted) / 8))
}

// Smoothed returns the smoothed RTT (srtt).
func (r *RTT) Smoothed() time.Duration { return time.Duration(r.smoothed.Load()) }

// Var returns the RTT variation (rttvar).
func (r *RTT) Var() time.Duration { return time.Duration(r.rttvar.Load()) }

// Min returns the minimum RTT seen, without ack-delay adjustment; 0 before
// the first sample.
func (r *RTT) Min() time.Duration { return time.Duration(r.min.Load()) }

// Latest returns the most recent raw sample; 0 before the first sample.
func (r *RTT) Latest() time.Duration { return time.Duration(r.latest.Load()) }

// HasSample reports whether at least one sample has been taken.
func (r *RTT) HasSample() bool { return r.hasSample.Load() }

// PTO returns the probe timeout of RFC 9002 §6.2.1:
// srtt + max(4*rttvar, kGranularity) + maxAckDelay. The caller applies the
// exponential backoff and passes maxAckDelay = 0 where the RFC says so
// (Initial and Handshake spaces).
func (r *RTT) PTO(maxAckDelay time.Duration) time.Duration {
	return r.Smoothed() + max(4*r.Var(), TimerGranularity) + max(maxAckDelay, 0)
}

// RTO returns an RFC 6298 style retransmission timeout:
// max(srtt + max(G, 4*rttvar), minRTO) doubled backoff times, clamped to
// maxRTO (DefaultMaxRTO if <= 0). A negative backoff counts as 0.
//
// The doubling stops as soon as the clamp is reached, so any backoff value
// is safe (no overflow).
func (r *RTT) RTO(minRTO, maxRTO time.Duration, backoff int) time.Duration {
	if maxRTO <= 0 {
		maxRTO = DefaultMaxRTO
	}
	rto := max(r.Smoothed()+max(4*r.Var(), TimerGranularity), minRTO)
	for i := 0; i < backoff && rto < maxRTO; i++ {
		rto *= 2
	}
	return min(rto, maxRTO)
}
