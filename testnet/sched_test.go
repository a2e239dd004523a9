package testnet

import (
	"encoding/binary"
	"github.com/stretchr/testify/require"
	"testing"
	"time"
)

const ms = int64(time.Millisecond)

// pkt makes a hop frame (virtio-net header + payload) carrying seq.
func pkt(seq uint64, size int) []byte {
	b := make([]byte, vnetHdrLen+max(size, 8))
	binary.BigEndian.PutUint64(b[vnetHdrLen:], seq)
	return b
}

func seqOf(b []byte) uint64 { return binary.BigEndian.Uint64(b[vnetHdrLen:]) }

// drain pops everything due up to end, stepping through the deadlines the
// scheduler reports, and returns sequence numbers with their departure times.
func drain(s *sched, end int64) (seqs []uint64, at []int64) {
	now := int64(0)
	for {
		for _, b := range s.pop(now, nil) {
			seqs = append(seqs, seqOf(b))
			at = append(at, now)
		}
		next, ok := s.next()
		if !ok || next > end {
			return seqs, at
		}
		now = max(now, next)
	}
}

func TestSchedPassThrough(t *testing.T) {
	s := newSched(Impairment{}, false, 0)
	for i := range 5 {
		s.push(0, pkt(uint64(i), 100))
	}
	seqs, at := drain(s, 0)
	require.Equal(t, []uint64{0, 1, 2, 3, 4}, seqs)
	require.Equal(t, []int64{0, 0, 0, 0, 0}, at)
	require.Equal(t, DirStats{}, s.st)
}

func TestSchedDelay(t *testing.T) {
	s := newSched(Impairment{Delay: 10 * time.Millisecond}, false, 0)
	s.push(0, pkt(0, 100))
	s.push(3*ms, pkt(1, 100))
	require.Equal(t, 0, len(s.pop(9*ms, nil)), "nothing leaves before its delay")
	next, ok := s.next()
	require.True(t, ok)
	require.Equal(t, 10*ms, next)
	seqs, at := drain(s, time.Second.Nanoseconds())
	require.Equal(t, []uint64{0, 1}, seqs)
	require.Equal(t, []int64{10 * ms, 13 * ms}, at)
	require.Equal(t, uint64(2), s.st.Delayed)
}

func TestSchedJitterIsSeededAndBounded(t *testing.T) {
	run := func(seed uint64) []uint64 {
		s := newSched(Impairment{Delay: 5 * time.Millisecond, Jitter: 4 * time.Millisecond, Seed: seed}, false, 0)
		for i := range 200 {
			s.push(int64(i)*ms/10, pkt(uint64(i), 100))
		}
		seqs, at := drain(s, time.Second.Nanoseconds())
		require.Equal(t, 200, len(seqs))
		for i, seq := range seqs {
			sent := int64(seq) * ms / 10
			require.True(t, at[i] >= sent+5*ms && at[i] < sent+9*ms, "frame %d left at %d", seq, at[i])
		}
		return seqs
	}
	a, b := run(1), run(1)
	require.Equal(t, a, b, "same seed, same schedule")
	require.NotEqual(t, a, run(2))
	reordered := 0
	for i := 1; i < len(a); i++ {
		if a[i] < a[i-1] {
			reordered++
		}
	}
	require.True(t, reordered > 0, "jitter larger than the gap reorders")
}

func TestSchedReorder(t *testing.T) {
	s := newSched(Impairment{Reorder: 1, Seed: 1}, false, 0)
	// With probability 1 every other frame is held and the next overtakes it.
	for i := range 4 {
		s.push(int64(i)*ms, pkt(uint64(i), 100))
	}
	seqs, _ := drain(s, time.Second.Nanoseconds())
	require.Equal(t, []uint64{1, 0, 3, 2}, seqs)
	require.Equal(t, uint64(2), s.st.Reordered)

	// A held frame with no successor leaves after holdTimeout.
	s = newSched(Impairment{Reorder: 1, Seed: 1}, false, 0)
	s.push(0, pkt(9, 100))
	require.Equal(t, 0, len(s.pop(0, nil)))
	seqs, at := drain(s, time.Second.Nanoseconds())
	require.Equal(t, []uint64{9}, seqs)
	require.Equal(t, []int64{int64(holdTimeout)}, at)
}

func TestSchedDuplicate(t *testing.T) {
	s := newSched(Impairment{Duplicate: 1}, false, 0)
	s.push(0, pkt(0, 100))
	s.push(0, pkt(1, 100))
	seqs, _ := drain(s, 0)
	require.Equal(t, []uint64{0, 0, 1, 1}, seqs)
	require.Equal(t, uint64(2), s.st.Duplicated)

	s = newSched(Impairment{Duplicate: 0.25, Seed: 42}, false, 0)
	const n = 20000
	for i := range n {
		s.push(0, pkt(uint64(i), 100))
	}
	seqs, _ = drain(s, 0)
	require.Equal(t, n+int(s.st.Duplicated), len(seqs))
	require.InDelta(t, 0.25, float64(s.st.Duplicated)/n, 0.015)
}

func TestSchedUserspaceRate(t *testing.T) {
	// 1000-byte frames at 8 Mbit/s: one per millisecond.
	s := newSched(Impairment{Rate: 8_000_000}, true, 0)
	for i := range 10 {
		s.push(0, pkt(uint64(i), 1000))
	}
	seqs, at := drain(s, time.Second.Nanoseconds())
	require.Equal(t, []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, seqs)
	for i := range at {
		require.Equal(t, int64(i)*ms, at[i])
	}
	require.Equal(t, uint64(9), s.st.RateQueued)

	// A blast beyond the 50 ms queue is dropped at the head.
	s = newSched(Impairment{Rate: 8_000_000}, true, 0)
	for i := range 100 {
		s.push(0, pkt(uint64(i), 1000))
	}
	seqs, _ = drain(s, time.Second.Nanoseconds())
	require.Equal(t, 51, len(seqs), "0..50 ms worth leaves")
	require.Equal(t, uint64(49), s.st.RateDropped)
}

func TestSchedQueueLimit(t *testing.T) {
	s := newSched(Impairment{Delay: time.Second}, false, 0)
	small := pkt(0, 8)
	for range maxQueue + 10 {
		s.push(0, small)
	}
	require.Equal(t, uint64(10), s.st.HopDropped)
	require.Equal(t, maxQueue, s.q.Len())
}
