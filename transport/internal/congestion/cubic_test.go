package congestion

import (
	"github.com/stretchr/testify/require"
	"math"
	"testing"
	"time"

	"github.com/flightline/flightline/transport/internal/monotime"
)

const mss = DefaultMaxDatagramSize

// t0 is an arbitrary non-zero start so tests never rely on monotime's zero.
const t0 = monotime.Time(1_000_000_000)

// driver feeds a controller a cwnd-limited flow: every round trip, the whole
// window is acknowledged one packet at a time, ACKs spread evenly across the
// RTT, each for a packet sent one RTT earlier, with the flight kept full.
type driver struct {
	c   Controller
	rtt *RTT
	now monotime.Time
	d   time.Duration // path RTT
}

func newDriver(c Controller, rtt time.Duration) *driver {
	r := NewRTT(rtt)
	r.Update(rtt, 0, 0)
	return &driver{c: c, rtt: r, now: t0, d: rtt}
}

// round acknowledges one window's worth of packets over one RTT.
func (d *driver) round() {
	n := max(int(d.c.Window()/mss), 1)
	step := d.d / time.Duration(n)
	for range n {
		d.now = d.now.Add(step)
		d.c.OnAck(ackEv(d.now, mss, d.now.Add(-d.d), d.rtt, d.c.Window()-mss))
	}
}

// loss declares one packet sent half an RTT ago lost.
func (d *driver) loss() {
	d.c.OnLoss(lossEv(d.now, mss, d.now.Add(-d.d/2), d.c.Window()))
}

func packets(w int64) float64 { return float64(w) / mss }

func TestConfigDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Config
		want Config
	}{
		{"zero", Config{}, Config{1452, 32, 2, 64 << 20}},
		{"negative", Config{-1, -1, -1, -1}, Config{1452, 32, 2, 64 << 20}},
		{"initial below min", Config{1000, 1, 4, 0}, Config{1000, 4, 4, 64 << 20}},
		{"max below initial", Config{1000, 10, 2, 5000}, Config{1000, 10, 2, 10000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.in.withDefaults())
		})
	}
}

func TestCubicInitial(t *testing.T) {
	c := NewCubic(Config{})
	require.Equal(t, "cubic", c.Name())
	require.Equal(t, int64(32*mss), c.Window())
	require.True(t, c.InSlowStart())
	// Paced before any sample at 2 x window / DefaultInitialRTT.
	require.InEpsilon(t, 2*32*mss/DefaultInitialRTT.Seconds(), c.PacingRate(), 1e-9)
}

func TestCubicSlowStartDoublesPerRTT(t *testing.T) {
	d := newDriver(NewCubic(Config{}), 20*ms)
	for i := 1; i <= 5; i++ {
		d.round()
		require.Equal(t, int64(32*mss)<<i, d.c.Window(), "after round %d", i)
		require.True(t, d.c.InSlowStart())
		require.InEpsilon(t, 2*float64(d.c.Window())/0.020, d.c.PacingRate(), 1e-9, "slow-start pacing gain 2")
	}
}

func TestCubicMaxWindow(t *testing.T) {
	d := newDriver(NewCubic(Config{MaxWindow: 100 * mss}), 10*ms)
	for range 10 {
		d.round()
	}
	require.Equal(t, int64(100*mss), d.c.Window())
}

func TestCubicLossOncePerEpisode(t *testing.T) {
	d := newDriver(NewCubic(Config{}), 20*ms)
	d.round()
	d.round() // 128 packets
	before := d.c.Window()

	lossAt := d.now
	d.c.OnLoss(lossEv(lossAt, mss, lossAt.Add(-10*ms), before))
	after := d.c.Window()
	require.Equal(t, int64(float64(before)*0.7), after)
	require.False(t, d.c.InSlowStart())
	require.InEpsilon(t, 1.25*float64(after)/0.020, d.c.PacingRate(), 1e-9, "avoidance pacing gain 1.25")

	// More losses of packets sent before the episode began: one reduction only.
	for i := range 20 {
		d.now = d.now.Add(ms)
		d.c.OnLoss(lossEv(d.now, 3*mss, lossAt.Add(-time.Duration(i)*ms), after))
		require.Equal(t, after, d.c.Window())
	}
	// The boundary itself (sent exactly at the episode start) is still in it.
	d.c.OnLoss(lossEv(d.now, mss, lossAt, after))
	require.Equal(t, after, d.c.Window())

	// ACKs of packets sent before the episode do not grow the window.
	d.c.OnAck(ackEv(d.now, 10*mss, lossAt.Add(-ms), d.rtt, after))
	require.Equal(t, after, d.c.Window())

	// An ACK of a packet sent after the episode began ends recovery; a late
	// loss report for an old packet is still part of the old episode.
	d.c.OnAck(ackEv(d.now, mss, lossAt.Add(1), d.rtt, after))
	grown := d.c.Window()
	require.GreaterOrEqual(t, grown, after)
	d.c.OnLoss(lossEv(d.now, mss, lossAt.Add(-ms), after))
	require.Equal(t, grown, d.c.Window())

	// A loss of a packet sent after the episode began is a new episode.
	d.c.OnLoss(lossEv(d.now, mss, lossAt.Add(1), after))
	require.InDelta(t, float64(grown)*0.7, d.c.Window(), 1)
}

