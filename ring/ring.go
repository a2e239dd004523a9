// Package ring implements the four single-producer/single-consumer rings that
// an AF_XDP socket shares with the kernel: fill and completion (entries are
// u64 UMEM addresses) and RX and TX (entries are struct xdp_desc).
//
// Each ring is a power-of-two array plus a producer and a consumer index
// living in memory mapped from the socket. The indices are free-running u32
// values: the number of entries in the ring is producer - consumer (modulo
// 2^32), and the slot of index i is i & mask. The kernel side is in
// net/xdp/xsk_queue.h; the memory ordering there is "write entries, then
// smp_store_release(producer)" and "smp_load_acquire(producer), then read
// entries", so every access to a shared index here goes through sync/atomic
// (a plain load/store is only correct on x86's TSO, not on arm64).
//
// One side of each ring is ours and one is the kernel's:
//
//	ring        we write   kernel writes   entries
//	Fill        producer   consumer        u64 addr   (we give frames to the kernel for RX)
//	Completion  consumer   producer        u64 addr   (the kernel returns sent TX frames)
//	RX          consumer   producer        Desc       (received frames)
//	TX          producer   consumer        Desc       (frames to send)
//
// Each side keeps a cached copy of the other side's index and re-reads the
// shared one only when the cached value says the ring is full (producer) or
// empty (consumer), which keeps cache-line traffic with the kernel low.
//
// A ring is used by one goroutine at a time; the rings do no locking.
//
// Usage, producer side (Fill, TX):
//
//	idx, n := fill.Reserve(want)      // n <= want free slots starting at idx
//	for i := range n { fill.Set(idx+i, addr) }
//	fill.Submit(n)                    // publishes them to the kernel
//
// Usage, consumer side (Completion, RX):
//
//	idx, n := rx.Peek(max)            // n <= max filled slots starting at idx
//	for i := range n { d := rx.Desc(idx + i); ... }
//	rx.Release(n)                     // gives the slots back to the kernel
package ring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Desc is struct xdp_desc (linux/if_xdp.h) as x/sys defines it: a frame's
// UMEM address, its length and option bits. It is the entry type of the RX
// and TX rings.
type Desc = unix.XDPDesc

// DescSize is the size of one RX/TX ring entry in bytes.
const DescSize = int(unsafe.Sizeof(Desc{}))

// AddrSize is the size of one fill/completion ring entry in bytes.
const AddrSize = 8

// NeedWakeup is the XDP_RING_NEED_WAKEUP bit of a ring's flags word.
const NeedWakeup = unix.XDP_RING_NEED_WAKEUP

// Offsets locates a ring's parts inside its mapping: struct xdp_ring_offset
// as x/sys defines it, one of the four members of the XDP_MMAP_OFFSETS
// answer (unix.XDPMmapOffsets).
type Offsets = unix.XDPRingOffset

// ErrLayout is wrapped by the constructors when the mapping does not fit the
// requested ring.
var ErrLayout = errors.New("ring: bad layout")

// shared holds the pointers into the mapping common to all rings.
type shared struct {
	producer *uint32 // see the owning type for who writes it
	consumer *uint32
	flags    *uint32 // written by the kernel only
	entries  unsafe.Pointer
	mask     uint32
	size     uint32
}

func newShared(mem []byte, off Offsets, size uint32, entrySize int) (shared, error) {
	if size == 0 || size&(size-1) != 0 {
		return shared{}, fmt.Errorf("%w: size %d is not a power of two", ErrLayout, size)
	}
	need := off.Desc + uint64(size)*uint64(entrySize)
	for _, o := range []uint64{off.Producer, off.Consumer, off.Flags} {
		if o%4 != 0 || o+4 > uint64(len(mem)) {
			return shared{}, fmt.Errorf("%w: index offset %d outside %d-byte mapping or unaligned", ErrLayout, o, len(mem))
		}
	}
	if need > uint64(len(mem)) || off.Desc%8 != 0 {
		return shared{}, fmt.Errorf("%w: %d entries at offset %d need %d bytes, mapping has %d", ErrLayout, size, off.Desc, need, len(mem))
	}
	base := unsafe.Pointer(unsafe.SliceData(mem))
	if uintptr(base)%8 != 0 {
		return shared{}, fmt.Errorf("%w: mapping not 8-byte aligned", ErrLayout)
	}
	return shared{
		producer: (*uint32)(unsafe.Add(base, off.Producer)),
		consumer: (*uint32)(unsafe.Add(base, off.Consumer)),
		flags:    (*uint32)(unsafe.Add(base, off.Flags)),
		entries:  unsafe.Add(base, off.Desc),
		mask:     size - 1,
		size:     size,
	}, nil
}

