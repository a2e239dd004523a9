package transport

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightline/flightline/transport/internal/monotime"
	"github.com/flightline/flightline/transport/memlink"
)

// Tests of the request/response send path: the inline send (Conn.sendNow),
// ACKs riding on answers, and the delayed-ACK timer that replaced waking
// the send loop for every ack-eliciting packet.

// waitQuiet waits until c has nothing in flight.
func waitQuiet(t *testing.T, c *Conn) {
	t.Helper()
	require.Eventually(t, func() bool { return c.ledger.Flight() == 0 }, 10*time.Second, time.Millisecond)
}

// waitSettled waits until the dialer's handshake confirmation (a PING it
// sends as soon as the connection exists) has been sent and acknowledged.
func waitSettled(t *testing.T, client *Conn) {
	t.Helper()
	require.Eventually(t, func() bool {
		st := client.Stats()
		return st.BytesAcked > 0 && st.FlightSize == 0
	}, 10*time.Second, time.Millisecond)
}

// readN reads exactly n bytes from s.
func readN(t *testing.T, ctx context.Context, s *Stream, n int) []byte {
	t.Helper()
	buf := make([]byte, n)
	_, err := io.ReadFull(readerFunc(func(p []byte) (int, error) { return s.ReadContext(ctx, p) }), buf)
	require.NoError(t, err)
	return buf
}

