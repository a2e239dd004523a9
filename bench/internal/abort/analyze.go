package abort

import (
	"errors"
	"slices"
	"time"
)

// timeline is what a run recorded, every time measured from the start of
// the warm-up on one monotonic clock; analyze turns it into a Result.
type timeline struct {
	a, b    []int64       // delivered bytes per tick of stream A and B
	bFirst  time.Duration // B's first byte, -1 if none
	samples []sample      // the sender's state
	loss    time.Duration // the loss event
	abort   time.Duration // A's abort
	end     time.Duration // recording stopped
}

// sample is the sender's state at one instant.
type sample struct {
	at           time.Duration
	flight, cwnd int64
	srtt         time.Duration
}

// mbps converts bytes over d to 10^6 bytes per second.
func mbps(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / d.Seconds() / 1e6
}

// binSum is the bytes of bins [from, to), clipped to the recorded range.
func binSum(bins []int64, from, to int) int64 {
	from, to = max(from, 0), min(to, len(bins))
	var s int64
	for i := from; i < to; i++ {
		s += bins[i]
	}
	return s
}

// ticks rounds d up to whole ticks, at least one.
func ticks(d time.Duration) int { return max(int((d+tick-1)/tick), 1) }

// goodput is the rate of bins over the window of w ticks that ends at the
// last tick boundary at or before t.
func goodput(bins []int64, t time.Duration, w int) float64 {
	end := int(t / tick)
	return mbps(binSum(bins, end-w, end), time.Duration(w)*tick)
}

// steadyBin is the sub-window of the steady rate.
const steadyBin = 10 * time.Millisecond

// steadyRate is A's goodput before the loss event: the median of its 10 ms
// goodputs over the steady window that ends at the event. A mean would
// count the bursts and gaps of head-of-line blocking around a loss recovery
// (a burst of one RTT's data can fall inside the window with its gap just
// outside); the median is the rate the path sustained.
func steadyRate(tl *timeline, steady time.Duration) (float64, error) {
	w := ticks(steadyBin)
	end := int(tl.loss / tick)
	n := int(steady / steadyBin)
	if n < 1 || end-n*w < 0 {
		return 0, errors.New("abort: the steady window does not fit in the warm-up")
	}
	rates := make([]float64, n)
	for i := range rates {
		to := end - i*w
		rates[i] = mbps(binSum(tl.a, to-w, to), steadyBin)
	}
	slices.Sort(rates)
	r := rates[n/2]
	if n%2 == 0 {
		r = (rates[n/2-1] + rates[n/2]) / 2
	}
	if r <= 0 {
		// More than half the bins are empty: A's delivery was bursty, which
		// happens when the machine starves the processes (a loaded CI box)
		// or a recovery gap spans the window. The mean over the window is
		// then the only rate there is; only a window with no bytes at all
		// is an error.
		var sum float64
		for _, x := range rates {
			sum += x
		}
		r = sum / float64(n)
	}
	if r <= 0 {
		return 0, errors.New("abort: stream A delivered nothing before the loss event")
	}
	return r, nil
}

// fullRateAt is the first tick boundary in (after, until] at which the
// w-tick goodput of bins reaches want MB/s, or -1.
func fullRateAt(bins []int64, after, until time.Duration, w int, want float64) time.Duration {
	need := want * 1e6 * (time.Duration(w) * tick).Seconds()
	for end := int(after/tick) + 1; time.Duration(end)*tick <= until; end++ {
		if float64(binSum(bins, end-w, end)) >= need {
			return time.Duration(end) * tick
		}
	}
	return -1
}

// analyze derives the Result's measurements from tl: smooth is the
// goodput window, the other parameters come from cfg.
func analyze(tl *timeline, cfg Config, smooth time.Duration) (Result, error) {
	steady, err := steadyRate(tl, cfg.Steady)
	if err != nil {
		return Result{}, err
	}
	w := ticks(smooth)
	limit := min(tl.end, tl.abort+cfg.Post)
	res := Result{SteadyMBps: steady, FirstByte: -1, FullRate: -1, Stall: tl.abort - tl.loss}
	if tl.bFirst >= 0 && tl.bFirst <= limit {
		res.FirstByte = tl.bFirst - tl.abort
	}
	if at := fullRateAt(tl.b, tl.abort, limit, w, cfg.Threshold*steady); at >= 0 {
		res.FullRate = at - tl.abort
	}
	from := tl.loss - cfg.Lead
	for _, s := range tl.samples {
		if s.at < from {
			continue
		}
		res.Series = append(res.Series, Point{
			T:            s.at - tl.abort,
			Flight:       s.flight,
			Cwnd:         s.cwnd,
			SRTT:         s.srtt,
			GoodputMBps:  goodput(tl.b, s.at, w),
			AGoodputMBps: goodput(tl.a, s.at, w),
		})
	}
	return res, nil
}
