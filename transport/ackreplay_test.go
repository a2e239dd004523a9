package transport

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flightline/flightline/transport/link"
	"github.com/flightline/flightline/transport/memlink"
	"github.com/stretchr/testify/require"
)

// slowAckLink forces the interleaving that made clean links look lossy: it
// hands a batch to the peer and returns from WriteBatch only after the
// sender has processed an ACK for it, i.e. the ACK overtakes the Track of
// the packets it acknowledges.
type slowAckLink struct {
	link.Link
	conn   atomic.Pointer[Conn]
	waited atomic.Int64
}

func (l *slowAckLink) WriteBatch(msgs []link.Message) (int, error) {
	c := l.conn.Load()
	var seq uint64
	if c != nil {
		seq = c.ackSeq.Load()
	}
	n, err := l.Link.WriteBatch(msgs)
	if c == nil || n < 2 {
		return n, err
	}
	deadline := time.Now().Add(50 * time.Millisecond)
	for c.ackSeq.Load() == seq && time.Now().Before(deadline) {
		time.Sleep(50 * time.Microsecond)
	}
	if c.ackSeq.Load() != seq {
		l.waited.Add(1)
	}
	return n, err
}

// TestAckOvertakingTrackIsNotLoss: on a loss-free link nothing may be
// declared lost or retransmitted even when every ACK arrives before the
// acknowledged packets are tracked. Without the send loop's replay of the
// newest ACK those packets sit below the largest acknowledged packet number
// and are declared lost by the packet threshold.
func TestAckOvertakingTrackIsNotLoss(t *testing.T) {
	a, b := memlink.NewPair(memlink.Config{Seed: 12})
	sl := &slowAckLink{Link: b}
	p := newPairOver(t, a, sl, testConfig(t), testConfig(t))
	sl.conn.Store(p.clientConn)

	s, err := p.clientConn.OpenStream()
	require.NoError(t, err)
	data := randomData(8, 4<<20)
	go func() { s.Write(data); s.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rs, err := p.serverConn.AcceptStream(ctx)
	require.NoError(t, err)
	got, err := io.ReadAll(readerCtx{ctx, rs})
	require.NoError(t, err)
	require.Equal(t, data, got)

	require.NotZero(t, sl.waited.Load(), "the interleaving never happened")
	st := p.clientConn.Stats()
	require.Zero(t, st.PacketsLost, "spurious losses: %+v", st)
	// Timer probes (TLP, RTO) may still resend when a loaded machine
	// starves the ACK path for longer than the probe timeout; each such
	// probe explains at most one packet of duplicate data. Anything beyond
	// that was a loss-driven resend, which the replay must prevent.
	dup := p.serverConn.Stats().DuplicateStreamBytes
	probes := st.TailLossProbes + st.RTOs
	require.LessOrEqual(t, dup, probes*uint64(p.clientConn.cfg.MaxPacketSize),
		"spurious retransmissions reached the peer: %d duplicate bytes, %d timer probes", dup, probes)
}
