package xdp

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/flightline/flightline/ring"
)

// umem is the packet memory shared with the kernel: numFrames chunks of
// frameSize bytes, mmap'd outside the Go heap (the kernel pins it) and
// registered with XDP_UMEM_REG.
//
// The first rxFrames frames circulate fill → RX → fill and touch the free
// list only in the defensive path where the fill ring is short of slots
// (see Link.receive). The remaining txFrames are the TX pool: free holds the
// addresses not currently in the TX or completion ring, used as a LIFO so
// recently used (cache-warm) frames go out first. free is owned by the TX
// path (WriteBatch), which is serialised by the socket's txMu.
type umem struct {
	mem       []byte
	frameSize uint32
	txFrames  uint32
	free      []uint64
	inFlight  atomic.Uint32 // txFrames - len(free), for Stats
}

func (u *umem) alloc() (uint64, bool) {
	if len(u.free) == 0 {
		return 0, false
	}
	a := u.free[len(u.free)-1]
	u.free = u.free[:len(u.free)-1]
	u.inFlight.Store(u.txFrames - uint32(len(u.free)))
	return a, true
}

// release returns a completed TX frame. A frame not from the TX pool, or one
// already free, means the kernel misbehaved; it is ignored rather than
// allowed to overflow the free list.
func (u *umem) release(addr uint64) {
	if len(u.free) < int(u.txFrames) {
		u.free = append(u.free, addr)
	}
	u.inFlight.Store(u.txFrames - uint32(len(u.free)))
}

// frame returns the frame's bytes at addr (an address from a ring), or nil
// if addr and n do not lie inside the UMEM.
func (u *umem) frame(addr uint64, n uint32) []byte {
	if addr >= uint64(len(u.mem)) || uint64(n) > uint64(len(u.mem))-addr {
		return nil
	}
	return u.mem[addr : addr+uint64(n)]
}

// socketConfig parameterises openSocket.
type socketConfig struct {
	ifindex   int
	queue     int
	frameSize uint32 // 2048 or 4096
	rxFrames  uint32 // power of two >= 64: receive frames (RX ring size; fill ring is twice this)
	txFrames  uint32 // power of two >= 64: transmit frames (TX and completion ring size)
	zeroCopy  ZeroCopyMode
	sg        bool          // bind with XDP_USE_SG: frames may span several UMEM frames
	bindWait  time.Duration // how long to retry EBUSY on bind
	logf      func(string, ...any)
}

// socket is one AF_XDP socket bound to one queue, with its own UMEM and the
// four rings. RX side (rx, fill) belongs to the reader; TX side (tx, comp,
// umem.free) to the writer.
type socket struct {
	// txMu serialises the TX side (tx, comp, umem.free): WriteBatch for
	// destinations hashed to this queue, and the resolver's flush.
	txMu       sync.Mutex
	fd         int
	queue      int
	umem       umem
	fill       *ring.Fill
	comp       *ring.Completion
	rx         *ring.RX
	tx         *ring.TX
	maps       [][]byte // ring mappings, unmapped on close
	rxSpare    []uint64 // RX frames waiting for fill ring space (reader-owned)
	zeroCopy   bool
	copyReason string        // why ZeroCopyAuto ended in copy mode, if it did
	sg         bool          // bound with XDP_USE_SG
	rxScratch  []byte        // reader: a multi-buffer frame gathered
	txScratch  []byte        // writer: a multi-buffer frame built before splitting
	fragAddrs  []uint64      // writer: the frames of one multi-buffer frame
	kickStalls atomic.Uint64 // kicks that left frames in the TX ring after txWait
	// fillLow is the fewest frames seen on the fill ring right after a
	// refill (reader writes, Stats reads).
	fillLow atomic.Uint32
}

// cleanup is a stack of undo functions for partial setup.
type cleanup []func() error

func (c *cleanup) push(f func() error) { *c = append(*c, f) }

// run undoes in reverse order and returns the joined errors.
func (c *cleanup) run() error {
	var errs []error
	for i := len(*c) - 1; i >= 0; i-- {
		errs = append(errs, (*c)[i]())
	}
	*c = nil
	return errors.Join(errs...)
}

func setsockopt(fd, opt int, p unsafe.Pointer, n uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), n, 0)
	if e != 0 {
		return e
	}
	return nil
}

