package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/flightline/flightline/testnet"
	"github.com/flightline/flightline/transport"
	"github.com/flightline/flightline/transport/link"
	"github.com/stretchr/testify/require"
)

// TestVethStreamAbortFreesWindow is the flight-size scenario over real veth:
// with the ACK path (B->A) blackholed, stream A fills the congestion window
// and is aborted with ErrWindowWaitTimeout; the connection survives and,
// once ACKs flow again, stream B's data goes out at once because A's
// in-flight bytes were released, not left to time out.
//
// "At once" is checked as a state, not a duration (which CPU starvation on a
// loaded machine stretches at will): when A's write returns the abort, the
// ACK path is still dark, so no ACK can have freed anything, yet the window
// must have room for a full packet of another stream. Without the release
// A's ~46 KB stay in flight against a collapsed window of two packets and B
// waits for A's packets to be acknowledged after a probe timeout. How long
// B's first byte took is logged.
func TestVethStreamAbortFreesWindow(t *testing.T) {
	testnet.RequirePrivileged(t)
	const delay = 10 * time.Millisecond
	for _, dp := range datapaths {
		t.Run(dp.name, func(t *testing.T) {
			plain := testnet.Impairment{Delay: delay}
			n := testnet.New(t, testnet.Config{AtoB: plain, BtoA: plain})
			ccfg, scfg := baseConfig(t), baseConfig(t)
			ccfg.CheckInvariants, scfg.CheckInvariants = true, true
			// The timeout that aborts A also bounds every later wait of
			// B for window without progress. At 300 ms, B (1 MB through a
			// window collapsed to two packets) was itself aborted on a
			// loaded machine (1 of 24 runs); 1 s only trips on a stall.
			ccfg.WindowWaitTimeout = time.Second
			p := connect(t, n, dp, ccfg, scfg)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()

			// The server drains every stream and notes when its first
			// byte arrived.
			type arrival struct {
				first time.Time
				data  []byte
				err   error
			}
			var mu sync.Mutex
			arrivals := map[uint64]chan arrival{}
			arrivalOf := func(id uint64) chan arrival {
				mu.Lock()
				defer mu.Unlock()
				if arrivals[id] == nil {
					arrivals[id] = make(chan arrival, 1)
				}
				return arrivals[id]
			}
			go func() {
				for {
					rs, err := p.sc.AcceptStream(ctx)
					if err != nil {
						return
					}
					go func() {
						var a arrival
						buf := make([]byte, 64<<10)
						var out bytes.Buffer
						for {
							k, err := rs.ReadContext(ctx, buf)
							if k > 0 && a.first.IsZero() {
								a.first = time.Now()
							}
							out.Write(buf[:k])
							if err != nil {
								if !errors.Is(err, io.EOF) {
									a.err = err
								}
								break
							}
						}
						a.data = out.Bytes()
						arrivalOf(rs.ID()) <- a
					}()
				}
			}()

			// Stream A: some data gets through, then the ACK path goes dark.
			sa, err := p.cc.OpenStream()
			require.NoError(t, err)
			_, err = sa.WriteContext(ctx, make([]byte, 16<<10))
			require.NoError(t, err)
			eventually(t, 5*time.Second, func() bool { return p.cc.Stats().BytesAcked > 0 }, "no ACK before blackhole")
			rtt := p.cc.Stats().MinRTT
			require.NoError(t, n.SetImpairment(plain, testnet.Impairment{Delay: delay, Loss: 1}))
			done := make(chan error, 1)
			go func() {
				_, err := sa.WriteContext(ctx, make([]byte, 8<<20))
				done <- err
			}()
			var aborted time.Time
			select {
			case err = <-done:
				aborted = time.Now()
			case <-time.After(20 * time.Second):
				t.Fatal("stream A was not aborted within 20 s")
			}
			// The abort released A's flight before waking its writer;
			// B->A is still dark, so nothing else freed the window.
			atAbort := p.cc.Stats()
			var se *transport.StreamError
			require.ErrorAs(t, err, &se)
			require.ErrorIs(t, err, transport.ErrWindowWaitTimeout)
			require.LessOrEqual(t, atAbort.FlightSize+link.MaxPacketSize, atAbort.CongestionWindow,
				"after A's abort, with no ACK possible, the window has no room for B: flight %d B (%d packets tracked), window %d B",
				atAbort.FlightSize, atAbort.TrackedPackets, atAbort.CongestionWindow)
			require.NoError(t, n.SetImpairment(plain, plain))

			// Stream B: its first byte must not wait for A's packets to
			// be declared lost or time out.
			sb, err := p.cc.OpenStream()
			require.NoError(t, err)
			want := make([]byte, 1<<20)
			newPRNG(4).fill(want)
			go func() {
				if _, err := sb.WriteContext(ctx, want); err != nil {
					t.Errorf("write stream B: %v", err)
				}
				sb.Close()
			}()
			var b arrival
			select {
			case b = <-arrivalOf(sb.ID()):
			case <-ctx.Done():
				t.Fatal("stream B never completed")
			}
			require.NoError(t, b.err)
			require.True(t, bytes.Equal(want, b.data), "stream B: %d bytes, differ from sent", len(b.data))
			lat := b.first.Sub(aborted)
			t.Logf("RTT %v; at the abort: flight %d B, window %d B; stream B's first byte %v after A's abort (%.1f RTTs)",
				rtt, atAbort.FlightSize, atAbort.CongestionWindow, lat, float64(lat)/float64(rtt))

			require.NoError(t, p.cc.Context().Err(), "connection did not survive")
			st := p.cc.Stats()
			require.EqualValues(t, 1, st.WindowWaitAborts)
			require.NotZero(t, st.AbortReleasedBytes)
			requireDrained(t, p)
		})
	}
}
