package transport

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flightline/flightline/transport/internal/handshake"
	"github.com/flightline/flightline/transport/internal/wire"
	"github.com/flightline/flightline/transport/link"
	"github.com/flightline/flightline/transport/memlink"
	"github.com/stretchr/testify/require"
)

// keyTestConfig is testConfig (flight checker on) with an update every
// interval packets and the given integrity and confidentiality limits.
func keyTestConfig(t *testing.T, suite Suite, l keyLimits) *Config {
	cfg := testConfig(t)
	cfg.Suite = suite
	cfg.testKeyLimits = &l
	return cfg
}

func defaultLimitsEvery(interval uint64) keyLimits {
	return keyLimits{interval: interval, confidentiality: aesGCMConfidentialityLimit, integrity: chachaIntegrityLimit}
}

// A bulk transfer crosses many key updates, with loss, duplication and
// reordering on both paths, and arrives intact and without stalling
// (transferStreams checks every digest and bounds the time); the flight
// invariants hold throughout (CheckInvariants) and both sides count the
// updates: the sender initiates them, the receiver follows each one.
func TestKeyUpdateBulkTransfer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		suite Suite
		imp   memlink.Impairment
	}{
		{"aes-gcm", SuiteAESGCM, memlink.Impairment{}},
		{"chacha20-poly1305", SuiteChaCha20Poly1305, memlink.Impairment{}},
		{"aes-gcm-lossy", SuiteAESGCM, memlink.Impairment{Loss: 0.02, Duplicate: 0.01, Reorder: 0.05}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := memlink.NewPair(memlink.Config{Seed: 11, AtoB: tc.imp, BtoA: tc.imp})
			l := defaultLimitsEvery(200)
			p := newPairOver(t, a, b, keyTestConfig(t, tc.suite, l), keyTestConfig(t, tc.suite, l))
			transferStreams(t, p, 2, 1<<20)

			cs, ss := p.clientConn.Stats(), p.serverConn.Stats()
			t.Logf("client: sent %d, key updates %d (initiated %d), peer updates %d, old-key packets %d",
				cs.PacketsSent, cs.KeyUpdates, cs.KeyUpdatesInitiated, cs.PeerKeyUpdates, cs.PreviousKeyPackets)
			t.Logf("server: sent %d, key updates %d (initiated %d), peer updates %d, old-key packets %d",
				ss.PacketsSent, ss.KeyUpdates, ss.KeyUpdatesInitiated, ss.PeerKeyUpdates, ss.PreviousKeyPackets)
			require.GreaterOrEqual(t, cs.KeyUpdatesInitiated, uint64(3))
			require.GreaterOrEqual(t, ss.PeerKeyUpdates, uint64(3))
			require.GreaterOrEqual(t, ss.KeyUpdates, uint64(3), "the receiver follows")
			// Every update of the client is one generation of the server's
			// receive key (the newest may still be on its way: the client
			// initiates on whatever packet it sends next, an ACK included).
			require.LessOrEqual(t, ss.PeerKeyUpdates, cs.KeyUpdates)
			require.GreaterOrEqual(t, ss.PeerKeyUpdates+1, cs.KeyUpdates)
			require.Zero(t, cs.AuthFailures)
			require.Zero(t, ss.AuthFailures)
			require.Zero(t, ss.DroppedUndecryptable)
			require.Zero(t, cs.FlightUnderflows)
			requireConnUsable(t, p)
		})
	}
}

// holdLink delays one data packet: the first that hold picks is held back
// and delivered right behind the first later packet that release picks, in
// the same read batch (so the endpoint handles both at one instant). The
// receiving endpoint reads it; the writing side is untouched. ReadBatch
// runs on the endpoint's receive loop only (no lock: the test must not
// block behind a read that waits for the next packet); released is read
// by the test.
type holdLink struct {
	*memlink.Link
	hold, release func(wire.DataHeader) bool

	q        []heldMsg // packets read from the link, not yet returned (own copies)
	held     *link.Message
	released atomic.Bool
}

type heldMsg struct {
	m        link.Message
	pairHead bool // the release packet: the held one follows it in the same batch
}

