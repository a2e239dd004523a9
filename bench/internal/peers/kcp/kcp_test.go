package kcp

import (
	"context"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/flightline/flightline/bench/internal/peer"
	"github.com/flightline/flightline/bench/internal/runner"
	"github.com/flightline/flightline/testnet"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) {
	if runner.IsChild() {
		runner.ChildMain()
	}
	os.Exit(m.Run())
}

// smokeBudget is how long one smoke run may take end to end (both
// processes included); the runs are tiny, so more means something is stuck.
const smokeBudget = 3 * time.Second

var names = []string{Name, CryptName}

func spec(name string, sc peer.Scenario) peer.Spec {
	s := peer.Spec{Peer: name, Scenario: sc, Seed: 11, Deadline: time.Now().Add(15 * time.Second)}
	s.Server = netip.AddrPortFrom(netip.Addr{}, 7301) // address filled in by runner.Run
	switch sc {
	case peer.Bulk:
		s.Bytes, s.Streams = 2<<20, 2
	case peer.Ping:
		s.Messages, s.Warmup, s.MessageSize = 50, 10, 64
	case peer.Scale:
		s.Conns, s.Concurrency = 50, 8
	}
	return s
}

func run(t *testing.T, n *testnet.Network, s peer.Spec) (client, server peer.Result) {
	t.Helper()
	start := time.Now()
	c, sv, err := runner.Run(context.Background(), n, s, runner.Unpinned())
	require.NoError(t, err)
	require.Less(t, time.Since(start), smokeBudget)
	t.Logf("%s: client %.1f ms, %d bytes, notes %v; server %.1f ms; info %q",
		s.Peer, c.Phase.Seconds()*1e3, c.Bytes, c.Notes, sv.Phase.Seconds()*1e3, c.Info)
	require.Contains(t, c.Info, "kcp-go fast3")
	return c, sv
}

func TestBulk(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	for _, name := range names {
		c, s := run(t, n, spec(name, peer.Bulk))
		require.EqualValues(t, 2<<20, c.Bytes, name)
		require.EqualValues(t, 2<<20, s.Bytes, name)
		require.Greater(t, c.Phase.Seconds(), 0.0, name)
		require.Greater(t, s.Phase.Seconds(), 0.0, name)
		require.Greater(t, c.Notes["segs_out"], 0.0, name)
	}
}

func TestBulkUnderLoss(t *testing.T) {
	loss := testnet.Impairment{Loss: 0.01}
	n := testnet.New(t, testnet.Config{AtoB: loss, BtoA: loss})
	for _, name := range names {
		c, s := run(t, n, spec(name, peer.Bulk))
		require.EqualValues(t, 2<<20, c.Bytes, name)
		require.EqualValues(t, 2<<20, s.Bytes, name)
		require.Greater(t, c.Notes["retransmits"], 0.0, "1%% loss each way over ~1500 segments: %s", name)
	}
}

func TestPing(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	for _, name := range names {
		c, s := run(t, n, spec(name, peer.Ping))
		require.Len(t, c.RTTs, 50, name)
		for _, rtt := range c.RTTs {
			require.Greater(t, rtt, int64(0), name)
		}
		require.Greater(t, c.Phase.Seconds(), 0.0, name)
		require.Greater(t, s.Phase.Seconds(), 0.0, name)
	}
}

func TestScaleUnsupported(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	_, s, err := runner.Run(context.Background(), n, spec(Name, peer.Scale), runner.Unpinned())
	require.ErrorContains(t, err, peer.ErrUnsupported.Error())
	require.Contains(t, s.Error, peer.ErrUnsupported.Error())
}

func TestKeys(t *testing.T) {
	s := spec(CryptName, peer.Bulk)
	b, err := (&Peer{}).block(&s)
	require.NoError(t, err)
	require.Nil(t, b, "kcp runs without encryption")
	b, err = (&Peer{crypt: true}).block(&s)
	require.NoError(t, err)
	require.NotNil(t, b)
}
