package xdp

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/flightline/flightline/bpf"
	"github.com/flightline/flightline/testnet"
	"github.com/flightline/flightline/transport/link"
)

// TestBurstWhileReaderBusyIsLossless sends a burst of full-size datagrams
// to a receiver that is not reading (as when the transport is busy
// decrypting) and only then reads. Every datagram must arrive, and the
// kernel must report no fill-ring starvation: the default receive frames
// absorb a connection window's worth of burst. With the old default (2048
// receive frames per queue) the kernel dropped everything past ~2048.
func TestBurstWhileReaderBusyIsLossless(t *testing.T) {
	const burst = 10_000 // ~14 MiB of 1400-byte payloads: below one 16 MiB connection window
	n := testnet.New(t, testnet.Config{})
	rx := listenOn(t, n.A, Config{})
	tx := listenOn(t, n.B, Config{})
	dst := rx.LocalAddr()
	resolved(t, tx, dst.Addr())

	msgs := make([]link.Message, 0, 256)
	for seq := uint32(0); seq < burst; {
		msgs = msgs[:0]
		for ; seq < burst && len(msgs) < cap(msgs); seq++ {
			b := payload(seq, 1400)
			msgs = append(msgs, link.Message{Buf: b[:max(len(b), 4)], Addr: dst})
		}
		if k, err := tx.WriteBatch(msgs); err != nil || k != len(msgs) {
			t.Fatalf("WriteBatch: %d of %d: %v", k, len(msgs), err)
		}
	}
	// Every frame went through the program before we read any.
	waitFor(t, "the program to see the burst", 5*time.Second, func() bool {
		st := rx.Stats()
		var m uint64
		for _, p := range st.Program {
			m += p.Matched
		}
		return m >= burst
	})
	c := newChecker(1400)
	done := readLoop(rx, c)
	waitFor(t, "the burst to be read", 5*time.Second, func() bool {
		return c.got.Load() == burst || rx.Stats().Counters().RxDropped > 0
	})
	cnt := rx.Stats().Counters()
	if cnt.RxDropped != 0 || cnt.RxFillRingEmpty != 0 || cnt.RxRingFull != 0 {
		t.Fatalf("kernel dropped received frames: %+v", cnt)
	}
	if got := c.got.Load(); got != burst || c.bad.Load() != 0 {
		t.Fatalf("received %d of %d (%d corrupted)", got, burst, c.bad.Load())
	}
	if cnt.FillLowWater >= cnt.FillSize || cnt.FillSize != DefaultRxFrames {
		t.Errorf("fill occupancy not tracked: %+v", cnt)
	}
	if txc := tx.Stats().Counters(); txc.TxFullErrors != 0 || txc.TxInFlight > txc.TxFrames {
		t.Errorf("sender counters: %+v", txc)
	}
	rx.Close()
	<-done
}

// TestWriteBatchLargerThanTxRing writes more datagrams in one call than the
// socket has TX frames: WriteBatch must wait for completions (backpressure)
// and leave nothing unsent in the ring when it returns.
func TestWriteBatchLargerThanTxRing(t *testing.T) {
	n := testnet.New(t, testnet.Config{})
	rx := listenOn(t, n.A, Config{})
	tx := listenOn(t, n.B, Config{TxFrames: 64, Addr: netip.AddrPortFrom(n.B.Addr, testPort)})
	c := newChecker(1000)
	done := readLoop(rx, c)
	const count = 1000
	resolved(t, tx, rx.LocalAddr().Addr())
	msgs := make([]link.Message, count)
	for i := range msgs {
		msgs[i] = link.Message{Buf: payload(uint32(i), 1000), Addr: rx.LocalAddr()}
	}
	if k, err := tx.WriteBatch(msgs); err != nil || k != count {
		t.Fatalf("WriteBatch: %d of %d: %v", k, count, err)
	}
	if q := tx.socks[0].tx.Queued(); q != 0 {
		t.Errorf("%d descriptors left unsent in the TX ring after WriteBatch returned", q)
	}
	waitFor(t, "all datagrams", 5*time.Second, func() bool { return c.got.Load() == count })
	if st := tx.Stats().Counters(); st.TxFullWaits == 0 {
		t.Errorf("a 1000-datagram batch through 64 TX frames never waited: %+v", st)
	}
	rx.Close()
	<-done
}

// TestEveryQueueBothWays: on a 2-queue veth, an AF_XDP link exchanges
// datagrams with 32 UDP sockets (32 connections). Sending, the destinations
// spread over both TX queues (before, everything left through queue 0);
// receiving, the peer's flows arrive on both RX queues, each served by its
// socket. Every datagram arrives, none through the stack.
func TestEveryQueueBothWays(t *testing.T) {
	const conns, per = 32, 50
	n := testnet.New(t, testnet.Config{Queues: 2})
	l := listenOn(t, n.A, Config{Mode: bpf.ModeNative})
	if l.Caps().Queues != 2 {
		t.Fatalf("serving %d queues", l.Caps().Queues)
	}
	peers := make([]*net.UDPConn, conns)
	var msgs []link.Message
	for i := range peers {
		peers[i] = udpOn(t, n.B, 0)
		dst := netip.AddrPortFrom(n.B.Addr, uint16(peers[i].LocalAddr().(*net.UDPAddr).Port))
		for j := range per {
			msgs = append(msgs, link.Message{Buf: []byte(fmt.Sprintf("%d/%d", i, j)), Addr: dst})
		}
	}
	resolved(t, l, n.B.Addr)
	if k, err := l.WriteBatch(msgs); k != len(msgs) || err != nil {
		t.Fatalf("WriteBatch: %d of %d: %v", k, len(msgs), err)
	}
	for i, p := range peers {
		p.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		for j := range per {
			k, err := p.Read(buf)
			if err != nil || string(buf[:k]) != fmt.Sprintf("%d/%d", i, j) {
				t.Fatalf("peer %d datagram %d: %q, %v", i, j, buf[:k], err)
			}
		}
	}

	c := newChecker(100)
	done := readLoop(l, c)
	seq := uint32(0)
	for _, p := range peers {
		for range per {
			if _, err := p.WriteToUDPAddrPort(payload(seq, 100), l.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			seq++
		}
	}
	waitFor(t, "all datagrams from the peers", 5*time.Second, func() bool { return c.got.Load() == int64(seq) })
	st := l.Stats()
	for _, q := range st.Queues {
		if q.TxPackets == 0 || q.RxPackets == 0 {
			t.Errorf("queue %d carried tx %d rx %d: every queue must carry traffic both ways", q.Queue, q.TxPackets, q.RxPackets)
		}
	}
	if st.StackRx != 0 || c.bad.Load() != 0 {
		t.Errorf("stack %d, corrupted %d", st.StackRx, c.bad.Load())
	}
	t.Logf("tx per queue %d/%d, rx per queue %d/%d", st.Queues[0].TxPackets, st.Queues[1].TxPackets, st.Queues[0].RxPackets, st.Queues[1].RxPackets)
	l.Close()
	<-done
}
