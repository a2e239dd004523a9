package udplink

import (
	"errors"
	"fmt"
	"github.com/stretchr/testify/require"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flightline/flightline/transport/link"
)

var loop4 = netip.MustParseAddrPort("127.0.0.1:0")

func listen(t testing.TB, addr netip.AddrPort, cfg Config) *Link {
	t.Helper()
	l, err := Listen(addr, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// testPayloads returns count datagrams with seeded random contents. Sizes
// come in runs (so GSO has something to coalesce) and include 1 byte and
// link.MaxPacketSize.
func testPayloads(seed uint64, count int) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 0))
	sizes := []int{1, 2, 100, 1200, link.MaxPacketSize - 1, link.MaxPacketSize}
	out := make([][]byte, 0, count)
	for len(out) < count {
		size := sizes[rng.IntN(len(sizes))]
		run := 1 + rng.IntN(20)
		for k := 0; k < run && len(out) < count; k++ {
			s := size
			if k == run-1 && rng.IntN(2) == 0 {
				s = 1 + rng.IntN(size) // a short tail ends a GSO run
			}
			b := make([]byte, s)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			out = append(out, b)
		}
	}
	return out
}

// sendAll writes payloads to dst in batches of batch.
func sendAll(t testing.TB, tx *Link, dst netip.AddrPort, payloads [][]byte, batch int) {
	t.Helper()
	msgs := make([]link.Message, 0, batch)
	for i := 0; i < len(payloads); i += batch {
		msgs = msgs[:0]
		for _, p := range payloads[i:min(len(payloads), i+batch)] {
			msgs = append(msgs, link.Message{Buf: p, Addr: dst})
		}
		n, err := tx.WriteBatch(msgs)
		require.NoError(t, err)
		require.Equal(t, len(msgs), n)
	}
}

type received struct {
	data []byte
	from netip.AddrPort
}

// recvN reads until n datagrams arrived (copying them out) or the deadline.
func recvN(t testing.TB, rx *Link, n int, batch int) []received {
	t.Helper()
	require.NoError(t, rx.conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	defer func() { _ = rx.conn.SetReadDeadline(time.Time{}) }()
	msgs := make([]link.Message, batch)
	for i := range msgs {
		msgs[i].Buf = make([]byte, link.MaxPacketSize)
	}
	var out []received
	for len(out) < n {
		k, err := rx.ReadBatch(msgs)
		require.NoError(t, err, "after %d of %d datagrams", len(out), n)
		require.Positive(t, k)
		for _, m := range msgs[:k] {
			out = append(out, received{append([]byte(nil), m.Buf...), m.Addr})
		}
	}
	return out
}

func checkSame(t *testing.T, want [][]byte, got []received, from netip.AddrPort) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, from, got[i].from, "sender of datagram %d", i)
		require.Equal(t, want[i], got[i].data, "datagram %d (len %d)", i, len(want[i]))
	}
}

func sender(l *Link) netip.AddrPort { return l.LocalAddr() }

