package blast

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightline/flightline/bench/internal/peer"
	"github.com/flightline/flightline/bench/internal/peertest"
	"github.com/flightline/flightline/bench/internal/runner"
	"github.com/flightline/flightline/testnet"
)

func TestMain(m *testing.M) { peertest.Main(m) }

// anyServer is a placeholder server address: runner.Run fills in host B's
// address and keeps the port.
func anyServer(port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), port)
}

func bulkSpec(name string, bytes int64) peer.Spec {
	return peer.Spec{Peer: name, Scenario: peer.Bulk, Bytes: bytes, Streams: 1, Seed: 11,
		Server: anyServer(7100), Deadline: time.Now().Add(15 * time.Second)}
}

func pingSpec(name string) peer.Spec {
	return peer.Spec{Peer: name, Scenario: peer.Ping, Messages: 50, Warmup: 10, MessageSize: 64, Seed: 12,
		Server: anyServer(7101), Deadline: time.Now().Add(15 * time.Second)}
}

// TestBulkOverVeth blasts 4 MiB with each peer over an idle veth.
func TestBulkOverVeth(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	const bytes = 4 << 20
	for _, name := range []string{NameUDP, NameUDPGSO, NameUDPGSOAEAD, NameXDP} {
		t.Run(name, func(t *testing.T) {
			want := newPlan(bytes, 0).count
			if name == NameUDPGSOAEAD {
				want = newPlan(bytes, 16).count
			}
			c, s, err := runner.Run(context.Background(), n, bulkSpec(name, bytes), runner.Unpinned())
			require.NoError(t, err)
			require.Equal(t, want, c.Datagrams, "client sends every datagram")
			require.EqualValues(t, bytes, c.Bytes)
			require.Positive(t, s.Bytes)
			require.Positive(t, s.Datagrams)
			require.LessOrEqual(t, s.Datagrams, c.Datagrams)
			require.LessOrEqual(t, s.Bytes, c.Bytes)
			require.Zero(t, s.Notes["corrupt"])
			require.Equal(t, float64(c.Datagrams), s.Notes["sent"], "the end marker carries the sent count")
			require.Equal(t, float64(s.Datagrams), c.Notes["server_received"], "the report carries the received count")
			require.Equal(t, float64(s.Bytes), c.Notes["server_bytes"])
			require.InDelta(t, 100*float64(c.Datagrams-s.Datagrams)/float64(c.Datagrams), s.Notes["lost_pct"], 1e-9)
			// An idle veth may drop a little of a burst at the receiver,
			// never most of it.
			require.Greater(t, s.Datagrams, c.Datagrams/2, "most datagrams arrive on an idle veth")
			require.Greater(t, s.Phase.EndNS, s.Phase.StartNS)
			require.Greater(t, c.Phase.EndNS, c.Phase.StartNS)
			require.LessOrEqual(t, c.Phase.StartNS, s.Phase.StartNS, "the server's first arrival follows the client's first send")
			require.Contains(t, s.Info, "datapath=")
			t.Logf("%s: %d/%d datagrams, %.1f MB/s received, loss %.2f%%, %s", name, s.Datagrams, c.Datagrams,
				float64(s.Bytes)/s.Phase.Seconds()/1e6, s.Notes["lost_pct"], s.Info)
		})
	}
}

// TestPingOverVeth runs the raw latency floors.
func TestPingOverVeth(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	for _, name := range []string{NameUDP, NameXDP} {
		t.Run(name, func(t *testing.T) {
			c, s, err := runner.Run(context.Background(), n, pingSpec(name), runner.Unpinned())
			require.NoError(t, err)
			require.Len(t, c.RTTs, 50)
			for _, rtt := range c.RTTs {
				require.Positive(t, rtt)
			}
			require.Greater(t, s.Phase.EndNS, s.Phase.StartNS)
			t.Logf("%s: first RTTs %v ns", name, c.RTTs[:5])
		})
	}
}

// TestUnsupported checks the scenarios the blasts decline, without a network:
// they must refuse before opening anything.
func TestUnsupported(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name     string
		scenario peer.Scenario
	}{{NameUDPGSO, peer.Ping}, {NameUDP, peer.Scale}, {NameUDPGSO, peer.Scale}, {NameXDP, peer.Scale}, {NameUDPGSOAEAD, peer.Ping}, {NameUDPGSOAEAD, peer.Scale}} {
		p, err := peer.Lookup(c.name)
		require.NoError(t, err)
		s := &peer.Spec{Peer: c.name, Scenario: c.scenario}
		_, err = p.Serve(ctx, s, func() { t.Error("ready called for an unsupported scenario") })
		require.ErrorIs(t, err, peer.ErrUnsupported, "%s %s serve", c.name, c.scenario)
		_, err = p.Run(ctx, s)
		require.ErrorIs(t, err, peer.ErrUnsupported, "%s %s run", c.name, c.scenario)
	}
}
