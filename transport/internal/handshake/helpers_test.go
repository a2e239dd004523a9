package handshake

import (
	"github.com/stretchr/testify/require"
	"io"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// seededRand returns a deterministic io.Reader for keys and nonces.
func seededRand(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

func mustKey(t testing.TB, seed byte) PrivateKey {
	t.Helper()
	k, err := generateKey(seededRand(seed))
	require.NoError(t, err)
	return k
}

// fakeClock is a settable wall clock, safe for concurrent reads.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

var (
	srcA = netip.MustParseAddrPort("192.0.2.1:4000")
	srcB = netip.MustParseAddrPort("192.0.2.2:4000")
)

// fixture is a responder and an initiator configured for each other.
type fixture struct {
	clock     *fakeClock
	iStatic   PrivateKey
	rStatic   PrivateKey
	responder *Responder
	rcfg      ResponderConfig
}

func newFixture(t testing.TB, mod func(*ResponderConfig)) *fixture {
	t.Helper()
	f := &fixture{clock: newFakeClock(), iStatic: mustKey(t, 1), rStatic: mustKey(t, 2)}
	f.rcfg = ResponderConfig{Static: f.rStatic, Now: f.clock.Now, Rand: seededRand(3)}
	if mod != nil {
		mod(&f.rcfg)
	}
	r, err := NewResponder(f.rcfg)
	require.NoError(t, err)
	f.responder = r
	return f
}

func (f *fixture) initiator(t testing.TB, suite Suite, payload []byte) *Initiator {
	t.Helper()
	i, err := NewInitiator(InitiatorConfig{
		Static: f.iStatic, Remote: f.rStatic.Public(), ConnID: 0x1111,
		Suite: suite, Payload: payload, Now: f.clock.Now, Rand: seededRand(4),
	})
	require.NoError(t, err)
	return i
}

// requirePaired checks that a's sends open at b and the other way round.
func requirePaired(t *testing.T, a, b *Session) {
	t.Helper()
	hdr := []byte("header")
	for pn := uint64(0); pn < 3; pn++ {
		msg := []byte("hello from a")
		ct := a.Send.Seal(nil, hdr, pn, msg)
		pt, err := b.Recv.Open(nil, hdr, pn, ct)
		require.NoError(t, err)
		require.Equal(t, msg, pt)

		_, err = a.Recv.Open(nil, hdr, pn, ct)
		require.ErrorIs(t, err, ErrDecrypt, "directions use different keys")

		msg = []byte("hello from b")
		ct = b.Send.Seal(nil, hdr, pn, msg)
		pt, err = a.Recv.Open(nil, hdr, pn, ct)
		require.NoError(t, err)
		require.Equal(t, msg, pt)
	}
}