func TestRoundTripOffloads(t *testing.T) {
	const count = 600
	payloads := testPayloads(7, count)
	for _, gso := range []bool{true, false} {
		for _, gro := range []bool{true, false} {
			for _, batch := range []int{64, 7} {
				t.Run(fmt.Sprintf("gso=%v/gro=%v/batch=%d", gso, gro, batch), func(t *testing.T) {
					var logs []string
					logf := func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }
					tx := listen(t, loop4, Config{DisableGSO: !gso, BatchSize: batch, Logf: logf})
					rx := listen(t, loop4, Config{DisableGRO: !gro, BatchSize: batch})
					if gso && !tx.Caps().GSO {
						t.Logf("kernel offers no GSO: %s", tx.Caps().Note)
					}
					if gro && !rx.Caps().GRO {
						t.Logf("kernel offers no GRO: %s", rx.Caps().Note)
					}
					if !gso {
						require.False(t, tx.Caps().GSO)
					}
					if !gro {
						require.False(t, rx.Caps().GRO)
					}

					done := make(chan []received, 1)
					go func() { done <- recvN(t, rx, count, batch) }()
					// Send in slices of 50 so the receiver's 4 MiB buffer
					// cannot overflow even with a slow reader.
					for i := 0; i < count; i += 50 {
						sendAll(t, tx, rx.LocalAddr(), payloads[i:min(count, i+50)], 50)
						time.Sleep(time.Millisecond)
					}
					got := <-done
					checkSame(t, payloads, got, sender(tx))

					ts, rs := tx.Stats(), rx.Stats()
					require.EqualValues(t, count, ts.DatagramsOut)
					require.EqualValues(t, count, rs.DatagramsIn)
					require.Equal(t, ts.BytesOut, rs.BytesIn)
					require.Zero(t, ts.SendErrors)
					require.Zero(t, rs.Truncated)
					if tx.Caps().GSO {
						require.Positive(t, ts.GSOSends)
						require.Less(t, ts.SyscallsOut, uint64(count/batch+count/50+2)*2)
					} else {
						require.Zero(t, ts.GSOSends)
					}
					if tx.Caps().GSO && rx.Caps().GRO {
						require.Positive(t, rs.GROSegments, "loopback hands GSO super-datagrams to a GRO socket whole")
					}
					if !rx.Caps().GRO {
						require.Zero(t, rs.GROSegments)
					}
					require.Empty(t, logs)
				})
			}
		}
	}
}

func TestRoundTripIPv6(t *testing.T) {
	for _, gso := range []bool{true, false} {
		t.Run(fmt.Sprintf("gso=%v", gso), func(t *testing.T) {
			tx, err := Listen(netip.MustParseAddrPort("[::1]:0"), Config{DisableGSO: !gso})
			if err != nil {
				t.Skipf("no IPv6 loopback: %v", err)
			}
			defer tx.Close()
			rx := listen(t, netip.MustParseAddrPort("[::1]:0"), Config{})
			require.True(t, rx.LocalAddr().Addr().Is6())
			payloads := testPayloads(11, 200)
			done := make(chan []received, 1)
			go func() { done <- recvN(t, rx, len(payloads), 64) }()
			sendAll(t, tx, rx.LocalAddr(), payloads, 64)
			checkSame(t, payloads, <-done, tx.LocalAddr())
		})
	}
}

// TestDualStack: a wildcard socket receives from an IPv4 sender and reports
// the unmapped IPv4 address, and can answer to it.
func TestDualStack(t *testing.T) {
	ds, err := Listen(netip.AddrPort{}, Config{})
	if err != nil {
		t.Skipf("no dual-stack socket: %v", err)
	}
	defer ds.Close()
	if ds.family != unix.AF_INET6 {
		t.Skip("wildcard socket is not AF_INET6")
	}
	v4 := listen(t, loop4, Config{})
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ds.LocalAddr().Port())
	sendAll(t, v4, dst, [][]byte{[]byte("ping")}, 1)
	got := recvN(t, ds, 1, 8)
	require.Equal(t, v4.LocalAddr(), got[0].from)
	sendAll(t, ds, got[0].from, [][]byte{[]byte("pong")}, 1)
	back := recvN(t, v4, 1, 8)
	require.Equal(t, "pong", string(back[0].data))
}

// TestMultipleDestinations interleaves two receivers so GSO runs are split
// by destination.
func TestMultipleDestinations(t *testing.T) {
	tx := listen(t, loop4, Config{})
	rxA := listen(t, loop4, Config{})
	rxB := listen(t, loop4, Config{DisableGRO: true})
	payloads := testPayloads(3, 256)
	var wantA, wantB [][]byte
	msgs := make([]link.Message, len(payloads))
	for i, p := range payloads {
		msgs[i].Buf = p
		if (i/5)%2 == 0 {
			msgs[i].Addr = rxA.LocalAddr()
			wantA = append(wantA, p)
		} else {
			msgs[i].Addr = rxB.LocalAddr()
			wantB = append(wantB, p)
		}
	}
	n, err := tx.WriteBatch(msgs) // longer than BatchSize: WriteBatch loops
	require.NoError(t, err)
	require.Equal(t, len(msgs), n)
	checkSame(t, wantA, recvN(t, rxA, len(wantA), 64), tx.LocalAddr())
	checkSame(t, wantB, recvN(t, rxB, len(wantB), 64), tx.LocalAddr())
}