func getsockopt(fd, opt int, p unsafe.Pointer, n uintptr) (uintptr, error) {
	l := uint32(n)
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return 0, e
	}
	return uintptr(l), nil
}

// openSocket creates, sets up and binds an AF_XDP socket. It must run on a
// thread inside the interface's network namespace. On error everything
// created so far is released.
func openSocket(cfg socketConfig) (_ *socket, err error) {
	var undo cleanup
	defer func() {
		if err != nil {
			undo.run()
		}
	}()
	s := &socket{queue: cfg.queue}
	s.fd, err = unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("create AF_XDP socket: %w", err)
	}
	undo.push(func() error { return unix.Close(s.fd) })

	// UMEM: page-aligned anonymous memory, populated up front so the first
	// packets do not fault.
	numFrames := cfg.rxFrames + cfg.txFrames
	size := int(cfg.frameSize * numFrames)
	s.umem.frameSize = cfg.frameSize
	s.umem.mem, err = unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap %d-byte umem: %w", size, err)
	}
	undo.push(func() error { return unix.Munmap(s.umem.mem) })
	reg := unix.XDPUmemReg{
		Addr: uint64(uintptr(unsafe.Pointer(&s.umem.mem[0]))),
		Len:  uint64(size),
		Size: cfg.frameSize,
	}
	if err := setsockopt(s.fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		return nil, fmt.Errorf("register umem (%d x %d B): %w", numFrames, cfg.frameSize, err)
	}

	// The RX ring holds exactly the receive frames, the TX and completion
	// rings exactly the transmit frames. The fill ring is twice as large as
	// RX: the kernel publishes its fill consumer index lazily (only when its
	// cached batch runs dry, see xskq_cons_peek in net/xdp/xsk_queue.h), so
	// every receive frame may already sit in RX or in our hands while still
	// counting as an occupied fill slot.
	rxN, txN := cfg.rxFrames, cfg.txFrames
	for _, o := range []struct {
		opt  int
		name string
		size uint32
	}{
		{unix.XDP_UMEM_FILL_RING, "fill", 2 * rxN}, {unix.XDP_UMEM_COMPLETION_RING, "completion", txN},
		{unix.XDP_RX_RING, "rx", rxN}, {unix.XDP_TX_RING, "tx", txN},
	} {
		if err := unix.SetsockoptInt(s.fd, unix.SOL_XDP, o.opt, int(o.size)); err != nil {
			return nil, fmt.Errorf("size %s ring to %d: %w", o.name, o.size, err)
		}
	}
	var off unix.XDPMmapOffsets
	n, err := getsockopt(s.fd, unix.XDP_MMAP_OFFSETS, unsafe.Pointer(&off), unsafe.Sizeof(off))
	if err != nil {
		return nil, fmt.Errorf("get ring offsets: %w", err)
	}
	if n != unsafe.Sizeof(off) {
		return nil, fmt.Errorf("get ring offsets: %d bytes, want %d (kernel older than 5.4)", n, unsafe.Sizeof(off))
	}
	mapRing := func(ro unix.XDPRingOffset, pgoff int64, entry int, n uint32) ([]byte, ring.Offsets, error) {
		length := int(ro.Desc) + int(n)*entry
		m, err := unix.Mmap(s.fd, pgoff, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return nil, ring.Offsets{}, err
		}
		s.maps = append(s.maps, m)
		undo.push(func() error { return unix.Munmap(m) })
		return m, ro, nil
	}
	m, ro, err := mapRing(off.Fr, unix.XDP_UMEM_PGOFF_FILL_RING, ring.AddrSize, 2*rxN)
	if err == nil {
		s.fill, err = ring.NewFill(m, ro, 2*rxN)
	}
	if err != nil {
		return nil, fmt.Errorf("map fill ring: %w", err)
	}
	m, ro, err = mapRing(off.Cr, unix.XDP_UMEM_PGOFF_COMPLETION_RING, ring.AddrSize, txN)
	if err == nil {
		s.comp, err = ring.NewCompletion(m, ro, txN)
	}
	if err != nil {
		return nil, fmt.Errorf("map completion ring: %w", err)
	}
	m, ro, err = mapRing(off.Rx, unix.XDP_PGOFF_RX_RING, ring.DescSize, rxN)
	if err == nil {
		s.rx, err = ring.NewRX(m, ro, rxN)
	}
	if err != nil {
		return nil, fmt.Errorf("map rx ring: %w", err)
	}
	m, ro, err = mapRing(off.Tx, unix.XDP_PGOFF_TX_RING, ring.DescSize, txN)
	if err == nil {
		s.tx, err = ring.NewTX(m, ro, txN)
	}
	if err != nil {
		return nil, fmt.Errorf("map tx ring: %w", err)
	}

	// Frames [0, rxN) go on the fill ring, [rxN, rxN+txN) are the TX pool.
	idx, got := s.fill.Reserve(rxN)
	if got < rxN {
		return nil, fmt.Errorf("fill ring: only %d of %d slots free", got, rxN)
	}
	for i := range rxN {
		s.fill.Set(idx+i, uint64(i*cfg.frameSize))
	}
	s.fill.Submit(rxN)
	s.fillLow.Store(rxN)
	s.umem.txFrames = txN
	s.umem.free = make([]uint64, 0, txN)
	for i := numFrames - 1; i >= rxN; i-- {
		s.umem.free = append(s.umem.free, uint64(i*cfg.frameSize))
	}

	if err := s.bind(cfg); err != nil {
		return nil, err
	}
	var opts struct{ Flags uint32 } // struct xdp_options
	if _, err := getsockopt(s.fd, unix.XDP_OPTIONS, unsafe.Pointer(&opts), unsafe.Sizeof(opts)); err == nil {
		s.zeroCopy = opts.Flags&unix.XDP_OPTIONS_ZEROCOPY != 0
	}
	// Best effort (Linux 6.x): let one kick send a whole batch instead of 32
	// frames, which saves syscalls and ~20% TX time.
	if err := unix.SetsockoptInt(s.fd, unix.SOL_XDP, unix.XDP_MAX_TX_SKB_BUDGET, int(min(txN, 256))); err != nil && cfg.logf != nil {
		cfg.logf("xdp: queue %d: XDP_MAX_TX_SKB_BUDGET not supported: %v", cfg.queue, err)
	}
	undo = nil // success: Close owns everything now
	return s, nil
}

