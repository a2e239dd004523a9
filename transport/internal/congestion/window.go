package congestion

import (
	"context"
	"fmt"
	"sync"
)

// Window lets sender goroutines wait for room under the congestion window and
// wakes them on every release.
//
// It is a broadcast built from a channel that Notify closes and replaces, so
// a waiter can select on it together with ctx.Done(); there is no polling. A
// waiter takes the current channel before evaluating fits, so a Notify that
// races with the check closes the channel it is about to wait on and the
// wake-up cannot be lost. Notify allocates a new channel only when someone is
// waiting, so the per-ACK call is cheap when senders are not blocked.
//
// The zero value is ready to use.
type Window struct {
	mu      sync.Mutex
	ch      chan struct{} // guarded by mu; closed and replaced by Notify
	waiters int           // guarded by mu; goroutines holding ch
}

// NewWindow returns an empty Window.
func NewWindow() *Window { return &Window{} }

// Wait returns nil as soon as fits() is true; fits is re-checked after each
// Notify. It returns the (wrapped) context error if ctx ends first. The
// caller supplies the timeout through ctx, scaled by the RTT.
//
// fits is called without any lock held, possibly concurrently with other
// waiters' calls, so it must read shared state safely (e.g. atomics).
func (w *Window) Wait(ctx context.Context, fits func() bool) error {
	for {
		ch := w.register()
		if fits() {
			w.unregister()
			return nil
		}
		select {
		case <-ch:
			w.unregister()
		case <-ctx.Done():
			w.unregister()
			return fmt.Errorf("wait for congestion window: %w", ctx.Err())
		}
	}
}

func (w *Window) register() chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	w.waiters++
	return w.ch
}

func (w *Window) unregister() {
	w.mu.Lock()
	w.waiters--
	w.mu.Unlock()
}

// Notify wakes every waiter so it re-checks its condition. Call it after the
// flight size drops or the window grows.
func (w *Window) Notify() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.waiters == 0 {
		return
	}
	close(w.ch)
	w.ch = make(chan struct{})
}
