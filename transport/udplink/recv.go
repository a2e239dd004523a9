package udplink

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/flightline/flightline/transport/link"
)

// rxCtrlSize is the per-slot receive cmsg buffer. UDP_GRO needs
// CmsgSpace(4) = 24 bytes; the rest leaves room for cmsgs we did not ask
// for, so the kernel never sets MSG_CTRUNC on the one we need.
const rxCtrlSize = 64

// rxState is the preallocated receive side. Without GRO, iovecs point
// straight into the caller's buffers and the kernel writes there. With GRO,
// each slot owns a 64 KiB piece of slab (a super-datagram can be that
// large) and ReadBatch copies segments out; slots not yet handed out stay
// pending for the next ReadBatch.
type rxState struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []sockaddr
	ctrl  []byte // len(hdrs)*rxCtrlSize, GRO only

	// GRO only.
	slab  []byte           // len(hdrs)*groBufSize
	size  []int            // datagram length per slot, -1 = dropped
	seg   []int            // GRO segment size per slot, 0 = not coalesced
	from  []netip.AddrPort // sender per slot
	pend  int              // next slot to hand out
	npend int              // slots filled by the last recvmmsg
	off   int              // bytes of slot pend already handed out

	// Parameters and results of one readRaw callback.
	readFn func(fd uintptr) bool
	cnt    int
	got    int
	errno  syscall.Errno
}

func (r *rxState) init(batch int, gro bool) {
	r.hdrs = make([]unix.Mmsghdr, batch)
	r.iovs = make([]unix.Iovec, batch)
	r.names = make([]sockaddr, batch)
	for i := range r.hdrs {
		h := &r.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
	}
	if !gro {
		return
	}
	r.ctrl = make([]byte, batch*rxCtrlSize)
	r.slab = make([]byte, batch*groBufSize)
	r.size = make([]int, batch)
	r.seg = make([]int, batch)
	r.from = make([]netip.AddrPort, batch)
	for i := range r.hdrs {
		r.hdrs[i].Hdr.Control = &r.ctrl[i*rxCtrlSize]
		r.iovs[i].Base = &r.slab[i*groBufSize]
		r.iovs[i].SetLen(groBufSize)
	}
}

// ReadBatch blocks until at least one datagram arrived, then fills up to
// min(len(msgs), BatchSize()) messages. Buf must have cap >= the largest
// expected datagram (link.MaxPacketSize); a datagram that does not fit is
// dropped and counted in Stats().Truncated. After Close it returns
// net.ErrClosed.
func (l *Link) ReadBatch(msgs []link.Message) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	l.rxMu.Lock()
	defer l.rxMu.Unlock()
	if l.closed.Load() {
		return 0, net.ErrClosed
	}
	if l.gro {
		return l.readGRO(msgs)
	}
	return l.readDirect(msgs)
}

// readDirect receives straight into the caller's buffers.
func (l *Link) readDirect(msgs []link.Message) (int, error) {
	r := &l.rx
	for {
		cnt := min(len(msgs), len(r.hdrs))
		for i := 0; i < cnt; i++ {
			b := msgs[i].Buf[:cap(msgs[i].Buf)]
			if len(b) > 0 {
				r.iovs[i].Base = &b[0]
			} else {
				r.iovs[i].Base = nil
			}
			r.iovs[i].SetLen(len(b))
		}
		got, err := l.recv(cnt)
		n := 0
		var bytes uint64
		for i := 0; i < got; i++ {
			h := &r.hdrs[i]
			if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
				l.st.truncated.Add(1)
				continue
			}
			size := int(h.Len)
			if n != i {
				// Compact over a dropped datagram. Copy if the
				// earlier buffer is big enough, else swap buffers.
				if cap(msgs[n].Buf) >= size {
					msgs[n].Buf = append(msgs[n].Buf[:0], msgs[i].Buf[:size]...)
				} else {
					msgs[n].Buf, msgs[i].Buf = msgs[i].Buf[:size], msgs[n].Buf
				}
			} else {
				msgs[n].Buf = msgs[n].Buf[:size]
			}
			msgs[n].Addr = getSockaddr(&r.names[i])
			bytes += uint64(size)
			n++
		}
		// Do not keep the caller's buffers reachable from the Link.
		for i := 0; i < cnt; i++ {
			r.iovs[i].Base = nil
		}
		if err != nil {
			return 0, err
		}
		if n > 0 {
			l.st.datagramsIn.Add(uint64(n))
			l.st.bytesIn.Add(bytes)
			return n, nil
		}
	}
}

