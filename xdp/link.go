// Package xdp is flightline's AF_XDP datapath: a transport/link.Link that
// sends and receives UDP datagrams through AF_XDP sockets, bypassing the
// kernel's IP/UDP stack.
//
// Listen loads the XDP program from package bpf, attaches it to the
// interface, and binds one AF_XDP socket per receive queue, each with its
// own UMEM and the four rings from package ring. The program redirects UDP
// datagrams for our port to the socket of the queue they arrived on and
// passes everything else (ARP, ICMP, other ports) to the kernel. A plain UDP
// socket bound to the same address and port ("reserving socket") stops
// other processes from taking the port and the kernel from answering ICMP
// port-unreachable; datagrams that reach it anyway (program missing, queue
// without socket) are still delivered and counted as StackRx.
//
// Receiving copies each payload out of UMEM into the caller's buffer and
// gives the frame straight back to the fill ring in the same pass. Sending
// builds the eth/IP/UDP frame in a free TX frame of the first queue's
// socket, with the next hop's MAC resolved from the kernel's routing and
// neighbour tables without blocking (see resolver).
//
// See docs/afxdp.md for the kernel traps this package works around.
package xdp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/flightline/flightline/bpf"
	"github.com/flightline/flightline/transport/link"
)

// ZeroCopyMode selects between zero-copy and copy mode for the sockets.
type ZeroCopyMode int

const (
	// ZeroCopyAuto binds with XDP_ZEROCOPY and, when the driver refuses,
	// again with XDP_COPY (veth: copy); Caps().Note says why. The default.
	ZeroCopyAuto ZeroCopyMode = iota
	// ZeroCopyRequire fails Listen unless the driver does zero-copy.
	ZeroCopyRequire
	// ZeroCopyOff forces copy mode.
	ZeroCopyOff
)

// Defaults for Config fields left zero.
const (
	DefaultFrameSize = 2048
	// DefaultRxFrames receive frames per queue hold more than one default
	// connection window (16 MiB, ~11.5k full-size datagrams) while the
	// reader is busy, like a UDP socket's receive buffer does. With 2048
	// (the old default) a 256 MiB transfer over a lossless veth lost 1-2 %
	// of its packets to fill-ring starvation (XDP_STATISTICS
	// rx_fill_ring_empty_descs); with 8192 the fill ring still fell to 583
	// free frames.
	DefaultRxFrames = 16384
	// DefaultTxFrames transmit frames per queue; in copy mode the kernel
	// completes a kick's frames before sendto returns, so a few batches'
	// worth keep TX busy.
	DefaultTxFrames = 2048
	bindRetry       = time.Second // EBUSY window after a previous socket on the queue closed
	// txWait bounds how long WriteBatch waits for a free TX frame before it
	// returns ErrTxFull (transient) and lets the caller retry later.
	txWait    = 100 * time.Millisecond
	batchSize = 256
)

// Config configures Listen.
type Config struct {
	// Interface is the network interface name. Required.
	Interface string
	// Addr is the local IP (must be configured on Interface) and UDP port.
	// Port 0 picks a free port through the reserving socket.
	Addr netip.AddrPort
	// Mode is the XDP attach mode; ModeAuto (default) picks native when the
	// driver supports it.
	Mode bpf.Mode
	// ZeroCopy defaults to ZeroCopyAuto.
	ZeroCopy ZeroCopyMode
	// Queues is the number of receive queues to serve, starting at queue 0;
	// 0 (default) means all of the device's queues. On a multi-queue device
	// a flow arrives on whichever queue the NIC (or, on veth, the sender's
	// tx queue) chose, so serving fewer queues loses datagrams to the stack.
	Queues int
	// FrameSize is the UMEM chunk size, 2048 (default) or 4096. In copy mode
	// a received frame must fit in FrameSize-256 bytes; larger frames are
	// dropped by the kernel (see Stats.Diagnose).
	FrameSize int
	// RxFrames is the number of receive frames per queue, a power of two
	// in 64..262144 (default DefaultRxFrames). They bound the burst the
	// link absorbs while the reader is busy: the AF_XDP counterpart of a
	// UDP socket's receive buffer. UMEM per queue is
	// (RxFrames+TxFrames)*FrameSize bytes, pinned.
	RxFrames int
	// TxFrames is the number of transmit frames per queue, a power of two
	// in 64..262144 (default DefaultTxFrames).
	TxFrames int
	// DisableMultiBuffer keeps frames to one UMEM frame even when the MTU
	// needs more (no XDP_USE_SG): larger received frames are then dropped
	// by the kernel (Stats.Diagnose: oversize frame) and WriteBatch takes
	// at most FrameSize minus headers. Default false: multi-buffer is used
	// when the MTU needs it and the kernel (≥ 6.6) has it. A zero-copy
	// driver without zero-copy multi-buffer otherwise ends in copy mode
	// under ZeroCopyAuto.
	DisableMultiBuffer bool
	// BusyPoll is off by default; see BusyPoll.
	BusyPoll BusyPoll
	// Logf, if set, receives setup diagnostics.
	Logf func(string, ...any)
}

