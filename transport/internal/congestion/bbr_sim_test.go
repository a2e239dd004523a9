package congestion

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightline/flightline/transport/internal/monotime"
)

// Simulated-path tests of BBR (netsim_test.go: the real ledger, sampler,
// loss detection, pacer and RTT estimator over a virtual bottleneck with a
// fixed seed). The path is 50 Mbit/s with a 20 ms propagation RTT unless a
// test says otherwise: large enough for a multi-packet BDP (86 packets),
// small enough that 30 simulated seconds take a fraction of a second.

const (
	simRate = 50e6 / 8
	simRTT  = 20 * time.Millisecond
	simBDP  = simRate * 0.020
)

func newSimBBR(seed uint64) Controller { return NewBBR(BBRConfig{Seed: seed}) }

// stateLog records the controller's state changes (for failure messages
// and phase checks).
func stateLog(f *simFlow) *[]string {
	var log []string
	last := ""
	f.trace = func(now monotime.Time, f *simFlow) {
		info, _ := InspectBBR(f.cc)
		if info.State != last {
			log = append(log, fmt.Sprintf("%.3fs %s bw %.1f Mbit/s cwnd %d", now.Sub(simT0).Seconds(), info.State, info.MaxBw*8/1e6, f.cc.Window()))
			last = info.State
		}
	}
	return &log
}

