package udplink

import (
	"encoding/binary"
	"fmt"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/flightline/flightline/transport/link"
)

// txCtrlSize is one UDP_SEGMENT cmsg: a header and a uint16 segment size.
var txCtrlSize = unix.CmsgSpace(2)

// txState is the preallocated send side. One WriteBatch chunk is at most
// len(hdrs) messages; with GSO several messages share one mmsghdr whose
// iovecs gather their buffers (no copy), so iovs has one entry per message.
type txState struct {
	hdrs   []unix.Mmsghdr
	iovs   []unix.Iovec
	names  []sockaddr
	ctrl   []byte // len(hdrs)*txCtrlSize, headers prebuilt
	groups []group

	// Parameters and results of one writeRaw callback.
	writeFn func(fd uintptr) bool
	cnt     int // mmsghdrs to send
	off     int // mmsghdrs sent so far
	errno   syscall.Errno
}

func (t *txState) init(batch int) {
	t.hdrs = make([]unix.Mmsghdr, batch)
	t.iovs = make([]unix.Iovec, batch)
	t.names = make([]sockaddr, batch)
	t.ctrl = make([]byte, batch*txCtrlSize)
	t.groups = make([]group, 0, batch)
	for i := range t.hdrs {
		h := &t.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&t.names[i]))
		c := t.ctrl[i*txCtrlSize:]
		ch := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
		ch.Level = unix.IPPROTO_UDP
		ch.Type = unix.UDP_SEGMENT
		ch.SetLen(unix.CmsgLen(2))
		h.Control = &c[0]
	}
}

// WriteBatch sends msgs in order. Messages beyond BatchSize are sent in
// further sendmmsg calls. When the socket buffer is full it waits on the
// netpoller and continues, so it returns n < len(msgs) only with an error
// describing msgs[n]: link.ErrTooLarge (wrapped) for a datagram over the
// UDP limit, net.ErrClosed after Close, or the wrapped errno.
//
// With GSO, runs of equal-size messages to one destination go out as one
// super-datagram. If the kernel refuses one with EIO or EINVAL, GSO is
// switched off for good (see Caps().Note) and the rest is resent plainly.
func (l *Link) WriteBatch(msgs []link.Message) (int, error) {
	l.txMu.Lock()
	defer l.txMu.Unlock()
	if l.closed.Load() {
		return 0, net.ErrClosed
	}
	t := &l.tx
	maxLen := l.maxPayload()
	sent := 0
	for sent < len(msgs) {
		chunk := msgs[sent:min(len(msgs), sent+len(t.hdrs))]
		var stopErr error // error for chunk[len(chunk)] after truncation
		for i := range chunk {
			if len(chunk[i].Buf) > maxLen {
				stopErr = fmt.Errorf("udplink: send %d bytes to %v: %w", len(chunk[i].Buf), chunk[i].Addr, link.ErrTooLarge)
				chunk = chunk[:i]
				break
			}
		}
		t.groups = t.groups[:0]
		if l.gso.Load() {
			t.groups = coalesce(t.groups, chunk, maxLen, maxGSOSegments)
		} else {
			for i := range chunk {
				t.groups = append(t.groups, group{start: i, n: 1, seg: len(chunk[i].Buf)})
			}
		}
		if err := t.fill(chunk, l.family); err != nil {
			stopErr = err
		}
		done, err := l.send(len(t.groups))
		nmsg, nbytes, ngso := t.tally(chunk, done)
		for i := range t.iovs {
			t.iovs[i].Base = nil // do not keep the caller's buffers reachable
		}
		l.st.datagramsOut.Add(uint64(nmsg))
		l.st.bytesOut.Add(uint64(nbytes))
		l.st.gsoSends.Add(uint64(ngso))
		sent += nmsg
		if err != nil {
			return sent, err
		}
		if t.errno != 0 {
			l.st.sendErrors.Add(1)
			g := t.groups[done]
			if g.n > 1 && (t.errno == unix.EIO || t.errno == unix.EINVAL) {
				l.disableGSO(t.errno)
				continue // resend from msgs[sent] uncoalesced
			}
			return sent, fmt.Errorf("udplink: sendmmsg to %v: %w", chunk[g.start].Addr, t.errno)
		}
		if stopErr != nil {
			return sent, stopErr
		}
	}
	return sent, nil
}

// fill writes mmsghdrs for t.groups. If a destination cannot be encoded,
// t.groups is cut before it and the error describes that message.
func (t *txState) fill(chunk []link.Message, family int) error {
	iov := 0
	for gi, g := range t.groups {
		m := &chunk[g.start]
		namelen, err := putSockaddr(&t.names[gi], family, m.Addr)
		if err != nil {
			t.groups = t.groups[:gi]
			return fmt.Errorf("udplink: send to %v: %w", m.Addr, err)
		}
		h := &t.hdrs[gi].Hdr
		h.Namelen = namelen
		h.Iov = &t.iovs[iov]
		h.SetIovlen(g.n)
		for k := 0; k < g.n; k++ {
			b := chunk[g.start+k].Buf
			if len(b) > 0 {
				t.iovs[iov].Base = &b[0]
			} else {
				t.iovs[iov].Base = nil
			}
			t.iovs[iov].SetLen(len(b))
			iov++
		}
		if g.n > 1 {
			c := t.ctrl[gi*txCtrlSize:]
			binary.NativeEndian.PutUint16(c[unix.CmsgLen(0):], uint16(g.seg))
			h.SetControllen(txCtrlSize)
		} else {
			h.SetControllen(0)
		}
	}
	return nil
}

// tally counts messages, bytes and GSO super-datagrams in the first done
// groups.
func (t *txState) tally(chunk []link.Message, done int) (msgs, bytes, gso int) {
	for _, g := range t.groups[:done] {
		msgs += g.n
		for k := 0; k < g.n; k++ {
			bytes += len(chunk[g.start+k].Buf)
		}
		if g.n > 1 {
			gso++
		}
	}
	return msgs, bytes, gso
}

// send pushes cnt prepared mmsghdrs, parking on epoll while the socket
// buffer is full. It returns how many went out; t.errno is set when
// hdrs[done] failed.
func (l *Link) send(cnt int) (int, error) {
	t := &l.tx
	t.cnt, t.off, t.errno = cnt, 0, 0
	if cnt == 0 {
		return 0, nil
	}
	if err := l.rc.Write(t.writeFn); err != nil {
		return t.off, rawErr("write", err)
	}
	return t.off, nil
}

// writeRaw is the RawConn.Write callback. sendmmsg may send only a prefix
// (socket buffer full); the callback keeps going until EAGAIN, then returns
// false so the runtime parks until the socket is writable and calls again.
func (l *Link) writeRaw(fd uintptr) bool {
	t := &l.tx
	for t.off < t.cnt {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&t.hdrs[t.off])),
			uintptr(t.cnt-t.off), unix.MSG_DONTWAIT, 0, 0)
		l.st.syscallsOut.Add(1)
		switch e {
		case 0:
			t.off += int(n)
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			t.errno = e
			return true
		}
	}
	return true
}