func (c *Config) setDefaults() error {
	if c.Interface == "" {
		return errors.New("xdp: Config.Interface is required")
	}
	if !c.Addr.Addr().IsValid() || c.Addr.Addr().IsUnspecified() {
		return fmt.Errorf("xdp: Config.Addr %v must be a concrete local IP", c.Addr)
	}
	c.Addr = netip.AddrPortFrom(c.Addr.Addr().Unmap(), c.Addr.Port())
	if c.FrameSize == 0 {
		c.FrameSize = DefaultFrameSize
	}
	if c.FrameSize != 2048 && c.FrameSize != 4096 {
		return fmt.Errorf("xdp: FrameSize %d: must be 2048 or 4096", c.FrameSize)
	}
	if c.RxFrames == 0 {
		c.RxFrames = DefaultRxFrames
	}
	if c.TxFrames == 0 {
		c.TxFrames = DefaultTxFrames
	}
	for _, f := range []struct {
		name string
		n    int
	}{{"RxFrames", c.RxFrames}, {"TxFrames", c.TxFrames}} {
		if f.n < 64 || f.n&(f.n-1) != 0 || f.n > 1<<18 {
			return fmt.Errorf("xdp: %s %d: must be a power of two in 64..262144", f.name, f.n)
		}
	}
	if c.Queues < 0 {
		return fmt.Errorf("xdp: Queues %d is negative", c.Queues)
	}
	if c.ZeroCopy < ZeroCopyAuto || c.ZeroCopy > ZeroCopyOff {
		return fmt.Errorf("xdp: unknown ZeroCopy mode %d", c.ZeroCopy)
	}
	return c.BusyPoll.setDefaults()
}

// Link is an AF_XDP link. See link.Link for the method contracts.
type Link struct {
	cfg        Config
	ifindex    int
	devQueues  int
	srcMAC     net.HardwareAddr
	local      netip.AddrPort
	maxPayload int
	zeroCopy   bool
	busyPoll   bool // every socket has SO_PREFER_BUSY_POLL and SO_BUSY_POLL set

	prog     *bpf.Program
	socks    []*socket
	reserve  int // reserving UDP socket, non-blocking
	wakeFD   int // eventfd written by Close to wake ReadBatch
	closed   atomic.Bool
	counters []queueCounters // per served queue
	stackRx  atomic.Uint64
	stackBig atomic.Uint64 // datagrams on the reserving socket larger than the buffer

	// Lock order: rxMu, the sockets' txMu (ascending queue), stateMu.
	// Close takes them all, so a teardown never races a reader, writer or
	// Stats.
	rxMu    sync.Mutex // held by ReadBatch; guards pollfds, rxNext, epEvents
	pollfds []unix.PollFd
	// ep is an epoll instance over pollfds (level-triggered), registered
	// with the Go runtime's netpoller: ReadBatch parks its goroutine on it
	// instead of blocking an OS thread in poll(2), so an idle link holds no
	// thread and a wakeup is scheduled like any network I/O. (A thread
	// blocked in a syscall hands its P away and must win one back when the
	// syscall returns; whether that shapes the ping tail could not be
	// measured on the shared 2-core machine, where even the raw AF_XDP
	// ping's p99 swung between 0.1 and 4 ms.)
	ep       *os.File
	epConn   syscall.RawConn
	epEvents []unix.EpollEvent
	rxNext   int
	nh       *resolver
	stateMu  sync.Mutex // held by Stats and Close
}

var _ link.Link = (*Link)(nil)

// queueCounters are the userspace counters of one queue; written by the
// reader or writer, read by Stats.
type queueCounters struct {
	rx, tx       atomic.Uint64
	txFullWaits  atomic.Uint64 // WriteBatch waited for a TX frame
	txFullErrors atomic.Uint64 // ... and gave up with ErrTxFull
	drops        [numDropReasons]atomic.Uint64
}

