package transport

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMsgQueueFIFOAndBound(t *testing.T) {
	var q msgQueue
	q.init(3)
	require.Equal(t, 3, q.room())
	for _, m := range []string{"a", "b", "c"} {
		q.push([]byte(m))
	}
	require.Zero(t, q.room())
	ctx := context.Background()
	for _, want := range []string{"a", "b"} {
		m, ok, err := q.pop(ctx, nil)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, want, string(m))
	}
	require.Equal(t, 2, q.room())
	q.push([]byte("d"))
	for _, want := range []string{"c", "d"} {
		m, _, _ := q.pop(ctx, nil)
		require.Equal(t, want, string(m))
	}
	require.Equal(t, 3, q.room())
}

func TestMsgQueueWaitsAndDrainsAfterClose(t *testing.T) {
	var q msgQueue
	q.init(4)
	got := make(chan string, 1)
	go func() {
		m, _, _ := q.pop(context.Background(), nil)
		got <- string(m)
	}()
	q.push([]byte("x")) // wakes the waiter whether it already waits or not
	require.Equal(t, "x", <-got)

	closed := make(chan struct{})
	q.push([]byte("queued"))
	close(closed)
	m, ok, err := q.pop(context.Background(), closed)
	require.True(t, ok, "messages queued before close are still delivered")
	require.NoError(t, err)
	require.Equal(t, "queued", string(m))
	_, ok, err = q.pop(context.Background(), closed)
	require.False(t, ok)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	_, ok, err = q.pop(ctx, nil)
	require.False(t, ok)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// A peer that keeps the queue non-empty — one more message pushed for every
// one the application pops — once grew it without bound: it compacted only
// when empty. The ring reuses its slots.
func TestMsgQueueBoundedWhenNeverEmpty(t *testing.T) {
	var q msgQueue
	q.init(DefaultMessageQueue)
	q.push([]byte("first"))
	q.push([]byte("second"))
	for i := range 100_000 {
		q.push([]byte{byte(i)})
		m, _, ok := q.tryPop()
		require.True(t, ok)
		require.NotNil(t, m)
		require.Equal(t, DefaultMessageQueue-2, q.room())
	}
	require.LessOrEqual(t, q.capacity(), 8, "ring grew while holding 3 messages")
	// Filling to the limit needs exactly limit slots; order is kept.
	var q2 msgQueue
	q2.init(100)
	for i := range 100 {
		q2.push([]byte{byte(i)})
	}
	require.Equal(t, 100, q2.capacity())
	for i := range 100 {
		m, _, ok := q2.tryPop()
		require.True(t, ok)
		require.Equal(t, byte(i), m[0])
	}
	require.Zero(t, q2.capacity(), "an emptied large ring is released")
}
