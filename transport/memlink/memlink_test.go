package memlink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/stretchr/testify/require"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/flightline/flightline/transport/internal/monotime"
	"github.com/flightline/flightline/transport/link"
)

// seqMsgs returns count messages to dst whose first 4 bytes are their index.
func seqMsgs(dst *Link, from, count, size int) []link.Message {
	msgs := make([]link.Message, count)
	for i := range msgs {
		b := make([]byte, size)
		binary.BigEndian.PutUint32(b, uint32(from+i))
		msgs[i] = link.Message{Buf: b, Addr: dst.LocalAddr()}
	}
	return msgs
}

// drain reads everything queued right now (without blocking) and returns
// the sequence numbers in arrival order.
func drain(t testing.TB, l *Link, out []uint32) []uint32 {
	t.Helper()
	msgs := make([]link.Message, 64)
	for i := range msgs {
		msgs[i].Buf = make([]byte, link.MaxPacketSize)
	}
	for len(l.inbox) > 0 {
		n, err := l.ReadBatch(msgs)
		require.NoError(t, err)
		for _, m := range msgs[:n] {
			require.Equal(t, l.remote, m.Addr)
			out = append(out, binary.BigEndian.Uint32(m.Buf))
		}
	}
	return out
}

// readN blocks until n datagrams were read or the timeout passed.
func readN(t testing.TB, l *Link, n int, timeout time.Duration) []uint32 {
	t.Helper()
	type res struct {
		seqs []uint32
		err  error
	}
	c := make(chan res, 1)
	go func() {
		msgs := make([]link.Message, 64)
		for i := range msgs {
			msgs[i].Buf = make([]byte, link.MaxPacketSize)
		}
		var seqs []uint32
		for len(seqs) < n {
			k, err := l.ReadBatch(msgs)
			if err != nil {
				c <- res{seqs, err}
				return
			}
			for _, m := range msgs[:k] {
				seqs = append(seqs, binary.BigEndian.Uint32(m.Buf))
			}
		}
		c <- res{seqs, nil}
	}()
	select {
	case r := <-c:
		require.NoError(t, r.err)
		return r.seqs
	case <-time.After(timeout):
		_ = l.Close() // unblock the reader goroutine
		t.Fatalf("only part of %d datagrams arrived within %v", n, timeout)
		return nil
	}
}

func write(t testing.TB, l *Link, msgs []link.Message) {
	t.Helper()
	n, err := l.WriteBatch(msgs)
	require.NoError(t, err)
	require.Equal(t, len(msgs), n)
}

func closePair(t testing.TB, a, b *Link) {
	t.Cleanup(func() {
		require.NoError(t, a.Close())
		require.NoError(t, b.Close())
	})
}

func TestRoundTrip(t *testing.T) {
	a, b := NewPair(Config{})
	closePair(t, a, b)
	require.NotEqual(t, a.LocalAddr(), b.LocalAddr())
	require.Equal(t, "mem", a.Caps().Datapath)

	msgs := []link.Message{
		{Buf: []byte("x"), Addr: b.LocalAddr()},
		{Buf: make([]byte, link.MaxPacketSize), Addr: b.LocalAddr()},
		{Buf: []byte("hello"), Addr: b.LocalAddr()},
	}
	msgs[1].Buf[0] = 7
	write(t, a, msgs)
	msgs[2].Buf[0] = 'J' // the link copied on write

	in := make([]link.Message, 8)
	for i := range in {
		in[i].Buf = make([]byte, link.MaxPacketSize)
	}
	n, err := b.ReadBatch(in)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.Equal(t, "x", string(in[0].Buf))
	require.Equal(t, link.MaxPacketSize, len(in[1].Buf))
	require.Equal(t, byte(7), in[1].Buf[0])
	require.Equal(t, "hello", string(in[2].Buf))
	for _, m := range in[:n] {
		require.Equal(t, a.LocalAddr(), m.Addr)
	}
	// And back.
	write(t, b, []link.Message{{Buf: []byte("re"), Addr: a.LocalAddr()}})
	n, err = a.ReadBatch(in)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, b.LocalAddr(), in[0].Addr)

	s := a.Stats()
	require.EqualValues(t, 3, s.Sent)
	require.EqualValues(t, 3, s.Delivered)
	require.EqualValues(t, 1, s.Received)
}

