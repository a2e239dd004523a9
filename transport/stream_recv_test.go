package transport

import (
	"bytes"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// checkTreap verifies the buffer's structure: in-order keys, disjoint
// non-empty segments at or above readOffset, heap-ordered priorities, and
// counters that match the segments.
func checkTreap(t *testing.T, b *recvBuffer) {
	t.Helper()
	var prevEnd uint64
	first := true
	count, bytesHeld := 0, 0
	var walk func(i int32)
	walk = func(i int32) {
		if i == 0 {
			return
		}
		n := &b.nodes[i]
		for _, c := range []int32{n.left, n.right} {
			if c != 0 {
				require.LessOrEqual(t, b.nodes[c].prio, n.prio, "heap order")
			}
		}
		walk(n.left)
		require.NotEmpty(t, n.data)
		require.GreaterOrEqual(t, n.offset, b.readOffset)
		if !first {
			require.GreaterOrEqual(t, n.offset, prevEnd, "segments overlap or are out of order")
		}
		first, prevEnd = false, n.end()
		count++
		bytesHeld += len(n.data)
		walk(n.right)
	}
	walk(b.root)
	require.Equal(t, b.count, count)
	require.Equal(t, b.buffered, bytesHeld)
	require.Equal(t, int64(count)*segCost, b.charged)
}

// Random frames (overlapping, duplicated, out of order, some below the read
// offset) interleaved with reads reproduce the stream exactly.
func TestRecvBufferRandomModel(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 1))
		size := 1 + r.IntN(64<<10)
		want := randomData(seed, size)
		var acct atomic.Int64
		var b recvBuffer
		b.init(1<<20, &acct)
		var got []byte
		buf := make([]byte, 3000)
		for len(got) < size {
			off := r.IntN(size)
			n := 1 + r.IntN(min(size-off, []int{1, 8, 1400, 4000}[r.IntN(4)]))
			if r.IntN(4) == 0 && len(got) < size { // favour the next bytes needed
				off = len(got)
				n = min(n, size-off)
			}
			_, err := b.insert(uint64(off), want[off:off+n])
			require.NoError(t, err)
			checkTreap(t, &b)
			require.Equal(t, b.charged, acct.Load())
			if r.IntN(3) == 0 {
				k := b.read(buf[:1+r.IntN(len(buf)-1)])
				got = append(got, buf[:k]...)
				checkTreap(t, &b)
			}
		}
		require.True(t, bytes.Equal(want, got), "seed %d", seed)
		require.Zero(t, b.count)
		require.Zero(t, acct.Load())
	}
}

// The attack the bounds are for: 1-byte frames in descending order below
// the highest offset. Adjacent bytes coalesce into full chunks, so they cost
// about their size; non-adjacent ones cost a segment each and hit the cap.
func TestRecvBufferDescendingBytes(t *testing.T) {
	const window = 256 << 10
	data := randomData(3, window)
	var acct atomic.Int64
	var b recvBuffer
	b.init(maxSegmentsFor(window), &acct)
	_, err := b.insert(window-1, data[window-1:])
	require.NoError(t, err)
	for off := window - 2; off >= 1; off-- {
		_, err := b.insert(uint64(off), data[off:off+1])
		require.NoError(t, err)
	}
	// Everything but byte 0: ~window/chunkSize full chunks.
	require.Equal(t, window-1, b.buffered)
	require.LessOrEqual(t, b.count, window/chunkSize+2)
	require.LessOrEqual(t, acct.Load(), int64(window)*11/10, "coalesced data costs about its size")
	_, err = b.insert(0, data[:1])
	require.NoError(t, err)
	out := make([]byte, window+10)
	require.Equal(t, window, b.read(out))
	require.Equal(t, data, out[:window])
	require.Zero(t, acct.Load())

	// Every other byte: nothing can coalesce; the segment cap stops it.
	var b2 recvBuffer
	b2.init(maxSegmentsFor(window), &acct)
	var failed error
	for off := window - 1; off >= 0 && failed == nil; off -= 2 {
		_, failed = b2.insert(uint64(off), data[off:off+1])
	}
	require.ErrorIs(t, failed, errReassemblySegments)
	require.Equal(t, maxSegmentsFor(window), b2.count)
	// Balanced whatever the insertion order: depth stays logarithmic
	// (1024 segments: log2 = 10).
	require.Less(t, treapDepth(&b2, b2.root), 40)
	b2.release()
	require.Zero(t, acct.Load())
}

// BenchmarkRecvBufferDescendingSparse inserts 1-byte frames at every other
// offset, descending: the worst case for an array kept sorted by shifting
// (each insert at the front), O(log n) per insert in the treap.
func BenchmarkRecvBufferDescendingSparse(b *testing.B) {
	const segs = 1 << 16
	data := []byte{1}
	for b.Loop() {
		var rb recvBuffer
		rb.init(1<<20, nil)
		for i := segs; i > 0; i-- {
			if _, err := rb.insert(uint64(2*i), data); err != nil {
				b.Fatal(err)
			}
		}
		rb.release()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*segs), "ns/insert")
}

// BenchmarkRecvBufferInOrder is the common case: packet-sized frames in
// order, read as they come.
func BenchmarkRecvBufferInOrder(b *testing.B) {
	data := make([]byte, 1400)
	out := make([]byte, 64<<10)
	var rb recvBuffer
	rb.init(1<<20, nil)
	off := uint64(0)
	b.SetBytes(1400)
	for i := 0; b.Loop(); i++ {
		if _, err := rb.insert(off, data); err != nil {
			b.Fatal(err)
		}
		off += 1400
		if i%32 == 31 {
			for rb.readable() {
				rb.read(out)
			}
		}
	}
}

func treapDepth(b *recvBuffer, i int32) int {
	if i == 0 {
		return 0
	}
	return 1 + max(treapDepth(b, b.nodes[i].left), treapDepth(b, b.nodes[i].right))
}
