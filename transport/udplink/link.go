// Package udplink is the UDP-socket datapath of flightline: a link.Link over
// one Linux UDP socket that moves datagrams in batches with recvmmsg and
// sendmmsg, and uses UDP GSO (send) and GRO (receive) when the kernel offers
// them.
//
// Blocking goes through Go's netpoller: the socket comes from net.ListenUDP,
// and the batched syscalls run with MSG_DONTWAIT inside RawConn.Read/Write
// callbacks that return false on EAGAIN, so a goroutine waiting for packets
// (or for send-buffer room) is parked on epoll, not on a thread. Close wakes
// it with net.ErrClosed.
//
// Every mmsghdr, iovec, sockaddr and cmsg buffer is allocated once per Link,
// so a steady-state batch allocates nothing. The package is Linux-only.
package udplink

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/flightline/flightline/transport/link"
)

var _ link.Link = (*Link)(nil)

// Link is a batched UDP socket. ReadBatch and WriteBatch may run
// concurrently with each other; each is serialised internally as well, so
// misuse (two concurrent readers) is slow rather than corrupting.
type Link struct {
	conn   *net.UDPConn
	rc     syscall.RawConn
	family int // unix.AF_INET or unix.AF_INET6, from SO_DOMAIN
	local  netip.AddrPort
	batch  int
	logf   func(format string, args ...any)
	closed atomic.Bool

	gso atomic.Bool // cleared at runtime when a GSO send fails with EIO/EINVAL
	gro bool        // fixed at Listen: UDP_GRO accepted by the kernel

	noteMu sync.Mutex
	note   string // Caps().Note

	rxMu sync.Mutex // guards rx
	rx   rxState
	txMu sync.Mutex // guards tx
	tx   txState

	st counters
}

// counters are the atomic backing of Stats.
type counters struct {
	datagramsIn, bytesIn, datagramsOut, bytesOut atomic.Uint64
	syscallsIn, syscallsOut                      atomic.Uint64
	gsoSends, groSegments, truncated             atomic.Uint64
	recvErrors, sendErrors                       atomic.Uint64
}

// Listen opens a UDP socket bound to addr (port 0 picks an ephemeral port).
// An IPv4 address gives an AF_INET socket, an IPv6 one an IPv6-only
// AF_INET6 socket, and the zero AddrPort (or a zero Addr with a port) a
// dual-stack socket on all addresses.
func Listen(addr netip.AddrPort, cfg Config) (*Link, error) {
	cfg = cfg.withDefaults()
	network, uaddr := "udp", &net.UDPAddr{Port: int(addr.Port())}
	if a := addr.Addr(); a.IsValid() {
		network = "udp6"
		if a.Unmap().Is4() {
			network = "udp4"
			addr = netip.AddrPortFrom(a.Unmap(), addr.Port())
		}
		uaddr = net.UDPAddrFromAddrPort(addr)
	}
	conn, err := net.ListenUDP(network, uaddr)
	if err != nil {
		return nil, fmt.Errorf("udplink: listen %v: %w", addr, err)
	}
	l, err := newLink(conn, cfg)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return l, nil
}

func newLink(conn *net.UDPConn, cfg Config) (*Link, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("udplink: raw conn: %w", err)
	}
	l := &Link{conn: conn, rc: rc, batch: cfg.BatchSize, logf: cfg.Logf}
	var (
		famErr, gsoErr, groErr error
		gsoOK, groOK           bool
	)
	err = rc.Control(func(fd uintptr) {
		ifd := int(fd)
		l.family, famErr = unix.GetsockoptInt(ifd, unix.SOL_SOCKET, unix.SO_DOMAIN)
		setBuffer(ifd, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, cfg.SocketBuffer)
		setBuffer(ifd, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, cfg.SocketBuffer)
		if !cfg.DisableGSO {
			// Reading UDP_SEGMENT succeeds exactly on kernels that
			// implement it (4.18+); the device may still refuse a GSO
			// send, which WriteBatch handles at runtime.
			_, gsoErr = unix.GetsockoptInt(ifd, unix.IPPROTO_UDP, unix.UDP_SEGMENT)
			gsoOK = gsoErr == nil
		}
		if !cfg.DisableGRO {
			groErr = unix.SetsockoptInt(ifd, unix.IPPROTO_UDP, unix.UDP_GRO, 1)
			groOK = groErr == nil
		}
	})
	if err == nil {
		err = famErr
	}
	if err != nil {
		return nil, fmt.Errorf("udplink: socket setup: %w", err)
	}
	if l.family != unix.AF_INET && l.family != unix.AF_INET6 {
		return nil, fmt.Errorf("udplink: unexpected socket family %d", l.family)
	}
	l.local = conn.LocalAddr().(*net.UDPAddr).AddrPort()
	if l.family == unix.AF_INET {
		l.local = netip.AddrPortFrom(l.local.Addr().Unmap(), l.local.Port())
	}
	var notes []string
	switch {
	case cfg.DisableGSO:
		notes = append(notes, "GSO disabled by config")
	case !gsoOK:
		notes = append(notes, l.logOffload("GSO disabled: UDP_SEGMENT probe: %v", gsoErr))
	}
	switch {
	case cfg.DisableGRO:
		notes = append(notes, "GRO disabled by config")
	case !groOK:
		notes = append(notes, l.logOffload("GRO disabled: UDP_GRO setsockopt: %v", groErr))
	}
	l.note = joinNotes(notes)
	l.gso.Store(gsoOK)
	l.gro = groOK
	l.rx.init(l.batch, l.gro)
	l.tx.init(l.batch)
	l.rx.readFn = l.readRaw
	l.tx.writeFn = l.writeRaw
	return l, nil
}