// bind binds to (ifindex, queue). ZeroCopyAuto asks for zero-copy first
// and, when the driver cannot do it (EOPNOTSUPP; EINVAL from drivers that
// reject the flag), binds again in copy mode and records why in
// s.copyReason. The kernel frees a closed socket's buffer pool
// asynchronously, so binding within ~20 ms of closing the previous socket
// on the queue fails with a transient EBUSY: retry until bindWait.
func (s *socket) bind(cfg socketConfig) error {
	err := s.bindMode(cfg)
	if err != nil && cfg.sg && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP)) {
		// Multi-buffer needs Linux ≥ 6.6 (and, in zero-copy, driver
		// support): run with frames limited to one UMEM frame.
		if cfg.logf != nil {
			cfg.logf("xdp: queue %d: multi-buffer (XDP_USE_SG) bind refused, frames limited to one UMEM frame: %v", cfg.queue, err)
		}
		cfg.sg = false
		s.copyReason = ""
		err = s.bindMode(cfg)
	}
	s.sg = err == nil && cfg.sg
	return err
}

func (s *socket) bindMode(cfg socketConfig) error {
	switch cfg.zeroCopy {
	case ZeroCopyRequire:
		return s.bindFlags(cfg, unix.XDP_ZEROCOPY)
	case ZeroCopyOff:
		return s.bindFlags(cfg, unix.XDP_COPY)
	}
	err := s.bindFlags(cfg, unix.XDP_ZEROCOPY)
	if err == nil || !(errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL)) {
		return err
	}
	s.copyReason = err.Error()
	if cfg.logf != nil {
		cfg.logf("xdp: queue %d: zero-copy bind refused, using copy mode: %v", cfg.queue, err)
	}
	return s.bindFlags(cfg, unix.XDP_COPY)
}

