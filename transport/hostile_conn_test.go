package transport

// Tests of what an authenticated but misbehaving peer (or an on-path
// observer replaying its packets) can do to a connection. The "peer" is
// the client of a memlink pair driven by hand: forger seals packets with
// the client's keys and numbers them from the client's own counter, so
// they never collide with what the client's send loop sends. memlink
// delivers in order and the endpoint handles datagrams in arrival order,
// so anything the test observes after a later packet was handled (a stream
// accepted, a byte read) happened after the earlier ones too: no polling.

import (
	"context"
	"testing"
	"time"

	"github.com/flightline/flightline/transport/internal/wire"
	"github.com/flightline/flightline/transport/link"
	"github.com/flightline/flightline/transport/memlink"
	"github.com/stretchr/testify/require"
)

// forger sends packets as c, the client conn whose link is l, to the
// server at to.
type forger struct {
	t  testing.TB
	c  *Conn
	l  *memlink.Link
	to *memlink.Link
}

func newForger(t testing.TB, p *pair, client, server *memlink.Link) *forger {
	return &forger{t: t, c: p.clientConn, l: client, to: server}
}

// pn takes the next packet number from the client's own sequence.
func (f *forger) pn() uint64 { return f.c.nextPN.Add(1) - 1 }

// seal returns the datagram for plain under packet number pn.
func (f *forger) seal(pn uint64, plain []byte) []byte { return sealAsPeer(f.c, pn, plain) }

// write puts raw datagrams on the wire to the server.
func (f *forger) write(pkts ...[]byte) {
	f.t.Helper()
	msgs := make([]link.Message, len(pkts))
	for i, b := range pkts {
		msgs[i] = link.Message{Buf: b, Addr: f.to.LocalAddr()}
	}
	n, err := f.l.WriteBatch(msgs)
	require.NoError(f.t, err)
	require.Equal(f.t, len(pkts), n)
}

// send seals plain under a fresh packet number and sends it.
func (f *forger) send(plain []byte) uint64 {
	f.t.Helper()
	pn := f.pn()
	f.write(f.seal(pn, plain))
	return pn
}

