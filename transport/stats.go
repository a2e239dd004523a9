package transport

import (
	"sync/atomic"
	"time"

	"github.com/flightline/flightline/transport/internal/congestion"
	"github.com/flightline/flightline/transport/link"
)

// connStats are the connection's counters, updated with atomics by the
// goroutine that observes each event.
type connStats struct {
	packetsSent, bytesSent          atomic.Uint64
	packetsReceived, bytesReceived  atomic.Uint64
	bytesAcked                      atomic.Uint64
	packetsLost, retransmits        atomic.Uint64
	packetsAbandoned                atomic.Uint64
	tlps, rtos                      atomic.Uint64
	dropDuplicate, dropDecrypt      atomic.Uint64
	dropMalformed, dropMessageQueue atomic.Uint64
	protocolErrors, sendErrors      atomic.Uint64
	refreshMisses                   atomic.Uint64
	resendsSkipped                  atomic.Uint64
	dupStreamBytes                  atomic.Uint64
	abortReleasedBytes              atomic.Uint64
	windowWaitAborts                atomic.Uint64
	streamsOpened, streamsAccepted  atomic.Uint64
}

// Key update counters live in packetKeys (keyupdate.go).

// Stats is a snapshot of one connection.
type Stats struct {
	Datapath   string    // "udp", "xdp" or "mem"
	Link       link.Caps // datapath offloads in use
	Suite      string    // AEAD
	Controller string    // congestion controller

	SmoothedRTT, MinRTT, LatestRTT time.Duration
	CongestionWindow               int64   // bytes
	FlightSize                     int64   // bytes charged and not yet released
	TrackedPackets                 int     // packets in flight
	PacingRate                     float64 // bytes/s
	// CongestionState and BandwidthEstimate describe a model-based
	// controller (BBR: its state, e.g. "probe_bw_cruise", and max_bw in
	// bytes/s); empty and 0 for CUBIC and fixed rate.
	CongestionState   string
	BandwidthEstimate float64
	// BytesDelivered and BytesDeclaredLost are the delivery-rate sampler's
	// lifetime counters (acknowledged; declared lost, retransmissions
	// included).
	BytesDelivered, BytesDeclaredLost uint64

	PacketsSent, BytesSent         uint64
	PacketsReceived, BytesReceived uint64
	BytesAcked                     uint64
	PacketsLost                    uint64 // declared lost by packet/time threshold
	PacketsRetransmitted           uint64 // resends for any reason (loss, TLP, RTO)
	PacketsAbandoned               uint64 // given up after MaxRetransmits
	TailLossProbes, RTOs           uint64

	// Dropped packets, by reason. None of them changed connection state.
	DroppedDuplicate, DroppedUndecryptable, DroppedMalformed, DroppedMessageQueue uint64

	// DuplicateStreamBytes counts received stream bytes that had already
	// arrived: the cost of spurious retransmissions and duplication.
	DuplicateStreamBytes uint64
	// ResendsSkipped counts queued retransmissions dropped because their
	// packet was acknowledged (or its stream aborted) before they went out.
	ResendsSkipped     uint64
	SendErrors         uint64
	StreamsOpened      uint64
	StreamsAccepted    uint64
	WindowWaitAborts   uint64
	AbortReleasedBytes uint64 // flight bytes released because their stream aborted
	FlightUnderflows   uint64 // must stay 0: a release below zero is a bug

	// KeyUpdates counts this side's send key generations after the first:
	// updates it initiated (KeyUpdatesInitiated) plus updates it followed.
	KeyUpdates, KeyUpdatesInitiated uint64
	// PeerKeyUpdates counts the peer's key generations this side
	// authenticated (its receive key's generation).
	PeerKeyUpdates uint64
	// PreviousKeyPackets counts packets that arrived after the peer's key
	// update but were sealed before it, opened with the previous key.
	PreviousKeyPackets uint64
	// AuthFailures counts packets that failed authentication under any key
	// (the RFC 9001 §6.6 integrity-limit count; a subset of
	// DroppedUndecryptable, which also counts packets of a discarded key).
	AuthFailures uint64

	// Path validation (path.go): candidate addresses validated, failed
	// (back to the validated address after unanswered challenges) and
	// abandoned (the peer's newest packet came from the validated address
	// again first). PathAmplificationLimited counts send passes an
	// unvalidated address's 3× budget (or the wait for validation) held
	// back; PathResponsesDropped counts challenges left unanswered.
	PathValidations, PathValidationFailures, PathValidationsAbandoned uint64
	PathChallengesSent, PathResponsesSent, PathResponsesDropped       uint64
	PathAmplificationLimited                                          uint64
}

