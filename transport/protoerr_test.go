package transport

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/flightline/flightline/transport/internal/wire"
	"github.com/flightline/flightline/transport/link"
	"github.com/flightline/flightline/transport/memlink"
	"github.com/stretchr/testify/require"
)

// An authenticated packet with an unknown or malformed frame is a protocol
// violation (docs/protocol.md, "Frames"): the receiver closes the connection
// with code 1 and a reason naming the frame, and the peer learns both from
// CONNECTION_CLOSE. It used to drop the packet silently and keep the
// connection, so the sender resent the frame until its stream failed.
func TestMalformedFrameClosesConnection(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"unknown type", append(wire.AppendPing(nil), 0x3f)},
		{"truncated stream frame", []byte{0x0a, 0x00, 0x05, 'a'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := memlink.NewPair(memlink.Config{Seed: 5})
			p := newPairOver(t, a, b, testConfig(t), testConfig(t))
			forged := sealAsPeer(p.clientConn, 1<<40, tc.payload)
			_, err := b.WriteBatch([]link.Message{{Buf: forged, Addr: a.LocalAddr()}})
			require.NoError(t, err)

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, c := range []*Conn{p.serverConn, p.clientConn} {
				select {
				case <-c.closed:
				case <-ctx.Done():
					t.Fatal("connection still open after a malformed frame")
				}
			}
			var ce *ConnError
			require.True(t, errors.As(p.serverConn.err(), &ce))
			require.Equal(t, uint64(1), ce.Code)
			require.False(t, ce.Remote)
			require.Equal(t, uint64(1), p.serverConn.Stats().DroppedMalformed)
			require.True(t, errors.As(p.clientConn.err(), &ce))
			require.True(t, ce.Remote, "the client hears why: %v", ce)
			require.Equal(t, uint64(1), ce.Code)
			require.Contains(t, ce.Reason, "wire:")
		})
	}
}
