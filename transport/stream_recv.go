package transport

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// Receive-side reassembly. Stream frames arrive with offsets, possibly out of
// order, duplicated or overlapping; recvBuffer turns them back into the byte
// sequence the peer wrote. Every byte is copied once, into a pooled chunk,
// and handed to the application in offset order only.
//
// Flow control bounds the offsets a peer may use, not the memory they cost:
// a peer that sends 1-byte frames at every other offset below its limit,
// in descending order, needs no new credit, makes nothing readable, and once
// pinned a whole chunk per byte (gigabytes per connection) while every
// insert shifted the segment array (quadratic work on the endpoint's one
// receive goroutine). So reassembly is bounded by what it holds:
//
//   - every segment is charged what it really costs, its chunk plus
//     segOverhead, to the stream (recvBuffer.charged) and to the connection
//     (Conn.reasmCharged), which closes with a protocol error above
//     2 × ConnectionReceiveWindow (maxReassemblyCharge);
//   - adjacent data is coalesced: appended to the chunk of the segment it
//     follows, or written in front of the segment it precedes, and two
//     segments that come to touch are merged when they fit one chunk; so
//     contiguous data costs about its size whatever order it came in;
//   - a stream holds at most maxSegmentsFor(window) segments
//     (errReassemblySegments);
//   - segments live in a treap ordered by offset: insert, lookup and delete
//     are O(log n) and nothing is shifted.
//
// An honest peer stays far below both limits: its data is at most the
// connection window, in segments of about a packet each.

// chunkSize is the capacity of a pooled reassembly chunk: one packet's worth.
const chunkSize = 1500

// segOverhead is what a segment costs beyond its chunk: its treap node, its
// free-list slot and the pool's bookkeeping, rounded up.
const segOverhead = 64

// segCost is the charge of one segment.
const segCost = chunkSize + segOverhead

var chunkPool = sync.Pool{New: func() any { return new([chunkSize]byte) }}

// Reassembly limits a peer exceeded: the connection closes with a protocol
// error.
var (
	errReassemblySegments = errors.New("stream reassembly: too many out-of-order segments on one stream")
	errReassemblyMemory   = errors.New("stream reassembly: buffered data exceeds twice the connection window")
)

// maxSegmentsFor is the per-stream segment cap for a stream window: room for
// a window fragmented into 1 KiB pieces, and never below 1024. An honest
// sender's segments are about a packet each and there are at most a few per
// loss, so it cannot reach this.
func maxSegmentsFor(streamWindow uint64) int {
	return int(max(1024, min(streamWindow/1024, 1<<20)))
}

// maxReassemblyCharge is the most a connection's reassembly may hold, in
// charged bytes (data chunks plus per-segment overhead).
func maxReassemblyCharge(connWindow uint64) int64 {
	return int64(min(2*connWindow, 1<<62))
}

// segment is one contiguous run of received bytes and its treap node.
type segment struct {
	offset      uint64 // stream offset of data[0]
	data        []byte // chunk[chunkSize-cap(data) : …]: reading advances its start
	chunk       *[chunkSize]byte
	left, right int32 // children (indexes into recvBuffer.nodes), 0: none
	prio        uint32
}

func (s *segment) end() uint64 { return s.offset + uint64(len(s.data)) }

// grow makes room for n more bytes behind data (moving data to the chunk's
// start if the tail is short) and returns the extended data; the caller
// checked len(data)+n <= chunkSize.
func (s *segment) grow(n int) []byte {
	k := len(s.data)
	if cap(s.data)-k < n {
		copy(s.chunk[:], s.data)
		s.data = s.chunk[:k]
	}
	s.data = s.data[:k+n]
	return s.data
}

// prepend writes p in front of data; the caller checked
// len(data)+len(p) <= chunkSize.
func (s *segment) prepend(p []byte) {
	k, n := len(s.data), len(p)
	start := chunkSize - cap(s.data)
	if start < n {
		copy(s.chunk[n:], s.data)
		start = n
	}
	s.data = s.chunk[start-n : start+k]
	copy(s.data, p)
}

