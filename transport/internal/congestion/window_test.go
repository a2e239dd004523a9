package congestion

import (
	"context"
	"github.com/stretchr/testify/require"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestWindowFitsImmediately(t *testing.T) {
	w := NewWindow()
	require.NoError(t, w.Wait(context.Background(), func() bool { return true }))
	// Even a dead context does not matter when there is room.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, w.Wait(ctx, func() bool { return true }))
	var zero Window
	require.NoError(t, zero.Wait(ctx, func() bool { return true }), "zero value usable")
}

func TestWindowWaitReturnsAfterNotify(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := NewWindow()
		var room atomic.Bool
		var checks atomic.Int32
		done := make(chan error, 1)
		go func() {
			done <- w.Wait(context.Background(), func() bool { checks.Add(1); return room.Load() })
		}()
		synctest.Wait()
		require.Equal(t, int32(1), checks.Load())

		// Notify without room: re-checked, still waiting.
		w.Notify()
		synctest.Wait()
		require.Equal(t, int32(2), checks.Load())
		select {
		case err := <-done:
			t.Fatalf("returned without room: %v", err)
		default:
		}

		room.Store(true)
		w.Notify()
		require.NoError(t, <-done)
		require.Equal(t, int32(3), checks.Load())
	})
}

func TestWindowDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := NewWindow()
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := w.Wait(ctx, func() bool { return false })
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Equal(t, 250*time.Millisecond, time.Since(start))
		require.Zero(t, w.waiters, "waiter unregistered")
	})
}

func TestWindowCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := NewWindow()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Wait(ctx, func() bool { return false }) }()
		synctest.Wait()
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	})
}

func TestWindowWakesAllWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := NewWindow()
		var room atomic.Bool
		const n = 100
		var wg sync.WaitGroup
		var woken atomic.Int32
		for range n {
			wg.Go(func() {
				if w.Wait(context.Background(), room.Load) == nil {
					woken.Add(1)
				}
			})
		}
		synctest.Wait()
		require.Equal(t, int32(0), woken.Load())
		room.Store(true)
		w.Notify()
		wg.Wait()
		require.Equal(t, int32(n), woken.Load())
		require.Zero(t, w.waiters)
	})
}

// TestWindowFlightStress models the real use: senders reserve packets under a
// fixed window, a releaser frees them and notifies. Bounded in count; run
// under -race. The goroutine count must return to its start.
func TestWindowFlightStress(t *testing.T) {
	before := runtime.NumGoroutine()
	const (
		window  = 8
		senders = 8
		perSend = 500
	)
	w := NewWindow()
	var inFlight atomic.Int64
	release := make(chan struct{}, senders*perSend)
	reserve := func() bool {
		for {
			cur := inFlight.Load()
			if cur >= window {
				return false
			}
			if inFlight.CompareAndSwap(cur, cur+1) {
				return true
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var releaser sync.WaitGroup
	releaser.Go(func() {
		for range senders * perSend {
			<-release
			if n := inFlight.Add(-1); n < 0 || n >= window {
				t.Errorf("flight %d outside [0, %d)", n, window)
			}
			w.Notify()
		}
	})
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for range perSend {
				if err := w.Wait(ctx, reserve); err != nil {
					t.Error(err)
					return
				}
				release <- struct{}{}
			}
		})
	}
	wg.Wait()
	releaser.Wait()
	require.Zero(t, inFlight.Load())
	require.Zero(t, w.waiters)
	require.LessOrEqual(t, runtime.NumGoroutine(), before, "no goroutine leak")
}

func TestWindowNotifyWithoutWaitersDoesNotAllocate(t *testing.T) {
	w := NewWindow()
	allocs := testing.AllocsPerRun(1000, w.Notify)
	require.Zero(t, allocs)
}
