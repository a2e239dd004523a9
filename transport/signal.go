package transport

import (
	"context"
	"time"
)

// signal is a broadcast wakeup guarded by its owner's mutex: waiters take
// the current channel under the lock, release the lock and block on it;
// broadcast closes it. A fresh channel is made only when someone waits, so an
// idle signal allocates nothing.
type signal struct{ ch chan struct{} }

func (s *signal) wait() <-chan struct{} {
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) broadcast() {
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// waitFor blocks until ch is closed, ctx is done or deadline passes. It
// returns nil when woken, ErrDeadline or ctx.Err() otherwise. The caller
// must not hold its mutex.
func waitFor(ctx context.Context, ch <-chan struct{}, deadline time.Time) error {
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return ErrDeadline
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	var done <-chan struct{}
	if ctx != nil {
		done = ctx.Done()
	}
	select {
	case <-ch:
		return nil
	case <-timeout:
		return ErrDeadline
	case <-done:
		return ctx.Err()
	}
}