// recvBuffer holds received but unread stream data: disjoint, non-empty
// segments in a treap keyed by offset, all at or above readOffset. It is
// guarded by the owning stream's mutex. The zero value is an empty buffer
// with the minimum segment cap and no connection counter (see init).
type recvBuffer struct {
	nodes []segment // arena of treap nodes; nodes[0] is unused so 0 means none
	free  []int32   // free slots of nodes
	root  int32
	count int // live segments
	rng   uint32

	readOffset uint64 // next byte the application reads
	highest    uint64 // highest offset+len received
	buffered   int    // data bytes held
	charged    int64  // segments × segCost held
	maxSegs    int
	acct       *atomic.Int64 // the connection's total charge (nil: none)
}

// init sets the per-stream segment cap and the connection counter charged
// alongside the stream (nil in unit tests of the buffer alone).
func (b *recvBuffer) init(maxSegs int, acct *atomic.Int64) {
	b.maxSegs = maxSegs
	b.acct = acct
}

// insert copies data at offset into the buffer, dropping bytes already
// received or already read. It returns how far the highest received offset
// grew (for connection-level flow control). It fails with
// errReassemblySegments when the data would need more than the stream's
// segment cap; what fitted is kept (the caller closes the connection).
func (b *recvBuffer) insert(offset uint64, data []byte) (grew uint64, err error) {
	end := offset + uint64(len(data))
	if end > b.highest {
		grew = end - b.highest
		b.highest = end
	}
	if end <= b.readOffset {
		return grew, nil
	}
	if offset < b.readOffset {
		data = data[b.readOffset-offset:]
		offset = b.readOffset
	}
	for len(data) > 0 {
		p := b.floor(offset) // last segment starting at or before offset
		if p != 0 {
			if pe := b.nodes[p].end(); pe > offset {
				// offset is inside p: skip the covered bytes.
				covered := pe - offset
				if covered >= uint64(len(data)) {
					return grew, nil
				}
				data, offset = data[covered:], pe
				continue
			}
		}
		// offset starts a gap, up to the next segment (or the end).
		next := b.after(offset)
		n := uint64(len(data))
		if next != 0 {
			n = min(n, b.nodes[next].offset-offset)
		}
		switch {
		case p != 0 && b.nodes[p].end() == offset && len(b.nodes[p].data) < chunkSize:
			// Append to the segment this data follows.
			ps := &b.nodes[p]
			m := min(n, uint64(chunkSize-len(ps.data)))
			k := len(ps.data)
			copy(ps.grow(int(m))[k:], data[:m])
			n = m
			if next != 0 && ps.end() == b.nodes[next].offset {
				b.tryMerge(p, next)
			}
		case next != 0 && offset+n == b.nodes[next].offset && int(n)+len(b.nodes[next].data) <= chunkSize:
			// Write in front of the segment this data precedes. Its key
			// moves down into the gap it fills, so the order holds.
			ns := &b.nodes[next]
			ns.prepend(data[:n])
			ns.offset = offset
		default:
			if limit := b.maxSegs; b.count >= limit && limit > 0 || limit == 0 && b.count >= 1024 {
				return grew, errReassemblySegments
			}
			n = min(n, chunkSize)
			c := chunkPool.Get().(*[chunkSize]byte)
			copy(c[:n], data[:n])
			b.add(segment{offset: offset, data: c[:n], chunk: c})
		}
		b.buffered += int(n)
		data, offset = data[n:], offset+n
	}
	return grew, nil
}

// tryMerge folds segment q into its predecessor p when they touch and fit
// one chunk.
func (b *recvBuffer) tryMerge(p, q int32) {
	ps, qs := &b.nodes[p], &b.nodes[q]
	if len(ps.data)+len(qs.data) > chunkSize {
		return
	}
	k := len(ps.data)
	copy(ps.grow(len(qs.data))[k:], qs.data)
	b.remove(qs.offset)
}

// readable reports whether contiguous bytes can be read now.
func (b *recvBuffer) readable() bool {
	m := b.first()
	return m != 0 && b.nodes[m].offset == b.readOffset
}

// read copies contiguous data into p.
func (b *recvBuffer) read(p []byte) int {
	n := 0
	for n < len(p) {
		i := b.first()
		if i == 0 || b.nodes[i].offset != b.readOffset {
			break
		}
		s := &b.nodes[i]
		m := copy(p[n:], s.data)
		n += m
		b.readOffset += uint64(m)
		b.buffered -= m
		if m == len(s.data) {
			b.remove(s.offset)
		} else {
			// Still the first segment: its key may move up in place.
			s.data = s.data[m:]
			s.offset += uint64(m)
		}
	}
	return n
}