func (l *holdLink) ReadBatch(msgs []link.Message) (int, error) {
	if len(l.q) == 0 {
		buf := make([]link.Message, len(msgs))
		for i := range buf {
			buf[i].Buf = make([]byte, link.MaxPacketSize)
		}
		n, err := l.Link.ReadBatch(buf)
		if err != nil {
			return 0, err
		}
		for _, m := range buf[:n] {
			hdr, herr := wire.ParseDataHeader(m.Buf)
			switch {
			case herr == nil && l.held == nil && !l.released.Load() && l.hold(hdr):
				l.held = &m
			case herr == nil && l.held != nil && l.release(hdr):
				l.q = append(l.q, heldMsg{m: m, pairHead: true}, heldMsg{m: *l.held})
				l.held = nil
				l.released.Store(true)
			default:
				l.q = append(l.q, heldMsg{m: m})
			}
		}
	}
	n := 0
	for n < len(msgs) && n < len(l.q) {
		if l.q[n].pairHead && n == len(msgs)-1 && n > 0 {
			break // keep the pair in one batch: it starts the next one
		}
		msgs[n].Buf = msgs[n].Buf[:copy(msgs[n].Buf[:cap(msgs[n].Buf)], l.q[n].m.Buf)]
		msgs[n].Addr = l.q[n].m.Addr
		n++
	}
	l.q = l.q[n:]
	return n, nil
}

// A packet sealed under the old key that arrives after the first packet of
// the new phase (reordered across the update) is opened with the previous
// key and accepted, not dropped.
func TestKeyUpdateReorderedAcrossUpdate(t *testing.T) {
	const interval = 200
	a, b := memlink.NewPair(memlink.Config{Seed: 5})
	var heldPN uint64
	hl := &holdLink{
		Link: a,
		hold: func(h wire.DataHeader) bool {
			if h.KeyPhase == 0 && h.PN >= interval-10 && h.PN < interval {
				heldPN = h.PN
				return true
			}
			return false
		},
		release: func(h wire.DataHeader) bool { return h.KeyPhase == 1 },
	}
	l := defaultLimitsEvery(interval)
	p := newPairOver(t, hl, b, keyTestConfig(t, SuiteAESGCM, l), keyTestConfig(t, SuiteAESGCM, l))
	transferStreams(t, p, 1, 2<<20)

	require.True(t, hl.released.Load(), "the held packet (pn %d) went out behind the first phase-1 packet", heldPN)
	ss := p.serverConn.Stats()
	require.GreaterOrEqual(t, ss.PeerKeyUpdates, uint64(3))
	require.Equal(t, uint64(1), ss.PreviousKeyPackets, "the reordered packet opened with the previous key")
	require.Zero(t, ss.DroppedUndecryptable)
	require.Zero(t, ss.AuthFailures)
}

// exchangeByte sends one byte each way on s/rs, so every datagram written
// before it (memlink delivers in order, the endpoint handles in order) was
// handled by the server when it returns.
func exchangeByte(t *testing.T, ctx context.Context, s, rs *Stream) {
	t.Helper()
	one := make([]byte, 1)
	_, err := s.Write([]byte{'x'})
	require.NoError(t, err)
	_, err = io.ReadFull(readerCtx{ctx, rs}, one)
	require.NoError(t, err)
	_, err = rs.Write([]byte{'y'})
	require.NoError(t, err)
	_, err = io.ReadFull(readerCtx{ctx, s}, one)
	require.NoError(t, err)
}

// openedStream returns a stream the client opened and the server accepted.
func openedStream(t *testing.T, ctx context.Context, p *pair) (s, rs *Stream) {
	t.Helper()
	s, err := p.clientConn.OpenStream()
	require.NoError(t, err)
	_, err = s.Write([]byte("a"))
	require.NoError(t, err)
	rs, err = p.serverConn.AcceptStream(ctx)
	require.NoError(t, err)
	one := make([]byte, 1)
	_, err = io.ReadFull(readerCtx{ctx, rs}, one)
	require.NoError(t, err)
	return s, rs
}

// inject writes datagrams to the server as if from the client.
func inject(t *testing.T, from *memlink.Link, to link.Link, pkts ...[]byte) {
	t.Helper()
	for _, pkt := range pkts {
		_, err := from.WriteBatch([]link.Message{{Buf: pkt, Addr: to.LocalAddr()}})
		require.NoError(t, err)
	}
}

// forgedData is a data packet to connID with a fresh packet number and a
// ciphertext nobody sealed.
func forgedData(connID, pn uint64, phase uint8) []byte {
	b := wire.AppendDataHeader(nil, wire.DataHeader{ConnID: connID, PN: pn, KeyPhase: phase})
	return append(b, randomData(pn, 48)...)
}

