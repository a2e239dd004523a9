package abort

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flightline/flightline/transport"
)

// flags tell the stream goroutines which endings are expected, and collect
// the first unexpected one.
type flags struct {
	aborted  atomic.Bool // A was cancelled: its writes and reads may fail
	stopping atomic.Bool // the scenario is over: everything may fail

	errMu    sync.Mutex
	firstErr error
}

func (f *flags) fail(err error) {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	if f.firstErr == nil {
		f.firstErr = err
	}
}

func (f *flags) err() error {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	return f.firstErr
}

// expectedEnd reports whether a stream call of stream idx failing now is
// part of the scenario rather than a fault.
func (f *flags) expectedEnd(idx int) bool {
	return f.stopping.Load() || (idx == streamA && f.aborted.Load())
}

// errAbortedEarly is a stream that ended before the scenario ended it.
var errAbortedEarly = errors.New("stream ended before the scenario ended it")

func streamName(idx int) string { return string(rune('A' + idx)) }

// send writes stream idx's pattern to s until the write fails (A's abort,
// or ctx at the end).
func (r *run) send(ctx context.Context, s *transport.Stream, idx int) {
	var off int64
	for ctx.Err() == nil {
		n, err := s.WriteContext(ctx, r.pat.Window(idx, off, chunk))
		off += int64(n)
		if err != nil {
			if !r.expectedEnd(idx) {
				r.fail(fmt.Errorf("abort: write stream %s at %d: %w", streamName(idx), off, err))
			}
			return
		}
	}
}

// receive accepts the two streams on the receiver and reads them, verifying
// every byte and recording when it arrived, until ctx ends.
func (r *run) receive(ctx context.Context, aID, bID uint64) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		rs, err := r.s.sc.AcceptStream(ctx)
		if err != nil {
			if !r.stopping.Load() {
				r.fail(fmt.Errorf("abort: accept stream: %w", err))
			}
			return
		}
		idx, rec := streamA, r.recA
		switch rs.ID() {
		case aID:
		case bID:
			idx, rec = streamB, r.recB
		default:
			r.fail(fmt.Errorf("abort: unexpected stream %d", rs.ID()))
			rs.CancelRead(0)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.read(ctx, rs, idx, rec)
		}()
	}
}

// read drains one stream into rec.
func (r *run) read(ctx context.Context, rs *transport.Stream, idx int, rec *recorder) {
	buf := make([]byte, chunk)
	var off int64
	for {
		n, err := rs.ReadContext(ctx, buf)
		if n > 0 {
			rec.add(time.Now(), n)
			if verr := r.pat.Verify(idx, off, buf[:n]); verr != nil {
				r.fail(fmt.Errorf("abort: stream %s: %w", streamName(idx), verr))
				return
			}
			off += int64(n)
		}
		if err != nil {
			var se *transport.StreamError
			reset := errors.As(err, &se) && se.Remote
			if !r.stopping.Load() && !(idx == streamA && r.aborted.Load() && reset) {
				r.fail(fmt.Errorf("abort: read stream %s at %d: %w: %w", streamName(idx), off, errAbortedEarly, err))
			}
			return
		}
	}
}

// sample records the sender's flight size and congestion window every tick
// until ctx ends, at most span/tick samples.
func (r *run) sample(ctx context.Context) {
	cc := r.s.cc
	r.samples = make([]sample, 0, r.cfg.span()/tick)
	t := time.NewTicker(tick)
	defer t.Stop()
	for len(r.samples) < cap(r.samples) {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			st := cc.Stats()
			r.samples = append(r.samples, sample{at: now.Sub(r.base), flight: st.FlightSize, cwnd: st.CongestionWindow, srtt: st.SmoothedRTT})
		}
	}
}
