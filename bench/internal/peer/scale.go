package peer

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// DialAll is the client side of a Scale run's connection phase, shared by
// every peer: dial(ctx, i) opens and checks connection i, for every i in
// [0, s.Conns), with s.Concurrency calls in flight. The first failure cancels
// the rest and is returned with its index. It returns the time from the first
// call to the last one returning.
func DialAll(ctx context.Context, s *Spec, dial func(ctx context.Context, i int) error) (time.Duration, error) {
	dctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t0 := time.Now()
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range min(s.Concurrency, s.Conns) {
		wg.Go(func() {
			for dctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= s.Conns {
					return
				}
				if err := dial(dctx, i); err != nil {
					cancel(fmt.Errorf("connection %d: %w", i, err))
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(t0)
	if cause := context.Cause(dctx); cause != nil && cause != context.Canceled {
		return took, cause
	}
	return took, ctx.Err()
}

// Memory is this process's resident set and in-use heap after a GC: what
// Scale reports before and after the connections.
func Memory() (rss, heap int64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return RSS(), int64(ms.HeapInuse)
}

// ScaleNotes adds the per-connection figures every peer reports to extra
// (nil allowed) and returns it.
func ScaleNotes(r *Result, extra map[string]float64) map[string]float64 {
	if extra == nil {
		extra = map[string]float64{}
	}
	if r.Conns > 0 {
		n := float64(r.Conns)
		extra["rss_kib_per_conn"] = float64(r.RSSAfter-r.RSSBefore) / n / 1024
		extra["heap_kib_per_conn"] = float64(r.HeapAfter-r.HeapBefore) / n / 1024
		if r.HandshakeTime > 0 {
			extra["handshakes_per_s"] = n / r.HandshakeTime.Seconds()
		}
	}
	return extra
}
