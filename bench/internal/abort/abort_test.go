package abort

import (
	"context"
	"testing"
	"time"

	"github.com/flightline/flightline/internal/benchhook"
	"github.com/flightline/flightline/testnet"
	"github.com/stretchr/testify/require"
)

// quick shortens the scenario for tests: a shorter warm-up (the median
// steady rate tolerates a recovery inside its window) and little tail.
var quick = Config{Warmup: 500 * time.Millisecond, Steady: 100 * time.Millisecond, Tail: 50 * time.Millisecond, Post: time.Second}

// TestReleaseShowsInScenario runs the scenario once each way: with the
// release on, B must reach full rate within a few RTTs of A's abort; with
// it off, B must wait clearly longer — otherwise the scenario does not
// show what it exists to show. Measured at the defaults (3 runs each): on,
// first byte 3–5 ms and full rate 12–14 ms; off, 53–55 ms and 73–74 ms.
func TestReleaseShowsInScenario(t *testing.T) {
	testnet.RequirePrivileged(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	on, err := Run(ctx, quick, true)
	require.NoError(t, err, "release on")
	logResult(t, on)
	require.False(t, benchhook.AbortReleaseDisabled())
	off, err := Run(ctx, quick, false)
	require.NoError(t, err, "release off")
	logResult(t, off)
	require.False(t, benchhook.AbortReleaseDisabled(), "Run did not restore the release")

	for _, r := range []Result{on, off} {
		require.Equal(t, "udp", r.Info.Datapath)
		require.Positive(t, r.SteadyMBps)
		require.Positive(t, r.StrandedBytes, "A had nothing in flight at the abort")
		require.Positive(t, r.MinRTT)
		require.Positive(t, r.Info.BBytes)
		require.GreaterOrEqual(t, r.FirstByte, time.Duration(0), "B's first byte never arrived")
		require.Zero(t, r.Info.FlightUnderflows)
		require.NotEmpty(t, r.Series)
		require.Negative(t, r.Series[0].T, "series must start before the abort")
		require.Positive(t, r.Series[len(r.Series)-1].T, "series must end after the abort")
	}
	require.True(t, on.Release)
	require.Positive(t, on.Info.AbortReleasedBytes)
	require.GreaterOrEqual(t, on.FullRate, time.Duration(0), "B never reached full rate with the release on")
	require.Less(t, on.FullRate, 10*on.MinRTT, "B took %v to reach full rate with the release on", on.FullRate)

	require.False(t, off.Release)
	require.Zero(t, off.Info.AbortReleasedBytes, "the switch did not keep A's flight")
	require.Greater(t, off.FirstByte, 3*on.FirstByte, "B's first byte: %v without the release, %v with it", off.FirstByte, on.FirstByte)
	if off.FullRate >= 0 { // -1: not even within Post
		require.Greater(t, off.FullRate, 2*on.FullRate, "B's full rate: %v without the release, %v with it", off.FullRate, on.FullRate)
	}
}

func logResult(t *testing.T, r Result) {
	t.Helper()
	t.Logf("release=%v: first byte %v, full rate %v (MinRTT %v, SRTT %v, steady %.2f MB/s, stall %v, stranded %d B of cwnd %d, smooth %v; lost %d, released %d)",
		r.Release, r.FirstByte, r.FullRate, r.MinRTT, r.SRTT, r.SteadyMBps, r.Stall, r.StrandedBytes, r.StrandedCwnd,
		r.Info.Smooth, r.Info.PacketsLost, r.Info.AbortReleasedBytes)
}
