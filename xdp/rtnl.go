package xdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rtnl is an rtnetlink socket. A netlink socket answers for the network
// namespace it was created in, so Listen opens it on the namespace's thread;
// later calls may come from any thread. One goroutine uses it at a time.
type rtnl struct {
	fd  int
	seq uint32
	buf []byte
}

// openRTNL opens an rtnetlink socket subscribed to the multicast groups
// (a RTMGRP_* mask; 0 for a request socket). Requests time out after 1 s
// so a lost reply cannot hang the caller.
func openRTNL(groups uint32) (*rtnl, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind rtnetlink socket: %w", err)
	}
	tv := unix.Timeval{Sec: 1}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set rtnetlink timeout: %w", err)
	}
	return &rtnl{fd: fd, buf: make([]byte, 32<<10)}, nil
}

func (r *rtnl) close() error { return unix.Close(r.fd) }

func family(a netip.Addr) uint8 {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// attr appends one rtattr {len u16, type u16, value, pad to 4}.
func attr(b []byte, typ uint16, val []byte) []byte {
	var h [4]byte
	binary.NativeEndian.PutUint16(h[0:], uint16(4+len(val)))
	binary.NativeEndian.PutUint16(h[2:], typ)
	b = append(b, h[:]...)
	b = append(b, val...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// attrs walks rtattrs; syscall.ParseNetlinkRouteAttr rejects neighbour
// messages, so one walker serves routes and neighbours.
func attrs(b []byte, fn func(typ uint16, val []byte)) {
	for len(b) >= 4 {
		alen := int(binary.NativeEndian.Uint16(b[0:2]))
		if alen < 4 || alen > len(b) {
			return
		}
		fn(binary.NativeEndian.Uint16(b[2:4]), b[4:alen])
		b = b[min((alen+3)&^3, len(b)):]
	}
}

// request sends one rtnetlink message and returns the reply messages up to
// NLMSG_DONE (dump), the ack, or the single answer.
func (r *rtnl) request(typ, flags uint16, body []byte) ([]syscall.NetlinkMessage, error) {
	r.seq++
	hdr := unix.NlMsghdr{Len: uint32(unix.SizeofNlMsghdr + len(body)), Type: typ,
		Flags: flags | unix.NLM_F_REQUEST, Seq: r.seq}
	msg := append(unsafe.Slice((*byte)(unsafe.Pointer(&hdr)), unix.SizeofNlMsghdr), body...)
	if err := unix.Sendto(r.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("send rtnetlink request: %w", err)
	}
	var out []syscall.NetlinkMessage
	for {
		nr, _, err := unix.Recvfrom(r.fd, r.buf, 0)
		if err != nil {
			return nil, fmt.Errorf("read rtnetlink reply: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(r.buf[:nr])
		if err != nil {
			return nil, fmt.Errorf("parse rtnetlink reply: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != r.seq {
				continue // a stale reply to an earlier, timed-out request
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if code := int32(binary.NativeEndian.Uint32(m.Data)); code != 0 {
						return nil, unix.Errno(-code)
					}
				}
				return out, nil // ack
			}
			out = append(out, m)
			if m.Header.Flags&unix.NLM_F_MULTI == 0 {
				return out, nil
			}
		}
	}
}

// route is the kernel's answer to "how do I reach dst from src".
type route struct {
	typ     uint8 // RTN_UNICAST, RTN_LOCAL, RTN_UNREACHABLE, ...
	oif     int
	gateway netip.Addr // invalid for on-link destinations
}

// route asks the kernel's FIB (policy rules included) for the route to dst
// with source address src, like `ip route get dst from src`.
func (r *rtnl) route(dst, src netip.Addr) (route, error) {
	bits := uint8(dst.BitLen())
	rm := unix.RtMsg{Family: family(dst), Dst_len: bits}
	if src.IsValid() {
		rm.Src_len = bits
	}
	body := append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&rm)), unix.SizeofRtMsg)...)
	body = attr(body, unix.RTA_DST, dst.AsSlice())
	if src.IsValid() {
		body = attr(body, unix.RTA_SRC, src.AsSlice())
	}
	msgs, err := r.request(unix.RTM_GETROUTE, 0, body)
	if err != nil {
		return route{}, fmt.Errorf("route to %v: %w", dst, err)
	}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWROUTE || len(m.Data) < unix.SizeofRtMsg {
			continue
		}
		got := (*unix.RtMsg)(unsafe.Pointer(&m.Data[0]))
		rt := route{typ: got.Type}
		attrs(m.Data[unix.SizeofRtMsg:], func(typ uint16, val []byte) {
			switch typ {
			case unix.RTA_OIF:
				if len(val) == 4 {
					rt.oif = int(binary.NativeEndian.Uint32(val))
				}
			case unix.RTA_GATEWAY:
				rt.gateway, _ = netip.AddrFromSlice(val)
			case unix.RTA_VIA: // struct rtvia {family u16; addr}
				if len(val) > 2 {
					rt.gateway, _ = netip.AddrFromSlice(val[2:])
				}
			}
		})
		return rt, nil
	}
	return route{}, fmt.Errorf("route to %v: no RTM_NEWROUTE in the answer", dst)
}

