package xdp

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/flightline/flightline/testnet"
	"github.com/flightline/flightline/transport/link"
)

// TestUnresolvableDestinationDoesNotBlock: a datagram to an on-link address
// that never answers ARP (as for a spoofed source) must not delay datagrams
// to other destinations. Before, WriteBatch polled the neighbour table for
// up to 1 s holding the send lock. Now the peer's datagram arrives while
// the other destination is still being resolved; the unresolvable one is
// then dropped and counted, and the failure is cached.
func TestUnresolvableDestinationDoesNotBlock(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	l := listenOn(t, n.A, Config{})
	l.nh.timeout = time.Second // before the first request: the channel send orders it
	peer := udpOn(t, n.B, 0)
	peerAddr := netip.AddrPortFrom(n.B.Addr, uint16(peer.LocalAddr().(*net.UDPAddr).Port))
	a4 := n.A.Addr.As4()
	nowhere := netip.AddrPortFrom(netip.AddrFrom4([4]byte{a4[0], a4[1], a4[2], 77}), 9)
	local := netip.MustParseAddrPort("127.0.0.1:9") // routed to lo, not our interface

	msgs := []link.Message{{Buf: []byte("lost"), Addr: nowhere}, {Buf: []byte("local"), Addr: local}, {Buf: []byte("hello"), Addr: peerAddr}}
	if k, err := l.WriteBatch(msgs); k != len(msgs) || err != nil {
		t.Fatalf("WriteBatch: %d of %d: %v", k, len(msgs), err)
	}
	buf := make([]byte, 64)
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	k, _, err := peer.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:k]) != "hello" {
		t.Fatalf("peer read %q: %v", buf[:k], err)
	}
	// The peer got its datagram while the other destination was still
	// unresolved: nothing waited for it.
	if st, ok := l.nh.state(nowhere.Addr()); !ok || st != destResolving {
		t.Fatalf("unresolvable destination state %v (present %v), want still resolving", st, ok)
	}
	waitFor(t, "the unresolvable destination to fail", 5*time.Second, func() bool {
		st, _ := l.nh.state(nowhere.Addr())
		return st == destFailed
	})
	if d := l.Stats().NeighbourDrops; d != 2 {
		t.Fatalf("NeighbourDrops %d, want 2 (unanswered ARP, route via lo)", d)
	}
	// The failure is cached: another datagram is dropped without a new
	// resolution.
	before := l.nh.resolutions.Load()
	if k, err := l.WriteBatch(msgs[:1]); k != 1 || err != nil {
		t.Fatalf("WriteBatch: %d: %v", k, err)
	}
	if got := l.nh.resolutions.Load(); got != before {
		t.Fatalf("cached failure resolved again (%d -> %d resolutions)", before, got)
	}
	if d := l.Caps().Counters.NeighbourDrops; d != 3 {
		t.Fatalf("NeighbourDrops %d, want 3", d)
	}
}

// TestRoutedPeer: an AF_XDP server answers a client on another subnet
// behind a router. The reply must go to the gateway's MAC, found through
// the kernel's route (RTM_GETROUTE) and ARP, with no static neighbour
// entries; the first reply waits in the queue while ARP runs and is not
// lost. Before, only on-link destinations could be reached.
func TestRoutedPeer(t *testing.T) {
	n := testnet.New(t, testnet.Config{Router: true})
	srv := listenOn(t, n.B, Config{})
	cli := udpOn(t, n.A, 0)
	cli.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range 3 {
		if _, err := cli.WriteToUDPAddrPort([]byte("ping"), srv.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		msgs := []link.Message{{Buf: make([]byte, 64)}}
		k, err := srv.ReadBatch(msgs)
		if err != nil || k != 1 || string(msgs[0].Buf) != "ping" {
			t.Fatalf("server read %d %q: %v", k, msgs[0].Buf, err)
		}
		if msgs[0].Addr.Addr() != n.A.Addr {
			t.Fatalf("datagram from %v, want %v", msgs[0].Addr, n.A.Addr)
		}
		if k, err := srv.WriteBatch([]link.Message{{Buf: []byte("pong"), Addr: msgs[0].Addr}}); k != 1 || err != nil {
			t.Fatalf("WriteBatch: %d: %v", k, err)
		}
		buf := make([]byte, 64)
		k, from, err := cli.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:k]) != "pong" || from != srv.LocalAddr() {
			t.Fatalf("reply %d: %q from %v: %v", i, buf[:k], from, err)
		}
	}
	if st, _ := l2state(srv, n.A.Addr); st != destResolved {
		t.Fatalf("client entry state %v", st)
	}
	srv.nh.mu.Lock()
	via := srv.nh.cache[n.A.Addr].via
	srv.nh.mu.Unlock()
	if via != n.B.Gateway {
		t.Fatalf("next hop %v, want the gateway %v", via, n.B.Gateway)
	}
	if d := srv.Stats().NeighbourDrops; d != 0 {
		t.Fatalf("%d datagrams dropped for want of a next hop", d)
	}
}

