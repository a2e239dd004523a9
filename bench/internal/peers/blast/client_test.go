package blast

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightline/flightline/transport/link"
)

// scriptedLink is a link.Link whose WriteBatch follows a script: each step
// takes up to n messages and returns err.
type scriptedLink struct {
	steps []step
	taken int
}

type step struct {
	n   int
	err error
}

func (l *scriptedLink) WriteBatch(msgs []link.Message) (int, error) {
	if len(l.steps) == 0 {
		l.taken += len(msgs)
		return len(msgs), nil
	}
	st := l.steps[0]
	l.steps = l.steps[1:]
	n := min(st.n, len(msgs))
	l.taken += n
	return n, st.err
}

func (l *scriptedLink) ReadBatch([]link.Message) (int, error) { return 0, errors.New("not readable") }
func (l *scriptedLink) BatchSize() int                        { return link.IdealBatchSize }
func (l *scriptedLink) Caps() link.Caps                       { return link.Caps{Datapath: "test"} }
func (l *scriptedLink) LocalAddr() netip.AddrPort             { return netip.AddrPort{} }
func (l *scriptedLink) Close() error                          { return nil }

func TestWriteAllRetriesTransientErrors(t *testing.T) {
	msgs := make([]link.Message, 10)
	l := &scriptedLink{steps: []step{
		{3, fmt.Errorf("udplink: sendmmsg: %w", syscall.EAGAIN)},
		{0, syscall.ENOBUFS},
		{4, nil}, // partial without an error: retried too
	}}
	n, retries, err := writeAll(context.Background(), l, msgs)
	require.NoError(t, err)
	require.Equal(t, 10, n)
	require.EqualValues(t, 3, retries)
	require.Equal(t, 10, l.taken)
}

func TestWriteAllStopsOnPermanentError(t *testing.T) {
	msgs := make([]link.Message, 10)
	l := &scriptedLink{steps: []step{{2, link.ErrTooLarge}}}
	n, _, err := writeAll(context.Background(), l, msgs)
	require.ErrorIs(t, err, link.ErrTooLarge)
	require.Equal(t, 2, n)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l = &scriptedLink{steps: []step{{0, syscall.EAGAIN}}}
	_, _, err = writeAll(ctx, l, msgs)
	require.ErrorIs(t, err, context.Canceled)
}

func TestWatchdog(t *testing.T) {
	fired := make(chan struct{})
	w := startWatchdog(time.Millisecond, func() { close(fired) })
	defer w.shutdown()
	require.False(t, w.expired(), "disarmed until armed")
	w.arm(20 * time.Millisecond)
	select {
	case <-fired:
	case <-time.After(5 * time.Second):
		t.Fatal("watchdog never fired")
	}
	require.True(t, w.expired())

	// A watchdog shut down before its limit never fires.
	w2 := startWatchdog(time.Millisecond, func() { t.Error("fired after shutdown") })
	w2.arm(time.Hour)
	w2.shutdown()
	require.False(t, w2.expired())
}
