package quicgo

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/flightline/flightline/bench/internal/peer"
	"github.com/flightline/flightline/bench/internal/peertest"
	"github.com/flightline/flightline/testnet"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { peertest.Main(m) }

func spec(sc peer.Scenario) peer.Spec {
	return peertest.Spec(Name, sc, 7201)
}

func run(t *testing.T, n *testnet.Network, s peer.Spec) (client, server peer.Result) {
	t.Helper()
	c, sv := peertest.Run(t, n, s)
	require.Contains(t, c.Info, "quic-go default config")
	return c, sv
}

func TestBulk(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	c, s := run(t, n, spec(peer.Bulk))
	require.EqualValues(t, 2<<20, c.Bytes)
	require.EqualValues(t, 2<<20, s.Bytes)
	require.Greater(t, c.Phase.Seconds(), 0.0)
	require.Greater(t, s.Phase.Seconds(), 0.0)
	require.Greater(t, c.Notes["packets_sent"], 0.0)
}

func TestBulkUnderLoss(t *testing.T) {
	loss := testnet.Impairment{Loss: 0.01}
	n := testnet.New(t, testnet.Config{AtoB: loss, BtoA: loss})
	c, s := run(t, n, spec(peer.Bulk))
	require.EqualValues(t, 2<<20, c.Bytes)
	require.EqualValues(t, 2<<20, s.Bytes)
	t.Logf("%v of %v packets lost", c.Notes["lost"], c.Notes["packets_sent"])
}

// TestBulkManyStreams runs more streams than quic-go's default limit of
// 100 concurrent incoming streams, which config raises for Bulk.
func TestBulkManyStreams(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	s := spec(peer.Bulk)
	s.Streams = 150
	c, sv := run(t, n, s)
	require.EqualValues(t, 2<<20, c.Bytes)
	require.EqualValues(t, 2<<20, sv.Bytes)
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

func TestPinnedKey(t *testing.T) {
	s := spec(peer.Bulk)
	k1, err := serverKey(&s)
	require.NoError(t, err)
	k2, err := serverKey(&s)
	require.NoError(t, err)
	require.True(t, k1.Equal(k2), "both sides derive the same key")

	// A client expecting another key must refuse this server's certificate.
	srv, err := serverTLS(&s)
	require.NoError(t, err)
	other := s
	other.Keys = map[string]string{Name: "other"}
	cli, err := clientTLS(&other)
	require.NoError(t, err)
	require.ErrorContains(t, cli.VerifyPeerCertificate(srv.Certificates[0].Certificate, nil), "not the pinned one")
	cli, err = clientTLS(&s)
	require.NoError(t, err)
	require.NoError(t, cli.VerifyPeerCertificate(srv.Certificates[0].Certificate, nil))
}

func TestUnsupportedScenario(t *testing.T) {
	s := spec("nope")
	_, err := Peer{}.Run(context.Background(), &s)
	require.True(t, errors.Is(err, peer.ErrUnsupported))
}
