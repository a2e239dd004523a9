package abort

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const ms = time.Millisecond

// flat returns n ticks of perTick bytes each.
func flat(n int, perTick int64) []int64 {
	b := make([]int64, n)
	for i := range b {
		b[i] = perTick
	}
	return b
}

func TestSteadyRateIsMedian(t *testing.T) {
	a := flat(300, 10_000) // 10 MB/s
	// A head-of-line burst and its gap inside the window must not move it.
	for i := 200; i < 220; i++ {
		a[i] = 0
	}
	a[220] = 200_000
	r, err := steadyRate(&timeline{a: a, loss: 300 * ms}, 200*ms)
	require.NoError(t, err)
	require.InDelta(t, 10, r, 1e-9)

	_, err = steadyRate(&timeline{a: flat(300, 0), loss: 300 * ms}, 200*ms)
	require.Error(t, err, "no goodput")
	_, err = steadyRate(&timeline{a: a, loss: 100 * ms}, 200*ms)
	require.Error(t, err, "window before the start")
}

func TestFullRateAt(t *testing.T) {
	b := make([]int64, 200)
	for i := 50; i < 200; i++ {
		b[i] = 10_000 // 10 MB/s from 50 ms
	}
	// A 20 ms window reaches 9 MB/s once 18 of its ticks carry data: 68 ms.
	require.Equal(t, 68*ms, fullRateAt(b, 40*ms, 200*ms, 20, 9))
	require.Equal(t, time.Duration(-1), fullRateAt(b, 40*ms, 60*ms, 20, 9), "not within the limit")
	require.Equal(t, time.Duration(-1), fullRateAt(b, 40*ms, 200*ms, 20, 11), "never that fast")
	// One burst of 10 ms of data fills a 10 ms window but not a 20 ms one.
	burst := make([]int64, 200)
	burst[50] = 100_000
	require.Equal(t, 51*ms, fullRateAt(burst, 40*ms, 200*ms, 10, 9))
	require.Equal(t, time.Duration(-1), fullRateAt(burst, 40*ms, 200*ms, 20, 9))
}

func TestAnalyze(t *testing.T) {
	cfg, err := Config{Steady: 100 * ms, Lead: 20 * ms}.withDefaults()
	require.NoError(t, err)
	tl := &timeline{
		a:      append(flat(300, 10_000), make([]int64, 200)...),
		b:      append(make([]int64, 330), flat(170, 10_000)...),
		bFirst: 330 * ms,
		loss:   300 * ms,
		abort:  320 * ms,
		end:    500 * ms,
	}
	for at := 250 * ms; at < 500*ms; at += ms {
		tl.samples = append(tl.samples, sample{at: at, flight: 1, cwnd: 2, srtt: ms})
	}
	res, err := analyze(tl, cfg, 20*ms)
	require.NoError(t, err)
	require.InDelta(t, 10, res.SteadyMBps, 1e-9)
	require.Equal(t, 10*ms, res.FirstByte)
	require.Equal(t, 28*ms, res.FullRate) // 348 ms: 18 of 20 ticks at 10 MB/s
	require.Equal(t, 20*ms, res.Stall)
	require.Equal(t, -40*ms, res.Series[0].T, "series starts Lead before the loss")
	last := res.Series[len(res.Series)-1]
	require.InDelta(t, 10, last.GoodputMBps, 1e-9)
	require.Zero(t, last.AGoodputMBps)

	// Nothing within Post: both -1.
	cfg.Post = 5 * ms
	res, err = analyze(tl, cfg, 20*ms)
	require.NoError(t, err)
	require.Equal(t, time.Duration(-1), res.FirstByte)
	require.Equal(t, time.Duration(-1), res.FullRate)
}

func TestConfigValidation(t *testing.T) {
	c, err := Config{}.withDefaults()
	require.NoError(t, err)
	require.Equal(t, 10*ms, c.Delay)
	require.EqualValues(t, 100e6, c.Rate)
	require.Equal(t, 0.9, c.Threshold)
	for name, bad := range map[string]Config{
		"negative delay":     {Delay: -1},
		"negative rate":      {Rate: -1},
		"threshold above 1":  {Threshold: 1.5},
		"steady over warmup": {Warmup: 100 * ms, Steady: 200 * ms},
		"steady too short":   {Steady: 5 * ms},
	} {
		_, err := bad.withDefaults()
		require.Error(t, err, name)
	}
}

func TestRecorder(t *testing.T) {
	base := time.Now()
	r := newRecorder(base, 10*ms)
	r.add(base.Add(3500*time.Microsecond), 100)
	r.add(base.Add(3900*time.Microsecond), 50)
	r.add(base.Add(20*ms), 7) // past the bins
	r.add(base.Add(ms), 0)    // nothing read: no first byte
	require.Equal(t, int64(3500*time.Microsecond), r.first.Load())
	require.Equal(t, int64(150), r.snapshot()[3])
	require.Equal(t, int64(150), r.sum(0, 100))
	require.Equal(t, int64(157), r.total())
}
