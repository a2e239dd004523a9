package xdp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/flightline/flightline/bpf"
	"github.com/flightline/flightline/testnet"
	"github.com/flightline/flightline/transport/link"
)

const testPort = 4433

// listenOn opens a Link on h inside its namespace and closes it at cleanup.
func listenOn(t testing.TB, h *testnet.Host, cfg Config) *Link {
	t.Helper()
	cfg.Interface = h.Ifname
	if !cfg.Addr.IsValid() {
		cfg.Addr = netip.AddrPortFrom(h.Addr, testPort)
	}
	var l *Link
	if err := h.Run(func() (err error) { l, err = Listen(cfg); return err }); err != nil {
		t.Fatalf("listen on %s: %v", h.Ifname, err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return l
}

// udpOn opens a plain UDP socket in h's namespace.
func udpOn(t testing.TB, h *testnet.Host, port int) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := h.Run(func() (err error) {
		c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: h.Addr.AsSlice(), Port: port})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadBuffer(4 << 20)
	c.SetWriteBuffer(4 << 20)
	t.Cleanup(func() { c.Close() })
	return c
}

// payload returns datagram seq: a 4-byte sequence number, then bytes from
// a generator seeded by seq, of a size also drawn from it (1..max).
func payload(seq uint32, max int) []byte {
	rng := rand.New(rand.NewPCG(uint64(seq), 42))
	n := 4 + rng.IntN(max-3)
	b := make([]byte, n)
	binary.BigEndian.PutUint32(b, seq)
	for i := 4; i < n; i++ {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// checker records received datagrams and verifies them byte for byte.
type checker struct {
	max  int
	mu   sync.Mutex
	seen map[uint32]bool
	got  atomic.Int64
	bad  atomic.Int64
}

func newChecker(max int) *checker { return &checker{max: max, seen: map[uint32]bool{}} }

func (c *checker) add(b []byte) {
	if len(b) < 4 {
		c.bad.Add(1)
		return
	}
	seq := binary.BigEndian.Uint32(b)
	if !bytes.Equal(b, payload(seq, c.max)) {
		c.bad.Add(1)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.seen[seq] {
		c.seen[seq] = true
		c.got.Add(1)
	}
}

// waitFor spins until cond or the deadline.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// readLoop reads l until it is closed, feeding c.
func readLoop(l *Link, c *checker) (done chan struct{}) {
	done = make(chan struct{})
	go func() {
		defer close(done)
		msgs := make([]link.Message, 64)
		for i := range msgs {
			msgs[i].Buf = make([]byte, max(4096, c.max))
		}
		for {
			for i := range msgs {
				msgs[i].Buf = msgs[i].Buf[:cap(msgs[i].Buf)]
			}
			n, err := l.ReadBatch(msgs)
			if err != nil {
				return
			}
			for _, m := range msgs[:n] {
				c.add(m.Buf)
			}
		}
	}()
	return done
}

const (
	total  = 10_000
	window = 512 // datagrams in flight at most, well below ring and socket buffer sizes
)

// sendPaced sends total datagrams with send, keeping at most window beyond
// what c has received.
func sendPaced(t testing.TB, c *checker, batch int, send func(seqs []uint32) error) {
	t.Helper()
	seqs := make([]uint32, 0, batch)
	for next := uint32(0); next < total; {
		waitFor(t, fmt.Sprintf("receiver (%d of %d sent)", c.got.Load(), next), 5*time.Second,
			func() bool { return int64(next)-c.got.Load() < window })
		seqs = seqs[:0]
		for ; next < total && len(seqs) < batch; next++ {
			seqs = append(seqs, next)
		}
		if err := send(seqs); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all datagrams", 5*time.Second, func() bool { return c.got.Load() == total })
	if c.bad.Load() != 0 {
		t.Fatalf("%d corrupted datagrams", c.bad.Load())
	}
}

// resolved resolves dst's next hop ahead of a burst: datagrams sent before
// that wait in a bounded queue (see resolver), which a test's instant burst
// of thousands would overflow, while a transport starts with a handshake.
func resolved(t testing.TB, l *Link, dst netip.Addr) {
	t.Helper()
	l.nh.prefetch(dst)
	waitFor(t, "next hop of "+dst.String(), 5*time.Second, func() bool {
		st, ok := l.nh.state(dst)
		return ok && st == destResolved
	})
}

func writeAll(l *Link, dst netip.AddrPort, max int) func([]uint32) error {
	msgs := make([]link.Message, 0, 64)
	primed := false
	return func(seqs []uint32) error {
		if !primed {
			l.nh.prefetch(dst.Addr())
			for st, _ := l.nh.state(dst.Addr()); st != destResolved; st, _ = l.nh.state(dst.Addr()) {
				if st == destFailed {
					return fmt.Errorf("next hop of %v unresolved", dst)
				}
				time.Sleep(time.Millisecond)
			}
			primed = true
		}
		msgs = msgs[:0]
		for _, s := range seqs {
			msgs = append(msgs, link.Message{Buf: payload(s, max), Addr: dst})
		}
		n, err := l.WriteBatch(msgs)
		if err != nil || n != len(msgs) {
			return fmt.Errorf("WriteBatch: %d of %d: %w", n, len(msgs), err)
		}
		return nil
	}
}

var modes = []bpf.Mode{bpf.ModeNative, bpf.ModeGeneric}

// TestLinkWithUDPPeer runs AF_XDP on A against a plain UDP socket on B in
// both directions and both attach modes.
func TestLinkWithUDPPeer(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			n := testnet.New(t, testnet.Config{})
			l := listenOn(t, n.A, Config{Mode: mode})
			peer := udpOn(t, n.B, 0)
			peerAddr := netip.AddrPortFrom(n.B.Addr, uint16(peer.LocalAddr().(*net.UDPAddr).Port))
			if c := l.Caps(); c.Datapath != "xdp" || c.Queues != 1 {
				t.Fatalf("caps %+v", c)
			}

			t.Run("udp to xdp", func(t *testing.T) {
				c := newChecker(link.MaxPacketSize)
				done := readLoop(l, c)
				dst := net.UDPAddrFromAddrPort(l.LocalAddr())
				sendPaced(t, c, 32, func(seqs []uint32) error {
					for _, s := range seqs {
						if _, err := peer.WriteToUDP(payload(s, link.MaxPacketSize), dst); err != nil {
							return err
						}
					}
					return nil
				})
				st := l.Stats()
				if st.Queues[0].RxPackets != total || st.StackRx != 0 || st.Program[0].Matched != total {
					t.Fatalf("stats %+v", st)
				}
				if h := st.Diagnose(); h != nil {
					t.Fatalf("unexpected hints %v", h)
				}
				_ = done
			})
			t.Run("xdp to udp", func(t *testing.T) {
				c := newChecker(link.MaxPacketSize)
				go func() {
					buf := make([]byte, 2048)
					for {
						k, err := peer.Read(buf)
						if err != nil {
							return
						}
						c.add(buf[:k])
					}
				}()
				sendPaced(t, c, 64, writeAll(l, peerAddr, link.MaxPacketSize))
				if tx := l.Stats().Queues[0].TxPackets; tx != total {
					t.Fatalf("tx packets %d", tx)
				}
			})
		})
	}
}

// TestLinkXDPToXDP runs AF_XDP on both ends, both directions at once.
func TestLinkXDPToXDP(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			n := testnet.New(t, testnet.Config{})
			a := listenOn(t, n.A, Config{Mode: mode})
			b := listenOn(t, n.B, Config{Mode: mode, Addr: netip.AddrPortFrom(n.B.Addr, 0)})
			ca, cb := newChecker(link.MaxPacketSize), newChecker(link.MaxPacketSize)
			readLoop(a, ca)
			readLoop(b, cb)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				sendPaced(t, cb, 64, writeAll(a, b.LocalAddr(), link.MaxPacketSize))
			}()
			sendPaced(t, ca, 64, writeAll(b, a.LocalAddr(), link.MaxPacketSize))
			wg.Wait()
		})
	}
}

