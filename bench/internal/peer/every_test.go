package peer

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestEvery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := 0
		stop := Every(context.Background(), 50*time.Millisecond, func() { n++ })
		time.Sleep(175 * time.Millisecond) // fake clock: ticks at 50, 100, 150
		stop()
		require.Equal(t, 3, n)
	})
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		n := 0
		stop := Every(ctx, 10*time.Millisecond, func() { n++ })
		cancel()
		synctest.Wait()
		stop() // after ctx ended stop still returns
		require.Zero(t, n)
	})
}
