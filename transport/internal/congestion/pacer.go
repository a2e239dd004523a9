package congestion

import (
	"math"
	"time"

	"github.com/flightline/flightline/transport/internal/monotime"
)

// DefaultMaxBurstPackets is the pacer burst when NewPacer gets 0: ten full
// packets, enough to fill one GSO/sendmmsg batch without stalling.
const DefaultMaxBurstPackets = 10

// tokenEpsilon absorbs float rounding: NextSendTime computes a time at which
// the bucket holds exactly the needed bytes, and the refill at that time may
// come out a few ULPs short. Without it a sender could spin on a 1-ns retry.
const tokenEpsilon = 1e-6

// maxPacerWait bounds NextSendTime for pathological rates.
const maxPacerWait = time.Hour

// Pacer is a token bucket that spaces packets at the controller's pacing
// rate. Every packet on the wire goes through it, retransmissions included.
//
// The bucket holds at most maxBurst bytes (so idle time never buys more than
// one burst) and at least -maxBurst (a sender that overrides the pacer, e.g.
// for a probe, cannot push it into unbounded debt). Elapsed time is credited
// at the rate passed to the call, so a rate change takes effect immediately.
//
// Not safe for concurrent use: it belongs to the goroutine that writes
// packets.
type Pacer struct {
	maxBurst   float64
	quantum    float64 // 0, or a smaller burst cap set by SetQuantum
	tokens     float64 // invariant: -maxBurst <= tokens <= maxBurst
	lastUpdate monotime.Time
	started    bool
}

// NewPacer returns a pacer with a full bucket of maxBurst bytes
// (DefaultMaxBurstPackets * DefaultMaxDatagramSize if <= 0).
func NewPacer(maxBurst int) *Pacer {
	if maxBurst <= 0 {
		maxBurst = DefaultMaxBurstPackets * DefaultMaxDatagramSize
	}
	return &Pacer{maxBurst: float64(maxBurst), tokens: float64(maxBurst)}
}

// refill credits the time since the last update at rate. Time going backwards
// (a caller mixing clocks) credits nothing and does not rewind lastUpdate.
func (p *Pacer) refill(now monotime.Time, rate float64) {
	if !p.started {
		p.started = true
		p.lastUpdate = now
		return
	}
	if !now.After(p.lastUpdate) {
		return
	}
	if rate <= 0 || math.IsNaN(rate) {
		p.tokens = p.maxBurst // unpaced: the bucket is irrelevant, keep it full
	} else {
		p.tokens = min(p.tokens+now.Sub(p.lastUpdate).Seconds()*rate, p.burst())
	}
	p.lastUpdate = now
}

// burst is the bucket's current capacity.
func (p *Pacer) burst() float64 {
	if p.quantum > 0 {
		return min(p.quantum, p.maxBurst)
	}
	return p.maxBurst
}

// SetQuantum lowers the burst to q bytes (0 restores maxBurst). A
// controller whose model is a rate (BBR) wants bursts of about 1 ms of it:
// a full 64-packet batch is 37 ms of a 20 Mbit/s link, a queue spike the
// model then reads as the path's RTT. Tokens above the new cap are dropped.
func (p *Pacer) SetQuantum(q int) {
	p.quantum = float64(max(q, 0))
	p.tokens = min(p.tokens, p.burst())
}

// Budget returns how many bytes may be sent now. rate <= 0 means unlimited
// (math.MaxInt).
func (p *Pacer) Budget(now monotime.Time, rate float64) int {
	if rate <= 0 || math.IsNaN(rate) {
		return math.MaxInt
	}
	p.refill(now, rate)
	if p.tokens <= 0 {
		return 0
	}
	return int(p.tokens + tokenEpsilon)
}

// OnSent takes bytes out of the bucket.
func (p *Pacer) OnSent(now monotime.Time, bytes int, rate float64) {
	p.refill(now, rate)
	if rate <= 0 || math.IsNaN(rate) || bytes <= 0 {
		return
	}
	p.tokens = max(p.tokens-float64(bytes), -p.maxBurst)
}

// NextSendTime returns when bytes may be sent: now if the bucket already
// holds them, otherwise the instant it will at rate. A packet larger than
// the burst only waits for a full bucket, so it is never stuck forever.
func (p *Pacer) NextSendTime(now monotime.Time, bytes int, rate float64) monotime.Time {
	if rate <= 0 || math.IsNaN(rate) {
		return now
	}
	p.refill(now, rate)
	need := min(float64(bytes), p.burst())
	deficit := need - p.tokens - tokenEpsilon
	if deficit <= 0 {
		return now
	}
	// Cap the wait so an absurdly small rate cannot overflow the Duration.
	secs := min(deficit/rate, maxPacerWait.Seconds())
	wait := time.Duration(math.Ceil(secs * float64(time.Second)))
	return p.lastUpdate.Add(max(wait, 1))
}