// TestAckRidesOnAnswer: in a ping-pong every ACK travels in the other side's
// answer, so a round trip is exactly two packets. Before the delayed-ACK
// timer the receive path woke the send loop for each request, and the loop
// ran ahead of the reader that was about to answer.
func TestAckRidesOnAnswer(t *testing.T) {
	// An ack delay far longer than a round trip, so that the timer cannot
	// fire first even under the race detector: every ACK-only packet in the
	// measured window would be a regression.
	scfg, ccfg := testConfig(t), testConfig(t)
	scfg.MaxAckDelay, ccfg.MaxAckDelay = 500*time.Millisecond, 500*time.Millisecond
	a, b := memlink.NewPair(memlink.Config{Seed: 5})
	p := newPairOver(t, a, b, scfg, ccfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	s, err := p.clientConn.OpenStream()
	require.NoError(t, err)
	msg := randomData(7, 64)
	_, err = s.WriteContext(ctx, msg)
	require.NoError(t, err)
	rs, err := p.serverConn.AcceptStream(ctx)
	require.NoError(t, err)
	serverDone := make(chan error, 1)
	go func() {
		buf := make([]byte, len(msg))
		for {
			if _, err := io.ReadFull(readerFunc(func(q []byte) (int, error) { return rs.ReadContext(ctx, q) }), buf); err != nil {
				serverDone <- err
				return
			}
			if _, err := rs.WriteContext(ctx, buf); err != nil {
				serverDone <- err
				return
			}
		}
	}()
	require.Equal(t, msg, readN(t, ctx, s, len(msg)))

	// Count packets as the receiving side processed them: a sender's own
	// counter is bumped after its datapath send returns, which the peer's
	// answer can overtake.
	const rounds = 50
	c0, s0 := p.clientConn.Stats(), p.serverConn.Stats()
	for range rounds {
		_, err := s.WriteContext(ctx, msg)
		require.NoError(t, err)
		require.Equal(t, msg, readN(t, ctx, s, len(msg)))
	}
	c1, s1 := p.clientConn.Stats(), p.serverConn.Stats()
	require.Equal(t, uint64(rounds), s1.PacketsReceived-s0.PacketsReceived, "client packets")
	require.Equal(t, uint64(rounds), c1.PacketsReceived-c0.PacketsReceived, "server packets")
	require.Zero(t, c1.PacketsRetransmitted+s1.PacketsRetransmitted)

	// The last echo is acknowledged by the ACK timer alone.
	waitQuiet(t, p.serverConn)
	require.NoError(t, s.Close())
	require.ErrorIs(t, <-serverDone, io.EOF)
}

// TestDelayedAckWithoutAnswer: when the application does not answer, the
// ACK timer still acknowledges the data — one ACK-only packet, after the
// ack delay rather than at once — and the sender needs no probe for it.
func TestDelayedAckWithoutAnswer(t *testing.T) {
	const ackDelay = 20 * time.Millisecond
	scfg, ccfg := testConfig(t), testConfig(t)
	scfg.MaxAckDelay = ackDelay
	// The client's probe timeout includes its (assumed) peer ack delay:
	// make it long enough that a probe cannot stand in for the ACK timer.
	ccfg.MaxAckDelay = 2 * time.Second
	a, b := memlink.NewPair(memlink.Config{Seed: 6})
	p := newPairOver(t, a, b, scfg, ccfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitSettled(t, p.clientConn)

	s, err := p.clientConn.OpenStream()
	require.NoError(t, err)
	c0 := p.clientConn.Stats()
	start := time.Now()
	_, err = s.WriteContext(ctx, []byte("no answer"))
	require.NoError(t, err)
	rs, err := p.serverConn.AcceptStream(ctx)
	require.NoError(t, err)
	require.Equal(t, []byte("no answer"), readN(t, ctx, rs, 9))
	waitQuiet(t, p.clientConn)
	elapsed := time.Since(start)

	c1 := p.clientConn.Stats()
	require.Equal(t, uint64(1), c1.PacketsReceived-c0.PacketsReceived, "one ACK-only packet")
	require.Zero(t, c1.TailLossProbes-c0.TailLossProbes)
	require.Zero(t, c1.PacketsRetransmitted-c0.PacketsRetransmitted)
	require.GreaterOrEqual(t, elapsed, ackDelay*3/4, "the ACK was not delayed")
}

// TestWriteSendsInline: on an idle connection Write puts the packet on the
// datapath before it returns, from the writing goroutine.
func TestWriteSendsInline(t *testing.T) {
	p, _, _ := newMemPair(t, memlink.Config{Seed: 8})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitSettled(t, p.clientConn)
	s, err := p.clientConn.OpenStream()
	require.NoError(t, err)
	inline := 0
	const writes = 10
	for range writes {
		before := p.clientConn.Stats().PacketsSent
		_, err := s.WriteContext(ctx, []byte("x"))
		require.NoError(t, err)
		if p.clientConn.Stats().PacketsSent > before {
			inline++
		}
		waitQuiet(t, p.clientConn)
		// The ACK that empties the flight does not wake the loop, so its
		// timer may still fire for the probe deadline of the packet just
		// acknowledged. Let that pass run before the next write.
		time.Sleep(20 * time.Millisecond)
	}
	require.GreaterOrEqual(t, inline, writes-1, "writes sent inline")
}

// TestWriteWhileLoopBusySignals: when the send state is held (the loop is
// mid-pass), Write must hand its data to the loop rather than leave it
// queued until some timer fires.
func TestWriteWhileLoopBusySignals(t *testing.T) {
	p, _, _ := newMemPair(t, memlink.Config{Seed: 9})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitSettled(t, p.clientConn)
	s, err := p.clientConn.OpenStream()
	require.NoError(t, err)

	// Wait until the loop's timer is set far out (keepalive, idle), so
	// that no timer pass can stand in for the signal.
	c := p.clientConn
	require.Eventually(t, func() bool {
		c.sendMu.Lock()
		defer c.sendMu.Unlock()
		return c.send.armed.Sub(monotime.Now()) > 5*time.Second
	}, 10*time.Second, time.Millisecond)

	c.sendMu.Lock()
	before := c.Stats().PacketsSent
	_, err = s.WriteContext(ctx, []byte("queued while busy"))
	require.NoError(t, err)
	require.Equal(t, before, c.Stats().PacketsSent, "sent without the send state")
	c.sendMu.Unlock()

	// Only the signal from Write gets the data out this soon.
	soon, cancelSoon := context.WithTimeout(ctx, 2*time.Second)
	defer cancelSoon()
	rs, err := p.serverConn.AcceptStream(soon)
	require.NoError(t, err, "data written while the loop was busy was not sent")
	require.Equal(t, []byte("queued while busy"), readN(t, soon, rs, 17))
}
