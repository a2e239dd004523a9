package congestion

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flightline/flightline/transport/internal/monotime"
)

// CUBIC constants from RFC 9438 §4.
const (
	cubicC    = 0.4 // segments / s^3
	cubicBeta = 0.7 // multiplicative decrease factor
	// alphaCubic makes the Reno-friendly estimate grow as fast as Reno would
	// with beta = 0.7 (RFC 9438 §4.3): 3(1-beta)/(1+beta).
	alphaCubic = 3 * (1 - cubicBeta) / (1 + cubicBeta)

	// Pacing gains (as in Linux and quic-go): pace above the window rate so
	// that pacing itself never becomes the bottleneck; twice as much in slow
	// start so the window can actually double each RTT.
	pacingGainSlowStart = 2.0
	pacingGainAvoidance = 1.25
)

// cubic implements CUBIC (RFC 9438) with fast convergence, the Reno-friendly
// region and RFC 9002 style recovery episodes. HyStart++ is not implemented:
// slow start ends at the first loss.
//
// All window arithmetic is in bytes as float64 so that sub-byte growth per
// ACK accumulates; the published window is the truncated value.
type cubic struct {
	cfg       Config
	mss       float64
	minWindow float64
	maxWindow float64

	// Published for lock-free readers (senders, stats).
	window    atomic.Int64
	pacing    atomicFloat64
	slowStart atomic.Bool

	mu sync.Mutex
	// Everything below is guarded by mu.
	cwnd     float64 // bytes; invariant: minWindow <= cwnd <= maxWindow
	ssthresh float64 // bytes; +Inf until the first congestion event
	srtt     time.Duration

	// Recovery episode (RFC 9002 §7.3.2): losses of packets sent at or before
	// recoveryStart belong to an episode already reacted to, and ACKs of such
	// packets do not grow the window. The comparison stays valid after the
	// episode ends, so a late loss report for an old packet is still ignored.
	hasRecovery   bool // recoveryStart is set (monotime 0 is a valid fake time)
	recoveryStart monotime.Time

	// Congestion-avoidance epoch (RFC 9438 §4.2). The epoch restarts after
	// every congestion event and after app-limited periods, because the cubic
	// curve assumes the whole window was in use since epochStart.
	epochStarted bool
	epochStart   monotime.Time
	wmax         float64 // bytes: window before the last reduction
	k            float64 // seconds until W_cubic returns to wmax
	west         float64 // bytes: Reno-friendly estimate W_est
}

// NewCubic returns a CUBIC controller (RFC 9438: slow start, beta 0.7,
// C = 0.4, fast convergence, Reno-friendly region). The window grows only
// when the sender is not app-limited, i.e. when at least half the window was
// in flight when the ACK arrived.
func NewCubic(cfg Config) Controller {
	cfg = cfg.withDefaults()
	c := &cubic{
		cfg:       cfg,
		mss:       float64(cfg.MaxDatagramSize),
		minWindow: float64(cfg.minWindow()),
		maxWindow: float64(cfg.MaxWindow),
		cwnd:      float64(cfg.initialWindow()),
		ssthresh:  math.Inf(1),
		srtt:      DefaultInitialRTT,
	}
	c.publishLocked()
	return c
}

func (c *cubic) Name() string { return "cubic" }

// OnAppLimited is ignored: CUBIC detects app-limited ACKs from the flight
// size passed to OnAck (less than half the window in use).
func (c *cubic) OnAppLimited(monotime.Time, int64) {}

// OnSent keeps no per-packet state: app-limited detection uses the flight
// size passed to OnAck. It is therefore safe from any goroutine.
func (c *cubic) OnSent(monotime.Time, int, int64) {}

