package transport

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightline/flightline/transport/memlink"
)

func TestHandshakeCapacity(t *testing.T) {
	c := handshakeCapacity{workers: 2}
	require.EqualValues(t, DefaultHandshakeRate, c.rate(), "nothing measured yet")
	c.observe(0)
	require.EqualValues(t, DefaultHandshakeRate, c.rate(), "a clock that did not move says nothing")

	c.observe(200 * time.Microsecond)
	require.InDelta(t, 10_000, c.rate(), 1e-6, "2 workers at 200 µs each")
	for range 200 { // the machine gets 4x slower: the estimate follows
		c.observe(800 * time.Microsecond)
	}
	require.InDelta(t, 2_500, c.rate(), 1)

	c.observe(time.Hour)
	require.EqualValues(t, minAutoHandshakeRate, c.rate(), "floor")
	s := handshakeCapacity{workers: 8}
	s.observe(time.Nanosecond)
	require.EqualValues(t, maxAutoHandshakeRate, s.rate(), "cap")
}

func TestHandshakeRateFixedOrAutomatic(t *testing.T) {
	h := &handshaker{cfg: &Config{HandshakeRate: 10}, capacity: handshakeCapacity{workers: 1}}
	h.capacity.observe(time.Millisecond)
	require.EqualValues(t, 10, h.handshakeRate(), "a configured rate is fixed")
	h.cfg.HandshakeRate = 0
	require.InDelta(t, 1000, h.handshakeRate(), 1e-6, "automatic: 1 worker at 1 ms")

	cfg, err := (&Config{}).populate()
	require.NoError(t, err)
	require.Zero(t, cfg.HandshakeRate, "the default is automatic")
}

// TestAcceptedHandshakeIsMeasured: a listener with the default (automatic)
// HandshakeRate measures each accepted initiation, so its threshold is the
// workers' measured capacity, not DefaultHandshakeRate.
func TestAcceptedHandshakeIsMeasured(t *testing.T) {
	p, _, _ := newMemPair(t, memlink.Config{Seed: 9})
	require.Zero(t, p.server.cfg.HandshakeRate, "automatic by default")
	hs := p.server.hs
	require.Positive(t, hs.capacity.costNs.Load(), "the accepted initiation was measured")
	want := float64(hs.capacity.workers) * float64(time.Second) / float64(hs.capacity.costNs.Load())
	require.InDelta(t, min(max(want, minAutoHandshakeRate), maxAutoHandshakeRate), hs.handshakeRate(), 1e-6)
}
