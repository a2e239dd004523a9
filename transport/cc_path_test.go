package transport

import (
	"context"
	"fmt"
	"io"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightline/flightline/transport/memlink"
)

// pathResult is one transfer over a memlink path in a synctest bubble.
type pathResult struct {
	goodput float64 // bytes/s of virtual time
	stats   Stats
	// meanSRTT and medianSRTT summarise the client's smoothed RTT sampled
	// every 10 ms over the second half of the transfer. The median is the
	// steady state; the mean includes the bandwidth probes' transient queue.
	meanSRTT, medianSRTT time.Duration
}

// transferOverPath sends size bytes on one stream from client to server over
// a memlink path with the given bottleneck rate (bytes/s), one-way delay,
// queue (packets, shared by the wire and the queue: see memlink) and random
// loss on the data direction, inside a synctest bubble: virtual time, so the
// result is deterministic for a seed and independent of machine load.
func transferOverPath(t *testing.T, cc string, rate int64, owd time.Duration, queue int, loss float64, size int) pathResult {
	var res pathResult
	synctest.Test(t, func(t *testing.T) {
		a, b := memlink.NewPair(memlink.Config{
			Seed:     11,
			QueueLen: queue,
			// b is the client: BtoA carries the data.
			BtoA: memlink.Impairment{Rate: rate, Delay: owd, Loss: loss},
			AtoB: memlink.Impairment{Delay: owd},
		})
		scfg, ccfg := testConfig(t), testConfig(t)
		ccfg.Congestion = cc
		scfg.Logf, ccfg.Logf = nil, nil
		p := newPairOver(t, a, b, scfg, ccfg)
		data := randomData(3, size)
		s, err := p.clientConn.OpenStream()
		require.NoError(t, err)
		start := time.Now()
		go func() {
			s.Write(data)
			s.Close()
		}()
		var srtts []time.Duration
		done := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					srtts = append(srtts, p.clientConn.Stats().SmoothedRTT)
				}
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		rs, err := p.serverConn.AcceptStream(ctx)
		require.NoError(t, err)
		n, err := io.Copy(io.Discard, rs)
		require.NoError(t, err)
		require.EqualValues(t, size, n)
		res.goodput = float64(size) / time.Since(start).Seconds()
		res.stats = p.clientConn.Stats()
		close(done)
		<-sampled
		half := srtts[len(srtts)/2:]
		for _, d := range half {
			res.meanSRTT += d / time.Duration(len(half))
		}
		slices.Sort(half)
		res.medianSRTT = half[len(half)/2]
	})
	return res
}

// The real connection (ledger, sampler, send loop, pacer, ACK handling,
// controller) over a 20 Mbit/s, 20 ms RTT memlink path with a 128-packet
// queue (~3 BDP): a 12 MiB transfer, Startup included. BBR keeps ≥ 85 % of
// the bottleneck at 0 and 1 % random loss and ≥ 75 % at 5 %, with a
// median smoothed RTT ≤ 1.25× the minimum (mean ≤ 1.5×, probes included); CUBIC, measured in the same test, fills
// the queue on the clean path and collapses under loss.
func TestCongestionOverMemlinkPath(t *testing.T) {
	const rate = 2_500_000 // 20 Mbit/s
	const owd = 10 * time.Millisecond
	for _, tc := range []struct{ loss, min float64 }{{0, 0.85}, {0.01, 0.85}, {0.05, 0.75}} {
		t.Run(fmt.Sprintf("loss%.0f%%", 100*tc.loss), func(t *testing.T) {
			bbr := transferOverPath(t, "bbr", rate, owd, 128, tc.loss, 12<<20)
			cubic := transferOverPath(t, "cubic", rate, owd, 128, tc.loss, 12<<20)
			for _, r := range []pathResult{bbr, cubic} {
				st := r.stats
				t.Logf("%s: goodput %.1f%% of the bottleneck, srtt median %.2f× / mean %.2f× min %v, retransmitted %d of %d packets",
					st.Controller, 100*r.goodput/rate, r.medianSRTT.Seconds()/st.MinRTT.Seconds(), r.meanSRTT.Seconds()/st.MinRTT.Seconds(), st.MinRTT,
					st.PacketsRetransmitted, st.PacketsSent)
			}
			require.Equal(t, "bbr", bbr.stats.Controller)
			require.GreaterOrEqual(t, bbr.goodput/rate, tc.min)
			require.LessOrEqual(t, bbr.medianSRTT.Seconds(), 1.25*bbr.stats.MinRTT.Seconds(), "steady-state RTT")
			require.LessOrEqual(t, bbr.meanSRTT.Seconds(), 1.5*bbr.stats.MinRTT.Seconds(), "RTT including probes")
			if tc.loss > 0 {
				require.Greater(t, bbr.goodput, 2*cubic.goodput, "BBR vs CUBIC under random loss")
			}
		})
	}
}