// TestCubicCurve checks that after a loss the window follows
// W(t) = C(t-K)^3 + Wmax through the concave and convex regions.
func TestCubicCurve(t *testing.T) {
	const w0 = 1000 // packets at the loss
	c := NewCubic(Config{InitialWindowPackets: w0}).(*cubic)
	d := newDriver(c, 100*ms)
	d.loss()
	require.InDelta(t, 0.7*w0, packets(c.Window()), 1)

	// One round of ACKs for pre-loss packets (recovery) then the epoch starts.
	d.round()
	require.InDelta(t, 0.7*w0, packets(c.Window()), 1, "no growth in recovery")
	d.round()
	require.True(t, c.epochStarted)
	epoch := c.epochStart

	k := math.Cbrt(w0 * (1 - 0.7) / 0.4)
	require.InDelta(t, k, c.k, 1e-9)
	wantAt := func(t float64) float64 { return 0.4*math.Pow(t-k, 3) + w0 }

	checked := 0
	for d.now.Sub(epoch).Seconds() < 2*k {
		d.round()
		el := d.now.Sub(epoch).Seconds()
		// Within 2 % of the curve (or 2 packets near the plateau): the per-ACK
		// rule aims one RTT ahead and ACKs are discrete.
		require.InDelta(t, wantAt(el), packets(c.Window()), max(0.02*wantAt(el), 2), "t=%.2fs", el)
		checked++
	}
	require.Greater(t, checked, 150)
	require.Greater(t, packets(c.Window()), float64(w0), "convex region passes Wmax")
}

// TestCubicRenoFriendly uses a short RTT and small window, where Reno would
// out-grow the cubic curve; CUBIC must then follow the Reno estimate
// (alpha = 3(1-beta)/(1+beta) below Wmax, 1 above it).
func TestCubicRenoFriendly(t *testing.T) {
	const w0 = 100
	c := NewCubic(Config{InitialWindowPackets: w0}).(*cubic)
	d := newDriver(c, ms)
	d.loss()
	d.round() // recovery
	d.round()
	require.True(t, c.epochStarted)
	epoch := c.epochStart

	west := packets(c.Window())
	for i := range 200 {
		// Model: per round W_est grows by alpha packets.
		if west >= w0 {
			west++
		} else {
			west += alphaCubic
		}
		d.round()
		el := d.now.Sub(epoch).Seconds()
		wc := 0.4*math.Pow(el-c.k, 3) + w0
		require.InDelta(t, west, packets(c.Window()), 3, "round %d", i)
		if i > 20 {
			require.Greater(t, packets(c.Window()), wc+5, "Reno-friendly beats W_cubic at round %d", i)
		}
	}
}

func TestCubicAppLimitedDoesNotGrow(t *testing.T) {
	for _, tc := range []struct {
		name      string
		afterLoss bool
	}{
		{"slow start", false},
		{"congestion avoidance", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCubic(Config{})
			d := newDriver(c, 10*ms)
			if tc.afterLoss {
				d.round()
				d.loss()
				d.round()
				d.round()
			}
			w := c.Window()
			for range 1000 {
				d.now = d.now.Add(ms)
				// Flight before the ACK is below cwnd/2.
				c.OnAck(ackEv(d.now, mss, d.now.Add(-10*ms), d.rtt, w/2-2*mss))
			}
			require.Equal(t, w, c.Window())
			require.Equal(t, !tc.afterLoss, c.InSlowStart())
		})
	}
}

// TestCubicAppLimitedRestartsEpoch: after an app-limited period the cubic
// clock restarts instead of jumping by the idle time.
func TestCubicAppLimitedRestartsEpoch(t *testing.T) {
	c := NewCubic(Config{InitialWindowPackets: 200}).(*cubic)
	d := newDriver(c, 10*ms)
	d.loss()
	d.round()
	d.round()
	w := c.Window()
	// 30 s app-limited: far beyond K, W_cubic(t) would be enormous.
	for range 30 {
		d.now = d.now.Add(time.Second)
		c.OnAck(ackEv(d.now, mss, d.now.Add(-10*ms), d.rtt, 0))
	}
	require.Equal(t, w, c.Window())
	d.round()
	require.Less(t, packets(c.Window()), 1.5*packets(w), "growth is bounded after idle")
}