// Listen sets up the AF_XDP datapath on cfg.Interface. It must be called on
// an OS thread in the interface's network namespace (sockets, the netlink
// socket and the XDP link keep that namespace afterwards, so the Link can
// then be used from any goroutine). Errors matching ErrNotSupported mean
// AF_XDP cannot work here at all; fall back to UDP sockets.
func Listen(cfg Config) (_ *Link, err error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := Probe(cfg.Interface); err != nil {
		return nil, err
	}
	iface, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, &NotSupportedError{Cause: "no such interface", Err: err}
	}
	if err := checkAddrOn(iface, cfg.Addr.Addr()); err != nil {
		return nil, err
	}
	l := &Link{cfg: cfg, ifindex: iface.Index, srcMAC: iface.HardwareAddr, reserve: -1, wakeFD: -1}
	var undo cleanup
	defer func() {
		if err != nil {
			undo.run()
		}
	}()

	if l.reserve, l.local, err = reservePort(cfg.Addr); err != nil {
		return nil, err
	}
	undo.push(func() error { return unix.Close(l.reserve) })
	if l.wakeFD, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("create eventfd: %w", err)
	}
	undo.push(func() error { return unix.Close(l.wakeFD) })
	if l.nh, err = newResolver(l.ifindex, l.local.Addr()); err != nil {
		return nil, err
	}
	l.nh.start(l.lockTX, l.sendQueued)
	undo.push(l.nh.stop)

	if l.devQueues, err = rxQueues(cfg.Interface); err != nil {
		return nil, err
	}
	queues := cfg.Queues
	if queues == 0 {
		queues = l.devQueues
	}
	if queues > l.devQueues {
		return nil, fmt.Errorf("xdp: Queues %d but %s has %d receive queues", queues, cfg.Interface, l.devQueues)
	}
	// Frames longer than a UMEM frame's receive room (FrameSize minus the
	// 256-byte XDP headroom in copy mode) need multi-buffer AF_XDP.
	sg := iface.MTU+ethHeaderLen > cfg.FrameSize-xdpHeadroom && !cfg.DisableMultiBuffer

	if l.prog, err = bpf.Load([]uint16{l.local.Port()}, max(l.devQueues, 1)); err != nil {
		return nil, err
	}
	undo.push(l.prog.Close)
	if err = l.prog.Attach(l.ifindex, cfg.Mode); err != nil {
		return nil, err
	}

	l.counters = make([]queueCounters, queues)
	for q := range queues {
		s, err := openSocket(socketConfig{
			ifindex: l.ifindex, queue: q, frameSize: uint32(cfg.FrameSize), rxFrames: uint32(cfg.RxFrames), txFrames: uint32(cfg.TxFrames),
			zeroCopy: cfg.ZeroCopy, bindWait: bindRetry, logf: cfg.Logf, sg: sg,
		})
		if err != nil {
			return nil, err
		}
		undo.push(s.close)
		// Register only after bind: the kernel accepts an unbound socket
		// and then never delivers to it.
		if err := l.prog.Register(q, s.fd); err != nil {
			return nil, err
		}
		undo.push(func() error { return l.prog.Unregister(q) })
		l.socks = append(l.socks, s)
		l.pollfds = append(l.pollfds, unix.PollFd{Fd: int32(s.fd), Events: unix.POLLIN})
	}
	l.zeroCopy = l.socks[0].zeroCopy
	l.maxPayload = l.payloadLimit(iface.MTU)
	fds := make([]int, len(l.socks))
	for i, s := range l.socks {
		fds[i] = s.fd
	}
	if l.busyPoll, err = busyPollSockets(fds, cfg.BusyPoll, cfg.Logf); err != nil {
		return nil, err
	}
	l.pollfds = append(l.pollfds,
		unix.PollFd{Fd: int32(l.reserve), Events: unix.POLLIN},
		unix.PollFd{Fd: int32(l.wakeFD), Events: unix.POLLIN})
	if err := l.openEpoll(); err != nil {
		return nil, err
	}
	undo.push(l.ep.Close)
	if cfg.Logf != nil {
		cfg.Logf("xdp: listening on %s %v, %d of %d queues, mode %v, zero-copy %v, busy poll %v", cfg.Interface, l.local, queues, l.devQueues, cfg.Mode, l.zeroCopy, l.busyPoll)
	}
	undo = nil
	return l, nil
}

