package xdp

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
)

// naiveChecksum is RFC 1071 16 bits at a time, the reference for checksum.
func naiveChecksum(b []byte, extra ...uint16) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for _, e := range extra {
		s += uint32(e)
	}
	for s>>16 != 0 {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

func TestChecksumMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for n := range 300 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if n%7 == 0 {
			for i := range b {
				b[i] = 0xff // carry-heavy input
			}
		}
		if got, want := checksum(b, 0), naiveChecksum(b); got != want {
			t.Fatalf("len %d: got %#04x want %#04x", n, got, want)
		}
	}
}

var (
	macA = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	macB = net.HardwareAddr{2, 0, 0, 0, 0, 2}
)

func TestFrameRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, tc := range []struct{ src, dst string }{
		{"10.1.2.3:4433", "10.9.8.7:5555"},
		{"[fd00::1]:4433", "[fd00::2]:1"},
	} {
		for _, size := range []int{0, 1, 2, 7, 64, 1200, 1452} {
			h := frameHeader{SrcMAC: macA, DstMAC: macB,
				Src: netip.MustParseAddrPort(tc.src), Dst: netip.MustParseAddrPort(tc.dst)}
			payload := make([]byte, size)
			for i := range payload {
				payload[i] = byte(rng.Uint32())
			}
			buf := make([]byte, 2048)
			n := buildFrame(buf, &h, payload)
			if n != frameOverhead(h.Src.Addr().Is6())+size {
				t.Fatalf("%s size %d: built %d bytes", tc.src, size, n)
			}
			p, reason := parseFrame(buf[:n])
			if reason != dropNone {
				t.Fatalf("%s size %d: %v", tc.src, size, reason)
			}
			if p.Src != h.Src || p.Dst != h.Dst || !bytes.Equal(p.Payload, payload) {
				t.Fatalf("%s size %d: parsed %v→%v len %d", tc.src, size, p.Src, p.Dst, len(p.Payload))
			}
			if !bytes.Equal(buf[0:6], macB) || !bytes.Equal(buf[6:12], macA) {
				t.Fatal("MACs")
			}
			// The UDP checksum over pseudo-header + segment must verify.
			var pseudo []byte
			var udp []byte
			if h.Src.Addr().Is6() {
				pseudo = append(pseudo, buf[14+8:14+40]...)
				udp = buf[14+40 : n]
			} else {
				pseudo = append(pseudo, buf[14+12:14+20]...)
				udp = buf[14+20 : n]
			}
			if c := naiveChecksum(append(pseudo, udp...), 17, uint16(len(udp))); c != 0 {
				t.Fatalf("%s size %d: UDP checksum does not verify (%#x)", tc.src, size, c)
			}
			// Ethernet padding after the datagram is ignored.
			padded := append(buf[:n:n], make([]byte, 20)...)
			if p2, r := parseFrame(padded); r != dropNone || !bytes.Equal(p2.Payload, payload) {
				t.Fatalf("padded frame: %v", r)
			}
		}
	}
	if n := buildFrame(make([]byte, 50), &frameHeader{Src: netip.MustParseAddrPort("1.2.3.4:1"),
		Dst: netip.MustParseAddrPort("1.2.3.5:1")}, make([]byte, 100)); n != 0 {
		t.Fatalf("built %d bytes into a 50-byte buffer", n)
	}
}