// TestMultiQueue: a 2-queue device gets one socket per queue, and flows
// hashed to either queue are received.
func TestMultiQueue(t *testing.T) {
	n := testnet.New(t, testnet.Config{Queues: 2})
	l := listenOn(t, n.A, Config{Mode: bpf.ModeNative})
	if q := l.Caps().Queues; q != 2 {
		t.Fatalf("serving %d queues, want 2", q)
	}
	c := newChecker(200)
	readLoop(l, c)
	sendFlows(t, n, l, c, 200)
	st := l.Stats()
	if st.StackRx != 0 {
		t.Fatalf("%d datagrams went through the stack: %+v", st.StackRx, st)
	}
	t.Logf("per-queue rx: %d / %d", st.Queues[0].RxPackets, st.Queues[1].RxPackets)
}

// sendFlows sends count datagrams from 16 UDP sockets (16 flows) on B.
func sendFlows(t *testing.T, n *testnet.Network, l *Link, c *checker, count uint32) {
	t.Helper()
	var socks []*net.UDPConn
	for range 16 {
		socks = append(socks, udpOn(t, n.B, 0))
	}
	dst := net.UDPAddrFromAddrPort(l.LocalAddr())
	for s := range count {
		if _, err := socks[s%16].WriteToUDP(payload(s, 200), dst); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "flows", 5*time.Second, func() bool { return c.got.Load() == int64(count) })
}

