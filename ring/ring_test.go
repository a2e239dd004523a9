package ring

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"
)

var testOff = Offsets{Producer: 0, Consumer: 64, Flags: 128, Desc: 192}

// newMem backs a ring with Go memory, 8-byte aligned like an mmap.
func newMem(size uint32, entry int) []byte {
	n := int(testOff.Desc) + int(size)*entry
	words := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), n)
}

// kernel plays the kernel's side of a ring over the same memory.
type kernel struct {
	mem  []byte
	size uint32
}

func (k kernel) u32(off uint64) *uint32 { return (*uint32)(unsafe.Pointer(&k.mem[off])) }
func (k kernel) prod() uint32           { return atomic.LoadUint32(k.u32(testOff.Producer)) }
func (k kernel) cons() uint32           { return atomic.LoadUint32(k.u32(testOff.Consumer)) }
func (k kernel) setProd(v uint32)       { atomic.StoreUint32(k.u32(testOff.Producer), v) }
func (k kernel) setCons(v uint32)       { atomic.StoreUint32(k.u32(testOff.Consumer), v) }
func (k kernel) addr(i uint32) *uint64 {
	return (*uint64)(unsafe.Pointer(&k.mem[testOff.Desc+uint64(i&(k.size-1))*AddrSize]))
}
func (k kernel) desc(i uint32) *Desc {
	return (*Desc)(unsafe.Pointer(&k.mem[testOff.Desc+uint64(i&(k.size-1))*uint64(DescSize)]))
}

func TestLayoutErrors(t *testing.T) {
	mem := newMem(8, AddrSize)
	for _, tc := range []struct {
		name string
		off  Offsets
		size uint32
	}{
		{"zero size", testOff, 0},
		{"not power of two", testOff, 6},
		{"too many entries", testOff, 16},
		{"producer outside", Offsets{Producer: 4096, Consumer: 64, Flags: 128, Desc: 192}, 8},
		{"unaligned index", Offsets{Producer: 2, Consumer: 64, Flags: 128, Desc: 192}, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewFill(mem, tc.off, tc.size)
			errIs(t, err, ErrLayout)
		})
	}
	equal(t, 16, DescSize)
}

func TestFillFullEmptyWrap(t *testing.T) {
	const size = 8
	mem := newMem(size, AddrSize)
	k := kernel{mem, size}
	// Start near the u32 wrap point so the free-running indices overflow.
	start := uint32(1<<32 - 5)
	k.setProd(start)
	k.setCons(start)
	f, err := NewFill(mem, testOff, size)
	noErr(t, err)

	next := uint64(0)
	for round := range 10 {
		idx, n := f.Reserve(size + 3)
		equal(t, uint32(size), n, "empty ring has all slots free, round ", round)
		for i := range n {
			f.Set(idx+i, next+uint64(i))
		}
		f.Submit(n)
		_, n = f.Reserve(1)
		equal(t, uint32(0), n, "full ring")
		equal(t, uint32(0), f.Free())

		// Kernel consumes in two uneven batches.
		c := k.cons()
		equal(t, uint32(size), k.prod()-c)
		for i := range uint32(3) {
			equal(t, next+uint64(i), *k.addr(c + i))
		}
		k.setCons(c + 3)
		_, n = f.Reserve(5)
		equal(t, uint32(3), n, "only released slots are free")
		for i := uint32(3); i < size; i++ {
			equal(t, next+uint64(i), *k.addr(c + i))
		}
		k.setCons(c + size)
		next += size
	}
	equal(t, true, k.prod() < start, "indices wrapped")
}

func TestFillNeedWakeup(t *testing.T) {
	mem := newMem(4, AddrSize)
	f, err := NewFill(mem, testOff, 4)
	noErr(t, err)
	equal(t, false, f.NeedWakeup())
	atomic.StoreUint32(kernel{mem, 4}.u32(testOff.Flags), NeedWakeup)
	equal(t, true, f.NeedWakeup())
}

