package transport

import (
	"sync/atomic"
	"time"
)

// Bounds of the automatic HandshakeRate (Config.HandshakeRate = 0).
const (
	// minAutoHandshakeRate is the lowest automatic rate: however slow
	// handshakes seem (a worker starved by other work), this many
	// initiations per second are still processed without a cookie.
	minAutoHandshakeRate = 100
	// maxAutoHandshakeRate caps the automatic rate.
	maxAutoHandshakeRate = 1_000_000
	// handshakeCostShift is the EWMA gain, 1/2^shift per sample: the
	// estimate follows a change in machine load within a few dozen
	// handshakes.
	handshakeCostShift = 3
)

// handshakeCapacity is the automatic HandshakeRate: how many initiations per
// second the handshake workers can complete, estimated as workers divided
// by the moving average of the time one accepted initiation took on a
// worker (Responder.Accept and building the connection: the X25519
// multiplications dominate). It is wall time on the worker, so when other
// work or other processes take the CPU the estimate falls with what the
// workers actually get, and the listener demands cookies sooner. Beyond
// this rate a listener would fall behind anyway, and its queue would
// trigger "under load" a little later; the rate makes it switch before the
// queue builds up.
//
// Only accepted initiations are measured, so they cost a complete
// handshake each: junk that fails mac1 or decryption cannot make
// handshakes look cheap and raise the rate. Until the first measurement
// the rate is DefaultHandshakeRate.
type handshakeCapacity struct {
	workers int
	costNs  atomic.Int64 // EWMA of ns per accepted initiation; 0 = none yet
}

// observe adds one accepted initiation that took d.
func (c *handshakeCapacity) observe(d time.Duration) {
	ns := d.Nanoseconds()
	if ns <= 0 {
		return // a clock that did not move (tests) says nothing
	}
	for {
		old := c.costNs.Load()
		next := ns
		if old > 0 {
			next = old + (ns-old)>>handshakeCostShift
		}
		if c.costNs.CompareAndSwap(old, max(next, 1)) {
			return
		}
	}
}

// rate returns the initiations per second the workers can complete.
func (c *handshakeCapacity) rate() float64 {
	ns := c.costNs.Load()
	if ns <= 0 {
		return DefaultHandshakeRate
	}
	r := float64(c.workers) * float64(time.Second) / float64(ns)
	return min(max(r, minAutoHandshakeRate), maxAutoHandshakeRate)
}
