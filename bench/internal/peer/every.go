package peer

import (
	"context"
	"time"
)

// Every calls fn every interval on its own goroutine until stop is called
// or ctx ends. stop returns once that goroutine has exited, so whatever fn
// accumulated may be read after stop returns without further locking.
// Peers use it to sample congestion state (RTT, cwnd) during a transfer.
func Every(ctx context.Context, interval time.Duration, fn func()) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				fn()
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { close(done); <-exited }
}