func TestWriteErrors(t *testing.T) {
	a, b := NewPair(Config{MTU: 100})
	closePair(t, a, b)
	msgs := seqMsgs(b, 0, 3, 10)
	msgs[1].Buf = make([]byte, 101)
	n, err := a.WriteBatch(msgs)
	require.Equal(t, 1, n)
	require.ErrorIs(t, err, link.ErrTooLarge)

	// A datagram to an address other than the peer's goes nowhere.
	mis := seqMsgs(b, 0, 1, 10)
	mis[0].Addr = a.LocalAddr()
	write(t, a, mis)
	require.EqualValues(t, 1, a.Stats().Misrouted)
	require.Equal(t, []uint32{0}, drain(t, b, nil))
}

// TestImpairmentRates sends 100k packets through loss, duplication and
// reordering and checks the measured rates, both from the counters and
// from the sequence numbers that arrived.
func TestImpairmentRates(t *testing.T) {
	const (
		total   = 100_000
		loss    = 0.10
		dup     = 0.05
		reorder = 0.08
		tol     = 0.006 // > 5 standard deviations at these counts
	)
	// One WriteBatch into a queue that holds everything: no reorder hold
	// can time out half-way, so the outcome does not depend on scheduling.
	a, b := NewPair(Config{AtoB: Impairment{Loss: loss, Duplicate: dup, Reorder: reorder},
		Seed: 42, MTU: 16, QueueLen: 2 * total})
	closePair(t, a, b)
	write(t, a, seqMsgs(b, 0, total, 8))
	got := drain(t, b, nil)
	time.Sleep(3 * reorderHold) // the last held packets time out
	got = drain(t, b, got)

	s := a.Stats()
	sent := float64(s.Sent)
	require.InDelta(t, loss, float64(s.DroppedLoss)/sent, tol, "loss")
	survivors := sent - float64(s.DroppedLoss)
	require.InDelta(t, dup, float64(s.Duplicated)/survivors, tol, "duplication")
	copies := survivors + float64(s.Duplicated)
	require.InDelta(t, reorder, float64(s.Reordered)/copies, tol, "reordering")
	require.Equal(t, s.Delivered, uint64(len(got)))
	require.Equal(t, s.Delivered, b.Stats().Received)
	require.Zero(t, s.DroppedQueue)

	// From the payloads: unique = delivered originals, the rest duplicates;
	// a packet arriving after a higher-numbered one was reordered.
	seen := make(map[uint32]bool, total)
	var dups, late int
	maxSeen := int64(-1)
	for _, q := range got {
		if seen[q] {
			dups++
			continue
		}
		seen[q] = true
		if int64(q) < maxSeen {
			late++
		}
		maxSeen = max(maxSeen, int64(q))
	}
	require.InDelta(t, loss, 1-float64(len(seen))/sent, tol, "measured loss")
	require.EqualValues(t, s.Duplicated, dups)
	// A held packet whose duplicate was not held is "late" only once, and
	// an original released after its own duplicate is not late at all, so
	// late is a little below Reordered.
	require.InDelta(t, reorder, float64(late)/float64(len(seen)), 2*tol, "measured reordering")
	t.Logf("sent %d: lost %d, dup %d, reordered %d (late %d)", s.Sent, s.DroppedLoss, s.Duplicated, s.Reordered, late)
}

func TestDeterministicWithSeed(t *testing.T) {
	run := func(seed uint64) []uint32 {
		a, b := NewPair(Config{
			AtoB:     Impairment{Loss: 0.1, Duplicate: 0.1, Reorder: 0.2},
			Seed:     seed,
			QueueLen: 10000,
			MTU:      16,
		})
		defer a.Close()
		defer b.Close()
		write(t, a, seqMsgs(b, 0, 5000, 8)) // one batch: no hold can time out mid-way
		got := drain(t, b, nil)
		time.Sleep(3 * reorderHold)
		return drain(t, b, got)
	}
	first := run(7)
	require.Equal(t, first, run(7))
	require.NotEqual(t, first, run(8))
}

