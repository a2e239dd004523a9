package congestion

import (
	"fmt"
	"testing"
	"time"

	"github.com/flightline/flightline/transport/internal/monotime"
)

func newSimBBR(seed uint64) Controller { return NewBBR(BBRConfig{Seed: seed}) }

func TestExploreBBR(t *testing.T) {
	for _, loss := range []float64{0, 0.01, 0.05} {
		t.Run(fmt.Sprint(loss), func(t *testing.T) {
			rate := 50e6 / 8
			rtt := 20 * time.Millisecond
			bdp := rate * rtt.Seconds()
			n := newNetsim(t, rate, 2*bdp, loss, 1)
			f := n.addFlow(newSimBBR(1), rtt, 0)
			last := ""
			f.trace = func(now monotime.Time, f *simFlow) {
				info, _ := InspectBBR(f.cc)
				if info.State != last {
					t.Logf("%8.3fs %s maxbw %.1f Mbit/s cwnd %d pacing %.1f Mbit/s p0 %.3f", now.Sub(simT0).Seconds(), info.State, info.MaxBw*8/1e6, f.cc.Window(), f.cc.PacingRate()*8/1e6, info.BaseLoss)
					last = info.State
				}
			}
			n.run(30 * time.Second)
			g := f.goodput(5*time.Second, 30*time.Second)
			t.Logf("goodput %.1f%%, rtt %.1f ms (min %v), to90 %v, lost %d/%d, maxq %.2f BDP", 100*g/rate, f.meanRTT(5*time.Second, 30*time.Second).Seconds()*1e3, rtt, f.timeTo(0.9, rate), f.lostPackets, f.sentPackets, n.maxQueue/bdp)
		})
	}
}