func TestParseRejects(t *testing.T) {
	h := frameHeader{SrcMAC: macA, DstMAC: macB,
		Src: netip.MustParseAddrPort("10.0.0.1:1000"), Dst: netip.MustParseAddrPort("10.0.0.2:2000")}
	good := make([]byte, 200)
	n := buildFrame(good, &h, []byte("hello, world"))
	good = good[:n]
	mut := func(f func(b []byte) []byte) []byte {
		b := append([]byte(nil), good...)
		return f(b)
	}
	fixIPSum := func(b []byte) []byte {
		ihl := int(b[14]&0xf) * 4
		b[24], b[25] = 0, 0
		binary.BigEndian.PutUint16(b[24:], checksum(b[14:14+ihl], 0))
		return b
	}
	for _, tc := range []struct {
		name  string
		frame []byte
		ok    bool
	}{
		{"good", good, true},
		{"empty", nil, false},
		{"eth only", good[:14], false},
		{"arp", mut(func(b []byte) []byte { b[12], b[13] = 8, 6; return b }), false},
		{"bad version", mut(func(b []byte) []byte { b[14] = 0x55; return fixIPSum(b) }), false},
		{"ihl 4", mut(func(b []byte) []byte { b[14] = 0x44; return fixIPSum(b) }), false},
		{"bad ip checksum", mut(func(b []byte) []byte { b[24]++; return b }), false},
		{"total length too big", mut(func(b []byte) []byte { b[17] += 50; return fixIPSum(b) }), false},
		{"total length too small", mut(func(b []byte) []byte { b[16], b[17] = 0, 27; return fixIPSum(b) }), false},
		{"fragment", mut(func(b []byte) []byte { b[20] |= 0x20; return fixIPSum(b) }), false},
		{"tcp", mut(func(b []byte) []byte { b[23] = 6; return fixIPSum(b) }), false},
		{"udp length too big", mut(func(b []byte) []byte { b[14+20+5] += 1; return b }), false},
		{"udp length too small", mut(func(b []byte) []byte { b[14+20+4], b[14+20+5] = 0, 7; return b }), false},
		{"udp length shorter ok", mut(func(b []byte) []byte { b[14+20+5] -= 1; return b }), true},
		{"truncated", good[:len(good)-1], false},
		{"bad udp checksum accepted", mut(func(b []byte) []byte { b[14+20+6] ^= 0xff; return b }), true},
		{"ip options", mut(func(b []byte) []byte {
			b = append(b[:34:34], append([]byte{1, 1, 1, 0}, good[34:]...)...)
			b[14] = 0x46
			binary.BigEndian.PutUint16(b[16:], uint16(len(b)-14))
			return fixIPSum(b)
		}), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, r := parseFrame(tc.frame)
			if (r == dropNone) != tc.ok {
				t.Fatalf("reason %v, want ok=%v", r, tc.ok)
			}
			if tc.ok && tc.name != "udp length shorter ok" && string(p.Payload) != "hello, world" {
				t.Fatalf("payload %q", p.Payload)
			}
		})
	}
}

func FuzzParseFrame(f *testing.F) {
	for _, s := range []string{"10.0.0.1:1", "[fd00::1]:1"} {
		a := netip.MustParseAddrPort(s)
		b := make([]byte, 200)
		n := buildFrame(b, &frameHeader{SrcMAC: macA, DstMAC: macB, Src: a, Dst: a}, []byte("seed"))
		f.Add(b[:n])
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		p, r := parseFrame(frame)
		if r != dropNone {
			return
		}
		// Whatever parses must round-trip through buildFrame.
		if p.Src.Addr().Is4() != p.Dst.Addr().Is4() {
			t.Fatal("mixed families")
		}
		buf := make([]byte, len(p.Payload)+100)
		n := buildFrame(buf, &frameHeader{SrcMAC: macA, DstMAC: macB, Src: p.Src, Dst: p.Dst}, p.Payload)
		q, r2 := parseFrame(buf[:n])
		if r2 != dropNone || q.Src != p.Src || q.Dst != p.Dst || !bytes.Equal(q.Payload, p.Payload) {
			t.Fatalf("round trip: %v %v %v", r2, q.Src, p.Src)
		}
	})
}

func BenchmarkBuildFrame1400(b *testing.B) {
	h := frameHeader{SrcMAC: macA, DstMAC: macB,
		Src: netip.MustParseAddrPort("10.0.0.1:1000"), Dst: netip.MustParseAddrPort("10.0.0.2:2000")}
	payload := make([]byte, 1400)
	buf := make([]byte, 2048)
	b.SetBytes(1400)
	for b.Loop() {
		buildFrame(buf, &h, payload)
	}
}