// neighbour is one entry of the kernel's neighbour table.
type neighbour struct {
	ifindex int
	ip      netip.Addr
	mac     net.HardwareAddr
	state   uint16
	deleted bool // from an RTM_DELNEIGH notification
}

// usableNUD are the neighbour states whose link-layer address may be used
// (the kernel itself sends to STALE/DELAY/PROBE entries while re-checking).
const usableNUD = unix.NUD_REACHABLE | unix.NUD_STALE | unix.NUD_DELAY | unix.NUD_PROBE |
	unix.NUD_PERMANENT | unix.NUD_NOARP

func (n neighbour) usable() bool { return !n.deleted && n.state&usableNUD != 0 && len(n.mac) == 6 }

// parseNeighbour decodes an RTM_NEWNEIGH/RTM_DELNEIGH message.
func parseNeighbour(m syscall.NetlinkMessage) (neighbour, bool) {
	if (m.Header.Type != unix.RTM_NEWNEIGH && m.Header.Type != unix.RTM_DELNEIGH) || len(m.Data) < unix.SizeofNdMsg {
		return neighbour{}, false
	}
	nd := (*unix.NdMsg)(unsafe.Pointer(&m.Data[0]))
	n := neighbour{ifindex: int(nd.Ifindex), state: nd.State, deleted: m.Header.Type == unix.RTM_DELNEIGH}
	attrs(m.Data[unix.SizeofNdMsg:], func(typ uint16, val []byte) {
		switch typ {
		case unix.NDA_DST:
			ip, _ := netip.AddrFromSlice(val)
			n.ip = ip.Unmap()
		case unix.NDA_LLADDR:
			n.mac = net.HardwareAddr(append([]byte(nil), val...))
		}
	})
	return n, n.ip.IsValid()
}

// neighbour looks ip up on ifindex (RTM_GETNEIGH for one entry, Linux ≥
// 5.0). A missing entry is not an error: it returns a zero neighbour.
func (r *rtnl) neighbour(ifindex int, ip netip.Addr) (neighbour, error) {
	nd := unix.NdMsg{Family: family(ip), Ifindex: int32(ifindex)}
	body := append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&nd)), unix.SizeofNdMsg)...)
	body = attr(body, unix.NDA_DST, ip.AsSlice())
	msgs, err := r.request(unix.RTM_GETNEIGH, 0, body)
	if errors.Is(err, unix.ENOENT) {
		return neighbour{}, nil
	}
	if err != nil {
		return neighbour{}, fmt.Errorf("neighbour %v: %w", ip, err)
	}
	for _, m := range msgs {
		if n, ok := parseNeighbour(m); ok && n.ip == ip {
			return n, nil
		}
	}
	return neighbour{}, nil
}

// trigger asks the kernel to start resolving ip on ifindex (NTF_USE sends
// an ARP request / neighbour solicitation, creating an incomplete entry if
// there is none). It does not wait.
func (r *rtnl) trigger(ifindex int, ip netip.Addr) error {
	nd := unix.NdMsg{Family: family(ip), Ifindex: int32(ifindex), State: unix.NUD_NONE, Flags: unix.NTF_USE}
	body := append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&nd)), unix.SizeofNdMsg)...)
	body = attr(body, unix.NDA_DST, ip.AsSlice())
	if _, err := r.request(unix.RTM_NEWNEIGH, unix.NLM_F_CREATE|unix.NLM_F_ACK, body); err != nil {
		return fmt.Errorf("trigger resolution of %v: %w", ip, err)
	}
	return nil
}
