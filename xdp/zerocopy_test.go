package xdp

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/flightline/flightline/testnet"
	"github.com/flightline/flightline/transport/link"
)

// TestZeroCopyFallback: veth has no AF_XDP zero-copy, so ZeroCopyAuto's
// XDP_ZEROCOPY bind is refused and the socket binds again in copy mode (the
// second bind on the same socket must work), says why in Caps().Note, and
// carries traffic; ZeroCopyRequire fails with EOPNOTSUPP; ZeroCopyOff never
// tries.
func TestZeroCopyFallback(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	var modes []uint16
	bindXSK = func(fd int, sa *unix.SockaddrXDP) error {
		modes = append(modes, sa.Flags&(unix.XDP_COPY|unix.XDP_ZEROCOPY))
		return unix.Bind(fd, sa)
	}
	defer func() { bindXSK = func(fd int, sa *unix.SockaddrXDP) error { return unix.Bind(fd, sa) } }()

	var logs []string
	l := listenOn(t, n.A, Config{Logf: func(f string, a ...any) { logs = append(logs, f) }})
	c := l.Caps()
	if c.ZeroCopy || !strings.Contains(c.Note, "zero-copy not supported") {
		t.Fatalf("caps %+v", c)
	}
	if len(modes) != 2 || modes[0] != unix.XDP_ZEROCOPY || modes[1] != unix.XDP_COPY {
		t.Fatalf("bind modes %v, want zero-copy then copy", modes)
	}
	if !strings.Contains(strings.Join(logs, "\n"), "zero-copy bind refused") {
		t.Errorf("fallback not logged: %q", logs)
	}
	// The fallen-back socket carries traffic.
	peer := listenOn(t, n.B, Config{ZeroCopy: ZeroCopyOff})
	resolved(t, peer, n.A.Addr)
	if k, err := peer.WriteBatch([]link.Message{{Buf: []byte("zc?"), Addr: l.LocalAddr()}}); k != 1 || err != nil {
		t.Fatalf("write: %v", err)
	}
	msgs := []link.Message{{Buf: make([]byte, 16)}}
	if k, err := l.ReadBatch(msgs); k != 1 || err != nil || string(msgs[0].Buf) != "zc?" {
		t.Fatalf("read %d %q %v", k, msgs[0].Buf, err)
	}
	l.Close()
	peer.Close()

	modes = nil
	err := n.A.Run(func() error {
		_, err := Listen(Config{Interface: n.A.Ifname, Addr: l.LocalAddr(), ZeroCopy: ZeroCopyRequire})
		return err
	})
	// (A bind right after Close may be retried on the kernel's transient
	// EBUSY, so count modes, not binds.)
	if !errors.Is(err, unix.EOPNOTSUPP) || !onlyMode(modes, unix.XDP_ZEROCOPY) {
		t.Fatalf("ZeroCopyRequire on veth: %v (binds %v)", err, modes)
	}
	modes = nil
	l = listenOn(t, n.A, Config{ZeroCopy: ZeroCopyOff})
	if !onlyMode(modes, unix.XDP_COPY) || l.Caps().Note != "copy mode: driver lacks AF_XDP zero-copy" {
		t.Fatalf("ZeroCopyOff: binds %v, caps %+v", modes, l.Caps())
	}
}

func onlyMode(modes []uint16, m uint16) bool {
	for _, x := range modes {
		if x != m {
			return false
		}
	}
	return len(modes) > 0
}
