package transport

import (
	"sort"
	"sync"
)

// Receive-side reassembly. Stream frames arrive with offsets, possibly out of
// order, duplicated or overlapping; recvBuffer turns them back into the byte
// sequence the peer wrote. Every byte is copied once, into a pooled chunk,
// and handed to the application in offset order only.

// chunkSize is the capacity of a pooled reassembly chunk: one packet's worth.
const chunkSize = 1500

var chunkPool = sync.Pool{New: func() any { return new([chunkSize]byte) }}

type segment struct {
	offset uint64 // stream offset of data[0]
	data   []byte // slice of chunk
	chunk  *[chunkSize]byte
}

// recvBuffer holds received but unread stream data, sorted by offset, with
// overlaps trimmed on insert. It is guarded by the owning stream's mutex.
type recvBuffer struct {
	// segs[head:] are the live segments. Reading advances head instead of
	// shifting the slice (a full window is thousands of segments, and
	// shifting on every read was quadratic); the dead prefix is compacted
	// away once it is half the slice, so the backing array is reused and
	// steady state allocates nothing.
	segs       []segment
	head       int
	readOffset uint64 // next byte the application reads
	highest    uint64 // highest offset+len received
	buffered   int    // bytes held (for stats and memory bounds)
}

// insert copies data at offset into the buffer, dropping bytes already
// received or already read. It returns how far the highest received offset
// grew (for connection-level flow control).
func (b *recvBuffer) insert(offset uint64, data []byte) (grew uint64) {
	end := offset + uint64(len(data))
	if end > b.highest {
		grew = end - b.highest
		b.highest = end
	}
	if end <= b.readOffset {
		return grew
	}
	if offset < b.readOffset {
		data = data[b.readOffset-offset:]
		offset = b.readOffset
	}
	for len(data) > 0 {
		// Find the first segment ending after offset.
		i := b.head + sort.Search(len(b.segs)-b.head, func(i int) bool {
			s := b.segs[b.head+i]
			return s.offset+uint64(len(s.data)) > offset
		})
		if i < len(b.segs) && b.segs[i].offset <= offset {
			// offset is inside segment i: skip the covered bytes.
			covered := b.segs[i].offset + uint64(len(b.segs[i].data)) - offset
			if covered >= uint64(len(data)) {
				return grew
			}
			data = data[covered:]
			offset += covered
			continue
		}
		// Free space from offset up to the next segment (or the end).
		n := uint64(len(data))
		if i < len(b.segs) && b.segs[i].offset-offset < n {
			n = b.segs[i].offset - offset
		}
		if n > chunkSize {
			n = chunkSize
		}
		c := chunkPool.Get().(*[chunkSize]byte)
		copy(c[:n], data[:n])
		b.segs = append(b.segs, segment{})
		copy(b.segs[i+1:], b.segs[i:])
		b.segs[i] = segment{offset: offset, data: c[:n], chunk: c}
		b.buffered += int(n)
		data = data[n:]
		offset += n
	}
	return grew
}

// readable reports how many contiguous bytes can be read now.
func (b *recvBuffer) readable() bool {
	return b.head < len(b.segs) && b.segs[b.head].offset == b.readOffset
}

// read copies contiguous data into p.
func (b *recvBuffer) read(p []byte) int {
	n := 0
	for n < len(p) && b.head < len(b.segs) && b.segs[b.head].offset == b.readOffset {
		s := &b.segs[b.head]
		m := copy(p[n:], s.data)
		n += m
		b.readOffset += uint64(m)
		b.buffered -= m
		if m == len(s.data) {
			chunkPool.Put(s.chunk)
			*s = segment{}
			b.head++
		} else {
			s.data = s.data[m:]
			s.offset += uint64(m)
		}
	}
	if b.head == len(b.segs) {
		b.segs, b.head = b.segs[:0], 0
	} else if b.head > len(b.segs)/2 {
		k := copy(b.segs, b.segs[b.head:])
		clear(b.segs[k:])
		b.segs, b.head = b.segs[:k], 0
	}
	return n
}

// release returns all chunks to the pool (stream reset or closed).
func (b *recvBuffer) release() {
	for i := b.head; i < len(b.segs); i++ {
		chunkPool.Put(b.segs[i].chunk)
	}
	b.segs, b.head = nil, 0
	b.buffered = 0
}
