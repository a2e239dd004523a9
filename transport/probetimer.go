package transport

import (
	"time"

	"github.com/flightline/flightline/transport/internal/monotime"
)

// probeTimer decides when the sender probes a silent path. It is plain data
// driven by explicit times, so its schedule is tested on a fake clock.
//
// After the last ack-eliciting send, with packets outstanding and no ACK
// progress:
//
//	lastSent + PTO·2^i      → tail-loss probe i (i < maxTLPs): resend the
//	                          newest packet, window untouched (RFC 9002 §6.2)
//	lastSent + RTO·2^k      → retransmission timeout k: resend every tracked
//	                          packet, collapse the window, k++ (RFC 6298 §5.5)
//
// Two probes rather than one: on a lossy path the single probe (or its ACK)
// is itself lost often enough that falling straight to a minimum-RTO stall
// dominated transfer time; a second, backed-off probe costs one packet.
//
// Any ACK that acknowledges new packets resets both (onAckProgress).
type probeTimer struct {
	lastSent monotime.Time // last ack-eliciting send (0: none yet)
	tlps     int           // probes sent since the last ACK progress
	backoff  int           // RTOs since the last ACK progress
}

// maxTLPs is how many tail-loss probes precede the first RTO.
const maxTLPs = 2

type probeAction uint8

const (
	probeNone probeAction = iota
	probeTLP
	probeRTO
)

// deadline returns when the timer fires, or 0 when nothing is outstanding.
func (p *probeTimer) deadline(outstanding bool, pto, rto func(backoff int) time.Duration) monotime.Time {
	if !outstanding || p.lastSent == 0 {
		return 0
	}
	if p.tlps < maxTLPs {
		return p.lastSent.Add(pto(0) << p.tlps)
	}
	return p.lastSent.Add(rto(p.backoff))
}

// fire returns the action due at now and advances the state as if it was
// taken: the probe counts as a send.
func (p *probeTimer) fire(now monotime.Time, outstanding bool, pto, rto func(backoff int) time.Duration) probeAction {
	d := p.deadline(outstanding, pto, rto)
	if d == 0 || now < d {
		return probeNone
	}
	p.lastSent = now
	if p.tlps < maxTLPs {
		p.tlps++
		return probeTLP
	}
	p.backoff++
	return probeRTO
}

func (p *probeTimer) onSent(now monotime.Time) { p.lastSent = now }

func (p *probeTimer) onAckProgress() {
	p.tlps = 0
	p.backoff = 0
}
