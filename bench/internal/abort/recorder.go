package abort

import (
	"sync/atomic"
	"time"
)

// recorder counts one stream's delivered bytes per tick since base. The
// receiving goroutine adds while the orchestrator reads recent bins to
// decide when to stop, so bins are atomics; the analysis reads a snapshot
// taken after the receiver stopped.
type recorder struct {
	base  time.Time
	bins  []atomic.Int64
	first atomic.Int64 // time of the first byte since base, -1 before
	late  atomic.Int64 // bytes after the last bin (not analysed)
}

func newRecorder(base time.Time, span time.Duration) *recorder {
	r := &recorder{base: base, bins: make([]atomic.Int64, span/tick)}
	r.first.Store(-1)
	return r
}

// add records n bytes read at now.
func (r *recorder) add(now time.Time, n int) {
	if n <= 0 {
		return
	}
	at := now.Sub(r.base)
	r.first.CompareAndSwap(-1, int64(at))
	if i := int(at / tick); i >= 0 && i < len(r.bins) {
		r.bins[i].Add(int64(n))
		return
	}
	r.late.Add(int64(n))
}

// sum is the bytes of bins [from, to), clipped to the recorded range.
func (r *recorder) sum(from, to int) int64 {
	from, to = max(from, 0), min(to, len(r.bins))
	var s int64
	for i := from; i < to; i++ {
		s += r.bins[i].Load()
	}
	return s
}

// snapshot copies the bins.
func (r *recorder) snapshot() []int64 {
	out := make([]int64, len(r.bins))
	for i := range r.bins {
		out[i] = r.bins[i].Load()
	}
	return out
}

// total is every byte recorded.
func (r *recorder) total() int64 { return r.sum(0, len(r.bins)) + r.late.Load() }