// Unauthenticated packets of the other key phase — garbage, or a real
// packet with its phase bit flipped — are counted drops: the receiver
// neither rotates its keys nor follows with its send keys, and the real
// updates that come later still work.
func TestKeyUpdateForgedPhaseChangesNothing(t *testing.T) {
	a, b := memlink.NewPair(memlink.Config{Seed: 3})
	l := defaultLimitsEvery(300)
	p := newPairOver(t, a, b, keyTestConfig(t, SuiteAESGCM, l), keyTestConfig(t, SuiteAESGCM, l))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, rs := openedStream(t, ctx, p)

	before := p.serverConn.Stats()
	flipped := sealAsPeer(p.clientConn, 5000, wire.AppendPing(nil))
	flipped[0] ^= 1 // phase 1: tried with the next key, fails
	inject(t, b, a, forgedData(p.clientConn.remoteID, 6000, 1), flipped, forgedData(p.clientConn.remoteID, 6001, 0))
	exchangeByte(t, ctx, s, rs)

	st := p.serverConn.Stats()
	require.Equal(t, uint64(3), st.AuthFailures-before.AuthFailures)
	require.Equal(t, uint64(3), st.DroppedUndecryptable-before.DroppedUndecryptable)
	require.Zero(t, st.PeerKeyUpdates, "no rotation on an unauthenticated packet")
	require.Zero(t, st.KeyUpdates, "and no follow")

	transferStreams(t, p, 1, 1<<20)
	st = p.serverConn.Stats()
	require.GreaterOrEqual(t, st.PeerKeyUpdates, uint64(2))
	require.Equal(t, uint64(3), st.AuthFailures-before.AuthFailures)
}

// connErr waits (bounded) for c to close and returns why.
func connErr(t *testing.T, c *Conn) *ConnError {
	t.Helper()
	select {
	case <-c.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("connection did not close")
	}
	var ce *ConnError
	require.True(t, errors.As(c.err(), &ce), "close error %v", c.err())
	return ce
}