func TestWriteBatchErrors(t *testing.T) {
	tx := listen(t, loop4, Config{})
	rx := listen(t, loop4, Config{})
	ok := []byte("ok")
	t.Run("too large", func(t *testing.T) {
		msgs := []link.Message{{Buf: ok, Addr: rx.LocalAddr()}, {Buf: ok, Addr: rx.LocalAddr()},
			{Buf: make([]byte, 70000), Addr: rx.LocalAddr()}, {Buf: ok, Addr: rx.LocalAddr()}}
		n, err := tx.WriteBatch(msgs)
		require.Equal(t, 2, n)
		require.ErrorIs(t, err, link.ErrTooLarge)
		recvN(t, rx, 2, 8)
	})
	t.Run("wrong family", func(t *testing.T) {
		msgs := []link.Message{{Buf: ok, Addr: rx.LocalAddr()}, {Buf: ok, Addr: netip.MustParseAddrPort("[::1]:9")}}
		n, err := tx.WriteBatch(msgs)
		require.Equal(t, 1, n)
		require.ErrorIs(t, err, errAddrFamily)
		recvN(t, rx, 1, 8)
	})
	t.Run("no address", func(t *testing.T) {
		n, err := tx.WriteBatch([]link.Message{{Buf: ok}})
		require.Zero(t, n)
		require.ErrorIs(t, err, errNoAddr)
	})
	t.Run("after close", func(t *testing.T) {
		l := listen(t, loop4, Config{})
		require.NoError(t, l.Close())
		require.NoError(t, l.Close())
		n, err := l.WriteBatch([]link.Message{{Buf: ok, Addr: rx.LocalAddr()}})
		require.Zero(t, n)
		require.ErrorIs(t, err, net.ErrClosed)
		_, err = l.ReadBatch(make([]link.Message, 1))
		require.ErrorIs(t, err, net.ErrClosed)
	})
}

// TestTruncated: a datagram larger than the caller's buffer is dropped and
// counted, and the datagrams around it still arrive.
func TestTruncated(t *testing.T) {
	for _, gro := range []bool{true, false} {
		t.Run(fmt.Sprintf("gro=%v", gro), func(t *testing.T) {
			tx := listen(t, loop4, Config{})
			rx := listen(t, loop4, Config{DisableGRO: !gro})
			big := make([]byte, 3000)
			sendAll(t, tx, rx.LocalAddr(), [][]byte{[]byte("a"), big, []byte("b")}, 8)
			got := recvN(t, rx, 2, 8)
			require.Equal(t, "a", string(got[0].data))
			require.Equal(t, "b", string(got[1].data))
			require.EqualValues(t, 1, rx.Stats().Truncated)
		})
	}
}

// TestGSORuntimeFallback makes the kernel refuse GSO sends (SO_NO_CHECK:
// udp_send_skb rejects a UDP_SEGMENT send without checksums with EINVAL)
// and checks that WriteBatch turns GSO off, says so, and still delivers
// everything.
func TestGSORuntimeFallback(t *testing.T) {
	var mu sync.Mutex
	var logs []string
	tx := listen(t, loop4, Config{Logf: func(f string, a ...any) {
		mu.Lock()
		logs = append(logs, fmt.Sprintf(f, a...))
		mu.Unlock()
	}})
	if !tx.Caps().GSO {
		t.Skipf("kernel offers no GSO: %s", tx.Caps().Note)
	}
	rx := listen(t, loop4, Config{})
	var serr error
	require.NoError(t, tx.rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_NO_CHECK, 1)
	}))
	require.NoError(t, serr)

	payloads := testPayloads(5, 300)
	done := make(chan []received, 1)
	go func() { done <- recvN(t, rx, len(payloads), 64) }()
	sendAll(t, tx, rx.LocalAddr(), payloads, 64)
	checkSame(t, payloads, <-done, tx.LocalAddr())

	caps := tx.Caps()
	require.False(t, caps.GSO)
	require.Contains(t, caps.Note, "GSO disabled")
	require.Len(t, logs, 1)
	require.True(t, strings.Contains(logs[0], "GSO disabled"), logs[0])
	require.EqualValues(t, 1, tx.Stats().SendErrors)
	require.Zero(t, tx.Stats().GSOSends)
}

