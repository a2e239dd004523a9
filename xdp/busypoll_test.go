package xdp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flightline/flightline/testnet"
	"github.com/flightline/flightline/transport/link"
)

// TestBusyPollFallback: when the kernel refuses an option (here: a kernel
// older than 5.11 answering ENOPROTOOPT for the budget), Prefer logs why
// and clears what it had set, Require fails with ErrBusyPoll.
func TestBusyPollFallback(t *testing.T) {
	type call struct{ fd, opt, val int }
	var calls []call
	setsockoptInt = func(fd, level, opt, val int) error {
		calls = append(calls, call{fd, opt, val})
		if opt == unix.SO_BUSY_POLL_BUDGET && val != 0 {
			return unix.ENOPROTOOPT
		}
		return nil
	}
	defer func() { setsockoptInt = unix.SetsockoptInt }()
	b := BusyPoll{Mode: BusyPollPrefer}
	if err := b.setDefaults(); err != nil {
		t.Fatal(err)
	}
	var logged string
	on, err := busyPollSockets([]int{7, 8}, b, func(f string, a ...any) { logged = fmt.Sprintf(f, a...) })
	if on || err != nil {
		t.Fatalf("Prefer: on %v, err %v", on, err)
	}
	if !strings.Contains(logged, "SO_BUSY_POLL_BUDGET") || !strings.Contains(logged, "5.11") {
		t.Fatalf("log %q does not say what failed and why", logged)
	}
	// fd 7 got SO_PREFER_BUSY_POLL and SO_BUSY_POLL set, then cleared.
	last := map[int]int{}
	for _, c := range calls {
		if c.fd == 7 {
			last[c.opt] = c.val
		}
	}
	if last[unix.SO_PREFER_BUSY_POLL] != 0 || last[unix.SO_BUSY_POLL] != 0 {
		t.Fatalf("options left set after the fallback: %v", calls)
	}
	b.Mode = BusyPollRequire
	if _, err := busyPollSockets([]int{7}, b, nil); !errors.Is(err, ErrBusyPoll) || !errors.Is(err, unix.ENOPROTOOPT) {
		t.Fatalf("Require: %v", err)
	}
	b.Mode = BusyPollOff
	calls = nil
	if on, err := busyPollSockets([]int{7}, b, nil); on || err != nil || len(calls) != 0 {
		t.Fatalf("Off touched the sockets: %v %v %v", on, err, calls)
	}
}

// TestBusyPollOnVeth turns busy polling on (veth runs NAPI in native mode),
// checks the options on every socket and exchanges datagrams with a UDP
// peer through the busy-polling reader.
func TestBusyPollOnVeth(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	l := listenOn(t, n.A, Config{BusyPoll: BusyPoll{Mode: BusyPollRequire, Timeout: 50 * time.Microsecond, Budget: 16}})
	if !l.busyPoll {
		t.Fatal("busy polling not on")
	}
	for _, s := range l.socks {
		// (SO_BUSY_POLL_BUDGET cannot be read back: getsockopt answers
		// ENOPROTOOPT for it.)
		for opt, want := range map[int]int{unix.SO_PREFER_BUSY_POLL: 1, unix.SO_BUSY_POLL: 50} {
			if got, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, opt); err != nil || got != want {
				t.Fatalf("queue %d option %#x = %d (%v), want %d", s.queue, opt, got, err, want)
			}
		}
	}
	peer := udpOn(t, n.B, 0)
	peerAddr := netip.AddrPortFrom(n.B.Addr, uint16(peer.LocalAddr().(*net.UDPAddr).Port))
	resolved(t, l, n.B.Addr)
	msgs := []link.Message{{Buf: make([]byte, 64)}}
	buf := make([]byte, 64)
	for i := range 200 {
		want := fmt.Sprintf("ping %d", i)
		if _, err := peer.WriteToUDPAddrPort([]byte(want), l.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		msgs[0].Buf = msgs[0].Buf[:cap(msgs[0].Buf)]
		if k, err := l.ReadBatch(msgs); err != nil || k != 1 || string(msgs[0].Buf) != want {
			t.Fatalf("read %d: %q %v", k, msgs[0].Buf, err)
		}
		if k, err := l.WriteBatch([]link.Message{{Buf: []byte(want), Addr: peerAddr}}); k != 1 || err != nil {
			t.Fatalf("write: %v", err)
		}
		peer.SetReadDeadline(time.Now().Add(5 * time.Second))
		if k, err := peer.Read(buf); err != nil || string(buf[:k]) != want {
			t.Fatalf("echo %q: %v", buf[:k], err)
		}
	}
}