func TestCubicRTO(t *testing.T) {
	c := NewCubic(Config{MinWindowPackets: 4})
	d := newDriver(c, 10*ms)
	d.round() // 64 packets
	c.OnRTO(d.now)
	require.Equal(t, int64(4*mss), c.Window())
	require.True(t, c.InSlowStart())
	// A second RTO keeps the minimum window and the first ssthresh.
	d.now = d.now.Add(time.Second)
	c.OnRTO(d.now)
	require.Equal(t, int64(4*mss), c.Window())
	// Losses of packets sent before the RTO do not reduce further.
	c.OnLoss(lossEv(d.now, mss, d.now.Add(-ms), 0))
	require.Equal(t, int64(4*mss), c.Window())

	// Slow start resumes up to ssthresh = 0.7 * 64 packets, then avoidance.
	d.d = 10 * ms
	d.now = d.now.Add(10 * ms)
	for c.InSlowStart() {
		d.round()
	}
	require.InDelta(t, 0.7*64, packets(c.Window()), 4+0.7*64*0.2)
}

func TestCubicWindowNeverBelowMin(t *testing.T) {
	c := NewCubic(Config{MinWindowPackets: 3})
	now := t0
	for range 100 {
		now = now.Add(ms)
		c.OnLoss(lossEv(now, mss, now, 0)) // each loss sent "now" is after the previous episode
		require.GreaterOrEqual(t, c.Window(), int64(3*mss))
	}
	require.Equal(t, int64(3*mss), c.Window())
	c.OnRTO(now.Add(ms))
	require.Equal(t, int64(3*mss), c.Window())
}

func TestCubicIgnoresBadInput(t *testing.T) {
	c := NewCubic(Config{})
	w := c.Window()
	c.OnAck(ackEv(t0, 0, t0, nil, 0))
	c.OnAck(ackEv(t0, -5, t0, nil, 1<<40))
	c.OnSent(t0, -1, -1)
	require.Equal(t, w, c.Window())
}

func TestFixedRate(t *testing.T) {
	const rate = 100e6 // bytes/s
	c := NewFixedRate(rate, Config{})
	require.Equal(t, "fixed", c.Name())
	require.False(t, c.InSlowStart())
	// Before a sample: 2 x rate x DefaultInitialRTT.
	require.Equal(t, int64(2*rate*DefaultInitialRTT.Seconds()), c.Window())

	r := NewRTT(0)
	r.Update(5*ms, 0, 0)
	c.OnAck(ackEv(t0, mss, t0, r, 0))
	require.Equal(t, int64(2*rate*0.005), c.Window())
	w := c.Window()

	// Loss and RTO are ignored; pacing never changes.
	for i := range 100 {
		now := t0.Add(time.Duration(i) * ms)
		c.OnLoss(lossEv(now, 10*mss, now, 0))
		c.OnRTO(now)
		require.Equal(t, w, c.Window())
		require.Equal(t, rate, c.PacingRate())
	}

	// Tiny srtt: window floor of 16 packets.
	r = NewRTT(0)
	r.Update(time.Microsecond, 0, 0)
	c.OnAck(ackEv(t0, mss, t0, r, 0))
	require.Equal(t, int64(16*mss), c.Window())

	// MaxWindow caps it.
	c = NewFixedRate(10e9, Config{MaxWindow: 1 << 20})
	require.Equal(t, int64(1<<20), c.Window())

	// Bad rates mean "do not pace".
	for _, bad := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		c = NewFixedRate(bad, Config{})
		require.Zero(t, c.PacingRate())
		require.Equal(t, int64(16*mss), c.Window())
	}
}

// ackEv and lossEv build the controller events of the positional form the
// CUBIC tests were written in.
func ackEv(now monotime.Time, bytes int, largestSentAt monotime.Time, rtt *RTT, inFlight int64) *AckEvent {
	return &AckEvent{Now: now, AckedBytes: bytes, LargestSentAt: largestSentAt, RTT: rtt, InFlight: inFlight}
}

func lossEv(now monotime.Time, bytes int, lostSentAt monotime.Time, inFlight int64) *LossEvent {
	return &LossEvent{Now: now, LostBytes: bytes, LostSentAt: lostSentAt, InFlight: inFlight}
}