func checkAddrOn(iface *net.Interface, ip netip.Addr) error {
	addrs, err := iface.Addrs()
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", iface.Name, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if x, ok := netip.AddrFromSlice(n.IP); ok && x.Unmap() == ip {
				return nil
			}
		}
	}
	return fmt.Errorf("xdp: address %v is not configured on %s", ip, iface.Name)
}

// reservePort binds a UDP socket to addr (port 0: any) and returns it with
// the bound address.
func reservePort(addr netip.AddrPort) (int, netip.AddrPort, error) {
	fam := unix.AF_INET
	var sa unix.Sockaddr
	if addr.Addr().Is6() {
		fam = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(addr.Port()), Addr: addr.Addr().As16()}
	} else {
		sa = &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	}
	fd, err := unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, netip.AddrPort{}, fmt.Errorf("create reserving UDP socket: %w", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, netip.AddrPort{}, fmt.Errorf("reserve UDP port %v: %w", addr, err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, netip.AddrPort{}, fmt.Errorf("reserve UDP port %v: %w", addr, err)
	}
	port := 0
	switch s := got.(type) {
	case *unix.SockaddrInet4:
		port = s.Port
	case *unix.SockaddrInet6:
		port = s.Port
	}
	return fd, netip.AddrPortFrom(addr.Addr(), uint16(port)), nil
}

// ReadBatch implements link.Link. It serves the queues round-robin and
// blocks in poll(2) when all are empty; poll also performs the RX wakeup
// that XDP_USE_NEED_WAKEUP asks for on zero-copy drivers.
func (l *Link) ReadBatch(msgs []link.Message) (int, error) {
	l.rxMu.Lock()
	defer l.rxMu.Unlock()
	if len(msgs) == 0 {
		return 0, nil
	}
	var spinStart time.Time
	for {
		if l.closed.Load() {
			return 0, net.ErrClosed
		}
		n := 0
		for k := range l.socks {
			q := (l.rxNext + k) % len(l.socks)
			n += l.receive(q, msgs[n:])
			if n == len(msgs) {
				break
			}
		}
		l.rxNext++
		if n < len(msgs) {
			n += l.receiveStack(msgs[n:])
		}
		if n > 0 {
			spinStart = time.Time{}
			return n, nil
		}
		if l.busyPoll {
			// Drive each queue's NAPI from here until Spin has passed
			// without a packet, then sleep.
			now := time.Now()
			if spinStart.IsZero() {
				spinStart = now
			}
			if now.Sub(spinStart) < l.cfg.BusyPoll.Spin {
				for _, s := range l.socks {
					s.wake()
				}
				continue
			}
			spinStart = time.Time{}
		}
		if err := l.wait(); err != nil {
			return 0, err
		}
	}
}

// xdpHeadroom is XDP_PACKET_HEADROOM: where received data starts in a UMEM
// frame in copy mode.
const xdpHeadroom = 256

// payloadLimit is the largest UDP payload WriteBatch sends: what the MTU
// allows when every socket does multi-buffer (capped to the frames one
// multi-buffer frame may have), else what fits in one UMEM frame.
func (l *Link) payloadLimit(mtu int) int {
	over := frameOverhead(l.local.Addr().Is6())
	sg := true
	for _, s := range l.socks {
		sg = sg && s.sg
	}
	if !sg {
		return min(mtu+ethHeaderLen, l.cfg.FrameSize) - over
	}
	const maxTxFrags = 17 // the kernel's MAX_SKB_FRAGS for the skb copy mode builds
	return min(mtu+ethHeaderLen, maxTxFrags*l.cfg.FrameSize, 65535+ethHeaderLen) - over
}

// MaxPayload is the largest datagram WriteBatch accepts: it follows the
// interface MTU (jumbo frames through multi-buffer AF_XDP when the kernel
// has it).
func (l *Link) MaxPayload() int { return l.maxPayload }

// openEpoll builds l.ep over l.pollfds.
func (l *Link) openEpoll() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll_create1: %w", err)
	}
	for _, p := range l.pollfds {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: p.Fd}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, int(p.Fd), &ev); err != nil {
			unix.Close(epfd)
			return fmt.Errorf("epoll_ctl add fd %d: %w", p.Fd, err)
		}
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return fmt.Errorf("epoll fd non-blocking: %w", err)
	}
	l.ep = os.NewFile(uintptr(epfd), "xdp-epoll") // non-blocking: registered with the netpoller
	if l.epConn, err = l.ep.SyscallConn(); err != nil {
		l.ep.Close()
		return fmt.Errorf("epoll fd: %w", err)
	}
	l.epEvents = make([]unix.EpollEvent, len(l.pollfds))
	return nil
}