func TestCloseUnblocksReader(t *testing.T) {
	for _, gro := range []bool{true, false} {
		t.Run(fmt.Sprintf("gro=%v", gro), func(t *testing.T) {
			l := listen(t, loop4, Config{DisableGRO: !gro})
			errc := make(chan error, 1)
			go func() {
				msgs := []link.Message{{Buf: make([]byte, link.MaxPacketSize)}}
				_, err := l.ReadBatch(msgs)
				errc <- err
			}()
			time.Sleep(20 * time.Millisecond) // let the reader park on epoll
			require.NoError(t, l.Close())
			select {
			case err := <-errc:
				require.True(t, errors.Is(err, net.ErrClosed), "got %v", err)
			case <-time.After(5 * time.Second):
				t.Fatal("ReadBatch still blocked after Close")
			}
		})
	}
}

// TestZeroAllocs: a steady-state WriteBatch + ReadBatch cycle allocates
// nothing, with and without offloads.
func TestZeroAllocs(t *testing.T) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("offloads=%v", !off), func(t *testing.T) {
			tx := listen(t, loop4, Config{DisableGSO: off})
			rx := listen(t, loop4, Config{DisableGRO: off})
			const batch = 64
			out := make([]link.Message, batch)
			in := make([]link.Message, batch)
			payload := make([]byte, link.MaxPacketSize)
			for i := range out {
				out[i] = link.Message{Buf: payload, Addr: rx.LocalAddr()}
				in[i].Buf = make([]byte, link.MaxPacketSize)
			}
			cycle := func() {
				if n, err := tx.WriteBatch(out); err != nil || n != batch {
					panic(fmt.Sprint(n, err))
				}
				for got := 0; got < batch; {
					n, err := rx.ReadBatch(in)
					if err != nil {
						panic(err)
					}
					got += n
				}
			}
			cycle() // warm up
			require.Zero(t, testing.AllocsPerRun(50, func() {
				if _, err := tx.WriteBatch(out); err != nil {
					panic(err)
				}
			}))
			for got := 0; got < 51*batch; { // drain what AllocsPerRun sent
				n, err := rx.ReadBatch(in)
				require.NoError(t, err)
				got += n
			}
			require.Zero(t, testing.AllocsPerRun(50, cycle))
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	l := listen(t, loop4, Config{})
	require.Equal(t, link.IdealBatchSize, l.BatchSize())
	require.Equal(t, "udp", l.Caps().Datapath)
	require.Equal(t, 1, l.Caps().Queues)
	require.True(t, l.LocalAddr().Addr().Is4())
	require.NotZero(t, l.LocalAddr().Port())
	require.Equal(t, MaxBatchSize, listen(t, loop4, Config{BatchSize: 1000}).BatchSize())
	c := listen(t, loop4, Config{DisableGSO: true, DisableGRO: true}).Caps()
	require.False(t, c.GSO)
	require.False(t, c.GRO)
	require.Equal(t, "GSO disabled by config; GRO disabled by config", c.Note)
	var rcv int
	require.NoError(t, l.rc.Control(func(fd uintptr) {
		rcv, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	}))
	require.Positive(t, rcv)
	if unix.Geteuid() == 0 {
		require.GreaterOrEqual(t, rcv, DefaultSocketBuffer, "SO_RCVBUFFORCE as root")
	}
}
