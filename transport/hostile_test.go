package transport

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/flightline/flightline/transport/internal/wire"
	"github.com/flightline/flightline/transport/link"
	"github.com/flightline/flightline/transport/memlink"
	"github.com/stretchr/testify/require"
)

// sealAsPeer builds a data packet that c's peer accepts as authentic: c's
// header and keys, a packet number and frames the test chooses. It stands
// for a modified client that knows its own session keys.
func sealAsPeer(c *Conn, pn uint64, plain []byte) []byte {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.keys.seal(nil, c.remoteID, pn, plain)
}

// An authenticated peer whose packet numbers pass 2^62 (the largest varint,
// so the largest number an ACK frame can carry) once crashed the receiver:
// the number passed the replay window, was recorded for acknowledgement and
// the next ACK panicked in the varint encoder, killing every connection of
// the process. Such a packet is dropped as malformed at header parse and the
// connection carries on.
func TestPacketNumberAboveVarintRangeDropped(t *testing.T) {
	a, b := memlink.NewPair(memlink.Config{Seed: 3})
	p := newPairOver(t, a, b, testConfig(t), testConfig(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Open a stream so the server has something to answer on.
	s, err := p.clientConn.OpenStream()
	require.NoError(t, err)
	_, err = s.Write([]byte("a"))
	require.NoError(t, err)
	rs, err := p.serverConn.AcceptStream(ctx)
	require.NoError(t, err)
	one := make([]byte, 1)
	_, err = io.ReadFull(readerCtx{ctx, rs}, one)
	require.NoError(t, err)

	before := p.server.Stats().DroppedMalformed
	for _, pn := range []uint64{wire.MaxPacketNumber + 1, 1<<63 + 5, ^uint64(0)} {
		forged := sealAsPeer(p.clientConn, pn, wire.AppendPing(nil))
		_, err = b.WriteBatch([]link.Message{{Buf: forged, Addr: a.LocalAddr()}})
		require.NoError(t, err)
	}

	// memlink delivers in order and the endpoint handles datagrams in arrival
	// order, so once the server reads this byte the forged packets were
	// handled; its answer carries an ACK (the crash site before the fix).
	_, err = s.Write([]byte("b"))
	require.NoError(t, err)
	_, err = io.ReadFull(readerCtx{ctx, rs}, one)
	require.NoError(t, err)
	require.Equal(t, uint64(3), p.server.Stats().DroppedMalformed-before)
	_, err = rs.Write([]byte("c"))
	require.NoError(t, err)
	_, err = io.ReadFull(readerCtx{ctx, s}, one)
	require.NoError(t, err)
	require.Equal(t, "c", string(one))
}