// setBuffer asks for size bytes of socket buffer, first with the *FORCE
// option that root may use to exceed net.core.[rw]mem_max. Failures are
// ignored: the kernel keeps its default and only throughput suffers.
func setBuffer(fd, force, plain, size int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, size) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, plain, size)
	}
}

func joinNotes(notes []string) string {
	s := ""
	for i, n := range notes {
		if i > 0 {
			s += "; "
		}
		s += n
	}
	return s
}

// logOffload formats an offload-disabled message, sends it to Logf and
// returns it for Caps().Note.
func (l *Link) logOffload(format string, args ...any) string {
	msg := fmt.Sprintf(format, args...)
	if l.logf != nil {
		l.logf("udplink %v: %s", l.local, msg)
	}
	return msg
}

// disableGSO turns GSO off for the rest of the Link's life after the kernel
// refused a UDP_SEGMENT send.
func (l *Link) disableGSO(errno syscall.Errno) {
	if !l.gso.CompareAndSwap(true, false) {
		return
	}
	msg := l.logOffload("GSO disabled: %v on send", errno)
	l.noteMu.Lock()
	if l.note == "" {
		l.note = msg
	} else {
		l.note += "; " + msg
	}
	l.noteMu.Unlock()
}

// BatchSize is the most datagrams one recvmmsg/sendmmsg moves. WriteBatch
// accepts longer slices and loops.
func (l *Link) BatchSize() int { return l.batch }

// Caps reports datapath "udp" and the offloads currently in use.
func (l *Link) Caps() link.Caps {
	l.noteMu.Lock()
	note := l.note
	l.noteMu.Unlock()
	return link.Caps{Datapath: "udp", GSO: l.gso.Load(), GRO: l.gro, Queues: 1, Note: note}
}

// LocalAddr is the bound address. For a wildcard bind it is the wildcard
// address; peers on this host reach it via loopback.
func (l *Link) LocalAddr() netip.AddrPort { return l.local }

// Close closes the socket. Blocked ReadBatch and WriteBatch calls return
// net.ErrClosed. Closing twice returns nil.
func (l *Link) Close() error {
	if !l.closed.CompareAndSwap(false, true) {
		return nil
	}
	if err := l.conn.Close(); err != nil {
		return fmt.Errorf("udplink: close: %w", err)
	}
	return nil
}

// Stats returns a snapshot of the counters.
func (l *Link) Stats() Stats {
	c := &l.st
	return Stats{
		DatagramsIn:  c.datagramsIn.Load(),
		BytesIn:      c.bytesIn.Load(),
		DatagramsOut: c.datagramsOut.Load(),
		BytesOut:     c.bytesOut.Load(),
		SyscallsIn:   c.syscallsIn.Load(),
		SyscallsOut:  c.syscallsOut.Load(),
		GSOSends:     c.gsoSends.Load(),
		GROSegments:  c.groSegments.Load(),
		Truncated:    c.truncated.Load(),
		RecvErrors:   c.recvErrors.Load(),
		SendErrors:   c.sendErrors.Load(),
	}
}

// maxPayload is the largest datagram the socket family can carry.
func (l *Link) maxPayload() int {
	if l.family == unix.AF_INET {
		return maxGSOBytes4
	}
	return maxGSOBytes6
}

// rawErr maps an error from RawConn.Read/Write: a closed socket becomes
// plain net.ErrClosed as link.Link promises.
func rawErr(op string, err error) error {
	if errors.Is(err, net.ErrClosed) {
		return net.ErrClosed
	}
	return fmt.Errorf("udplink: %s: %w", op, err)
}
