package transport

import (
	"time"

	"github.com/flightline/flightline/transport/internal/monotime"
	"github.com/flightline/flightline/transport/internal/wire"
)

// maxAckRanges bounds the received-packet history kept for ACK frames. The
// ranges are repeated in every ACK (there is no ack-of-ack), so an ACK that
// is lost, or that arrives before the sender registered the packet, is
// covered by the next one. Older holes fall off the end: packets that old
// are recovered by the sender's retransmission timer.
const maxAckRanges = 32

// ackState is the receive side's record of which packet numbers arrived and
// whether an ACK is owed. It is guarded by Conn.ackMu: the receive path
// inserts, the send loop builds ACK frames.
type ackState struct {
	ranges []wire.AckRange // descending, disjoint, non-adjacent

	largestRecvAt    monotime.Time // when the largest pn arrived (ack delay)
	unackedEliciting int           // ack-eliciting packets since the last ACK sent
	ackDeadline      monotime.Time // send an ACK by then (0: none owed)
	immediate        bool          // send an ACK with the next packet out
}

// insert records pn. It reports whether pn is new.
func (a *ackState) insert(pn uint64) bool {
	r := a.ranges
	// Fast path: extends the newest range.
	if len(r) > 0 && pn == r[0].Largest+1 {
		r[0].Largest = pn
		return true
	}
	i := 0
	for i < len(r) && r[i].Smallest > pn {
		i++
	}
	// Now r[i-1].Smallest > pn (if i>0) and r[i].Smallest <= pn (if i<len).
	if i < len(r) && r[i].Largest >= pn {
		return false // duplicate
	}
	extendsAbove := i > 0 && r[i-1].Smallest == pn+1
	extendsBelow := i < len(r) && r[i].Largest+1 == pn
	switch {
	case extendsAbove && extendsBelow:
		r[i-1].Smallest = r[i].Smallest
		a.ranges = append(r[:i], r[i+1:]...)
	case extendsAbove:
		r[i-1].Smallest = pn
	case extendsBelow:
		r[i].Largest = pn
	default:
		if i >= maxAckRanges {
			return true // older than everything we remember; ack state unchanged
		}
		r = append(r, wire.AckRange{})
		copy(r[i+1:], r[i:])
		r[i] = wire.AckRange{Smallest: pn, Largest: pn}
		if len(r) > maxAckRanges {
			r = r[:maxAckRanges]
		}
		a.ranges = r
	}
	return true
}

// largest returns the largest received pn.
func (a *ackState) largest() (uint64, bool) {
	if len(a.ranges) == 0 {
		return 0, false
	}
	return a.ranges[0].Largest, true
}

// onPacket updates ACK obligations after a packet was accepted. Per RFC 9000
// §13.2.1: ACK at once on every second ack-eliciting packet or on a gap;
// otherwise within maxAckDelay. Non-eliciting packets (pure ACKs) never
// cause an ACK, which is what keeps ACKs from being acknowledged forever.
// It reports whether it set a new ackDeadline (the caller arms a timer).
func (a *ackState) onPacket(pn uint64, now monotime.Time, eliciting bool, maxAckDelay time.Duration) (newDeadline bool) {
	largest, _ := a.largest()
	outOfOrder := pn != largest || (len(a.ranges) > 1 && a.ranges[0].Smallest == pn)
	if pn == largest {
		a.largestRecvAt = now
	}
	if !eliciting {
		return false
	}
	a.unackedEliciting++
	if a.unackedEliciting >= 2 || outOfOrder {
		a.immediate = true
	}
	if a.ackDeadline == 0 {
		a.ackDeadline = now.Add(maxAckDelay)
		return true
	}
	return false
}

// owed reports whether an ACK should go out now.
func (a *ackState) owed(now monotime.Time) bool {
	return a.immediate || (a.ackDeadline != 0 && now >= a.ackDeadline)
}

// pending reports whether an ACK could be piggybacked (anything unacked).
func (a *ackState) pending() bool { return a.ackDeadline != 0 || a.immediate }

// appendFrame writes an ACK frame for the current state and clears the
// obligation. It writes exactly frameLen(now) bytes.
func (a *ackState) appendFrame(b []byte, now monotime.Time) []byte {
	if len(a.ranges) == 0 {
		return b
	}
	a.unackedEliciting = 0
	a.ackDeadline = 0
	a.immediate = false
	return wire.AppendAck(b, a.ranges, a.delayMicros(now))
}

// frameLen is the size appendFrame(now) would write. The ack delay is part
// of the frame and its varint grows with it (1 to 8 bytes: 8 once the delay
// passes 2^30 µs, about 18 minutes), so it is sized with the same delay
// appendFrame encodes; an estimate could undersize the frame and push the
// packet past its room.
func (a *ackState) frameLen(now monotime.Time) int {
	if len(a.ranges) == 0 {
		return 0
	}
	return wire.AckLen(a.ranges, a.delayMicros(now))
}

// maxAckDelayField caps the encoded ack delay. The receiver clamps what it
// reads to an hour anyway (ackDelayDuration); capping here keeps the field a
// value we chose, whatever the clock did.
const maxAckDelayField = uint64(time.Hour / time.Microsecond)

// delayMicros is the ack delay field for an ACK sent at now: the time since
// the largest packet number arrived, in microseconds.
func (a *ackState) delayMicros(now monotime.Time) uint64 {
	if a.largestRecvAt == 0 || now <= a.largestRecvAt {
		return 0
	}
	return min(uint64(now.Sub(a.largestRecvAt)/time.Microsecond), maxAckDelayField)
}
