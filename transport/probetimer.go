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
//	lastSent + PTO          → tail-loss probe: resend the newest packet, once
//	                          per flight, no backoff (RFC 9002 §6.2 / TLP)
//	lastSent + RTO·2^k      → retransmission timeout k: resend every tracked
//	                          packet, collapse the window, k++ (RFC 6298 §5.5)
//
// Any ACK that acknowledges new packets resets both (onAckProgress).
type probeTimer struct {
	lastSent monotime.Time // last ack-eliciting send (0: none yet)
	tlpDone  bool
	backoff  int
}

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
	if !p.tlpDone {
		return p.lastSent.Add(pto(0))
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
	if !p.tlpDone {
		p.tlpDone = true
		return probeTLP
	}
	p.backoff++
	return probeRTO
}

func (p *probeTimer) onSent(now monotime.Time) { p.lastSent = now }

func (p *probeTimer) onAckProgress() {
	p.tlpDone = false
	p.backoff = 0
}