// hostilePair is a memlink pair with keepalives off (nothing is sent that
// the test did not cause) and the flight checker on.
func hostilePair(t testing.TB, mut func(s, c *Config)) (*pair, *forger) {
	a, b := memlink.NewPair(memlink.Config{Seed: 11})
	scfg, ccfg := testConfig(t), testConfig(t)
	scfg.KeepAlive, ccfg.KeepAlive = -1, -1
	if mut != nil {
		mut(scfg, ccfg)
	}
	p := newPairOver(t, a, b, scfg, ccfg)
	return p, newForger(t, p, b, a)
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// exchange proves the connection still carries data both ways on a fresh
// stream and returns it.
func exchange(t *testing.T, ctx context.Context, p *pair, msg string) {
	t.Helper()
	s, err := p.clientConn.OpenStream()
	require.NoError(t, err)
	_, err = s.WriteContext(ctx, []byte(msg))
	require.NoError(t, err)
	var rs *Stream
	for rs == nil || rs.ID() != s.ID() {
		rs, err = p.serverConn.AcceptStream(ctx)
		require.NoError(t, err)
	}
	got := make([]byte, len(msg))
	_, err = readFull(ctx, rs, got)
	require.NoError(t, err)
	require.Equal(t, msg, string(got))
	_, err = rs.WriteContext(ctx, []byte(msg))
	require.NoError(t, err)
	_, err = readFull(ctx, s, got)
	require.NoError(t, err)
	require.Equal(t, msg, string(got))
}

func readFull(ctx context.Context, s *Stream, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := s.ReadContext(ctx, p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// A duplicate or too-old packet number is dropped before decryption and
// changes nothing — in particular it does not make the receiver owe an
// immediate ACK. It once did, so anyone who saw a packet number could make
// the endpoint send one packet per forged 33-byte datagram.
//
// The test holds the server's send ownership (sendMu) throughout, so its
// send loop cannot run and whatever the forged packets did to the ACK state
// is still there to see.
func TestDuplicatePacketNumberForcesNoAck(t *testing.T) {
	p, f := hostilePair(t, nil)
	ctx := testCtx(t)
	exchange(t, ctx, p, "warm") // the client's startup packets are all handled
	sc := p.serverConn

	sc.sendMu.Lock()
	locked := true
	defer func() {
		if locked {
			sc.sendMu.Unlock()
		}
	}()
	// Start from "an ACK just went out".
	sc.ackMu.Lock()
	sc.acks.immediate, sc.acks.ackDeadline, sc.acks.unackedEliciting = false, 0, 0
	sc.ackMu.Unlock()
	before := sc.Stats()

	// One genuine non-eliciting packet, then forgeries of its number:
	// garbage payloads (fail the AEAD) and exact replays (pass it), and a
	// number far below the replay window.
	pn := f.pn()
	genuine := f.seal(pn, []byte{0}) // PADDING only
	f.write(genuine)
	var dups [][]byte
	for i := range 20 {
		junk := wire.AppendDataHeader(nil, wire.DataHeader{ConnID: sc.localID, PN: pn})
		junk = append(junk, make([]byte, 16+i)...)
		dups = append(dups, junk, genuine)
	}
	old := wire.AppendDataHeader(nil, wire.DataHeader{ConnID: sc.localID, PN: 0})
	dups = append(dups, append(old, make([]byte, 16)...))
	f.write(dups...)
	// Sync: a STREAM frame on a new stream, in order (owes only a delayed ACK).
	s, err := p.clientConn.OpenStream()
	require.NoError(t, err)
	f.send(wire.AppendStream(nil, s.ID(), 0, []byte("x"), false))
	var rs *Stream
	for rs == nil || rs.ID() != s.ID() {
		rs, err = sc.AcceptStream(ctx)
		require.NoError(t, err)
	}

	sc.ackMu.Lock()
	immediate := sc.acks.immediate
	sc.ackMu.Unlock()
	st := sc.Stats()
	require.False(t, immediate, "duplicate packet numbers forced an immediate ACK")
	require.Equal(t, uint64(len(dups)), st.DroppedDuplicate-before.DroppedDuplicate)
	require.Zero(t, st.DroppedUndecryptable-before.DroppedUndecryptable, "duplicates are dropped before decryption")
	require.Equal(t, before.PacketsSent, st.PacketsSent)
	sc.sendMu.Unlock()
	locked = false

	// The forged stream's byte is there and the connection works.
	one := make([]byte, 1)
	_, err = readFull(ctx, rs, one)
	require.NoError(t, err)
	require.Equal(t, "x", string(one))
	exchange(t, ctx, p, "after")
}

// waitStream blocks until cond holds for s (checked under s.mu each time the
// receive path signals the stream), or ctx ends.
func waitStream(ctx context.Context, s *Stream, cond func(s *Stream) bool) error {
	for {
		s.mu.Lock()
		if cond(s) {
			s.mu.Unlock()
			return nil
		}
		ch := s.readSig.wait()
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// allReceived: FIN and every byte before it are buffered, nothing read.
func allReceived(s *Stream) bool {
	return s.haveFinal && s.recv.readOffset == 0 && uint64(s.recv.buffered) == s.finalSize
}

// Bytes the application will never read return connection flow-control
// credit (RFC 9000 §4.5). Without that, six 3 MiB streams received and
// cancelled unread (18 MiB > the 16 MiB connection window) stalled the
// connection for good: the sixth never fully arrived and no later stream
// could even be opened.
func TestCancelReadReturnsConnectionCredit(t *testing.T) {
	p, _ := hostilePair(t, nil)
	ctx := testCtx(t)
	const size = 3 << 20
	data := randomData(5, size)
	go func() {
		for range 6 {
			s, err := p.clientConn.OpenStreamSync(ctx)
			if err != nil {
				return
			}
			s.WriteContext(ctx, data)
			s.Close()
		}
	}()
	for i := range 6 {
		rs, err := p.serverConn.AcceptStream(ctx)
		require.NoError(t, err, "stream %d", i)
		require.NoError(t, waitStream(ctx, rs, allReceived), "stream %d never arrived in full", i)
		rs.CancelRead(7)
	}
	exchange(t, ctx, p, "still flowing")
	// Cancelled before anything arrived: what arrives later is credited as it comes.
	go func() {
		s, err := p.clientConn.OpenStreamSync(ctx)
		if err != nil {
			return
		}
		s.WriteContext(ctx, data)
		s.Close()
	}()
	for range 6 {
		rs, err := p.serverConn.AcceptStream(ctx)
		require.NoError(t, err)
		rs.CancelRead(8)
		go func() {
			s, err := p.clientConn.OpenStreamSync(ctx)
			if err == nil {
				s.WriteContext(ctx, data)
				s.Close()
			}
		}()
	}
	exchange(t, ctx, p, "and still")
}

// The same with RESET_STREAM from the sender: the final size it names
// counts as consumed.
func TestResetStreamReturnsConnectionCredit(t *testing.T) {
	p, _ := hostilePair(t, nil)
	ctx := testCtx(t)
	const size = 3 << 20
	data := randomData(6, size)
	for i := range 6 {
		s, err := p.clientConn.OpenStreamSync(ctx)
		require.NoError(t, err)
		go s.WriteContext(ctx, data)
		rs, err := p.serverConn.AcceptStream(ctx)
		require.NoError(t, err)
		require.NoError(t, waitStream(ctx, rs, func(s *Stream) bool {
			return s.recv.readOffset == 0 && s.recv.buffered == size
		}), "stream %d never arrived in full", i)
		s.CancelWrite(9)
		require.NoError(t, waitStream(ctx, rs, func(s *Stream) bool { return s.recvErr != nil }))
		_, err = rs.ReadContext(ctx, make([]byte, 1))
		var se *StreamError
		require.ErrorAs(t, err, &se)
		require.True(t, se.Remote)
	}
	exchange(t, ctx, p, "still flowing")
}