func l2state(l *Link, a netip.Addr) (destState, bool) { return l.nh.state(a) }

// TestNextHopFollowsChanges: a neighbour change for the gateway updates the
// cached MAC, and a route change makes the next send re-resolve (in the
// background, still sending meanwhile).
func TestNextHopFollowsChanges(t *testing.T) {
	n := testnet.New(t, testnet.Config{Router: true})
	srv := listenOn(t, n.B, Config{})
	cli := netip.AddrPortFrom(n.A.Addr, 9)
	send := func() {
		t.Helper()
		if k, err := srv.WriteBatch([]link.Message{{Buf: []byte("x"), Addr: cli}}); k != 1 || err != nil {
			t.Fatalf("WriteBatch: %d: %v", k, err)
		}
	}
	entry := func() dest {
		srv.nh.mu.Lock()
		defer srv.nh.mu.Unlock()
		if d := srv.nh.cache[cli.Addr()]; d != nil {
			return dest{state: d.state, mac: d.mac, via: d.via, refreshing: d.refreshing}
		}
		return dest{}
	}
	send()
	waitFor(t, "resolution", 5*time.Second, func() bool { return entry().state == destResolved })
	if got := entry().mac.String(); got != n.B.PeerMAC.String() {
		t.Fatalf("gateway MAC %s, want %s", got, n.B.PeerMAC)
	}

	newMAC := net.HardwareAddr{0x02, 0xee, 0, 0, 0, 1}
	ip := func(args ...string) {
		t.Helper()
		if err := testnetIP(n.B.NS, args...); err != nil {
			t.Fatal(err)
		}
	}
	ip("neigh", "replace", n.B.Gateway.String(), "lladdr", newMAC.String(), "dev", n.B.Ifname, "nud", "permanent")
	waitFor(t, "the neighbour change", 5*time.Second, func() bool { return entry().mac.String() == newMAC.String() })

	before := srv.nh.resolutions.Load()
	ip("route", "replace", "default", "via", n.B.Gateway.String(), "dev", n.B.Ifname, "metric", "5")
	waitFor(t, "the route change to expire the entry", 5*time.Second, func() bool {
		send() // expired entries re-resolve on use
		return srv.nh.resolutions.Load() > before
	})
	waitFor(t, "the refresh", 5*time.Second, func() bool { e := entry(); return e.state == destResolved && !e.refreshing })
	if d := srv.Stats().NeighbourDrops; d != 0 {
		t.Fatalf("%d drops while refreshing", d)
	}
}

// TestIPv6Peer: the route and neighbour lookups and the frames work over
// IPv6 too (the testnet pair has IPv6 ULAs and static neighbours).
func TestIPv6Peer(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	l := listenOn(t, n.A, Config{Addr: netip.AddrPortFrom(n.A.Addr6, testPort)})
	var peer *net.UDPConn
	if err := n.B.Run(func() (err error) {
		peer, err = net.ListenUDP("udp6", &net.UDPAddr{IP: n.B.Addr6.AsSlice()})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	peerAddr := netip.AddrPortFrom(n.B.Addr6, uint16(peer.LocalAddr().(*net.UDPAddr).Port))
	for i := range 3 {
		if k, err := l.WriteBatch([]link.Message{{Buf: []byte("v6"), Addr: peerAddr}}); k != 1 || err != nil {
			t.Fatalf("WriteBatch: %v", err)
		}
		buf := make([]byte, 16)
		peer.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, from, err := peer.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:k]) != "v6" || from.Addr().Unmap() != n.A.Addr6 {
			t.Fatalf("round %d: %q from %v: %v", i, buf[:k], from, err)
		}
		if _, err := peer.WriteToUDPAddrPort([]byte("back"), l.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		msgs := []link.Message{{Buf: make([]byte, 16)}}
		if k, err := l.ReadBatch(msgs); k != 1 || err != nil || string(msgs[0].Buf) != "back" || msgs[0].Addr != peerAddr {
			t.Fatalf("read %d %q from %v: %v", k, msgs[0].Buf, msgs[0].Addr, err)
		}
	}
	if d := l.Stats().NeighbourDrops; d != 0 {
		t.Fatalf("%d neighbour drops", d)
	}
}
