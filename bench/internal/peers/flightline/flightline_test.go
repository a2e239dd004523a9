package flightline

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/flightline/flightline/bench/internal/peer"
	"github.com/flightline/flightline/bench/internal/peertest"
	"github.com/flightline/flightline/bench/internal/runner"
	"github.com/flightline/flightline/testnet"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { peertest.Main(m) }

// spec is a small run of sc on peer name, with fresh keys, on port (the
// address is filled in by runner.Run).
func spec(t *testing.T, name string, sc peer.Scenario, port uint16) peer.Spec {
	keys, err := NewKeys()
	require.NoError(t, err)
	s := peer.Spec{
		Peer: name, Scenario: sc, Seed: 11, Keys: keys,
		Server:   netip.AddrPortFrom(netip.Addr{}, port),
		Deadline: time.Now().Add(15 * time.Second),
	}
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

// runLogged runs s over n with both children's stderr in the test log.
func runLogged(t *testing.T, n *testnet.Network, s peer.Spec) (client, server peer.Result, err error) {
	o := runner.Unpinned()
	o.Log = logWriter{t}
	return runner.Run(context.Background(), n, s, o)
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}

func TestRegistered(t *testing.T) {
	for _, name := range []string{NameUDP, NameXDP, NameXDPGeneric} {
		_, err := peer.Lookup(name)
		require.NoError(t, err, name)
	}
}

func TestKeys(t *testing.T) {
	m, err := NewKeys()
	require.NoError(t, err)
	srv, err := decodeKeys(m, peer.ServerSide)
	require.NoError(t, err)
	cli, err := decodeKeys(m, peer.ClientSide)
	require.NoError(t, err)
	require.Equal(t, srv.private.Public(), cli.peer, "client dials the server's key")
	require.Equal(t, cli.private.Public(), srv.peer, "server allows the client's key")
	require.NotEqual(t, srv.private, cli.private)

	delete(m, keyServerPublic)
	_, err = decodeKeys(m, peer.ClientSide)
	require.ErrorContains(t, err, keyServerPublic)
	m[keyServerPublic] = "not base64!"
	_, err = decodeKeys(m, peer.ClientSide)
	require.ErrorContains(t, err, keyServerPublic)
}

// TestMissingKeys needs no network: both sides refuse before opening
// anything.
func TestMissingKeys(t *testing.T) {
	p, err := peer.Lookup(NameUDP)
	require.NoError(t, err)
	s := &peer.Spec{Peer: NameUDP, Scenario: peer.Bulk}
	_, err = p.Run(context.Background(), s)
	require.ErrorContains(t, err, "NewKeys")
	_, err = p.Serve(context.Background(), s, func() { t.Error("ready without keys") })
	require.ErrorContains(t, err, "NewKeys")
}

// TestScenarios runs every scenario on every datapath with tiny sizes.
func TestScenarios(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	port := uint16(7100)
	for _, name := range []string{NameUDP, NameXDP, NameXDPGeneric} {
		wantDP := "datapath=udp"
		if name != NameUDP {
			wantDP = "datapath=xdp"
		}
		t.Run(name, func(t *testing.T) {
			t.Run("bulk", func(t *testing.T) {
				port++
				s := spec(t, name, peer.Bulk, port)
				c, sr, err := runLogged(t, n, s)
				require.NoError(t, err)
				checkBulk(t, s, c, sr)
				require.Contains(t, c.Info, wantDP)
				require.Contains(t, sr.Info, wantDP)
			})
			t.Run("ping", func(t *testing.T) {
				port++
				s := spec(t, name, peer.Ping, port)
				c, sr, err := runLogged(t, n, s)
				require.NoError(t, err)
				require.Len(t, c.RTTs, s.Messages)
				for _, rtt := range c.RTTs {
					require.Positive(t, rtt)
				}
				require.Greater(t, sr.Phase.Seconds(), 0.0)
				require.Contains(t, c.Info, wantDP)
				t.Logf("ping p50 %v", time.Duration(median(c.RTTs)))
			})
			t.Run("scale", func(t *testing.T) {
				port++
				s := spec(t, name, peer.Scale, port)
				c, sr, err := runLogged(t, n, s)
				require.NoError(t, err)
				for _, r := range []peer.Result{c, sr} {
					require.Equal(t, s.Conns, r.Conns, r.Side)
					require.Positive(t, r.HandshakeTime, r.Side)
					require.Positive(t, r.RSSBefore, r.Side)
					require.Positive(t, r.RSSAfter, r.Side)
					require.Positive(t, r.HeapAfter, r.Side)
					// Every connection runs a send loop goroutine.
					require.GreaterOrEqual(t, r.GoroutinesIdle, s.Conns, r.Side)
				}
				require.Zero(t, sr.Notes["cookies_sent"], "handshake rate must not throttle the run")
				// The client starts a handshake afresh when one gets no
				// answer within dialAttempt (100 ms of wall clock); on a
				// loaded machine the first one may still complete on the
				// server, so each redial may add one server handshake.
				// Anything else is a handshake lost or made twice.
				require.GreaterOrEqual(t, sr.Notes["handshakes"], float64(s.Conns))
				require.LessOrEqual(t, sr.Notes["handshakes"], float64(s.Conns)+c.Notes["redials"],
					"more server handshakes than connections plus client redials (%v)", c.Notes["redials"])
				require.Contains(t, c.Info, wantDP)
			})
		})
	}
}

// TestBulkUnderLoss needs loss recovery to deliver every byte.
func TestBulkUnderLoss(t *testing.T) {
	n := testnet.New(t, testnet.Config{AtoB: testnet.Impairment{Loss: .01}, BtoA: testnet.Impairment{Loss: .01}})
	s := spec(t, NameUDP, peer.Bulk, 7200)
	c, sr, err := runLogged(t, n, s)
	require.NoError(t, err)
	checkBulk(t, s, c, sr)
	require.Positive(t, c.Notes["retransmits"], "1%% loss and nothing resent?")
	t.Logf("retransmits %.0f (%.2f%%), lost %.0f, tlps %.0f, rtos %.0f",
		c.Notes["retransmits"], c.Notes["retransmit_pct"], c.Notes["lost"], c.Notes["tlps"], c.Notes["rtos"])
}

// TestServerAllowsOnlyTheClientKey: a client with another identity than
// the one the server was told to allow never gets a connection.
func TestServerAllowsOnlyTheClientKey(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	s := spec(t, NameUDP, peer.Ping, 7300)
	other, err := NewKeys()
	require.NoError(t, err)
	s.Keys[keyClientPrivate] = other[keyClientPrivate]
	s.Deadline = time.Now().Add(time.Second)
	c, _, err := runLogged(t, n, s)
	require.Error(t, err)
	require.Contains(t, c.Error, "dial")
}

func checkBulk(t *testing.T, s peer.Spec, c, sr peer.Result) {
	t.Helper()
	require.Equal(t, s.Bytes, c.Bytes)
	require.Equal(t, s.Bytes, sr.Bytes)
	require.Greater(t, c.Phase.Seconds(), 0.0)
	require.LessOrEqual(t, sr.Phase.StartNS, c.Phase.EndNS)
	require.Positive(t, c.Notes["packets_sent"])
	require.Contains(t, c.Notes, "retransmit_pct")
	require.Contains(t, c.Notes, "srtt_us")
}

func median(v []int64) int64 {
	s := append([]int64(nil), v...)
	for i := 1; i < len(s); i++ { // insertion sort: a test's few values
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[len(s)/2]
}