// A clean path: Startup fills it within a bounded number of round trips,
// Drain empties the queue Startup built, and ProbeBW then keeps ≥ 90 % of
// the bottleneck with a steady-state RTT ≤ 1.25× the path minimum and no
// loss (2-BDP buffer: BBR must not fill it as a loss-based controller does).
func TestBBRSimCleanPath(t *testing.T) {
	n := newNetsim(t, simRate, 2*simBDP, 0, 1)
	f := n.addFlow(newSimBBR(1), simRTT, 0)
	log := stateLog(f)
	n.run(30 * time.Second)

	to90 := f.timeTo(0.9, simRate)
	util := f.goodput(5*time.Second, 30*time.Second) / simRate
	rtt := f.meanRTT(5*time.Second, 30*time.Second)
	t.Logf("90%% of the bottleneck after %v (%.1f RTTs); utilisation %.1f%%; mean RTT %.2f ms (%.3f× min); %d lost of %d; max queue %.2f BDP",
		to90, to90.Seconds()/simRTT.Seconds(), 100*util, rtt.Seconds()*1e3, rtt.Seconds()/simRTT.Seconds(), f.lostPackets, f.sentPackets, n.maxQueue/simBDP)
	require.Positive(t, to90, "never reached 90 %%: %v", *log)
	require.LessOrEqual(t, to90, 15*simRTT, "startup too slow (bound: 15 RTTs)")
	require.GreaterOrEqual(t, util, 0.90)
	require.LessOrEqual(t, util, 1.0001)
	require.LessOrEqual(t, rtt.Seconds(), 1.25*simRTT.Seconds(), "standing queue")
	require.Zero(t, f.lostPackets, "a 2-BDP buffer never overflows")
	require.Contains(t, (*log)[0], "startup", "a connection starts in Startup (not ProbeRTT: the RTT filter has no age yet): %v", *log)
	require.Contains(t, (*log)[1], "drain", "Startup is followed by Drain: %v", *log)
	info, _ := InspectBBR(f.cc)
	require.InEpsilon(t, simRate, info.MaxBw, 0.02, "max_bw")
	require.InEpsilon(t, simRTT.Seconds(), info.MinRTT.Seconds(), 0.05, "min_rtt")
	probeRTT := 0
	for _, l := range *log {
		if len(l) > 0 && contains(l, "probe_rtt") {
			probeRTT++
		}
	}
	// ProbeRTT every 5 s (ProbeRTTInterval) when the RTT is not refreshed;
	// a flow at ~1.07× min RTT refreshes it rarely. At most one per 5 s.
	require.LessOrEqual(t, probeRTT, 6)
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// Random loss before the bottleneck: BBR keeps ≥ 85 % of it at 1 % and
// ≥ 75 % at 5 % (issue 11 targets). The same run with draft-ietf-ccwg-bbr-06's
// own loss response and with CUBIC shows what the bounded response buys;
// their numbers are logged and must be lower.
func TestBBRSimRandomLoss(t *testing.T) {
	for _, tc := range []struct {
		loss, min float64
	}{{0.01, 0.85}, {0.05, 0.75}} {
		t.Run(fmt.Sprintf("%.0f%%", 100*tc.loss), func(t *testing.T) {
			run := func(cc Controller) (float64, *simFlow) {
				n := newNetsim(t, simRate, 2*simBDP, tc.loss, 1)
				f := n.addFlow(cc, simRTT, 0)
				n.run(30 * time.Second)
				return f.goodput(5*time.Second, 30*time.Second) / simRate, f
			}
			bbr, f := run(newSimBBR(1))
			draft, _ := run(NewBBR(BBRConfig{Seed: 1, DraftLossResponse: true}))
			cubic, _ := run(NewCubic(Config{}))
			info, _ := InspectBBR(f.cc)
			rtt := f.meanRTT(5*time.Second, 30*time.Second)
			t.Logf("utilisation: bbr %.1f%% (p0 %.3f, RTT %.2f× min), draft loss response %.1f%%, cubic %.1f%%",
				100*bbr, info.BaseLoss, rtt.Seconds()/simRTT.Seconds(), 100*draft, 100*cubic)
			require.GreaterOrEqual(t, bbr, tc.min)
			require.Greater(t, bbr, draft)
			require.Greater(t, bbr, cubic)
			require.LessOrEqual(t, rtt.Seconds(), 1.25*simRTT.Seconds())
		})
	}
}

// Random loss on a path with delay jitter (up to 5 ms after the bottleneck,
// order kept — a busy forwarding hop): the jitter must not hide the
// background loss rate from BBR (the WAN benchmark's userspace hop did, with
// a mean-RTT queue test: 5 % loss collapsed to the draft's ~12 %).
func TestBBRSimRandomLossWithJitter(t *testing.T) {
	for _, tc := range []struct {
		loss, min float64
	}{{0.01, 0.85}, {0.05, 0.75}} {
		t.Run(fmt.Sprintf("%.0f%%", 100*tc.loss), func(t *testing.T) {
			n := newNetsim(t, simRate, 2*simBDP, tc.loss, 1)
			n.jitter = 5 * time.Millisecond
			f := n.addFlow(newSimBBR(1), simRTT, 0)
			n.run(30 * time.Second)
			util := f.goodput(5*time.Second, 30*time.Second) / simRate
			info, _ := InspectBBR(f.cc)
			t.Logf("utilisation %.1f%%, p0 %.3f", 100*util, info.BaseLoss)
			require.GreaterOrEqual(t, util, tc.min)
		})
	}
}

// Random loss both ways behind a token-bucket bottleneck like the
// benchmark's WAN path (tbf: 10 ms of burst, 50 ms latency limit). Its bursts push
// delivery-rate samples above the rate, so max_bw over-estimates and BBR
// keeps some queue; the loss response must still hold the link.
func TestBBRSimRandomLossTokenBucket(t *testing.T) {
	for _, tc := range []struct {
		loss, min float64
	}{{0, 0.9}, {0.01, 0.85}, {0.05, 0.75}} {
		t.Run(fmt.Sprintf("%.0f%%", 100*tc.loss), func(t *testing.T) {
			n := newNetsim(t, simRate, 0, tc.loss, 1)
			n.burst, n.tbfLatency = simRate*0.010, 50*time.Millisecond
			n.ackLoss = tc.loss // loss both ways, as in the benchmark
			f := n.addFlow(newSimBBR(1), simRTT, 0)
			n.run(30 * time.Second)
			util := f.goodput(5*time.Second, 30*time.Second) / simRate
			info, _ := InspectBBR(f.cc)
			rtt := f.meanRTT(5*time.Second, 30*time.Second)
			t.Logf("utilisation %.1f%%, max_bw %.1f Mbit/s (%.2f× the rate), p0 %.3f, RTT %.2f× min", 100*util,
				info.MaxBw*8/1e6, info.MaxBw/simRate, info.BaseLoss, rtt.Seconds()/simRTT.Seconds())
			require.GreaterOrEqual(t, util, tc.min)
		})
	}
}

// Two BBR flows with slightly different RTTs (no phase lock) share the
// bottleneck with Jain's index ≥ 0.9, the second starting 2 s late; a BBR
// flow next to CUBIC neither starves nor is starved (each ≥ 20 %), in
// buffers of 0.5, 1 and 2 BDP.
func TestBBRSimSharing(t *testing.T) {
	for _, buf := range []float64{0.5, 1, 2} {
		for _, other := range []string{"bbr", "cubic"} {
			t.Run(fmt.Sprintf("vs_%s_buf%.1fBDP", other, buf), func(t *testing.T) {
				n := newNetsim(t, simRate, buf*simBDP, 0, 3)
				a := n.addFlow(newSimBBR(1), simRTT, 0)
				var cc Controller = NewCubic(Config{})
				if other == "bbr" {
					cc = newSimBBR(2)
				}
				b := n.addFlow(cc, simRTT+time.Millisecond, 2*time.Second)
				n.run(40 * time.Second)
				ga, gb := a.goodput(10*time.Second, 40*time.Second), b.goodput(10*time.Second, 40*time.Second)
				t.Logf("bbr %.1f%%, %s %.1f%%, Jain %.3f, total %.1f%%", 100*ga/simRate, other, 100*gb/simRate, jain(ga, gb), 100*(ga+gb)/simRate)
				require.GreaterOrEqual(t, (ga+gb)/simRate, 0.9, "the link stays full")
				if other == "bbr" {
					require.GreaterOrEqual(t, jain(ga, gb), 0.9)
				} else {
					require.GreaterOrEqual(t, ga/simRate, 0.2, "BBR starved")
					require.GreaterOrEqual(t, gb/simRate, 0.2, "CUBIC starved")
				}
			})
		}
	}
}

// A shallow buffer (0.05 BDP): BBR's pacing keeps loss low and the link
// mostly full; a loss-based controller would keep overflowing it.
func TestBBRSimShallowBuffer(t *testing.T) {
	n := newNetsim(t, simRate, 0.05*simBDP, 0, 1)
	f := n.addFlow(newSimBBR(1), simRTT, 0)
	n.run(30 * time.Second)
	util := f.goodput(5*time.Second, 30*time.Second) / simRate
	lossPct := 100 * float64(f.lostPackets) / float64(f.sentPackets)
	t.Logf("utilisation %.1f%%, %.2f%% of packets lost", 100*util, lossPct)
	require.GreaterOrEqual(t, util, 0.8)
	require.Less(t, lossPct, 2.0)
}

// The bottleneck halves mid-transfer with a buffer deep enough that nothing
// is lost: no loss signal, so the model follows only when the max_bw filter
// (two ProbeBW cycles, 2-3 s each) forgets the old rate ([DRAFT]'s "10×
// drop" case). Within 10 s the estimate is the new rate, the link is full
// and the queue the old rate built is drained.
func TestBBRSimBandwidthDrop(t *testing.T) {
	n := newNetsim(t, simRate, 2*simBDP, 0, 1)
	f := n.addFlow(newSimBBR(1), simRTT, 0)
	n.run(10 * time.Second)
	n.rate = simRate / 2
	n.run(30 * time.Second) // run is absolute: continues to 30 s
	info, _ := InspectBBR(f.cc)
	util := f.goodput(20*time.Second, 30*time.Second) / (simRate / 2)
	rtt := f.meanRTT(20*time.Second, 30*time.Second)
	t.Logf("after the drop: max_bw %.1f Mbit/s, utilisation %.1f%%, RTT %.2f× min", info.MaxBw*8/1e6, 100*util, rtt.Seconds()/simRTT.Seconds())
	require.InEpsilon(t, simRate/2, info.MaxBw, 0.1)
	require.GreaterOrEqual(t, util, 0.9)
	require.Less(t, rtt.Seconds(), 1.25*simRTT.Seconds())
}

// An application-limited flow (10 % of the link) must not have its model
// lowered to its own sending rate... and must not exceed it either; when it
// turns into a bulk sender it reaches 90 % of the link at once, without
// restarting Startup (app-limited samples never end a full-pipe detection).
func TestBBRSimAppLimited(t *testing.T) {
	n := newNetsim(t, simRate, 2*simBDP, 0, 1)
	f := n.addFlow(newSimBBR(1), simRTT, 0)
	n.run(3 * time.Second) // bulk: learns the link
	f.appRate, f.appSent, f.start = simRate/10, 0, n.now
	n.run(13 * time.Second)
	info, _ := InspectBBR(f.cc)
	t.Logf("after 10 s app-limited at 10%%: max_bw %.1f Mbit/s, state %s", info.MaxBw*8/1e6, info.State)
	app := f.goodput(5*time.Second, 13*time.Second) / simRate
	require.InDelta(t, 0.1, app, 0.01, "app-limited flow sends what it has")
	require.GreaterOrEqual(t, info.MaxBw, 0.5*simRate, "app-limited samples lowered max_bw")
	f.appRate = 0
	n.run(16 * time.Second)
	util := f.goodput(14*time.Second, 16*time.Second) / simRate
	require.GreaterOrEqual(t, util, 0.9)
}
