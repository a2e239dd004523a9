package peer

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDialAllDialsEveryConnectionWithBoundedConcurrency(t *testing.T) {
	s := &Spec{Conns: 200, Concurrency: 7}
	var inFlight, peak, calls atomic.Int64
	seen := make([]atomic.Bool, s.Conns)
	_, err := DialAll(context.Background(), s, func(ctx context.Context, i int) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		calls.Add(1)
		require.False(t, seen[i].Swap(true), "connection %d dialled twice", i)
		return nil
	})
	require.NoError(t, err)
	require.EqualValues(t, s.Conns, calls.Load())
	require.LessOrEqual(t, peak.Load(), int64(s.Concurrency))
}

func TestDialAllStopsAtTheFirstFailure(t *testing.T) {
	s := &Spec{Conns: 10000, Concurrency: 4}
	boom := errors.New("boom")
	var calls atomic.Int64
	_, err := DialAll(context.Background(), s, func(ctx context.Context, i int) error {
		calls.Add(1)
		if i == 10 {
			return boom
		}
		return ctx.Err()
	})
	require.ErrorIs(t, err, boom)
	require.ErrorContains(t, err, "connection 10")
	require.Less(t, calls.Load(), int64(s.Conns), "the others stop")
}
