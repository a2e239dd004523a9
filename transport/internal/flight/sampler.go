package flight

import (
	"sync"
	"time"

	"github.com/flightline/flightline/transport/internal/monotime"
)

// Delivery-rate estimation (draft-cheng-iccrg-delivery-rate-estimation-02,
// folded into draft-ietf-ccwg-bbr-06 §"Delivery Rate Samples"). The per-packet
// snapshot lives in the ledger's records; the connection-wide counters live
// here. Every ACK frame yields one RateSample built from the newest packet it
// acknowledged.
//
// Retransmissions keep their record (docs/invariants.md): Refresh re-keys the
// record to its new packet number and takes a complete new snapshot at the
// resend instant, exactly as for a first send, so old and new snapshot fields
// are never mixed (mixing a fresh delivered time with a stale delivered count
// over-estimates the rate; a stale first-send time under-estimates it). A late
// ACK of the original packet number finds nothing (Refresh removed it) and is
// ignored, so bytes are counted delivered once.

// snapshot is what a record stores at each (re)transmission.
type snapshot struct {
	delivered     uint64        // C.delivered when sent
	deliveredTime monotime.Time // C.delivered_time when sent
	firstSendTime monotime.Time // C.first_send_time when sent
	lost          uint64        // C.lost when sent
	txInFlight    int64         // flight size right after this packet was charged
	appLimited    bool          // sent inside an application-limited bubble
}

// sampler holds the connection-wide delivery-rate state (C in the draft).
// Guarded by mu, which is a leaf lock: it is never held while taking a shard
// lock, and no shard lock is held while taking it.
type sampler struct {
	mu            sync.Mutex
	delivered     uint64        // bytes acknowledged over the lifetime
	deliveredTime monotime.Time // when delivered last grew
	firstSendTime monotime.Time // send time of the newest delivered packet
	lost          uint64        // bytes declared lost over the lifetime
	// appLimited is 0, or the delivered value at which the application-limited
	// bubble has left the pipe; packets sent before then are tagged.
	appLimited uint64
	// idle is set by Charge when it found nothing in flight: the next
	// tracked packet starts a new sampling epoch (first_send_time and
	// delivered_time = its send time). Nothing outstanding — lost or not —
	// is what Linux's tcp_rate_skb_sent tests (packets_out == 0); a reset on
	// an "empty pipe" estimate would give too-short intervals after
	// spurious loss marks.
	idle bool
}

// take returns the snapshot for a packet sent at sentAt with the flight size
// inFlight (which includes it).
func (s *sampler) take(sentAt monotime.Time, inFlight int64) snapshot {
	s.mu.Lock()
	if s.idle {
		s.idle = false
		s.firstSendTime, s.deliveredTime = sentAt, sentAt
	}
	snap := snapshot{
		delivered:     s.delivered,
		deliveredTime: s.deliveredTime,
		firstSendTime: s.firstSendTime,
		lost:          s.lost,
		txInFlight:    inFlight,
		appLimited:    s.appLimited != 0,
	}
	s.mu.Unlock()
	return snap
}

// RateSample is the delivery-rate sample of one ACK frame (the draft's RS).
// When no packet was newly acknowledged only the loss fields are meaningful.
type RateSample struct {
	// Acked is false when the ACK acknowledged nothing new.
	Acked bool
	// Delivered is the bytes delivered between the send of the newest
	// acknowledged packet and this ACK (C.delivered - P.delivered).
	Delivered int64
	// PriorDelivered is P.delivered of the newest acknowledged packet: round
	// counting compares it with the delivered value at a round's start.
	PriorDelivered uint64
	// Interval is max(SendElapsed, AckElapsed): the longer of the send and
	// the ACK intervals, so ACK compression cannot push the rate above the
	// send rate.
	Interval, SendElapsed, AckElapsed time.Duration
	// IsAppLimited: the newest packet was sent in an application-limited
	// bubble; the rate then bounds the path only from below.
	IsAppLimited bool
	// TxInFlight is the flight size when the newest packet was sent.
	TxInFlight int64
	// Lost is the bytes declared lost while the newest packet was in flight
	// (C.lost - P.lost).
	Lost int64
	// NewlyAcked is the bytes this ACK acknowledged.
	NewlyAcked int64
	// RTT is now minus the send time of the newest acknowledged packet.
	RTT time.Duration
	// NewestSentAt is that send time.
	NewestSentAt monotime.Time
	// TotalDelivered and TotalLost are the connection's counters after the ACK.
	TotalDelivered, TotalLost uint64
}

