package xdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// neighbours resolves next-hop MAC addresses from the kernel's neighbour
// table over rtnetlink. The netlink socket is opened in Listen, on the
// namespace's thread, because a netlink socket answers for the namespace it
// was created in; later queries may then come from any thread.
//
// Only on-link destinations are supported: the destination address itself
// is looked up, no route is consulted.
type neighbours struct {
	fd      int
	ifindex int
	seq     uint32
	cache   map[netip.Addr]neighEntry
}

type neighEntry struct {
	mac     net.HardwareAddr
	expires time.Time
}

// neighTTL bounds how long a resolved MAC is trusted before re-reading the
// kernel's table (which does the actual reachability tracking).
const neighTTL = 30 * time.Second

// errNoNeighbour is wrapped when a destination's MAC cannot be resolved.
var errNoNeighbour = errors.New("no neighbour entry")

func openNeighbours(ifindex int) (*neighbours, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind rtnetlink socket: %w", err)
	}
	// Replies must not block forever if the kernel drops a request.
	tv := unix.Timeval{Sec: 1}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set rtnetlink timeout: %w", err)
	}
	return &neighbours{fd: fd, ifindex: ifindex, cache: map[netip.Addr]neighEntry{}}, nil
}

func (n *neighbours) close() error { return unix.Close(n.fd) }

// resolve returns dst's MAC. now is read once per batch by the caller. On a
// miss it dumps the table; if dst is absent it asks the kernel to resolve it
// (RTM_NEWNEIGH with NTF_USE, which sends an ARP request / neighbour
// solicitation) and polls the table for up to wait.
func (n *neighbours) resolve(dst netip.Addr, now time.Time, wait time.Duration) (net.HardwareAddr, error) {
	if e, ok := n.cache[dst]; ok && now.Before(e.expires) {
		return e.mac, nil
	}
	deadline := now.Add(wait)
	triggered := false
	for {
		mac, err := n.lookup(dst)
		if err != nil {
			return nil, err
		}
		if mac != nil {
			n.cache[dst] = neighEntry{mac: mac, expires: now.Add(neighTTL)}
			return mac, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("resolve %v: %w (destination must be on-link)", dst, errNoNeighbour)
		}
		if !triggered {
			triggered = true
			if err := n.trigger(dst); err != nil {
				return nil, fmt.Errorf("resolve %v: %w", dst, err)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func family(a netip.Addr) uint8 {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// request sends one rtnetlink message and returns the raw reply messages up
// to NLMSG_DONE (dump) or the ack.
func (n *neighbours) request(typ uint16, flags uint16, body []byte) ([]syscall.NetlinkMessage, error) {
	n.seq++
	hdr := unix.NlMsghdr{Len: uint32(unix.SizeofNlMsghdr + len(body)), Type: typ,
		Flags: flags | unix.NLM_F_REQUEST, Seq: n.seq}
	msg := append(unsafe.Slice((*byte)(unsafe.Pointer(&hdr)), unix.SizeofNlMsghdr), body...)
	if err := unix.Sendto(n.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("send rtnetlink request: %w", err)
	}
	var out []syscall.NetlinkMessage
	buf := make([]byte, 32<<10)
	for {
		nr, _, err := unix.Recvfrom(n.fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("read rtnetlink reply: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:nr])
		if err != nil {
			return nil, fmt.Errorf("parse rtnetlink reply: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != n.seq {
				continue // a stale reply to an earlier, timed-out request
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if code := int32(binary.NativeEndian.Uint32(m.Data)); code != 0 {
						return nil, fmt.Errorf("rtnetlink: %w", unix.Errno(-code))
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

// lookup dumps the neighbour table of dst's family and returns dst's MAC on
// our interface, or nil if there is no usable entry.
func (n *neighbours) lookup(dst netip.Addr) (net.HardwareAddr, error) {
	req := unix.NdMsg{Family: family(dst)}
	body := unsafe.Slice((*byte)(unsafe.Pointer(&req)), unix.SizeofNdMsg)
	msgs, err := n.request(unix.RTM_GETNEIGH, unix.NLM_F_DUMP, body)
	if err != nil {
		return nil, fmt.Errorf("dump neighbours: %w", err)
	}
	const usable = unix.NUD_REACHABLE | unix.NUD_STALE | unix.NUD_DELAY | unix.NUD_PROBE |
		unix.NUD_PERMANENT | unix.NUD_NOARP
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWNEIGH || len(m.Data) < unix.SizeofNdMsg {
			continue
		}
		nd := (*unix.NdMsg)(unsafe.Pointer(&m.Data[0]))
		if int(nd.Ifindex) != n.ifindex || nd.State&usable == 0 {
			continue
		}
		var ip netip.Addr
		var mac net.HardwareAddr
		// syscall.ParseNetlinkRouteAttr rejects neighbour messages, so walk
		// the rtattrs here: {len u16, type u16, value, pad to 4}.
		for b := m.Data[unix.SizeofNdMsg:]; len(b) >= 4; {
			alen := int(binary.NativeEndian.Uint16(b[0:2]))
			if alen < 4 || alen > len(b) {
				break
			}
			switch binary.NativeEndian.Uint16(b[2:4]) {
			case unix.NDA_DST:
				ip, _ = netip.AddrFromSlice(b[4:alen])
			case unix.NDA_LLADDR:
				mac = net.HardwareAddr(append([]byte(nil), b[4:alen]...))
			}
			b = b[min((alen+3)&^3, len(b)):]
		}
		if ip == dst && len(mac) == 6 {
			return mac, nil
		}
	}
	return nil, nil
}

// trigger asks the kernel to start resolving dst (NTF_USE), creating an
// incomplete entry if there is none.
func (n *neighbours) trigger(dst netip.Addr) error {
	req := unix.NdMsg{Family: family(dst), Ifindex: int32(n.ifindex), State: unix.NUD_NONE, Flags: unix.NTF_USE}
	body := append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&req)), unix.SizeofNdMsg)...)
	a := dst.AsSlice()
	attr := make([]byte, 4+len(a))
	binary.NativeEndian.PutUint16(attr[0:], uint16(4+len(a)))
	binary.NativeEndian.PutUint16(attr[2:], unix.NDA_DST)
	copy(attr[4:], a)
	body = append(body, attr...)
	if _, err := n.request(unix.RTM_NEWNEIGH, unix.NLM_F_CREATE|unix.NLM_F_ACK, body); err != nil {
		return fmt.Errorf("trigger neighbour resolution: %w", err)
	}
	return nil
}
