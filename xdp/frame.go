package xdp

import (
	"encoding/binary"
	"math/bits"
	"net"
	"net/netip"
)

// Frame layout constants. Frames are Ethernet II without VLAN tags.
const (
	ethHeaderLen  = 14
	ipv4HeaderLen = 20 // as built; parsed headers may carry options
	ipv6HeaderLen = 40
	udpHeaderLen  = 8

	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	protoUDP      = 17
	defaultTTL    = 64
)

// dropReason says why a received frame was not delivered. The values index
// the per-queue drop counters.
type dropReason int

const (
	dropNone      dropReason = iota
	dropBadHeader            // not eth/IP/UDP, truncated, bad version/IHL/lengths/IPv4 checksum
	dropNotOurs              // UDP, but not to our address and port
	dropOversize             // payload larger than the caller's buffer
	numDropReasons
)

func (r dropReason) String() string {
	switch r {
	case dropNone:
		return "none"
	case dropBadHeader:
		return "bad header"
	case dropNotOurs:
		return "not our port"
	case dropOversize:
		return "oversize frame"
	}
	return "unknown"
}

// frameOverhead returns the header bytes in front of a UDP payload.
func frameOverhead(is6 bool) int {
	if is6 {
		return ethHeaderLen + ipv6HeaderLen + udpHeaderLen
	}
	return ethHeaderLen + ipv4HeaderLen + udpHeaderLen
}

// parsedFrame is the result of parseFrame. Payload aliases the frame.
type parsedFrame struct {
	Src, Dst netip.AddrPort
	Payload  []byte
}

// parseFrame validates an eth → IPv4/IPv6 → UDP frame and returns its
// addresses and payload. It checks versions, IHL, every length field against
// the bytes present and the IPv4 header checksum. It does not check the UDP
// checksum: frames from a kernel socket through veth arrive with
// CHECKSUM_PARTIAL (only the pseudo-header sum in the field), and our
// payloads are AEAD-authenticated anyway.
func parseFrame(f []byte) (p parsedFrame, reason dropReason) {
	if len(f) < ethHeaderLen {
		return p, dropBadHeader
	}
	var udp []byte
	switch binary.BigEndian.Uint16(f[12:14]) {
	case etherTypeIPv4:
		ip := f[ethHeaderLen:]
		if len(ip) < ipv4HeaderLen || ip[0]>>4 != 4 {
			return p, dropBadHeader
		}
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:4]))
		// Ethernet may pad short frames, so total may be below len(ip).
		if ihl < ipv4HeaderLen || total < ihl+udpHeaderLen || total > len(ip) {
			return p, dropBadHeader
		}
		if ip[9] != protoUDP || binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 {
			return p, dropBadHeader
		}
		if checksum(ip[:ihl], 0) != 0 {
			return p, dropBadHeader
		}
		p.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[12:16])), 0)
		p.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[16:20])), 0)
		udp = ip[ihl:total]
	case etherTypeIPv6:
		ip := f[ethHeaderLen:]
		if len(ip) < ipv6HeaderLen || ip[0]>>4 != 6 || ip[6] != protoUDP {
			return p, dropBadHeader
		}
		plen := int(binary.BigEndian.Uint16(ip[4:6]))
		if plen < udpHeaderLen || plen > len(ip)-ipv6HeaderLen {
			return p, dropBadHeader
		}
		p.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(ip[8:24])), 0)
		p.Dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(ip[24:40])), 0)
		udp = ip[ipv6HeaderLen : ipv6HeaderLen+plen]
	default:
		return p, dropBadHeader
	}
	ulen := int(binary.BigEndian.Uint16(udp[4:6]))
	if ulen < udpHeaderLen || ulen > len(udp) {
		return p, dropBadHeader
	}
	p.Src = netip.AddrPortFrom(p.Src.Addr(), binary.BigEndian.Uint16(udp[0:2]))
	p.Dst = netip.AddrPortFrom(p.Dst.Addr(), binary.BigEndian.Uint16(udp[2:4]))
	p.Payload = udp[udpHeaderLen:ulen]
	return p, dropNone
}

// frameHeader is what buildFrame needs besides the payload.
type frameHeader struct {
	SrcMAC, DstMAC net.HardwareAddr
	Src, Dst       netip.AddrPort // same family; IPv4-mapped IPv6 is not unmapped here
}