// producer is the half of a ring where we write the producer index and the
// other side (the kernel) writes the consumer index.
//
// Invariant: cachedCons - cachedProd is the number of free slots we know of,
// never more than the real number, and cachedProd equals the shared producer
// index (we are its only writer).
type producer struct {
	shared
	cachedProd uint32 // == *producer; only we write it
	cachedCons uint32 // last consumer index read, plus size
}

func (p *producer) init() {
	p.cachedProd = atomic.LoadUint32(p.producer)
	p.cachedCons = atomic.LoadUint32(p.consumer) + p.size
}

// Reserve returns the index of the first free slot and how many of up to n
// consecutive slots are free. It does not publish anything; fill the slots
// and call Submit.
func (p *producer) Reserve(n uint32) (idx, got uint32) {
	free := p.cachedCons - p.cachedProd
	if free < n {
		// Acquire: the consumer has finished reading the slots it released.
		p.cachedCons = atomic.LoadUint32(p.consumer) + p.size
		free = p.cachedCons - p.cachedProd
	}
	return p.cachedProd, min(free, n)
}

// Submit publishes n slots, previously reserved and filled, to the consumer.
// Submitting more than was reserved is a bug and panics.
func (p *producer) Submit(n uint32) {
	if n > p.cachedCons-p.cachedProd {
		panic(fmt.Sprintf("ring: submit %d with only %d reserved", n, p.cachedCons-p.cachedProd))
	}
	p.cachedProd += n
	// Release: entries are written before the consumer sees the index.
	atomic.StoreUint32(p.producer, p.cachedProd)
}

// Free returns the number of free slots, re-reading the consumer index.
func (p *producer) Free() uint32 {
	p.cachedCons = atomic.LoadUint32(p.consumer) + p.size
	return p.cachedCons - p.cachedProd
}

// Queued returns how many entries the consumer has not yet consumed, from
// both shared indices. It only loads atomically, so any goroutine may call
// it (for statistics) while the owner uses the ring; the answer may be stale
// by the time it returns.
func (s *shared) Queued() uint32 {
	q := atomic.LoadUint32(s.producer) - atomic.LoadUint32(s.consumer)
	return min(q, s.size)
}

// NeedWakeup reports whether the kernel asked, through the ring's flags, to
// be woken by a syscall before it will process more entries
// (XDP_USE_NEED_WAKEUP).
func (p *producer) NeedWakeup() bool { return atomic.LoadUint32(p.flags)&NeedWakeup != 0 }

// Size is the number of slots.
func (p *producer) Size() uint32 { return p.size }

// consumer is the half of a ring where the other side (the kernel) writes
// the producer index and we write the consumer index.
//
// Invariant: cachedProd - cachedCons is the number of filled slots we know
// of, never more than the real number, and cachedCons equals the shared
// consumer index.
type consumer struct {
	shared
	cachedCons uint32 // == *consumer; only we write it
	cachedProd uint32 // last producer index read
}

func (c *consumer) init() {
	c.cachedCons = atomic.LoadUint32(c.consumer)
	c.cachedProd = atomic.LoadUint32(c.producer)
}

