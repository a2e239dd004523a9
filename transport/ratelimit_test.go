package transport

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSourcePrefix(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:1":             "192.0.2.1/32",
		"[::ffff:192.0.2.1]:2":    "192.0.2.1/32",
		"[2001:db8:1:2:3::4]:3":   "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::]:4": "2001:db8:1:2::/64",
		"[fe80::1%eth0]:5":        "fe80::/64",
	} {
		require.Equal(t, want, sourcePrefix(netip.MustParseAddrPort(in)).String(), in)
	}
}

// The per-source table forgets sources whose bucket is full again and, at
// its bound, limits new sources instead of growing.
func TestSourceLimiterBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newSourceLimiter(20, 5, 3)
	p := func(i int) netip.Prefix { return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 32) }
	for i := range 3 {
		for range 5 {
			require.True(t, l.allow(now, p(i)))
		}
		require.False(t, l.allow(now, p(i)), "burst spent")
	}
	require.False(t, l.allow(now, p(3)), "table full of live entries")
	require.Equal(t, 3, l.len())
	now = now.Add(100 * time.Millisecond) // 2 tokens back each, not full
	l.gc(now)
	require.Equal(t, 3, l.len())
	require.True(t, l.allow(now, p(0)))
	now = now.Add(time.Second) // all full again
	require.True(t, l.allow(now, p(3)), "full entries make room")
	require.Equal(t, 1, l.len())
}

func TestLogThrottle(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := newLogThrottle(time.Minute, 2)
	p := func(i int) netip.Prefix { return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 32) }
	require.True(t, th.allow(now, p(0), "a"))
	require.False(t, th.allow(now, p(0), "a"))
	require.True(t, th.allow(now, p(0), "b"), "another kind")
	require.True(t, th.allow(now, p(1), "a"), "table full: the shared slot")
	require.False(t, th.allow(now, p(2), "a"), "shared slot used this interval")
	now = now.Add(time.Minute)
	require.True(t, th.allow(now, p(0), "a"))
}