func TestRXPeekRelease(t *testing.T) {
	const size = 16
	mem := newMem(size, DescSize)
	k := kernel{mem, size}
	start := uint32(1<<32 - 7)
	k.setProd(start)
	k.setCons(start)
	r, err := NewRX(mem, testOff, size)
	noErr(t, err)

	_, n := r.Peek(4)
	equal(t, uint32(0), n, "empty")
	seq := uint64(0)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		// Kernel produces a random batch into the free space.
		free := size - (k.prod() - k.cons())
		batch := rng.Uint32N(free + 1)
		p := k.prod()
		for i := range batch {
			*k.desc(p + i) = Desc{Addr: seq + uint64(i), Len: uint32(seq) + i, Options: 7}
		}
		k.setProd(p + batch)
		seq += uint64(batch)
		// We consume in random batch sizes until empty.
		for {
			idx, n := r.Peek(rng.Uint32N(size) + 1)
			if n == 0 {
				break
			}
			for i := range n {
				d := r.Desc(idx + i)
				equal(t, uint32(d.Addr), d.Len)
				equal(t, uint32(7), d.Options)
			}
			r.Release(n)
			equal(t, idx+n, k.cons())
		}
		equal(t, k.prod(), k.cons())
	}
}

func TestMisusePanics(t *testing.T) {
	mem := newMem(4, AddrSize)
	c, err := NewCompletion(mem, testOff, 4)
	noErr(t, err)
	panics(t, func() { c.Release(1) })
	mem2 := newMem(4, DescSize)
	tx, err := NewTX(mem2, testOff, 4)
	noErr(t, err)
	panics(t, func() { tx.Submit(5) })
}

func TestCorruptProducerReportsNothing(t *testing.T) {
	mem := newMem(4, AddrSize)
	c, err := NewCompletion(mem, testOff, 4)
	noErr(t, err)
	kernel{mem, 4}.setProd(100) // more entries than the ring holds
	_, n := c.Peek(4)
	equal(t, uint32(0), n)
}

// TestConcurrentFillCompletion runs a Fill producer and a Completion consumer
// over the same memory in two goroutines: they are the two halves of one
// ring, so each plays the kernel for the other. -race checks the atomics.
func TestConcurrentFillCompletion(t *testing.T) {
	const size, total = 64, 200_000
	mem := newMem(size, AddrSize)
	f, err := NewFill(mem, testOff, size)
	noErr(t, err)
	c, err := NewCompletion(mem, testOff, size)
	noErr(t, err)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(3, 4))
		for sent := uint64(0); sent < total; {
			idx, n := f.Reserve(rng.Uint32N(40) + 1)
			n = min(n, uint32(total-sent))
			for i := range n {
				f.Set(idx+i, sent+uint64(i))
			}
			f.Submit(n)
			sent += uint64(n)
		}
	}()
	rng := rand.New(rand.NewPCG(5, 6))
	var got uint64
	for got < total {
		idx, n := c.Peek(rng.Uint32N(40) + 1)
		for i := range n {
			if v := c.Addr(idx + i); v != got+uint64(i) {
				t.Fatalf("entry %d: got %d", got+uint64(i), v)
			}
		}
		c.Release(n)
		got += uint64(n)
	}
	wg.Wait()
}

// TestConcurrentTXRX does the same with descriptor rings.
func TestConcurrentTXRX(t *testing.T) {
	const size, total = 32, 100_000
	mem := newMem(size, DescSize)
	tx, err := NewTX(mem, testOff, size)
	noErr(t, err)
	rx, err := NewRX(mem, testOff, size)
	noErr(t, err)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for sent := uint32(0); sent < total; {
			idx, n := tx.Reserve(min(16, total-sent))
			for i := range n {
				tx.Set(idx+i, Desc{Addr: uint64(sent + i), Len: sent + i})
			}
			tx.Submit(n)
			sent += n
		}
	}()
	var got uint32
	for got < total {
		idx, n := rx.Peek(size)
		for i := range n {
			d := rx.Desc(idx + i)
			if d.Len != got+i || d.Addr != uint64(got+i) {
				t.Fatalf("desc %d: %+v", got+i, d)
			}
		}
		rx.Release(n)
		got += n
	}
	wg.Wait()
}

func TestQueuedReadsBothIndices(t *testing.T) {
	mem := make([]byte, 4096)
	f, err := NewFill(mem, testOff, 8)
	noErr(t, err)
	equal(t, uint32(0), f.Queued())
	idx, n := f.Reserve(5)
	for i := range n {
		f.Set(idx+i, uint64(i))
	}
	f.Submit(n)
	equal(t, uint32(5), f.Queued(), "after submit")
	// The kernel consumes two.
	atomic.StoreUint32(kernel{mem, 8}.u32(testOff.Consumer), 2)
	equal(t, uint32(3), f.Queued(), "after kernel consumed 2")
}