func TestFilterDrop(t *testing.T) {
	a, b := NewPair(Config{AtoB: Impairment{Drop: func(p []byte) bool { return p[0] == 'x' }}})
	closePair(t, a, b)
	write(t, a, []link.Message{
		{Buf: []byte("keep1"), Addr: b.LocalAddr()},
		{Buf: []byte("xdrop"), Addr: b.LocalAddr()},
		{Buf: []byte("keep2"), Addr: b.LocalAddr()},
	})
	in := []link.Message{{Buf: make([]byte, 64)}, {Buf: make([]byte, 64)}, {Buf: make([]byte, 64)}}
	n, err := b.ReadBatch(in)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Equal(t, "keep1", string(in[0].Buf))
	require.Equal(t, "keep2", string(in[1].Buf))
	s := a.Stats()
	require.EqualValues(t, 1, s.DroppedFilter)
	require.Zero(t, s.DroppedLoss)
}

func TestQueueOverflow(t *testing.T) {
	t.Run("receive queue", func(t *testing.T) {
		a, b := NewPair(Config{QueueLen: 10})
		closePair(t, a, b)
		write(t, a, seqMsgs(b, 0, 25, 8))
		s := a.Stats()
		require.EqualValues(t, 10, s.Delivered)
		require.EqualValues(t, 15, s.DroppedQueue)
		require.Equal(t, []uint32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, drain(t, b, nil))
	})
	t.Run("rate queue", func(t *testing.T) {
		// 1 kB/s: nothing leaves during the test, the delay heap fills.
		a, b := NewPair(Config{QueueLen: 10, AtoB: Impairment{Rate: 1000}})
		closePair(t, a, b)
		write(t, a, seqMsgs(b, 0, 25, 100))
		s := a.Stats()
		require.EqualValues(t, 10, s.Delayed)
		require.EqualValues(t, 15, s.DroppedQueue)
	})
}

func TestDelayJitterRate(t *testing.T) {
	t.Run("delay", func(t *testing.T) {
		const delay = 30 * time.Millisecond
		a, b := NewPair(Config{AtoB: Impairment{Delay: delay}})
		closePair(t, a, b)
		start := time.Now()
		write(t, a, seqMsgs(b, 0, 10, 8))
		require.Equal(t, []uint32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, readN(t, b, 10, 5*time.Second))
		require.GreaterOrEqual(t, time.Since(start), delay)
		require.EqualValues(t, 10, a.Stats().Delayed)
	})
	t.Run("jitter reorders", func(t *testing.T) {
		a, b := NewPair(Config{AtoB: Impairment{Delay: time.Millisecond, Jitter: 20 * time.Millisecond}, Seed: 1})
		closePair(t, a, b)
		write(t, a, seqMsgs(b, 0, 200, 8))
		got := readN(t, b, 200, 5*time.Second)
		inversions := 0
		for i := 1; i < len(got); i++ {
			if got[i] < got[i-1] {
				inversions++
			}
		}
		require.Positive(t, inversions)
	})
	t.Run("rate", func(t *testing.T) {
		// 50 x 1000 bytes at 1 MB/s is 50 ms on the wire.
		a, b := NewPair(Config{AtoB: Impairment{Rate: 1_000_000}})
		closePair(t, a, b)
		start := time.Now()
		write(t, a, seqMsgs(b, 0, 50, 1000))
		got := readN(t, b, 50, 5*time.Second)
		el := time.Since(start)
		require.GreaterOrEqual(t, el, 49*time.Millisecond)
		for i := range got {
			require.EqualValues(t, i, got[i], "rate limiting keeps order")
		}
	})
}

func TestSetImpairment(t *testing.T) {
	a, b := NewPair(Config{})
	closePair(t, a, b)
	write(t, a, seqMsgs(b, 0, 10, 8))
	a.SetImpairment(Impairment{Loss: 1})
	write(t, a, seqMsgs(b, 10, 10, 8))
	b.SetImpairment(Impairment{Loss: 1}) // the other direction only
	a.SetImpairment(Impairment{})
	write(t, a, seqMsgs(b, 20, 1, 8))
	got := drain(t, b, nil)
	require.Len(t, got, 11)
	require.EqualValues(t, 20, got[10])
	require.EqualValues(t, 10, a.Stats().DroppedLoss)
}

func TestCloseUnblocksAndNoLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	a, b := NewPair(Config{
		AtoB: Impairment{Delay: 50 * time.Millisecond, Reorder: 0.5},
		BtoA: Impairment{Rate: 1000},
	})
	errc := make(chan error, 2)
	for _, l := range []*Link{a, b} {
		go func() {
			_, err := l.ReadBatch(make([]link.Message, 4))
			errc <- err
		}()
	}
	write(t, a, seqMsgs(b, 0, 100, 100)) // delayed and held packets pending
	write(t, b, seqMsgs(a, 0, 100, 100)) // rate-queued packets pending
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, a.Close())
	require.NoError(t, a.Close())
	// b's reader may have got a packet; a's must see ErrClosed.
	require.NoError(t, b.Close())
	for i := 0; i < 2; i++ {
		select {
		case err := <-errc:
			if err != nil {
				require.True(t, errors.Is(err, net.ErrClosed), "got %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("ReadBatch still blocked after Close")
		}
	}
	_, err := a.ReadBatch(make([]link.Message, 1))
	require.ErrorIs(t, err, net.ErrClosed)
	_, err = a.WriteBatch(seqMsgs(b, 0, 1, 8))
	require.ErrorIs(t, err, net.ErrClosed)

	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	require.LessOrEqual(t, runtime.NumGoroutine(), base, "goroutines leaked")
	time.Sleep(60 * time.Millisecond) // stopped timers must not fire
	require.LessOrEqual(t, runtime.NumGoroutine(), base, "goroutines after timers' time")
}

// TestConcurrent runs writers, readers and SetImpairment on both ends at
// once; it is meant for -race.
func TestConcurrent(t *testing.T) {
	a, b := NewPair(Config{
		AtoB: Impairment{Loss: 0.01, Reorder: 0.05, Jitter: time.Millisecond},
		BtoA: Impairment{Duplicate: 0.05, Rate: 50_000_000},
		Seed: 3,
	})
	const perSide = 5000
	var wg sync.WaitGroup
	var recvd [2]int
	for i, l := range []*Link{a, b} {
		wg.Add(2)
		go func() { // writer
			defer wg.Done()
			for k := 0; k < perSide; k += 50 {
				if _, err := l.WriteBatch(seqMsgs(l.peer, k, 50, 64)); err != nil {
					if errors.Is(err, net.ErrClosed) {
						return // closed under the writer: also part of the test
					}
					panic(err)
				}
				if k%1000 == 0 {
					l.SetImpairment(Impairment{Loss: 0.02, Jitter: time.Duration(k%3) * time.Millisecond})
					_ = l.Stats()
				}
			}
		}()
		go func() { // reader, until closed
			defer wg.Done()
			msgs := make([]link.Message, 16)
			for j := range msgs {
				msgs[j].Buf = make([]byte, link.MaxPacketSize)
			}
			for {
				n, err := l.ReadBatch(msgs)
				if err != nil {
					return
				}
				recvd[i] += n
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, a.Close())
	require.NoError(t, b.Close())
	wg.Wait()
	require.Positive(t, recvd[0])
	require.Positive(t, recvd[1])
	require.EqualValues(t, recvd[0], a.Stats().Received)
}

func TestHeap(t *testing.T) {
	var h delayHeap
	ats := []int64{5, 1, 9, 1, 3, 7, 3, 0, 8}
	for i, at := range ats {
		h.push(delayed{at: monotimeOf(at), seq: uint64(i)})
	}
	var prev delayed
	for i := 0; len(h) > 0; i++ {
		x := h.pop()
		if i > 0 {
			require.True(t, prev.at < x.at || (prev.at == x.at && prev.seq < x.seq), fmt.Sprint(prev, x))
		}
		prev = x
	}
}

func monotimeOf(ns int64) monotime.Time { return monotime.Time(ns) }
