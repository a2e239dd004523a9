package testnet

import (
	"bytes"
	"encoding/binary"
	"github.com/stretchr/testify/require"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listenUDP opens a UDP socket on addr (port chosen by the kernel) inside h,
// with a receive buffer large enough that bursts in these tests do not
// overflow it.
func listenUDP(t testing.TB, h *Host, addr netip.Addr) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	require.NoError(t, h.Run(func() error {
		var err error
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		if err != nil {
			return err
		}
		rc, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
		}); err != nil {
			return err
		}
		return serr
	}))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func addrPort(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

// echo answers every datagram on c until c is closed.
func echo(c *net.UDPConn) {
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		_, _ = c.WriteToUDPAddrPort(buf[:n], from)
	}
}

// roundTrip sends one datagram from c to dst and waits for it to come back.
func roundTrip(t testing.TB, c *net.UDPConn, dst netip.AddrPort, payload []byte) time.Duration {
	t.Helper()
	buf := make([]byte, 65536)
	start := time.Now()
	_, err := c.WriteToUDPAddrPort(payload, dst)
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(2*time.Second)))
	n, _, err := c.ReadFromUDPAddrPort(buf)
	require.NoError(t, err)
	require.True(t, bytes.Equal(payload, buf[:n]), "echo of %d bytes came back as %d different bytes", len(payload), n)
	return time.Since(start)
}

// ping sends one ICMP echo request from h to dst over a raw socket and waits
// for the reply.
func ping(t testing.TB, h *Host, dst netip.Addr) {
	t.Helper()
	var c net.PacketConn
	require.NoError(t, h.Run(func() error {
		var err error
		c, err = net.ListenPacket("ip4:icmp", h.Addr.String())
		return err
	}))
	defer c.Close()
	id := uint16(os.Getpid())
	msg := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), 0, 1, 'f', 'l', 't', 'n'}
	binary.BigEndian.PutUint16(msg[2:], inetChecksum(msg))
	// One echo can be lost even on a lossless veth: the per-CPU backlog
	// that veth delivers through is shared by every namespace, and a blast
	// in a concurrently running test package can overflow it. So the
	// request is resent (a bounded number of times) like any ping would.
	buf := make([]byte, 1500)
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		_, err = c.WriteTo(msg, &net.IPAddr{IP: dst.AsSlice()})
		require.NoError(t, err)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(500*time.Millisecond)))
		for {
			var n int
			var from net.Addr
			n, from, err = c.ReadFrom(buf)
			if err != nil {
				break // timed out: send again
			}
			if n >= 8 && buf[0] == 0 && from.(*net.IPAddr).IP.Equal(dst.AsSlice()) &&
				binary.BigEndian.Uint16(buf[4:]) == id {
				return
			}
		}
	}
	require.NoError(t, err, "no echo reply from %s after 10 requests", dst)
}

func inetChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// recvCounter reads sequence-numbered datagrams (8-byte big-endian sequence
// number first) until idle for the given time.
type recvResult struct {
	got       int
	bytes     int
	dups      int
	reordered int
	first     time.Time
	last      time.Time
}

// receiveHang bounds how long receiveSeq waits for the next datagram while
// the sender is still going: long enough that only a real hang trips it on a
// starved machine, not a scheduling pause.
const receiveHang = 10 * time.Second

// receiveSeq reads sequence-numbered datagrams (n bounds the sequence numbers
// tracked for duplicates and reordering) until the sender is done and then
// nothing arrived for idle. Until done is closed only receiveHang ends it, so
// a sender or hop starved of CPU for longer than idle does not cut the
// reception short. A nil done means the sender is already done.
func receiveSeq(c *net.UDPConn, n int, idle time.Duration, done <-chan struct{}) recvResult {
	var (
		mu      sync.Mutex
		stopped = done == nil
	)
	// arm sets the deadline for the next read; under mu so that the wakeup
	// below is never overwritten by a stale receiveHang deadline.
	arm := func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			_ = c.SetReadDeadline(time.Now().Add(idle))
		} else {
			_ = c.SetReadDeadline(time.Now().Add(receiveHang))
		}
	}
	if done != nil {
		quit := make(chan struct{})
		defer close(quit)
		go func() {
			select {
			case <-done:
			case <-quit:
				return
			}
			mu.Lock()
			defer mu.Unlock()
			stopped = true
			_ = c.SetReadDeadline(time.Now().Add(idle))
		}()
	}
	var r recvResult
	seen := make([]bool, n)
	maxSeq := -1
	buf := make([]byte, 65536)
	for {
		arm()
		k, err := c.Read(buf)
		if err != nil {
			return r
		}
		now := time.Now()
		if r.got == 0 {
			r.first = now
		}
		r.last = now
		r.got++
		r.bytes += k
		if k < 8 {
			continue
		}
		seq := int(binary.BigEndian.Uint64(buf))
		if seq < 0 || seq >= n {
			continue
		}
		if seen[seq] {
			r.dups++
			continue
		}
		seen[seq] = true
		if seq < maxSeq {
			r.reordered++
		}
		maxSeq = max(maxSeq, seq)
	}
}

func unixSocket() (int, error) {
	return unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
}
func closeFD(fd int) { _ = unix.Close(fd) }

func newTestRand() *rand.Rand { return rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1)) }
