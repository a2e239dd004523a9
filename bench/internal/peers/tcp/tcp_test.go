package tcp

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/flightline/flightline/bench/internal/peer"
	"github.com/flightline/flightline/bench/internal/peertest"
	"github.com/flightline/flightline/testnet"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { peertest.Main(m) }

func spec(sc peer.Scenario) peer.Spec {
	return peertest.Spec(Name, sc, 7101)
}

func run(t *testing.T, n *testnet.Network, s peer.Spec) (client, server peer.Result) {
	t.Helper()
	c, sv := peertest.Run(t, n, s)
	require.Contains(t, c.Info, "kernel tcp cc=")
	return c, sv
}

func TestBulk(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	c, s := run(t, n, spec(peer.Bulk))
	require.EqualValues(t, 2<<20, c.Bytes)
	require.EqualValues(t, 2<<20, s.Bytes)
	require.Greater(t, c.Phase.Seconds(), 0.0)
	require.Greater(t, s.Phase.Seconds(), 0.0)
	require.Greater(t, c.Notes["segs_out"], 0.0, "TCP_INFO read from the client's connections")
}

func TestBulkUnderLoss(t *testing.T) {
	loss := testnet.Impairment{Loss: 0.01}
	n := testnet.New(t, testnet.Config{AtoB: loss, BtoA: loss})
	c, s := run(t, n, spec(peer.Bulk))
	require.EqualValues(t, 2<<20, c.Bytes)
	require.EqualValues(t, 2<<20, s.Bytes)
	t.Logf("retransmits %v of %v segments", c.Notes["retransmits"], c.Notes["segs_out"])
}

func TestPing(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	c, s := run(t, n, spec(peer.Ping))
	require.Len(t, c.RTTs, 50)
	for _, rtt := range c.RTTs {
		require.Greater(t, rtt, int64(0))
	}
	require.Greater(t, c.Phase.Seconds(), 0.0)
	require.Greater(t, s.Phase.Seconds(), 0.0)
}

func TestScale(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	c, s := run(t, n, spec(peer.Scale))
	for _, r := range []peer.Result{c, s} {
		require.Equal(t, 50, r.Conns, r.Side)
		require.Greater(t, r.HandshakeTime, time.Duration(0), r.Side)
		require.Greater(t, r.Phase.Seconds(), 0.0, r.Side)
		require.Greater(t, r.RSSAfter, int64(0), r.Side)
		require.Greater(t, r.HeapAfter, int64(0), r.Side)
		require.Greater(t, r.GoroutinesIdle, 0, r.Side)
		require.Greater(t, r.Notes["handshakes_per_s"], 0.0, r.Side)
	}
	require.Contains(t, c.Info, "concurrency=8")
}

func TestRaiseNofile(t *testing.T) {
	require.NoError(t, raiseNofile(1))
	// An impossible limit (above fs.nr_open) must fail with a clear error.
	err := raiseNofile(1 << 40)
	require.ErrorContains(t, err, "file descriptors")
}

func TestUnsupportedScenario(t *testing.T) {
	s := spec("nope")
	_, err := Peer{}.Run(context.Background(), &s)
	require.True(t, errors.Is(err, peer.ErrUnsupported))
}

// TestCubicVariant: tcp-cubic's sockets really run CUBIC (the kernel
// rejects an unknown or unavailable algorithm, which fails the run).
func TestCubicVariant(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	s := spec(peer.Bulk)
	s.Peer = NameCubic
	c, sv := run(t, n, s)
	require.EqualValues(t, 2<<20, sv.Bytes)
	require.Contains(t, c.Info, "cc=cubic")
	require.Contains(t, sv.Info, "cc=cubic")
}

// TestScaleRepeatsWithoutPortExhaustion: consecutive scale runs from one
// client address must not run out of ephemeral ports while the previous
// run's connections sit in TIME_WAIT (IP_BIND_ADDRESS_NO_PORT). The range
// is narrowed so that two runs cannot fit without it.
func TestScaleRepeatsWithoutPortExhaustion(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	require.NoError(t, n.A.Run(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_local_port_range", []byte("40000 40150"), 0o644)
	}))
	for i := range 3 {
		s := spec(peer.Scale)
		s.Conns = 100
		s.Server = netip.AddrPortFrom(netip.Addr{}, uint16(7200+i))
		c, _ := run(t, n, s)
		require.Equal(t, 100, c.Conns, "run %d", i)
	}
}