func (s *socket) bindFlags(cfg socketConfig, mode uint16) error {
	flags := uint16(unix.XDP_USE_NEED_WAKEUP) | mode
	if cfg.sg {
		flags |= unix.XDP_USE_SG
	}
	sa := &unix.SockaddrXDP{Flags: flags, Ifindex: uint32(cfg.ifindex), QueueID: uint32(cfg.queue)}
	deadline := time.Now().Add(cfg.bindWait)
	for {
		err := bindXSK(s.fd, sa)
		if err == nil {
			return nil
		}
		if errors.Is(err, unix.EBUSY) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		switch {
		case errors.Is(err, unix.EOPNOTSUPP) && mode == unix.XDP_ZEROCOPY:
			return fmt.Errorf("bind AF_XDP socket to ifindex %d queue %d: zero-copy not supported by the driver: %w", cfg.ifindex, cfg.queue, err)
		case errors.Is(err, unix.EINVAL):
			return fmt.Errorf("bind AF_XDP socket to ifindex %d queue %d (queue beyond the device's, or mode refused?): %w", cfg.ifindex, cfg.queue, err)
		}
		return fmt.Errorf("bind AF_XDP socket to ifindex %d queue %d: %w", cfg.ifindex, cfg.queue, err)
	}
}

// bindXSK is unix.Bind; a variable so tests can play a zero-copy driver.
var bindXSK = func(fd int, sa *unix.SockaddrXDP) error { return unix.Bind(fd, sa) }

// transientKick reports sendto errors after which the kernel still owns
// the unsent descriptors and will take them on a later kick: the copy-mode
// budget ran out with frames left (EAGAIN), the device queue is stopped or
// the driver refused the skb for now (EBUSY), no skb memory (ENOBUFS), the
// link is down (ENETDOWN), or a signal (EINTR).
func transientKick(e unix.Errno) bool {
	switch e {
	case unix.EAGAIN, unix.EBUSY, unix.ENOBUFS, unix.ENETDOWN, unix.EINTR:
		return true
	}
	return false
}

// kick tells the kernel to process the TX ring. In copy mode the kernel
// transmits inside sendto, at most XDP_MAX_TX_SKB_BUDGET frames per call,
// and returns EAGAIN while descriptors are left; kick keeps calling until
// the kernel took every submitted descriptor, so nothing waits in the ring
// for a next WriteBatch that may not come (a stalled tail costs a
// retransmission timeout). Transient refusals are retried with a short
// sleep until txWait; then kick returns nil and the frames stay queued for
// the next kick (counted in kickStalls). In zero-copy mode a successful
// sendto only wakes the driver, which sends asynchronously.
func (s *socket) kick() error {
	var deadline time.Time
	for {
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		if e == 0 || s.tx.Queued() == 0 {
			return nil
		}
		if !transientKick(e) {
			return fmt.Errorf("kick tx on queue %d: %w", s.queue, e)
		}
		if e == unix.EAGAIN {
			continue // budget spent, more frames to send: kick again at once
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(txWait)
		} else if now.After(deadline) {
			s.kickStalls.Add(1)
			return nil
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// reap moves completed TX frames back to the free list.
func (s *socket) reap() int {
	idx, n := s.comp.Peek(s.comp.Size())
	for i := range n {
		s.umem.release(s.comp.Addr(idx + i))
	}
	s.comp.Release(n)
	return int(n)
}

// xskStats reads XDP_STATISTICS.
func (s *socket) xskStats() (XSKStats, error) {
	var st unix.XDPStatistics
	if _, err := getsockopt(s.fd, unix.XDP_STATISTICS, unsafe.Pointer(&st), unsafe.Sizeof(st)); err != nil {
		return XSKStats{}, fmt.Errorf("get XDP_STATISTICS on queue %d: %w", s.queue, err)
	}
	return XSKStats{
		RxDropped: st.Rx_dropped, RxInvalidDescs: st.Rx_invalid_descs, TxInvalidDescs: st.Tx_invalid_descs,
		RxRingFull: st.Rx_ring_full, RxFillRingEmpty: st.Rx_fill_ring_empty_descs, TxRingEmpty: st.Tx_ring_empty_descs,
	}, nil
}

// close releases the rings, the UMEM and the socket.
func (s *socket) close() error {
	var errs []error
	for _, m := range s.maps {
		errs = append(errs, unix.Munmap(m))
	}
	s.maps = nil
	if s.umem.mem != nil {
		errs = append(errs, unix.Munmap(s.umem.mem))
		s.umem.mem = nil
	}
	if s.fd >= 0 {
		errs = append(errs, unix.Close(s.fd))
		s.fd = -1
	}
	return errors.Join(errs...)
}