func hasHint(hs []Hint, kind string) bool {
	for _, h := range hs {
		if h.Kind == kind {
			return true
		}
	}
	return false
}

// TestDiagnoseWrongQueue serves only queue 0 of 2: flows hashed to queue 1
// fall back to the stack (still delivered) and Diagnose says why.
func TestDiagnoseWrongQueue(t *testing.T) {
	n := testnet.New(t, testnet.Config{Queues: 2})
	l := listenOn(t, n.A, Config{Mode: bpf.ModeNative, Queues: 1})
	c := newChecker(200)
	readLoop(l, c)
	sendFlows(t, n, l, c, 200)
	st := l.Stats()
	if st.Program[1].Matched == 0 || st.StackRx != st.Program[1].Matched {
		t.Fatalf("queue 1 matched %d, stack rx %d", st.Program[1].Matched, st.StackRx)
	}
	if hs := st.Diagnose(); !hasHint(hs, HintWrongQueue) {
		t.Fatalf("hints %v", hs)
	}
}

// TestDiagnoseNoProgram detaches the program: datagrams reach the
// reserving socket, are still delivered, and Diagnose reports it.
func TestDiagnoseNoProgram(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	l := listenOn(t, n.A, Config{Mode: bpf.ModeGeneric})
	if err := l.prog.Detach(); err != nil {
		t.Fatal(err)
	}
	c := newChecker(200)
	readLoop(l, c)
	peer := udpOn(t, n.B, 0)
	for s := range uint32(50) {
		if _, err := peer.WriteToUDP(payload(s, 200), net.UDPAddrFromAddrPort(l.LocalAddr())); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "stack delivery", 5*time.Second, func() bool { return c.got.Load() == 50 })
	st := l.Stats()
	if st.StackRx != 50 || st.ProgramAttached {
		t.Fatalf("stats %+v", st)
	}
	if hs := st.Diagnose(); !hasHint(hs, HintNoProgram) {
		t.Fatalf("hints %v", hs)
	}
}

