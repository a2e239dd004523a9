package xdp

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/flightline/flightline/bpf"
	"github.com/flightline/flightline/testnet"
	"github.com/flightline/flightline/transport/link"
)

// TestJumboFrames: on an MTU-9000 veth the link accepts datagrams up to
// the MTU (8972 B over IPv4) and carries them both ways as multi-buffer
// frames (XDP_USE_SG; 2 KiB UMEM frames), byte-identical, with a UDP peer
// and between two AF_XDP links, in native and generic mode. Before,
// frames over 1792 B were dropped by the kernel (rx_dropped) and the
// largest datagram sent was 2006 B.
func TestJumboFrames(t *testing.T) {
	const mtu = 9000
	for _, mode := range []bpf.Mode{bpf.ModeNative, bpf.ModeGeneric} {
		t.Run(mode.String(), func(t *testing.T) {
			n := testnet.New(t, testnet.Config{MTU: mtu})
			l := listenOn(t, n.A, Config{Mode: mode})
			if got, want := l.MaxPayload(), mtu-28; got != want {
				t.Fatalf("MaxPayload %d, want %d", got, want)
			}
			if !l.prog.Frags() || !l.socks[0].sg {
				t.Fatalf("frags-aware program %v, multi-buffer socket %v", l.prog.Frags(), l.socks[0].sg)
			}
			sizes := []int{1, 1400, 1792, 2048, 4000, 6000, l.MaxPayload()}

			peer := udpOn(t, n.B, 0)
			peerAddr := netip.AddrPortFrom(n.B.Addr, uint16(peer.LocalAddr().(*net.UDPAddr).Port))
			resolved(t, l, n.B.Addr)
			buf := make([]byte, 65536)
			msgs := []link.Message{{Buf: make([]byte, 65536)}}
			for i, size := range sizes {
				want := make([]byte, size)
				for j := range want {
					want[j] = byte(j*7 + i)
				}
				if k, err := l.WriteBatch([]link.Message{{Buf: want, Addr: peerAddr}}); k != 1 || err != nil {
					t.Fatalf("WriteBatch %d B: %v", size, err)
				}
				peer.SetReadDeadline(time.Now().Add(5 * time.Second))
				k, err := peer.Read(buf)
				if err != nil || string(buf[:k]) != string(want) {
					t.Fatalf("xdp -> udp %d B: got %d B, %v", size, k, err)
				}
				if _, err := peer.WriteToUDPAddrPort(want, l.LocalAddr()); err != nil {
					t.Fatal(err)
				}
				msgs[0].Buf = msgs[0].Buf[:cap(msgs[0].Buf)]
				if k, err := l.ReadBatch(msgs); k != 1 || err != nil || string(msgs[0].Buf) != string(want) {
					t.Fatalf("udp -> xdp %d B: got %d B, %v", size, len(msgs[0].Buf), err)
				}
			}
			if _, err := l.WriteBatch([]link.Message{{Buf: make([]byte, l.MaxPayload()+1), Addr: peerAddr}}); err != link.ErrTooLarge {
				t.Fatalf("over the MTU: %v", err)
			}

			// AF_XDP to AF_XDP, a burst of mixed sizes.
			b := listenOn(t, n.B, Config{Mode: mode, Addr: netip.AddrPortFrom(n.B.Addr, testPort)})
			resolved(t, b, n.A.Addr)
			c := newChecker(l.MaxPayload())
			done := readLoop(l, c)
			var burst []link.Message
			for seq := range uint32(300) {
				burst = append(burst, link.Message{Buf: payload(seq, l.MaxPayload()), Addr: l.LocalAddr()})
			}
			if k, err := b.WriteBatch(burst); k != len(burst) || err != nil {
				t.Fatalf("burst: %d: %v", k, err)
			}
			waitFor(t, "the jumbo burst", 5*time.Second, func() bool { return c.got.Load() == int64(len(burst)) })
			if c.bad.Load() != 0 {
				t.Fatalf("%d corrupted", c.bad.Load())
			}
			if cnt := l.Stats().Counters(); cnt.RxDropped != 0 {
				t.Fatalf("kernel drops: %+v", cnt)
			}
			l.Close()
			<-done
		})
	}
}
