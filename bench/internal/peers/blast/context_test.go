package blast

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightline/flightline/bench/internal/peer"
)

// Both sides of every scenario must give up when ctx ends, whatever they are
// blocked in. These run on loopback with nobody on the other side.
func TestSidesEndWithContext(t *testing.T) {
	loop := netip.MustParseAddr("127.0.0.1")
	for _, name := range []string{NameUDP, NameUDPGSO} {
		for _, sc := range []peer.Scenario{peer.Bulk, peer.Ping} {
			p, err := peer.Lookup(name)
			require.NoError(t, err)
			s := &peer.Spec{Peer: name, Scenario: sc, Bytes: 1 << 20, Streams: 1, Messages: 5, MessageSize: 64,
				Server: netip.AddrPortFrom(loop, 0), Client: loop}
			if name == NameUDPGSO && sc == peer.Ping {
				continue // unsupported, see TestUnsupported
			}

			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			readied := 0
			start := time.Now()
			_, err = p.Serve(ctx, s, func() { readied++ })
			cancel()
			require.ErrorIs(t, err, context.DeadlineExceeded, "%s %s serve", name, sc)
			require.Equal(t, 1, readied, "%s %s: ready exactly once", name, sc)
			require.Less(t, time.Since(start), 2*time.Second)

			// A server port nobody listens on: the client's hello (or
			// ping) goes unanswered until ctx ends.
			s.Server = netip.AddrPortFrom(loop, 9)
			ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
			start = time.Now()
			_, err = p.Run(ctx, s)
			cancel()
			require.Error(t, err, "%s %s run", name, sc)
			t.Logf("%s %s run: %v", name, sc, err)
			require.Less(t, time.Since(start), 2*time.Second)
		}
	}
}