// TestDiagnoseOversize: MTU 3000 with 2048-byte frames; a 2900-byte frame is
// dropped by the kernel (XDP_STATISTICS rx_dropped), the link keeps working.
func TestDiagnoseOversize(t *testing.T) {
	n := testnet.New(t, testnet.Config{MTU: 3000})
	l := listenOn(t, n.A, Config{Mode: bpf.ModeNative, DisableMultiBuffer: true})
	c := newChecker(200)
	readLoop(l, c)
	peer := udpOn(t, n.B, 0)
	dst := net.UDPAddrFromAddrPort(l.LocalAddr())
	if _, err := peer.WriteToUDP(make([]byte, 2900), dst); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "rx_dropped", 2*time.Second, func() bool { return l.Stats().Queues[0].XSK.RxDropped > 0 })
	if hs := l.Stats().Diagnose(); !hasHint(hs, HintOversizeFrame) {
		t.Fatalf("hints %v", hs)
	}
	if _, err := peer.WriteToUDP(payload(1, 200), dst); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "small datagram after the drop", 2*time.Second, func() bool { return c.got.Load() == 1 })
}

func TestWriteErrors(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	l := listenOn(t, n.A, Config{})
	peer := netip.AddrPortFrom(n.B.Addr, 9)
	if _, err := l.WriteBatch([]link.Message{{Buf: make([]byte, 1500), Addr: peer}}); !errors.Is(err, link.ErrTooLarge) {
		t.Fatalf("oversize write: %v", err)
	}
	if _, err := l.WriteBatch([]link.Message{{Buf: []byte("x"), Addr: netip.MustParseAddrPort("[fd00::9]:9")}}); err == nil {
		t.Fatal("IPv6 destination on an IPv4 link accepted")
	}
	l.Close()
	if _, err := l.WriteBatch([]link.Message{{Buf: []byte("x"), Addr: peer}}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if _, err := l.ReadBatch(make([]link.Message, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
}

// TestCloseUnblocksRead: Close wakes a ReadBatch blocked in poll.
func TestCloseUnblocksRead(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	l := listenOn(t, n.A, Config{})
	errc := make(chan error, 1)
	go func() {
		_, err := l.ReadBatch([]link.Message{{Buf: make([]byte, 2048)}})
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	l.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("ReadBatch after Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("ReadBatch still blocked after Close")
	}
}

func fdCount(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestCloseReleasesEverything opens and closes a link repeatedly on the same
// queue (exercising the EBUSY retry) and checks that no fd or mapping is
// left behind.
func TestCloseReleasesEverything(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	before := fdCount(t)
	var umems []uintptr
	for i := range 5 {
		cfg := Config{Interface: n.A.Ifname, Addr: netip.AddrPortFrom(n.A.Addr, testPort), Mode: modes[i%2]}
		var l *Link
		if err := n.A.Run(func() (err error) { l, err = Listen(cfg); return err }); err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		umems = append(umems, uintptr(unsafePtr(l.socks[0].umem.mem)))
		if err := l.Close(); err != nil {
			t.Fatalf("close %d: %v", i, err)
		}
	}
	if after := fdCount(t); after != before {
		t.Fatalf("fds: %d before, %d after", before, after)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(maps), "socket:[") { // how AF_XDP ring mappings show
		t.Fatalf("an AF_XDP ring is still mapped:\n%s", maps)
	}
	for _, u := range umems {
		if strings.Contains(string(maps), fmt.Sprintf("\n%x-", u)) {
			t.Fatalf("UMEM at %#x still mapped", u)
		}
	}
}

func TestProbe(t *testing.T) {
	t.Run("no such interface", func(t *testing.T) {
		err := Probe("fl-nonexistent0")
		var nse *NotSupportedError
		if !errors.Is(err, ErrNotSupported) || !errors.As(err, &nse) {
			t.Fatalf("Probe: %v", err)
		}
		if os.Geteuid() == 0 && nse.Cause != "no such interface" {
			t.Fatalf("cause %q", nse.Cause)
		}
	})
	eperm := fmt.Errorf("load program: %w", unix.EPERM)
	for _, tc := range []struct {
		name  string
		facts probeFacts
		cause string
	}{
		{"ok", probeFacts{haveLink: true}, ""},
		{"unprivileged bpf", probeFacts{progErr: eperm, mapErr: eperm, haveLink: true}, "not privileged"},
		{"unprivileged socket", probeFacts{xskErr: unix.EPERM, haveLink: true}, "not privileged"},
		{"no xdp programs", probeFacts{progErr: fmt.Errorf("XDP: %w", ebpf.ErrNotSupported), haveLink: true}, "kernel lacks XDP programs"},
		{"no xskmap", probeFacts{mapErr: fmt.Errorf("XSKMap: %w", ebpf.ErrNotSupported), haveLink: true}, "kernel lacks XSKMAP maps"},
		{"probe broken", probeFacts{progErr: errors.New("weird"), haveLink: true}, "cannot probe XDP programs"},
		{"no af_xdp", probeFacts{haveLink: true, xskErr: unix.EAFNOSUPPORT}, "kernel lacks AF_XDP"},
		{"socket fails", probeFacts{haveLink: true, xskErr: unix.EMFILE}, "cannot create AF_XDP socket"},
		{"no interface", probeFacts{ifErr: errors.New("no such network interface")}, "no such interface"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := decide("eth0", tc.facts)
			if tc.cause == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var nse *NotSupportedError
			if !errors.As(err, &nse) || nse.Cause != tc.cause || !errors.Is(err, ErrNotSupported) {
				t.Fatalf("got %v, want cause %q", err, tc.cause)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	for _, c := range []Config{
		{},
		{Interface: "x"},
		{Interface: "x", Addr: netip.MustParseAddrPort("0.0.0.0:1")},
		{Interface: "x", Addr: netip.MustParseAddrPort("10.0.0.1:1"), FrameSize: 1024},
		{Interface: "x", Addr: netip.MustParseAddrPort("10.0.0.1:1"), RxFrames: 100},
		{Interface: "x", Addr: netip.MustParseAddrPort("10.0.0.1:1"), TxFrames: 32},
		{Interface: "x", Addr: netip.MustParseAddrPort("10.0.0.1:1"), Queues: -1},
	} {
		if _, err := Listen(c); err == nil {
			t.Fatalf("Listen(%+v) succeeded", c)
		}
	}
}

// TestProgramRedirectsToBoundSocket completes the program's test-run table
// (package bpf covers every pass case): with a bound AF_XDP socket registered
// for the queue, a matching frame is redirected (XDP_REDIRECT), a frame for
// another port still passes.
func TestProgramRedirectsToBoundSocket(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	l := listenOn(t, n.A, Config{Mode: bpf.ModeNative})
	frame := make([]byte, 256)
	hdr := frameHeader{SrcMAC: n.B.MAC, DstMAC: n.A.MAC,
		Src: netip.AddrPortFrom(n.B.Addr, 40000), Dst: l.LocalAddr()}
	k := buildFrame(frame, &hdr, []byte("to the socket"))
	if k == 0 {
		t.Fatal("buildFrame failed")
	}
	act, err := l.prog.Run(frame[:k])
	if err != nil {
		t.Fatalf("test run: %v", err)
	}
	if act != bpf.ActionRedirect {
		t.Fatalf("matching frame: action %d, want XDP_REDIRECT (%d)", act, bpf.ActionRedirect)
	}
	hdr.Dst = netip.AddrPortFrom(l.LocalAddr().Addr(), l.LocalAddr().Port()+1)
	k = buildFrame(frame, &hdr, []byte("someone else's"))
	if act, err = l.prog.Run(frame[:k]); err != nil || act != bpf.ActionPass {
		t.Fatalf("other port: action %d err %v, want XDP_PASS", act, err)
	}
}

// testnetIP runs `ip -n ns args...`.
func testnetIP(ns string, args ...string) error {
	out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %v: %w: %s", args, err, out)
	}
	return nil
}