// release returns all chunks to the pool (stream reset, read cancelled or
// connection closed).
func (b *recvBuffer) release() {
	for i := range b.nodes {
		if c := b.nodes[i].chunk; c != nil {
			chunkPool.Put(c)
		}
	}
	b.charge(-b.charged)
	b.nodes, b.free, b.root, b.count = nil, nil, 0, 0
	b.buffered = 0
}

func (b *recvBuffer) charge(d int64) {
	b.charged += d
	if b.acct != nil {
		b.acct.Add(d)
	}
}

// add inserts s (whose range is free) as a new segment.
func (b *recvBuffer) add(s segment) {
	var i int32
	if n := len(b.free); n > 0 {
		i = b.free[n-1]
		b.free = b.free[:n-1]
	} else {
		if len(b.nodes) == 0 {
			b.nodes = append(b.nodes, segment{}) // the unused slot 0
		}
		b.nodes = append(b.nodes, segment{})
		i = int32(len(b.nodes) - 1)
	}
	if b.rng == 0 {
		// Seeded unpredictably (math/rand/v2 is randomly seeded per
		// process): with known priorities a peer could order its offsets
		// to make the treap a list and every operation linear.
		b.rng = rand.Uint32() | 1
	}
	b.rng ^= b.rng << 13
	b.rng ^= b.rng >> 17
	b.rng ^= b.rng << 5
	s.left, s.right, s.prio = 0, 0, b.rng
	b.nodes[i] = s
	l, r := b.split(b.root, s.offset)
	b.root = b.merge(b.merge(l, i), r)
	b.count++
	b.charge(segCost)
}

// remove deletes the segment starting at off and returns its chunk to the
// pool.
func (b *recvBuffer) remove(off uint64) {
	l, r := b.split(b.root, off)
	m, r := b.split(r, off+1)
	b.root = b.merge(l, r)
	if m == 0 {
		return
	}
	chunkPool.Put(b.nodes[m].chunk)
	b.nodes[m] = segment{}
	b.count--
	b.charge(-segCost)
	if b.count == 0 {
		// Empty: reuse the arena from the start, as the sorted array it
		// replaced did (a bulk reader that lags buffers thousands of
		// segments; regrowing the arena each time it drains showed up as
		// most of the receive path's allocations). release frees it.
		b.nodes, b.free, b.root = b.nodes[:0], b.free[:0], 0
		return
	}
	b.free = append(b.free, m)
}

// split cuts treap t into the segments below key and those at or above it.
func (b *recvBuffer) split(t int32, key uint64) (l, r int32) {
	if t == 0 {
		return 0, 0
	}
	n := &b.nodes[t]
	if n.offset < key {
		n.right, r = b.split(n.right, key)
		return t, r
	}
	l, n.left = b.split(n.left, key)
	return l, t
}

// merge joins treaps x and y, every key of x below every key of y.
func (b *recvBuffer) merge(x, y int32) int32 {
	if x == 0 {
		return y
	}
	if y == 0 {
		return x
	}
	if b.nodes[x].prio > b.nodes[y].prio {
		b.nodes[x].right = b.merge(b.nodes[x].right, y)
		return x
	}
	b.nodes[y].left = b.merge(x, b.nodes[y].left)
	return y
}

// floor is the segment with the largest offset ≤ key, or 0.
func (b *recvBuffer) floor(key uint64) int32 {
	best := int32(0)
	for t := b.root; t != 0; {
		if b.nodes[t].offset <= key {
			best, t = t, b.nodes[t].right
		} else {
			t = b.nodes[t].left
		}
	}
	return best
}

// after is the segment with the smallest offset > key, or 0.
func (b *recvBuffer) after(key uint64) int32 {
	best := int32(0)
	for t := b.root; t != 0; {
		if b.nodes[t].offset > key {
			best, t = t, b.nodes[t].left
		} else {
			t = b.nodes[t].right
		}
	}
	return best
}

// first is the segment with the smallest offset, or 0.
func (b *recvBuffer) first() int32 {
	t := b.root
	if t == 0 {
		return 0
	}
	for b.nodes[t].left != 0 {
		t = b.nodes[t].left
	}
	return t
}
