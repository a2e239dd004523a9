package stats

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPercentileHandComputed(t *testing.T) {
	// Sorted: 1 2 3 4 10 (n=5, ranks 0..4). Deliberately unsorted input.
	xs := []float64{10, 3, 1, 4, 2}
	for _, tc := range []struct {
		p, want float64
	}{
		{0, 1},
		{25, 2},     // r = 1
		{50, 3},     // r = 2
		{62.5, 3.5}, // r = 2.5: 3 + 0.5×(4-3)
		{75, 4},     // r = 3
		{90, 7.6},   // r = 3.6: 4 + 0.6×(10-4)
		{99, 9.76},  // r = 3.96: 4 + 0.96×6
		{100, 10},   // r = 4
		{12.5, 1.5}, // r = 0.5
		{37.5, 2.5}, // r = 1.5
		{87.5, 7},   // r = 3.5: 4 + 0.5×6
		{80, 5.2},   // r = 3.2: 4 + 0.2×6
		{5, 1.2},    // r = 0.2: 1 + 0.2×1
		{95, 8.8},   // r = 3.8: 4 + 0.8×6
	} {
		require.InDelta(t, tc.want, Percentile(xs, tc.p), 1e-9, "p=%v", tc.p)
	}
	require.Equal(t, []float64{10, 3, 1, 4, 2}, xs, "input must not be reordered")
}

func TestMedian(t *testing.T) {
	require.Equal(t, 7.0, Median([]float64{7}))
	require.Equal(t, 2.0, Median([]float64{3, 1, 2}))
	require.Equal(t, 2.5, Median([]float64{4, 1, 3, 2})) // (2+3)/2
	require.Equal(t, 5.0, Median([]float64{5, 5, 5, 5}))
	require.Equal(t, -1.5, Median([]float64{-1, -2}))
}

func TestMinMaxMean(t *testing.T) {
	xs := []float64{2, -3, 8, 1}
	require.Equal(t, -3.0, Min(xs))
	require.Equal(t, 8.0, Max(xs))
	require.Equal(t, 2.0, Mean(xs)) // 8/4
	require.Equal(t, []float64{2, -3, 8, 1}, xs)
}

func TestEmptyAndNaN(t *testing.T) {
	for name, xs := range map[string][]float64{
		"nil":   nil,
		"empty": {},
		"nan":   {1, math.NaN(), 3},
	} {
		require.True(t, math.IsNaN(Percentile(xs, 50)), name)
		require.True(t, math.IsNaN(Median(xs)), name)
		require.True(t, math.IsNaN(Min(xs)), name)
		require.True(t, math.IsNaN(Max(xs)), name)
		require.True(t, math.IsNaN(Mean(xs)), name)
		s := Summarize(xs)
		require.Equal(t, len(xs), s.N, name)
		for _, v := range []float64{s.Min, s.P50, s.P99, s.Max, s.Mean} {
			require.True(t, math.IsNaN(v), name)
		}
	}
}

func TestPercentileOutOfRange(t *testing.T) {
	xs := []float64{1, 2, 3}
	for _, p := range []float64{-0.001, 100.001, math.NaN(), math.Inf(1)} {
		require.True(t, math.IsNaN(Percentile(xs, p)), "p=%v", p)
	}
}

func TestInfinities(t *testing.T) {
	inf := math.Inf(1)
	require.Equal(t, inf, Percentile([]float64{1, inf, inf}, 75)) // between two +Inf
	require.Equal(t, inf, Max([]float64{1, inf}))
	require.Equal(t, 1.0, Min([]float64{1, inf}))
}

func TestSummarize(t *testing.T) {
	// 1..100: P50 = 50.5 (r = 49.5), P99 = 99.01 (r = 98.01: 99 + 0.01×1).
	xs := make([]float64, 100)
	for i := range xs {
		xs[len(xs)-1-i] = float64(i + 1) // descending, to exercise the sort
	}
	s := Summarize(xs)
	require.Equal(t, 100, s.N)
	require.Equal(t, 1.0, s.Min)
	require.Equal(t, 100.0, s.Max)
	require.InDelta(t, 50.5, s.P50, 1e-9)
	require.InDelta(t, 99.01, s.P99, 1e-9)
	require.InDelta(t, 50.5, s.Mean, 1e-9)
	require.Equal(t, 100.0, xs[0], "input must not be reordered")
}