// Rate returns the delivery rate in bytes per second, and false when the
// sample carries no rate: nothing acknowledged, or an interval shorter than
// minRTT (draft-cheng-iccrg-delivery-rate-estimation-02 §3.3: such a sample
// is implausible — it would mean the data left faster than one round trip —
// and comes from ambiguity or reordering).
func (rs *RateSample) Rate(minRTT time.Duration) (float64, bool) {
	if !rs.Acked || rs.Interval <= 0 || rs.Interval < minRTT || rs.Delivered <= 0 {
		return 0, false
	}
	return float64(rs.Delivered) / rs.Interval.Seconds(), true
}

// newer reports whether a (sent at at, packet number apn) was sent after b.
func newer(at monotime.Time, apn uint64, bt monotime.Time, bpn uint64) bool {
	return at > bt || (at == bt && apn > bpn)
}

// onAcked folds the records an ACK removed into the counters and builds the
// sample. checkAppLimited has been applied by the caller before the ACK.
func (s *sampler) onAcked(now monotime.Time, acked []Acked) RateSample {
	var rs RateSample
	var best *Acked
	s.mu.Lock()
	for i := range acked {
		a := &acked[i]
		s.delivered += uint64(a.Size)
		s.deliveredTime = now
		rs.NewlyAcked += int64(a.Size)
		if best == nil || newer(a.SentAt, a.PN, best.SentAt, best.PN) {
			best = a
		}
	}
	if best != nil {
		// The newest packet's send time becomes the start of the next send
		// interval; the older ones' would only make it longer.
		s.firstSendTime = best.SentAt
	}
	if s.appLimited != 0 && s.delivered > s.appLimited {
		s.appLimited = 0
	}
	rs.TotalDelivered, rs.TotalLost = s.delivered, s.lost
	if best == nil {
		s.mu.Unlock()
		return rs
	}
	rs.Acked = true
	rs.PriorDelivered = best.snap.delivered
	rs.Delivered = int64(s.delivered - best.snap.delivered)
	rs.SendElapsed = best.SentAt.Sub(best.snap.firstSendTime)
	rs.AckElapsed = s.deliveredTime.Sub(best.snap.deliveredTime)
	rs.IsAppLimited = best.snap.appLimited
	rs.TxInFlight = best.snap.txInFlight
	rs.Lost = int64(s.lost - best.snap.lost)
	s.mu.Unlock()
	rs.Interval = max(rs.SendElapsed, rs.AckElapsed)
	rs.RTT = now.Sub(best.SentAt)
	rs.NewestSentAt = best.SentAt
	return rs
}

// onLost counts bytes declared lost. Lost bytes are never delivered, so an
// open app-limited marker is lowered by them; otherwise it would not clear
// until the retransmissions were delivered too.
func (s *sampler) onLost(bytes int) {
	if bytes <= 0 {
		return
	}
	s.mu.Lock()
	s.lost += uint64(bytes)
	if s.appLimited != 0 {
		s.appLimited = max(s.appLimited-min(s.appLimited, uint64(bytes)), 1)
	}
	s.mu.Unlock()
}

// markAppLimited opens an application-limited bubble: every packet sent until
// the data in flight now has been delivered is tagged.
func (s *sampler) markAppLimited(inFlight int64) {
	s.mu.Lock()
	s.appLimited = max(s.delivered+uint64(max(inFlight, 0)), 1)
	s.mu.Unlock()
}

// SamplerState is a snapshot of the connection-wide counters (statistics and
// tests).
type SamplerState struct {
	Delivered     uint64
	DeliveredTime monotime.Time
	FirstSendTime monotime.Time
	Lost          uint64
	AppLimited    uint64
}

func (s *sampler) state() SamplerState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return SamplerState{s.delivered, s.deliveredTime, s.firstSendTime, s.lost, s.appLimited}
}