// buildFrame writes an eth/IP/UDP frame carrying payload into b and returns
// its length, or 0 if b is too small. The IPv4 header has IHL 5, DF, TTL
// 64; both IPv4 header and UDP checksums are complete (the receiving kernel
// verifies them; a UDP checksum of 0 is sent as 0xffff).
func buildFrame(b []byte, h *frameHeader, payload []byte) int {
	is6 := h.Src.Addr().Is6()
	n := frameOverhead(is6) + len(payload)
	if n > len(b) || len(payload) > 0xffff-ipv6HeaderLen-udpHeaderLen {
		return 0
	}
	copy(b[0:6], h.DstMAC)
	copy(b[6:12], h.SrcMAC)
	ulen := udpHeaderLen + len(payload)
	var udp []byte
	var pseudo uint64
	if is6 {
		binary.BigEndian.PutUint16(b[12:14], etherTypeIPv6)
		ip := b[ethHeaderLen : ethHeaderLen+ipv6HeaderLen]
		binary.BigEndian.PutUint32(ip[0:4], 6<<28)
		binary.BigEndian.PutUint16(ip[4:6], uint16(ulen))
		ip[6] = protoUDP
		ip[7] = defaultTTL
		s, d := h.Src.Addr().As16(), h.Dst.Addr().As16()
		copy(ip[8:24], s[:])
		copy(ip[24:40], d[:])
		pseudo = sum(ip[8:40], uint64(ulen)+protoUDP)
		udp = b[ethHeaderLen+ipv6HeaderLen : n]
	} else {
		binary.BigEndian.PutUint16(b[12:14], etherTypeIPv4)
		ip := b[ethHeaderLen : ethHeaderLen+ipv4HeaderLen]
		ip[0] = 0x45
		ip[1] = 0
		binary.BigEndian.PutUint16(ip[2:4], uint16(ipv4HeaderLen+ulen))
		binary.BigEndian.PutUint32(ip[4:8], 0x00004000) // ID 0, DF
		ip[8] = defaultTTL
		ip[9] = protoUDP
		ip[10], ip[11] = 0, 0
		s, d := h.Src.Addr().As4(), h.Dst.Addr().As4()
		copy(ip[12:16], s[:])
		copy(ip[16:20], d[:])
		binary.BigEndian.PutUint16(ip[10:12], checksum(ip, 0))
		pseudo = sum(ip[12:20], uint64(ulen)+protoUDP)
		udp = b[ethHeaderLen+ipv4HeaderLen : n]
	}
	binary.BigEndian.PutUint16(udp[0:2], h.Src.Port())
	binary.BigEndian.PutUint16(udp[2:4], h.Dst.Port())
	binary.BigEndian.PutUint16(udp[4:6], uint16(ulen))
	udp[6], udp[7] = 0, 0
	copy(udp[udpHeaderLen:], payload)
	c := checksum(udp, pseudo)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:8], c)
	return n
}

// sum adds b to the one's-complement accumulator acc, 8 bytes at a time.
// The result is only meaningful after fold. Summing big-endian 64-bit words
// with end-around carry is equivalent to summing 16-bit words (RFC 1071,
// section 2(B)), and it is about 4x fewer operations.
func sum(b []byte, acc uint64) uint64 {
	var carry uint64
	for len(b) >= 32 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[0:8]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[8:16]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[16:24]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[24:32]), carry)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[0:8]), carry)
		b = b[8:]
	}
	if len(b) >= 4 {
		acc, carry = bits.Add64(acc, uint64(binary.BigEndian.Uint32(b[0:4])), carry)
		b = b[4:]
	}
	if len(b) >= 2 {
		acc, carry = bits.Add64(acc, uint64(binary.BigEndian.Uint16(b[0:2])), carry)
		b = b[2:]
	}
	if len(b) == 1 {
		acc, carry = bits.Add64(acc, uint64(b[0])<<8, carry)
	}
	acc, carry = bits.Add64(acc, 0, carry)
	return acc + carry // cannot carry again: acc was at most 2^64-2 after adding 1
}

// fold reduces a 64-bit accumulator to the 16-bit one's-complement sum.
func fold(acc uint64) uint16 {
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 16) + (acc & 0xffff)
	acc = (acc >> 16) + (acc & 0xffff)
	return uint16(acc)
}

// checksum returns the Internet checksum of b with acc (from sum) added.
// Over a region that already holds a correct checksum it returns 0.
func checksum(b []byte, acc uint64) uint16 { return ^fold(sum(b, acc)) }