// wait parks the calling goroutine until a socket, the reserving socket or
// Close's eventfd is readable. The level-triggered inner epoll keeps
// reporting a socket while it holds data, and the netpoller's edge
// registration of the epoll fd itself is made once, so no wakeup between
// the caller's last look at the rings and parking is lost.
func (l *Link) wait() error {
	var werr error
	err := l.epConn.Read(func(fd uintptr) bool {
		// (Never l.ep.Fd(): it would switch the fd to blocking mode.)
		n, err := unix.EpollWait(int(fd), l.epEvents, 0)
		if err != nil && !errors.Is(err, unix.EINTR) {
			werr = fmt.Errorf("epoll_wait on AF_XDP sockets: %w", err)
			return true
		}
		return n > 0
	})
	if err != nil {
		if l.closed.Load() {
			return net.ErrClosed
		}
		return fmt.Errorf("wait for AF_XDP sockets: %w", err)
	}
	return werr
}

// receive moves up to len(msgs) datagrams from queue q's RX ring into msgs
// and returns frames to the fill ring in the same pass.
func (l *Link) receive(q int, msgs []link.Message) int {
	s, c := l.socks[q], &l.counters[q]
	// With multi-buffer (XDP_USE_SG) one datagram may span several
	// descriptors, so look at more descriptors than messages.
	want := uint32(len(msgs))
	if s.sg {
		want = s.rx.Size()
	}
	idx, n := s.rx.Peek(want)
	if n == 0 {
		return 0
	}
	delivered := 0
	used := uint32(0) // descriptors consumed: whole frames only
	for used < n && delivered < len(msgs) {
		// A frame is descriptors [used, end]: all but the last carry
		// XDP_PKT_CONTD.
		end := used
		for end < n && s.rx.Desc(idx+end).Options&unix.XDP_PKT_CONTD != 0 {
			end++
		}
		if end == n {
			if end-used < maxFrags {
				break // its last buffer is not in the ring yet
			}
			end-- // more buffers than any frame has: drop them
		}
		frame, reason := l.gather(s, idx+used, end-used+1)
		used = end + 1
		var p parsedFrame
		if reason == dropNone {
			p, reason = parseFrame(frame)
		}
		if reason == dropNone && (p.Dst.Port() != l.local.Port() || p.Dst.Addr() != l.local.Addr()) {
			reason = dropNotOurs
		}
		m := &msgs[delivered]
		if reason == dropNone && len(p.Payload) > cap(m.Buf) {
			reason = dropOversize
		}
		if reason != dropNone {
			c.drops[reason].Add(1)
			continue
		}
		m.Buf = m.Buf[:len(p.Payload)]
		copy(m.Buf, p.Payload)
		m.Addr = p.Src
		delivered++
	}
	if used == 0 {
		return 0
	}
	// Give the consumed frames back. The fill ring has room for twice the
	// RX frames, so all fit unless the kernel misbehaves; then the rest
	// wait in rxSpare for a later pass.
	fidx, fn := s.fill.Reserve(used + uint32(len(s.rxSpare)))
	filled := uint32(0)
	for ; filled < fn && len(s.rxSpare) > 0; filled++ {
		s.fill.Set(fidx+filled, s.rxSpare[len(s.rxSpare)-1])
		s.rxSpare = s.rxSpare[:len(s.rxSpare)-1]
	}
	for i := range used {
		base := s.rx.Desc(idx+i).Addr &^ uint64(s.umem.frameSize-1)
		if filled < fn {
			s.fill.Set(fidx+filled, base)
			filled++
		} else {
			s.rxSpare = append(s.rxSpare, base)
		}
	}
	s.rx.Release(used)
	s.fill.Submit(filled)
	// need_wakeup: a zero-copy driver that found the fill ring empty sleeps
	// until told there are frames again. (poll(2) does this too, but a busy
	// reader may not get to poll for a long time.)
	if filled > 0 && s.fill.NeedWakeup() {
		s.wake()
	}
	// Low-water mark of the fill ring, read once per batch: how close the
	// kernel came to finding no frame to receive into.
	if q := s.fill.Queued(); q < s.fillLow.Load() {
		s.fillLow.Store(q)
	}
	c.rx.Add(uint64(delivered))
	return delivered
}

