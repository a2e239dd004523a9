package xdp

import (
	"net/netip"
	"testing"
	"time"

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
