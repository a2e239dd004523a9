package congestion

import (
	"github.com/stretchr/testify/require"
	"sync"
	"testing"
	"time"
)

const ms = time.Millisecond

func TestRTTInitial(t *testing.T) {
	for _, tc := range []struct {
		name    string
		initial time.Duration
		want    time.Duration
	}{
		{"default", 0, DefaultInitialRTT},
		{"negative", -5 * ms, DefaultInitialRTT},
		{"explicit", 30 * ms, 30 * ms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRTT(tc.initial)
			require.False(t, r.HasSample())
			require.Equal(t, tc.want, r.Smoothed())
			require.Equal(t, tc.want/2, r.Var())
			require.Zero(t, r.Min())
			require.Zero(t, r.Latest())
		})
	}
}

func TestRTTFirstSample(t *testing.T) {
	r := NewRTT(0)
	// Ack delay is ignored on the first sample (RFC 9002 §5.3).
	r.Update(40*ms, 10*ms, 25*ms)
	require.True(t, r.HasSample())
	require.Equal(t, 40*ms, r.Smoothed())
	require.Equal(t, 20*ms, r.Var())
	require.Equal(t, 40*ms, r.Min())
	require.Equal(t, 40*ms, r.Latest())
}

// TestRTTEWMA checks the RFC 9002 §5.3 recurrences value by value against an
// independent computation.
func TestRTTEWMA(t *testing.T) {
	r := NewRTT(0)
	samples := []time.Duration{50 * ms, 70 * ms, 30 * ms, 55 * ms, 1 * time.Second, 45 * ms}
	var srtt, rttvar time.Duration
	for i, s := range samples {
		r.Update(s, 0, 0)
		if i == 0 {
			srtt, rttvar = s, s/2
		} else {
			d := srtt - s
			if d < 0 {
				d = -d
			}
			rttvar = 3*rttvar/4 + d/4
			srtt = 7*srtt/8 + s/8
		}
		// Integer rounding may differ by 1 ns from the fractional form above.
		require.InDelta(t, float64(srtt), float64(r.Smoothed()), 1, "srtt after sample %d", i)
		require.InDelta(t, float64(rttvar), float64(r.Var()), 1, "rttvar after sample %d", i)
	}
	require.Equal(t, 30*ms, r.Min())
	require.Equal(t, 45*ms, r.Latest())

	// Exact values for a hand-computed pair.
	r = NewRTT(0)
	r.Update(80*ms, 0, 0)
	r.Update(40*ms, 0, 0)
	require.Equal(t, 75*ms, r.Smoothed()) // 7/8*80 + 1/8*40
	require.Equal(t, 40*ms, r.Var())      // 3/4*40 + 1/4*|80-40|
}

func TestRTTAckDelay(t *testing.T) {
	for _, tc := range []struct {
		name        string
		sample      time.Duration
		ackDelay    time.Duration
		maxAckDelay time.Duration
		wantAdj     time.Duration // sample used in the EWMA
	}{
		{"subtracted", 60 * ms, 10 * ms, 25 * ms, 50 * ms},
		{"clamped to max ack delay", 70 * ms, 40 * ms, 25 * ms, 45 * ms},
		{"would go below min: not subtracted", 45 * ms, 10 * ms, 25 * ms, 45 * ms},
		{"exactly min: subtracted", 50 * ms, 10 * ms, 25 * ms, 40 * ms},
		{"peer acks immediately", 60 * ms, 10 * ms, 0, 60 * ms},
		{"negative ack delay", 60 * ms, -10 * ms, 25 * ms, 60 * ms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRTT(0)
			r.Update(40*ms, 0, 0) // min = srtt = 40ms, rttvar = 20ms
			r.Update(tc.sample, tc.ackDelay, tc.maxAckDelay)
			require.Equal(t, (7*40*ms+tc.wantAdj)/8, r.Smoothed())
			require.Equal(t, tc.sample, r.Latest(), "latest is the raw sample")
			require.Equal(t, 40*ms, r.Min(), "min is never ack-delay adjusted")
		})
	}
}

func TestRTTIgnoresNonPositive(t *testing.T) {
	r := NewRTT(0)
	r.Update(0, 0, 0)
	r.Update(-time.Second, 0, 0)
	require.False(t, r.HasSample())
	require.Equal(t, DefaultInitialRTT, r.Smoothed())
}

func TestRTTPTO(t *testing.T) {
	r := NewRTT(0)
	r.Update(40*ms, 0, 0) // srtt 40, rttvar 20
	require.Equal(t, 40*ms+80*ms+25*ms, r.PTO(25*ms))
	require.Equal(t, 120*ms, r.PTO(0))
	require.Equal(t, 120*ms, r.PTO(-ms), "negative max ack delay counts as 0")

	// Stable path: rttvar decays towards 0 and granularity takes over.
	for range 200 {
		r.Update(40*ms, 0, 0)
	}
	require.Less(t, 4*r.Var(), TimerGranularity)
	require.Equal(t, r.Smoothed()+TimerGranularity, r.PTO(0))
}

func TestRTTRTO(t *testing.T) {
	r := NewRTT(0)
	r.Update(40*ms, 0, 0) // base = 40 + 4*20 = 120ms
	for _, tc := range []struct {
		name           string
		minRTO, maxRTO time.Duration
		backoff        int
		want           time.Duration
	}{
		{"base", 0, 0, 0, 120 * ms},
		{"min clamp", 200 * ms, 0, 0, 200 * ms},
		{"backoff 1", 0, 0, 1, 240 * ms},
		{"backoff 3", 0, 0, 3, 960 * ms},
		{"backoff from min", time.Second, 0, 2, 4 * time.Second},
		{"default max 60s", time.Second, 0, 10, 60 * time.Second},
		{"huge backoff no overflow", time.Second, 0, 1 << 30, 60 * time.Second},
		{"explicit max", 0, 500 * ms, 5, 500 * ms},
		{"negative backoff", 0, 0, -3, 120 * ms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, r.RTO(tc.minRTO, tc.maxRTO, tc.backoff))
		})
	}
}

// TestRTTConcurrentReads exercises the one-writer/many-readers contract under
// -race.
func TestRTTConcurrentReads(t *testing.T) {
	r := NewRTT(0)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = r.Smoothed() + r.Var() + r.Min() + r.Latest() + r.PTO(0)
				_ = r.HasSample()
			}
		})
	}
	for i := range 10000 {
		r.Update(time.Duration(20+i%7)*ms, ms, 5*ms)
	}
	close(stop)
	wg.Wait()
	require.True(t, r.HasSample())
}
