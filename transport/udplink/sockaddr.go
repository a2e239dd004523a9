package udplink

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// errAddrFamily is returned for an IPv6 destination on an IPv4 socket.
var errAddrFamily = errors.New("udplink: IPv6 destination on an IPv4 socket")

// errNoAddr is returned for a Message whose Addr is the zero AddrPort.
var errNoAddr = errors.New("udplink: destination address not set")

// sockaddr is one preallocated msg_name slot. RawSockaddrInet6 (28 bytes) is
// large enough for both families; for AF_INET the first 16 bytes are read as
// a RawSockaddrInet4 (same layout prefix: family, then port).
type sockaddr = unix.RawSockaddrInet6

const (
	sizeofSockaddr4 = unix.SizeofSockaddrInet4
	sizeofSockaddr6 = unix.SizeofSockaddrInet6
)

// putSockaddr writes ap into sa for a socket of the given family and returns
// the msg_namelen to use. It does not allocate (unless ap has a non-numeric
// zone, which needs an interface lookup).
//
// On an AF_INET6 socket an IPv4 destination is written as v4-mapped, which
// reaches it on a dual-stack socket; on an AF_INET socket a v4-mapped IPv6
// destination is unmapped.
func putSockaddr(sa *sockaddr, family int, ap netip.AddrPort) (uint32, error) {
	addr := ap.Addr()
	if !addr.IsValid() {
		return 0, errNoAddr
	}
	port := ap.Port()
	if family == unix.AF_INET {
		addr = addr.Unmap()
		if !addr.Is4() {
			return 0, errAddrFamily
		}
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: addr.As4()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:], port)
		return sizeofSockaddr4, nil
	}
	var scope uint32
	if z := addr.Zone(); z != "" {
		s, err := zoneToScope(z)
		if err != nil {
			return 0, err
		}
		scope = s
	}
	*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: addr.As16(), Scope_id: scope}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], port)
	return sizeofSockaddr6, nil
}

// getSockaddr decodes a msg_name the kernel filled in. v4-mapped IPv6
// senders (dual-stack sockets) are unmapped so the address compares equal
// to the one the peer was configured with.
func getSockaddr(sa *sockaddr) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	case unix.AF_INET6:
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		addr := netip.AddrFrom16(sa.Addr)
		if addr.Is4In6() {
			addr = addr.Unmap()
		} else if sa.Scope_id != 0 {
			addr = addr.WithZone(strconv.FormatUint(uint64(sa.Scope_id), 10))
		}
		return netip.AddrPortFrom(addr, port)
	}
	return netip.AddrPort{}
}

// zoneToScope turns an IPv6 zone ("3" or "eth0") into a scope id.
func zoneToScope(zone string) (uint32, error) {
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		return uint32(n), nil
	}
	ifi, err := net.InterfaceByName(zone)
	if err != nil {
		return 0, err
	}
	return uint32(ifi.Index), nil
}