// maxFrags bounds the buffers of one multi-buffer frame (the kernel's
// MAX_SKB_FRAGS is 17, plus the head); a longer run of XDP_PKT_CONTD
// descriptors is dropped as malformed.
const maxFrags = 32

// gather returns the frame held by the k descriptors from idx: the UMEM
// bytes themselves for one descriptor, else a copy of all of them in the
// socket's scratch buffer.
func (l *Link) gather(s *socket, idx, k uint32) ([]byte, dropReason) {
	if k == 1 {
		d := s.rx.Desc(idx)
		if f := s.umem.frame(d.Addr, d.Len); f != nil {
			return f, dropNone
		}
		return nil, dropBadHeader
	}
	if k > maxFrags {
		return nil, dropBadHeader
	}
	s.rxScratch = s.rxScratch[:0]
	for i := range k {
		d := s.rx.Desc(idx + i)
		f := s.umem.frame(d.Addr, d.Len)
		if f == nil {
			return nil, dropBadHeader
		}
		s.rxScratch = append(s.rxScratch, f...)
	}
	return s.rxScratch, dropNone
}

// receiveStack drains datagrams that reached the reserving socket through
// the kernel stack.
func (l *Link) receiveStack(msgs []link.Message) int {
	n := 0
	for n < len(msgs) {
		m := &msgs[n]
		buf := m.Buf[:cap(m.Buf)]
		r, from, err := unix.Recvfrom(l.reserve, buf, unix.MSG_DONTWAIT|unix.MSG_TRUNC)
		if err != nil {
			break
		}
		if r > len(buf) {
			l.stackBig.Add(1)
			continue
		}
		var addr netip.AddrPort
		switch sa := from.(type) {
		case *unix.SockaddrInet4:
			addr = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
		case *unix.SockaddrInet6:
			addr = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port))
		}
		m.Buf = buf[:r]
		m.Addr = addr
		l.stackRx.Add(1)
		n++
	}
	return n
}

// ErrTxFull is returned by WriteBatch when no transmit frame came free
// within a bounded wait: the kernel or NIC is not draining the TX ring fast
// enough. It wraps unix.EAGAIN, so callers treat it as transient and retry
// the datagram later; nothing was dropped.
var ErrTxFull = fmt.Errorf("xdp: transmit ring full: %w", unix.EAGAIN)

// WriteBatch implements link.Link. Each datagram goes out through the
// socket of queue txQueue(destination), so the connections (one per peer
// address and port) spread over every queue, and on veth over the peer's
// receive queues. It returns ErrTooLarge for a payload over the frame/MTU
// limit, ErrTxFull (transient) when a TX ring stays full, and net.ErrClosed
// after Close. A full TX ring is backpressure: WriteBatch kicks the kernel
// and waits (bounded) for completions instead of dropping.
//
// Next hops are resolved without blocking (see resolver): a datagram to a
// destination whose MAC is not known yet counts as handed over; it waits in
// a bounded per-destination queue and goes out once the kernel resolved the
// route and neighbour, or is dropped and counted (Stats.NeighbourDrops) if
// that fails. So one unresolvable (even spoofed) destination never delays
// the datagrams to others.
func (l *Link) WriteBatch(msgs []link.Message) (n int, err error) {
	var b txBatch
	cur := -1
	defer func() {
		if cur >= 0 {
			err = errors.Join(err, b.flush())
			l.socks[cur].txMu.Unlock()
		}
	}()
	if l.closed.Load() {
		return 0, net.ErrClosed
	}
	now := time.Now()
	for i := range msgs {
		m := &msgs[i]
		dst := netip.AddrPortFrom(m.Addr.Addr().Unmap(), m.Addr.Port())
		if dst.Addr().Is4() != l.local.Addr().Is4() {
			return i, fmt.Errorf("xdp: destination %v is not in the family of %v", m.Addr, l.local)
		}
		if len(m.Buf) > l.maxPayload {
			return i, link.ErrTooLarge
		}
		if q := l.txQueue(dst); q != cur {
			if cur >= 0 {
				err := b.flush()
				l.socks[cur].txMu.Unlock()
				cur = -1
				if err != nil {
					return i, err
				}
			}
			l.socks[q].txMu.Lock()
			cur = q
			if l.closed.Load() {
				return i, net.ErrClosed
			}
			b = l.newTxBatch(q)
		}
		mac := l.nh.next(dst, m.Buf, now)
		if mac == nil {
			continue // queued for the resolver, or dropped and counted
		}
		if err := b.add(mac, dst, m.Buf); err != nil {
			return i, err
		}
	}
	return len(msgs), nil
}