// Stats returns a snapshot of the connection's counters and state.
func (c *Conn) Stats() Stats {
	caps := c.ep.link.Caps()
	s := &c.stats
	ps := c.pathStatsSnapshot()
	info, _ := congestion.InspectBBR(c.cc)
	sampled := c.ledger.Sampler()
	return Stats{
		CongestionState:      info.State,
		BandwidthEstimate:    info.MaxBw,
		BytesDelivered:       sampled.Delivered,
		BytesDeclaredLost:    sampled.Lost,
		Datapath:             caps.Datapath,
		Link:                 caps,
		Suite:                c.suite.String(),
		Controller:           c.cc.Name(),
		SmoothedRTT:          c.rtt.Smoothed(),
		MinRTT:               c.rtt.Min(),
		LatestRTT:            c.rtt.Latest(),
		CongestionWindow:     c.cc.Window(),
		FlightSize:           c.ledger.Flight(),
		TrackedPackets:       c.ledger.Len(),
		PacingRate:           c.cc.PacingRate(),
		PacketsSent:          s.packetsSent.Load(),
		BytesSent:            s.bytesSent.Load(),
		PacketsReceived:      s.packetsReceived.Load(),
		BytesReceived:        s.bytesReceived.Load(),
		BytesAcked:           s.bytesAcked.Load(),
		PacketsLost:          s.packetsLost.Load(),
		PacketsRetransmitted: s.retransmits.Load(),
		PacketsAbandoned:     s.packetsAbandoned.Load(),
		TailLossProbes:       s.tlps.Load(),
		RTOs:                 s.rtos.Load(),
		DroppedDuplicate:     s.dropDuplicate.Load(),
		DroppedUndecryptable: s.dropDecrypt.Load(),
		DroppedMalformed:     s.dropMalformed.Load(),
		DroppedMessageQueue:  s.dropMessageQueue.Load(),
		SendErrors:           s.sendErrors.Load(),
		ResendsSkipped:       s.resendsSkipped.Load(),
		DuplicateStreamBytes: s.dupStreamBytes.Load(),
		StreamsOpened:        s.streamsOpened.Load(),
		StreamsAccepted:      s.streamsAccepted.Load(),
		WindowWaitAborts:     s.windowWaitAborts.Load(),
		AbortReleasedBytes:   s.abortReleasedBytes.Load(),
		FlightUnderflows:     c.ledger.Underflows(),
		KeyUpdates:           c.keys.sendGen.Load(),
		KeyUpdatesInitiated:  c.keys.initiated.Load(),
		PeerKeyUpdates:       c.keys.peerGen.Load(),
		AuthFailures:         c.keys.failures.Load(),
		PreviousKeyPackets:   c.keys.oldKeyOpens.Load(),

		PathValidations:          ps.validations,
		PathValidationFailures:   ps.failures,
		PathValidationsAbandoned: ps.abandoned,
		PathChallengesSent:       ps.challengesSent,
		PathResponsesSent:        ps.responsesSent,
		PathResponsesDropped:     ps.responsesDropped,
		PathAmplificationLimited: ps.amplificationLimited,
	}
}
