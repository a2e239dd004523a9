package congestion

import (
	"github.com/stretchr/testify/require"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flightline/flightline/transport/internal/monotime"
)

const burst = 10 * mss

func TestPacerDefaultBurst(t *testing.T) {
	p := NewPacer(0)
	require.Equal(t, DefaultMaxBurstPackets*DefaultMaxDatagramSize, p.Budget(t0, 1e6))
}

func TestPacerBurstThenSpacing(t *testing.T) {
	const rate = 1e6
	p := NewPacer(burst)
	now := t0
	require.Equal(t, burst, p.Budget(now, rate))
	for i := range 10 {
		require.Equal(t, now, p.NextSendTime(now, mss, rate), "packet %d of the burst goes now", i)
		p.OnSent(now, mss, rate)
	}
	require.Equal(t, 0, p.Budget(now, rate))
	gap := time.Duration(math.Ceil(mss / rate * 1e9))
	for i := range 5 {
		next := p.NextSendTime(now, mss, rate)
		require.InDelta(t, float64(gap), float64(next.Sub(now)), 1, "spacing of packet %d", i)
		require.Less(t, p.Budget(next-1, rate), mss)
		require.GreaterOrEqual(t, p.Budget(next, rate), mss)
		now = next
		p.OnSent(now, mss, rate)
	}
}

// TestPacerAchievesRate sends 10k packets, each at the time NextSendTime
// returned, and checks the achieved rate.
func TestPacerAchievesRate(t *testing.T) {
	for _, rate := range []float64{1e5, 12.5e6, 1.25e9, 5e9} {
		rng := rand.New(rand.NewPCG(1, uint64(rate)))
		p := NewPacer(burst)
		now := t0
		total := 0
		const n = 10000
		for i := range n {
			size := 100 + rng.IntN(mss-100+1)
			next := p.NextSendTime(now, size, rate)
			require.False(t, next.Before(now))
			now = next
			require.GreaterOrEqual(t, p.Budget(now, rate), size, "packet %d allowed at its NextSendTime", i)
			p.OnSent(now, size, rate)
			total += size
		}
		got := float64(total-burst) / now.Sub(t0).Seconds()
		require.InEpsilon(t, rate, got, 0.01, "rate %.3g", rate)
	}
}

func TestPacerRateChange(t *testing.T) {
	p := NewPacer(burst)
	now := t0
	send := func(rate float64, n int) float64 {
		start, bytes := now, 0
		for range n {
			now = p.NextSendTime(now, mss, rate)
			p.OnSent(now, mss, rate)
			bytes += mss
		}
		return float64(bytes) / now.Sub(start).Seconds()
	}
	send(1e6, 100) // drain the initial burst
	require.InEpsilon(t, 1e6, send(1e6, 1000), 0.01)
	require.InEpsilon(t, 50e6, send(50e6, 1000), 0.01)
	require.InEpsilon(t, 2e6, send(2e6, 1000), 0.01)
}

func TestPacerIdleCapsAtBurst(t *testing.T) {
	const rate = 10e6
	p := NewPacer(burst)
	now := t0
	for range 100 {
		now = p.NextSendTime(now, mss, rate)
		p.OnSent(now, mss, rate)
	}
	now = now.Add(10 * time.Second) // 100 MB worth of idle credit
	require.Equal(t, burst, p.Budget(now, rate))
	for range 10 {
		require.Equal(t, now, p.NextSendTime(now, mss, rate))
		p.OnSent(now, mss, rate)
	}
	require.True(t, p.NextSendTime(now, mss, rate).After(now), "11th packet after idle waits")
}

func TestPacerBoundedDebt(t *testing.T) {
	const rate = 1e6
	p := NewPacer(burst)
	p.OnSent(t0, 1<<30, rate) // a sender that ignored the pacer
	require.Equal(t, 0, p.Budget(t0, rate))
	wait := p.NextSendTime(t0, mss, rate).Sub(t0)
	require.LessOrEqual(t, wait, time.Duration(float64(2*burst)/rate*1e9)+1, "debt is at most one burst")
}

func TestPacerUnlimitedAndEdgeCases(t *testing.T) {
	p := NewPacer(burst)
	for _, rate := range []float64{0, -1, math.NaN()} {
		require.Equal(t, math.MaxInt, p.Budget(t0, rate))
		require.Equal(t, t0, p.NextSendTime(t0, 1<<20, rate))
		p.OnSent(t0, 1<<20, rate)
	}
	// Unpaced sends leave no debt behind.
	require.Equal(t, burst, p.Budget(t0+1, 1e6))

	// A packet larger than the burst still gets a finite time.
	p = NewPacer(burst)
	p.OnSent(t0, burst, 1e6)
	next := p.NextSendTime(t0, 4*burst, 1e6)
	require.InDelta(t, float64(burst)/1e6*1e9, float64(next.Sub(t0)), 2)

	// Clock going backwards credits nothing and does not panic.
	p = NewPacer(burst)
	p.OnSent(t0, burst, 1e6)
	require.Equal(t, 0, p.Budget(t0-monotime.Time(time.Second), 1e6))
	require.True(t, p.NextSendTime(t0-monotime.Time(time.Second), mss, 1e6).After(t0))

	// A vanishing rate cannot overflow the wait.
	p = NewPacer(burst)
	p.OnSent(t0, burst, 1e-300)
	require.Equal(t, t0.Add(maxPacerWait), p.NextSendTime(t0, mss, 1e-300))
}