// txQueue maps a destination to the queue whose socket sends to it: a hash
// of the address and port, so one connection stays on one queue (its
// packets stay in order) and many connections spread over all of them.
func (l *Link) txQueue(dst netip.AddrPort) int {
	if len(l.socks) == 1 {
		return 0
	}
	h := uint64(14695981039346656037) // FNV-1a
	a := dst.Addr().As16()
	for _, c := range a {
		h = (h ^ uint64(c)) * 1099511628211
	}
	h = (h ^ uint64(dst.Port()>>8)) * 1099511628211
	h = (h ^ uint64(dst.Port()&0xff)) * 1099511628211
	return int(h % uint64(len(l.socks)))
}

// lockTX locks every queue's TX side in ascending order and returns the
// unlock.
func (l *Link) lockTX() func() {
	for _, s := range l.socks {
		s.txMu.Lock()
	}
	return func() {
		for i := len(l.socks) - 1; i >= 0; i-- {
			l.socks[i].txMu.Unlock()
		}
	}
}

// sendQueued sends the datagrams that waited for dst's next hop, each on its
// own queue. The resolver calls it with every TX queue locked.
func (l *Link) sendQueued(dst netip.Addr, mac net.HardwareAddr, q []queued) {
	if l.closed.Load() {
		return
	}
	batches := map[int]*txBatch{}
	for i, m := range q {
		to := netip.AddrPortFrom(dst, m.port)
		qi := l.txQueue(to)
		b := batches[qi]
		if b == nil {
			nb := l.newTxBatch(qi)
			b = &nb
			batches[qi] = b
		}
		if err := b.add(mac, to, m.buf); err != nil {
			l.nh.drops.Add(uint64(len(q) - i))
			break
		}
	}
	for _, b := range batches {
		if err := b.flush(); err != nil && l.cfg.Logf != nil {
			l.cfg.Logf("xdp: send datagrams queued for %v: %v", dst, err)
		}
	}
}

// txBatch builds frames into one socket's TX ring and submits them in
// batches. Used with that socket's txMu held.
type txBatch struct {
	l            *Link
	s            *socket
	c            *queueCounters
	hdr          frameHeader
	pending, idx uint32
}

func (l *Link) newTxBatch(q int) txBatch {
	b := txBatch{l: l, s: l.socks[q], c: &l.counters[q], hdr: frameHeader{SrcMAC: l.srcMAC, Src: l.local}}
	b.s.reap()
	return b
}

// add builds one frame. When no TX frame is free it submits what is
// pending and waits (bounded) for completions.
func (b *txBatch) add(mac net.HardwareAddr, dst netip.AddrPort, payload []byte) error {
	s := b.s
	b.hdr.DstMAC, b.hdr.Dst = mac, dst
	if frameOverhead(dst.Addr().Is6())+len(payload) > int(s.umem.frameSize) {
		return b.addFrags(payload)
	}
	addr, ok := s.umem.alloc()
	if !ok {
		if err := b.flush(); err != nil {
			return err
		}
		var err error
		if addr, err = b.l.waitTXFrame(s, b.c); err != nil {
			return err
		}
	}
	if err := b.reserve(); err != nil {
		s.umem.release(addr)
		return err
	}
	fn := buildFrame(s.umem.mem[addr:addr+uint64(s.umem.frameSize)], &b.hdr, payload)
	s.tx.Set(b.idx+b.pending, ringDesc(addr, fn))
	b.pending++
	if b.pending >= batchSize {
		return b.flush()
	}
	return nil
}

// reserve reserves the TX ring's free slots when a batch starts. Every
// slot in flight holds a frame and the ring has as many slots as there are
// TX frames, so frames in hand always have slots unless the kernel
// misbehaves.
func (b *txBatch) reserve() error {
	if b.pending > 0 {
		return nil
	}
	var got uint32
	b.idx, got = b.s.tx.Reserve(b.s.tx.Size())
	if got == 0 {
		return ErrTxFull
	}
	return nil
}

