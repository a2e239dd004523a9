package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/flightline/flightline/transport/internal/handshake"
	"github.com/flightline/flightline/transport/internal/wire"
	"github.com/flightline/flightline/transport/link"
	"github.com/flightline/flightline/transport/memlink"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/blake2s"
)

// An on-path rewrite of the initiator's connection ID (mac1 recomputed, as
// anyone can: its key derives from the listener's public key) reaches a
// listening Endpoint as an Initiation that fails decryption: it is counted,
// answered with nothing and creates no connection. The untouched Initiation
// is then accepted (docs/protocol.md §4.2).
func TestEndpointRejectsRewrittenConnID(t *testing.T) {
	a, b := memlink.NewPair(memlink.Config{Seed: 9})
	// One handshake worker: Initiations are then handled in arrival order.
	srv, err := newEndpoint(a, testConfig(t), true, handshakerOptions{workers: 1})
	require.NoError(t, err)
	defer srv.Close()
	defer b.Close()

	cliKey, err := GenerateKey()
	require.NoError(t, err)
	init, err := handshake.NewInitiator(handshake.InitiatorConfig{
		Static: cliKey, Remote: srv.PublicKey(), ConnID: 0x1111,
		Payload: paramsFromConfig(mustPopulate(t)).append(nil),
	})
	require.NoError(t, err)
	orig := init.Message()

	forged := bytes.Clone(orig)
	binary.BigEndian.PutUint64(forged[4:], 0x2222)
	pub := srv.PublicKey()
	key := blake2s.Sum256(append([]byte("mac1----"), pub[:]...))
	h, err := blake2s.New128(key[:])
	require.NoError(t, err)
	h.Write(forged[:len(forged)-32])
	copy(forged[len(forged)-32:], h.Sum(nil))

	send := func(msg []byte) {
		_, err := b.WriteBatch([]link.Message{{Buf: msg, Addr: a.LocalAddr()}})
		require.NoError(t, err)
	}
	read := func() []byte {
		msgs := []link.Message{{Buf: make([]byte, link.MaxPacketSize)}}
		n, err := b.ReadBatch(msgs)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		return msgs[0].Buf
	}

	send(forged)
	send(orig)
	// memlink delivers in order and the endpoint handles datagrams in
	// order, so the first answer is to whichever Initiation it accepted.
	resp := read()
	require.Equal(t, byte(handshake.TypeResponse), resp[0])
	id, ok := handshake.ReceiverConnID(resp)
	require.True(t, ok)
	require.Equal(t, uint64(0x1111), id, "the response answers the untouched initiation")
	res, err := init.Finish(resp)
	require.NoError(t, err)
	require.NotZero(t, res.PeerConnID)

	st := srv.Stats()
	require.Equal(t, uint64(1), st.DroppedHandshake, "the rewritten initiation is counted")
	require.Equal(t, uint64(1), st.Handshakes)
	// The connection reaches Accept once the initiator proved its address
	// with an authenticated packet (docs/protocol.md §4.8).
	ping := wire.AppendDataHeader(nil, wire.DataHeader{ConnID: res.PeerConnID, PN: 0})
	ping = res.Session.Send.Seal(ping, ping[:wire.DataHeaderLen], 0, wire.AppendPing(nil))
	send(ping)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := srv.Accept(ctx)
	require.NoError(t, err)
	require.Equal(t, res.PeerConnID, c.localID)
}

func mustPopulate(t *testing.T) *Config {
	t.Helper()
	c, err := (&Config{}).populate()
	require.NoError(t, err)
	return c
}
