// Package stats computes the order statistics the benchmark report needs
// (medians over repetitions, RTT percentiles) on []float64.
//
// Every function leaves its input unmodified: callers pass slices that are
// still referenced by records (RTTs, per-rep metrics), and silently sorting
// those would reorder data that is later written out in run order.
//
// Conventions shared by all functions:
//   - an empty input yields NaN (there is no meaningful value, and NaN
//     propagates visibly into formatted output instead of masquerading as 0);
//   - an input containing NaN yields NaN, for the same reason;
//   - ±Inf values are ordinary values that sort to the ends (interpolating
//     between -Inf and +Inf, or averaging them, gives NaN).
package stats

import (
	"math"
	"slices"
)

// Percentile returns the p-th percentile (0 <= p <= 100) of xs, using linear
// interpolation between closest ranks: with the n values sorted ascending as
// s[0..n-1], the rank is r = p/100 × (n-1) and the result is
// s[⌊r⌋] + (r-⌊r⌋) × (s[⌈r⌉] - s[⌊r⌋]). This is the "C = 1" variant
// (Hyndman & Fan type 7), the default of NumPy, R and spreadsheet
// PERCENTILE.INC: Percentile(xs, 0) is the minimum, Percentile(xs, 100) the
// maximum, and Percentile(xs, 50) the usual median.
//
// It returns NaN for an empty input, an input containing NaN, or p outside
// [0, 100] (including NaN).
func Percentile(xs []float64, p float64) float64 {
	s, ok := sorted(xs)
	if !ok {
		return math.NaN()
	}
	return percentileSorted(s, p)
}

// Median is Percentile(xs, 50): the middle value, or the mean of the two
// middle values for an even count. NaN for an empty input.
func Median(xs []float64) float64 {
	return Percentile(xs, 50)
}

// Min returns the smallest value of xs; NaN for an empty input or one
// containing NaN.
func Min(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	m := xs[0]
	for _, x := range xs {
		if math.IsNaN(x) {
			return math.NaN()
		}
		m = math.Min(m, x)
	}
	return m
}

// Max returns the largest value of xs; NaN for an empty input or one
// containing NaN.
func Max(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	m := xs[0]
	for _, x := range xs {
		if math.IsNaN(x) {
			return math.NaN()
		}
		m = math.Max(m, x)
	}
	return m
}

// Mean returns the arithmetic mean of xs; NaN for an empty input or one
// containing NaN.
func Mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// Summary is the usual description of a sample: its size and the order
// statistics a latency or throughput table shows.
type Summary struct {
	N    int
	Min  float64
	P50  float64
	P99  float64
	Max  float64
	Mean float64
}

// Summarize describes xs with one sort. For an empty input N is 0 and every
// other field is NaN; for an input containing NaN, N is len(xs) and every
// other field is NaN.
func Summarize(xs []float64) Summary {
	s, ok := sorted(xs)
	if !ok {
		nan := math.NaN()
		return Summary{N: len(xs), Min: nan, P50: nan, P99: nan, Max: nan, Mean: nan}
	}
	return Summary{
		N:    len(s),
		Min:  s[0],
		P50:  percentileSorted(s, 50),
		P99:  percentileSorted(s, 99),
		Max:  s[len(s)-1],
		Mean: Mean(s),
	}
}

// sorted returns an ascending copy of xs, or false if xs is empty or holds
// a NaN (which has no place in an order).
func sorted(xs []float64) ([]float64, bool) {
	if len(xs) == 0 || slices.ContainsFunc(xs, math.IsNaN) {
		return nil, false
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s, true
}

// percentileSorted is Percentile on a non-empty, NaN-free, ascending s.
func percentileSorted(s []float64, p float64) float64 {
	if !(p >= 0 && p <= 100) { // also rejects NaN
		return math.NaN()
	}
	r := p / 100 * float64(len(s)-1)
	lo := int(math.Floor(r))
	hi := int(math.Ceil(r))
	if s[lo] == s[hi] { // also keeps equal infinities from becoming NaN
		return s[lo]
	}
	return s[lo] + (r-float64(lo))*(s[hi]-s[lo])
}