// readGRO receives into the internal slab and copies segments out.
func (l *Link) readGRO(msgs []link.Message) (int, error) {
	r := &l.rx
	for {
		if r.pend >= r.npend {
			// Each slot yields at least one message, so asking for
			// len(msgs) slots keeps uncoalesced traffic from piling up.
			cnt := min(len(msgs), len(r.hdrs))
			for i := 0; i < cnt; i++ {
				r.hdrs[i].Hdr.SetControllen(rxCtrlSize)
			}
			got, err := l.recv(cnt)
			if err != nil {
				return 0, err
			}
			for i := 0; i < got; i++ {
				h := &r.hdrs[i]
				r.size[i] = int(h.Len)
				if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
					r.size[i] = -1
					l.st.truncated.Add(1)
				}
				r.seg[i] = groSegSize(r.ctrl[i*rxCtrlSize : i*rxCtrlSize+int(h.Hdr.Controllen)])
				r.from[i] = getSockaddr(&r.names[i])
			}
			r.pend, r.npend, r.off = 0, got, 0
		}
		if n := l.splitPending(msgs); n > 0 {
			return n, nil
		}
	}
}

// splitPending hands out pending GRO slots, one segment per message, until
// msgs is full or nothing is pending.
func (l *Link) splitPending(msgs []link.Message) int {
	r := &l.rx
	n := 0
	var bytes, segs uint64
	for n < len(msgs) && r.pend < r.npend {
		i := r.pend
		size, seg := r.size[i], r.seg[i]
		if size < 0 || (r.off >= size && size > 0) {
			r.pend, r.off = r.pend+1, 0
			continue
		}
		if seg <= 0 || seg > size {
			seg = size
		}
		sl := min(seg, size-r.off)
		base := i*groBufSize + r.off
		r.off += sl
		if size == 0 {
			r.pend, r.off = r.pend+1, 0 // an empty datagram is one message
		}
		if seg < size {
			segs++
		}
		if cap(msgs[n].Buf) < sl {
			l.st.truncated.Add(1)
			continue
		}
		msgs[n].Buf = append(msgs[n].Buf[:0], r.slab[base:base+sl]...)
		msgs[n].Addr = r.from[i]
		bytes += uint64(sl)
		n++
	}
	l.st.datagramsIn.Add(uint64(n))
	l.st.bytesIn.Add(bytes)
	l.st.groSegments.Add(segs)
	return n
}

// groSegSize returns the UDP_GRO segment size carried in a receive control
// buffer, or 0 when the datagram was not coalesced.
func groSegSize(ctrl []byte) int {
	hdrLen := unix.CmsgLen(0)
	for len(ctrl) >= hdrLen {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
		cl := int(h.Len)
		if cl < hdrLen || cl > len(ctrl) {
			return 0
		}
		if h.Level == unix.IPPROTO_UDP && h.Type == unix.UDP_GRO && cl >= unix.CmsgLen(4) {
			return int(*(*int32)(unsafe.Pointer(&ctrl[hdrLen])))
		}
		next := unix.CmsgSpace(cl - hdrLen)
		if next > len(ctrl) {
			return 0
		}
		ctrl = ctrl[next:]
	}
	return 0
}

// recv runs one recvmmsg for cnt slots, parking on epoll until at least one
// datagram is there.
func (l *Link) recv(cnt int) (int, error) {
	r := &l.rx
	for i := 0; i < cnt; i++ {
		h := &r.hdrs[i]
		h.Hdr.Namelen = sizeofSockaddr6
		h.Hdr.Flags = 0
		h.Len = 0
	}
	r.cnt, r.got, r.errno = cnt, 0, 0
	if err := l.rc.Read(r.readFn); err != nil {
		return 0, rawErr("read", err)
	}
	if r.errno != 0 {
		l.st.recvErrors.Add(1)
		return 0, fmt.Errorf("udplink: recvmmsg: %w", r.errno)
	}
	return r.got, nil
}

// readRaw is the RawConn.Read callback: false means "would block, park".
func (l *Link) readRaw(fd uintptr) bool {
	r := &l.rx
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])),
			uintptr(r.cnt), unix.MSG_DONTWAIT, 0, 0)
		l.st.syscallsIn.Add(1)
		switch e {
		case 0:
			r.got = int(n)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			r.errno = e
			return true
		}
	}
}