// Peek returns the index of the first filled slot and how many of up to n
// consecutive slots are filled. The slots stay ours to read until Release.
func (c *consumer) Peek(n uint32) (idx, got uint32) {
	avail := c.cachedProd - c.cachedCons
	if avail < n {
		// Acquire: entries written before the producer index are visible.
		c.cachedProd = atomic.LoadUint32(c.producer)
		avail = c.cachedProd - c.cachedCons
	}
	if avail > c.size {
		// Only a misbehaving producer can get here; report nothing rather
		// than read garbage.
		return c.cachedCons, 0
	}
	return c.cachedCons, min(avail, n)
}

// Release returns n peeked slots to the producer. Releasing more than is
// filled is a bug and panics.
func (c *consumer) Release(n uint32) {
	if n > c.cachedProd-c.cachedCons {
		panic(fmt.Sprintf("ring: release %d with only %d peeked", n, c.cachedProd-c.cachedCons))
	}
	c.cachedCons += n
	// Release: we are done reading the slots before the producer reuses them.
	atomic.StoreUint32(c.consumer, c.cachedCons)
}

// Size is the number of slots.
func (c *consumer) Size() uint32 { return c.size }

func (s *shared) addr(idx uint32) *uint64 {
	return (*uint64)(unsafe.Add(s.entries, uintptr(idx&s.mask)*AddrSize))
}

func (s *shared) desc(idx uint32) *Desc {
	return (*Desc)(unsafe.Add(s.entries, uintptr(idx&s.mask)*uintptr(DescSize)))
}

// Fill is the fill ring: we produce UMEM frame addresses for the kernel to
// receive into. We write the producer index, the kernel writes the consumer
// index, and the kernel sets NeedWakeup in the flags.
type Fill struct{ producer }

// NewFill maps a fill ring of size entries onto mem at off.
func NewFill(mem []byte, off Offsets, size uint32) (*Fill, error) {
	s, err := newShared(mem, off, size, AddrSize)
	if err != nil {
		return nil, fmt.Errorf("fill ring: %w", err)
	}
	r := &Fill{producer{shared: s}}
	r.init()
	return r, nil
}

// Set writes the frame address of reserved slot idx.
func (r *Fill) Set(idx uint32, addr uint64) { *r.addr(idx) = addr }

// Completion is the completion ring: the kernel produces the addresses of TX
// frames it has finished sending. The kernel writes the producer index, we
// write the consumer index.
type Completion struct{ consumer }

// NewCompletion maps a completion ring of size entries onto mem at off.
func NewCompletion(mem []byte, off Offsets, size uint32) (*Completion, error) {
	s, err := newShared(mem, off, size, AddrSize)
	if err != nil {
		return nil, fmt.Errorf("completion ring: %w", err)
	}
	r := &Completion{consumer{shared: s}}
	r.init()
	return r, nil
}

// Addr reads the frame address of peeked slot idx.
func (r *Completion) Addr(idx uint32) uint64 { return *r.addr(idx) }

// RX is the receive ring: the kernel produces descriptors of received
// frames. The kernel writes the producer index, we write the consumer index.
type RX struct{ consumer }

// NewRX maps an RX ring of size entries onto mem at off.
func NewRX(mem []byte, off Offsets, size uint32) (*RX, error) {
	s, err := newShared(mem, off, size, DescSize)
	if err != nil {
		return nil, fmt.Errorf("rx ring: %w", err)
	}
	r := &RX{consumer{shared: s}}
	r.init()
	return r, nil
}

// Desc reads the descriptor of peeked slot idx.
func (r *RX) Desc(idx uint32) Desc { return *r.desc(idx) }

// TX is the transmit ring: we produce descriptors of frames to send. We
// write the producer index, the kernel writes the consumer index, and the
// kernel sets NeedWakeup in the flags.
type TX struct{ producer }

// NewTX maps a TX ring of size entries onto mem at off.
func NewTX(mem []byte, off Offsets, size uint32) (*TX, error) {
	s, err := newShared(mem, off, size, DescSize)
	if err != nil {
		return nil, fmt.Errorf("tx ring: %w", err)
	}
	r := &TX{producer{shared: s}}
	r.init()
	return r, nil
}

// Set writes the descriptor of reserved slot idx.
func (r *TX) Set(idx uint32, d Desc) { *r.desc(idx) = d }