// addFrags sends a frame larger than one UMEM frame as a multi-buffer
// frame (XDP_USE_SG): consecutive descriptors, all but the last marked
// XDP_PKT_CONTD. All its frames are taken before any descriptor is
// written, so a flush never splits a frame.
func (b *txBatch) addFrags(payload []byte) error {
	s := b.s
	if !s.sg {
		return link.ErrTooLarge
	}
	fs := int(s.umem.frameSize)
	s.txScratch = s.txScratch[:cap(s.txScratch)]
	if n := frameOverhead(b.hdr.Dst.Addr().Is6()) + len(payload); len(s.txScratch) < n {
		s.txScratch = make([]byte, n)
	}
	n := buildFrame(s.txScratch, &b.hdr, payload)
	k := (n + fs - 1) / fs
	addrs := s.fragAddrs[:0]
	for len(addrs) < k {
		a, ok := s.umem.alloc()
		if !ok {
			err := b.flush()
			if err == nil {
				a, err = b.l.waitTXFrame(s, b.c)
			}
			if err != nil {
				for _, a := range addrs {
					s.umem.release(a)
				}
				return err
			}
		}
		addrs = append(addrs, a)
	}
	s.fragAddrs = addrs
	if err := b.reserve(); err != nil {
		for _, a := range addrs {
			s.umem.release(a)
		}
		return err
	}
	for i, a := range addrs {
		chunk := s.txScratch[i*fs : min((i+1)*fs, n)]
		copy(s.umem.mem[a:a+uint64(fs)], chunk)
		d := ringDesc(a, len(chunk))
		if i < k-1 {
			d.Options = unix.XDP_PKT_CONTD
		}
		s.tx.Set(b.idx+b.pending, d)
		b.pending++
	}
	if b.pending >= batchSize {
		return b.flush()
	}
	return nil
}

// flush submits the pending frames and kicks the kernel if it asks.
func (b *txBatch) flush() error {
	if b.pending == 0 {
		return nil
	}
	b.s.tx.Submit(b.pending)
	b.c.tx.Add(uint64(b.pending))
	b.pending = 0
	if b.s.tx.NeedWakeup() {
		return b.s.kick()
	}
	return nil
}

// waitTXFrame kicks and reaps until a TX frame is free, for up to txWait,
// then gives up with ErrTxFull.
func (l *Link) waitTXFrame(s *socket, c *queueCounters) (uint64, error) {
	c.txFullWaits.Add(1)
	deadline := time.Now().Add(txWait)
	for {
		if err := s.kick(); err != nil {
			return 0, err
		}
		s.reap()
		if a, ok := s.umem.alloc(); ok {
			return a, nil
		}
		if l.closed.Load() {
			return 0, net.ErrClosed
		}
		if time.Now().After(deadline) {
			c.txFullErrors.Add(1)
			return 0, fmt.Errorf("queue %d: no TX frame completed within %v: %w", s.queue, txWait, ErrTxFull)
		}
		pfd := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLOUT}}
		unix.Poll(pfd, 1)
	}
}

// BatchSize implements link.Link.
func (l *Link) BatchSize() int { return batchSize }

// Caps implements link.Link.
func (l *Link) Caps() link.Caps {
	c := link.Caps{Datapath: "xdp", ZeroCopy: l.zeroCopy, Queues: len(l.socks),
		Counters: l.Stats().Counters()}
	if !l.zeroCopy {
		c.Note = "copy mode: driver lacks AF_XDP zero-copy"
		if r := l.socks[0].copyReason; r != "" {
			c.Note = "copy mode: " + r
		}
	}
	return c
}

// LocalAddr implements link.Link.
func (l *Link) LocalAddr() netip.AddrPort { return l.local }

// Close implements link.Link: it wakes a blocked ReadBatch, waits for
// in-flight calls, then releases map entries, sockets, rings, UMEM, the XDP
// link and program, and the reserving socket. Calling it again returns nil.
func (l *Link) Close() error {
	if !l.closed.CompareAndSwap(false, true) {
		return nil
	}
	one := uint64(1)
	unix.Write(l.wakeFD, unsafe.Slice((*byte)(unsafe.Pointer(&one)), 8))
	// Before taking the TX locks: the resolver goroutine may wait for them.
	nhErr := l.nh.stop()
	l.rxMu.Lock()
	defer l.rxMu.Unlock()
	defer l.lockTX()()
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	var errs []error
	for q, s := range l.socks {
		errs = append(errs, l.prog.Unregister(q), s.close())
	}
	errs = append(errs, l.prog.Close(), nhErr, l.ep.Close(), unix.Close(l.reserve), unix.Close(l.wakeFD))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close xdp link: %w", err)
	}
	return nil
}