func (c *cubic) OnAck(ev *AckEvent) {
	now, ackedBytes, largestSentAt, rtt, inFlight := ev.Now, ev.AckedBytes, ev.LargestSentAt, ev.RTT, ev.InFlight
	c.mu.Lock()
	defer c.mu.Unlock()
	if rtt != nil {
		c.srtt = rtt.Smoothed()
	}
	defer c.publishLocked() // srtt may have changed even if cwnd does not
	if ackedBytes <= 0 {
		return
	}
	if c.hasRecovery && !largestSentAt.After(c.recoveryStart) {
		return // in recovery: no growth (RFC 9002 §7.3.2)
	}
	acked := float64(ackedBytes)
	// App-limited: the flight before this ACK did not reach half the window,
	// so the ACK says nothing about whether a larger window would be safe.
	if float64(inFlight)+acked < c.cwnd/2 {
		c.epochStarted = false
		return
	}
	if c.cwnd < c.ssthresh {
		c.cwnd = min(c.cwnd+acked, c.maxWindow)
		return
	}
	c.avoidanceLocked(now, acked)
}

// avoidanceLocked grows cwnd in congestion avoidance (RFC 9438 §4.2-4.4).
func (c *cubic) avoidanceLocked(now monotime.Time, acked float64) {
	if !c.epochStarted {
		c.epochStarted = true
		c.epochStart = now
		c.west = c.cwnd
		if c.cwnd >= c.wmax {
			// Above the previous maximum (e.g. after slow start without
			// loss, or an app-limited restart): start on the plateau.
			c.wmax = c.cwnd
			c.k = 0
		} else {
			c.k = math.Cbrt((c.wmax - c.cwnd) / c.mss / cubicC)
		}
	}
	t := now.Sub(c.epochStart).Seconds()
	wt := c.wCubic(t)
	// Target one RTT ahead, but never shrink and never more than +50 % per
	// RTT (RFC 9438 §4.2).
	target := min(max(c.wCubic(t+c.srtt.Seconds()), c.cwnd), 1.5*c.cwnd)

	alpha := alphaCubic
	if c.west >= c.wmax {
		alpha = 1
	}
	c.west += alpha * acked * c.mss / c.cwnd

	if wt < c.west {
		// Reno-friendly region: be at least as aggressive as Reno.
		c.cwnd = max(c.cwnd, c.west)
	} else {
		c.cwnd = min(c.cwnd+(target-c.cwnd)*acked/c.cwnd, target)
	}
	c.cwnd = min(c.cwnd, c.maxWindow)
}

// wCubic is W_cubic(t) = C*(t-K)^3 + W_max, in bytes.
func (c *cubic) wCubic(t float64) float64 {
	d := t - c.k
	return cubicC*d*d*d*c.mss + c.wmax
}

func (c *cubic) OnLoss(ev *LossEvent) {
	now, lostSentAt := ev.Now, ev.LostSentAt
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hasRecovery && !lostSentAt.After(c.recoveryStart) {
		return // already reacted to this episode
	}
	c.hasRecovery = true
	c.recoveryStart = now
	c.reduceLocked()
	c.publishLocked()
}

// reduceLocked is the multiplicative decrease with fast convergence
// (RFC 9438 §4.6-4.7).
func (c *cubic) reduceLocked() {
	c.epochStarted = false
	if c.cwnd < c.wmax {
		// Fast convergence: the window shrank since the last event, so a new
		// flow is probably competing; release bandwidth sooner.
		c.wmax = c.cwnd * (1 + cubicBeta) / 2
	} else {
		c.wmax = c.cwnd
	}
	c.cwnd = max(c.cwnd*cubicBeta, c.minWindow)
	c.ssthresh = c.cwnd
}

// OnRTO collapses the window to the minimum and restarts slow start up to the
// reduced ssthresh. Repeated RTOs (window already minimal) keep the
// ssthresh of the first one instead of collapsing it too.
func (c *cubic) OnRTO(now monotime.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cwnd > c.minWindow {
		c.reduceLocked()
	}
	c.cwnd = c.minWindow
	c.epochStarted = false
	c.hasRecovery = true
	c.recoveryStart = now
	c.publishLocked()
}

func (c *cubic) publishLocked() {
	ss := c.cwnd < c.ssthresh
	gain := pacingGainAvoidance
	if ss {
		gain = pacingGainSlowStart
	}
	w := int64(c.cwnd)
	c.window.Store(w)
	c.slowStart.Store(ss)
	c.pacing.Store(rateFor(gain, w, c.srtt))
}

func (c *cubic) Window() int64       { return c.window.Load() }
func (c *cubic) PacingRate() float64 { return c.pacing.Load() }
func (c *cubic) InSlowStart() bool   { return c.slowStart.Load() }