// More authentication failures than the integrity limit close the
// connection (RFC 9001 §6.6) and tell the peer why; up to the limit the
// connection carries on.
func TestKeyUpdateIntegrityLimitCloses(t *testing.T) {
	a, b := memlink.NewPair(memlink.Config{Seed: 4})
	scfg := keyTestConfig(t, SuiteAESGCM, keyLimits{interval: 1 << 20, confidentiality: aesGCMConfidentialityLimit, integrity: 3})
	p := newPairOver(t, a, b, scfg, testConfig(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, rs := openedStream(t, ctx, p)

	id := p.clientConn.remoteID
	inject(t, b, a, forgedData(id, 7000, 0), forgedData(id, 7001, 1), forgedData(id, 7002, 0))
	exchangeByte(t, ctx, s, rs)
	require.Equal(t, uint64(3), p.serverConn.Stats().AuthFailures)

	inject(t, b, a, forgedData(id, 7003, 1))
	se := connErr(t, p.serverConn)
	require.ErrorIs(t, se, ErrKeyLimit)
	require.Equal(t, uint64(1), se.Code)
	ce := connErr(t, p.clientConn)
	require.True(t, ce.Remote)
	require.Equal(t, uint64(1), ce.Code)
	require.Equal(t, reasonIntegrityLimit, ce.Reason)
}

// A key that cannot be updated (here: the interval is never reached, so
// the limit comes first) seals at most the confidentiality limit: the
// connection closes, and the CONNECTION_CLOSE is the last packet the key
// seals.
func TestKeyUpdateConfidentialityLimitCloses(t *testing.T) {
	a, b := memlink.NewPair(memlink.Config{Seed: 6})
	const limit = 40
	ccfg := keyTestConfig(t, SuiteAESGCM, keyLimits{interval: 1 << 40, confidentiality: limit, integrity: chachaIntegrityLimit})
	p := newPairOver(t, a, b, testConfig(t), ccfg)
	s, err := p.clientConn.OpenStream()
	require.NoError(t, err)
	go s.Write(randomData(1, 1<<20)) //nolint:errcheck // fails once the connection closes

	ce := connErr(t, p.clientConn)
	require.ErrorIs(t, ce, ErrKeyLimit)
	require.Equal(t, reasonConfidentialityLimit, ce.Reason)
	<-p.clientConn.loopDone // the send half is quiescent
	require.Equal(t, uint64(limit), p.clientConn.keys.sealer.Sealed())
	se := connErr(t, p.serverConn)
	require.True(t, se.Remote)
	require.Equal(t, reasonConfidentialityLimit, se.Reason)
}

// A side that sends only ACKs gets its own updates confirmed: when one is
// due it makes a packet ack-eliciting (a PING), since a pure ACK is never
// acknowledged. Here only the receiving server has a short interval; the
// client sends chunks the server only reads, until the server completed 3
// updates (at most 100 chunks, 1.6 MB: without the PING it completes
// none in them).
func TestKeyUpdateByAckOnlySide(t *testing.T) {
	a, b := memlink.NewPair(memlink.Config{Seed: 8})
	p := newPairOver(t, a, b, keyTestConfig(t, SuiteAESGCM, defaultLimitsEvery(2)), testConfig(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, rs := openedStream(t, ctx, p)
	chunk := randomData(3, 16<<10)
	got := make([]byte, len(chunk))
	for i := 0; i < 100 && p.serverConn.Stats().KeyUpdatesInitiated < 3; i++ {
		_, err := s.WriteContext(ctx, chunk)
		require.NoError(t, err)
		_, err = io.ReadFull(readerCtx{ctx, rs}, got)
		require.NoError(t, err)
		require.Equal(t, chunk, got)
	}
	cs, ss := p.clientConn.Stats(), p.serverConn.Stats()
	t.Logf("server: sent %d, updates initiated %d; client: sent %d, key updates %d", ss.PacketsSent, ss.KeyUpdatesInitiated, cs.PacketsSent, cs.KeyUpdates)
	require.GreaterOrEqual(t, ss.KeyUpdatesInitiated, uint64(3))
	require.Equal(t, ss.KeyUpdates, ss.KeyUpdatesInitiated, "the client initiates none")
	require.Zero(t, cs.KeyUpdatesInitiated)
	// The client follows each update with its next packet; the last one
	// may have come after its last packet.
	require.GreaterOrEqual(t, cs.KeyUpdates+1, ss.KeyUpdates)
	require.Zero(t, ss.AuthFailures)
}

// A peer that rolls its keys twice in a row, without this side having sent
// a packet in between, is closed with a protocol violation: an honest peer
// needs this side's acknowledgement under the first update before it may
// start a second (docs/protocol.md §5.3). This also bounds how often a
// peer can make the shared receive loop derive keys.
func TestKeyUpdateTwiceWithoutConfirmationCloses(t *testing.T) {
	a, b := memlink.NewPair(memlink.Config{Seed: 13})
	p := newPairOver(t, a, b, testConfig(t), testConfig(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	openedStream(t, ctx, p)

	c := p.clientConn
	c.sendMu.Lock()
	gen1 := c.keys.sendSecret.Next()
	c.sendMu.Unlock()
	gen2 := gen1.Next()
	seal := func(sec *handshake.TrafficSecret, pn uint64, plain []byte) []byte {
		h := wire.AppendDataHeader(nil, wire.DataHeader{ConnID: c.remoteID, PN: pn, KeyPhase: sec.Phase()})
		return sec.NewSealer().Seal(h, h[:wire.DataHeaderLen], pn, plain)
	}
	// The server must not send between the two (an ACK or probe still due
	// from the exchange above would make the second update legitimate):
	// hold its send state while its receive loop, which never takes
	// sendMu, handles both and closes the connection.
	srv := p.serverConn
	srv.sendMu.Lock()
	inject(t, b, a, seal(gen1, 9000, []byte{0, 0, 0}), seal(gen2, 9001, wire.AppendPing(nil)))
	select {
	case <-srv.closed:
	case <-time.After(10 * time.Second):
	}
	srv.sendMu.Unlock()

	se := connErr(t, p.serverConn)
	require.Equal(t, uint64(1), se.Code)
	require.Equal(t, errUpdateTooSoon.Error(), se.Reason)
	st := p.serverConn.Stats()
	require.EqualValues(t, 1, st.PeerKeyUpdates, "the first update was followed, the second refused")
	require.Zero(t, st.AuthFailures)
	// (The real client then rejects the server's CONNECTION_CLOSE packet's
	// ACK of packet numbers only the forger used; that is not under test.)
}
