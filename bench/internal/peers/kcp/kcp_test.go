package kcp

import (
	"context"
	"testing"

	"github.com/flightline/flightline/bench/internal/peer"
	"github.com/flightline/flightline/bench/internal/peertest"
	"github.com/flightline/flightline/bench/internal/runner"
	"github.com/flightline/flightline/testnet"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { peertest.Main(m) }

var names = []string{Name, CryptName}

func spec(name string, sc peer.Scenario) peer.Spec {
	return peertest.Spec(name, sc, 7301)
}

func run(t *testing.T, n *testnet.Network, s peer.Spec) (client, server peer.Result) {
	t.Helper()
	c, sv := peertest.Run(t, n, s)
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
