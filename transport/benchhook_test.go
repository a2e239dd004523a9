package transport

import (
	"context"
	"testing"
	"time"

	"github.com/flightline/flightline/internal/benchhook"
	"github.com/flightline/flightline/transport/memlink"
	"github.com/stretchr/testify/require"
)

// TestAbortReleaseSwitch proves the benchmark's switch (internal/benchhook)
// really turns the stream-abort release off, and that the connection stays
// correct without it. It is TestAbortedStreamFreesWindowForOthers with a
// CancelWrite abort, run both ways:
//
//   - release on: stream B's first byte reaches the server within 8 RTTs of
//     A's abort;
//   - release off: A's lost packets stay in flight and fill the window, so B
//     sends nothing for 8 RTTs; once the path carries A's retransmissions
//     again they are acknowledged, their bytes leave flight through the ACK
//     path, and B goes through.
//
// The ledger checker is on throughout (testConfig), so any double or missing
// release in the kept-flight mode panics. The switch is process-wide: this
// test must not run in parallel with others.
func TestAbortReleaseSwitch(t *testing.T) {
	for _, release := range []bool{true, false} {
		name := map[bool]string{true: "release", false: "keep"}[release]
		t.Run(name, func(t *testing.T) { testAbortReleaseSwitch(t, release) })
	}
}

func testAbortReleaseSwitch(t *testing.T, release bool) {
	benchhook.SetAbortRelease(release)
	t.Cleanup(func() { benchhook.SetAbortRelease(true) })

	const oneWay = 5 * time.Millisecond
	const rtt = 2 * oneWay
	ccfg, scfg := testConfig(t), testConfig(t)
	// A's data is lost for good while the hole is on; a lower RTO floor
	// lets the kept-flight run recover soon after the hole closes.
	ccfg.MinRTO = 50 * time.Millisecond
	var hole blackhole
	a, b := memlink.NewPair(memlink.Config{Seed: 23,
		AtoB: memlink.Impairment{Delay: oneWay},
		BtoA: memlink.Impairment{Delay: oneWay}})
	p := newPairOver(t, a, b, scfg, ccfg)
	// While the hole is on every full-size client packet is lost: A's data
	// and its retransmissions. ACKs, RESET_STREAM and B's short write pass.
	b.SetImpairment(memlink.Impairment{Delay: oneWay, Drop: func(pkt []byte) bool {
		return len(pkt) > 400 && hole.drop(pkt)
	}})
	c := p.clientConn

	sa, err := c.OpenStream()
	require.NoError(t, err)
	sb, err := c.OpenStream()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The server side stops accepting before requireConnUsable accepts.
	sctx, scancel := context.WithCancel(ctx)
	prelude := make(chan struct{}) // A's first 64 KiB arrived
	bFirst := make(chan struct{})  // B's first byte arrived
	served := make(chan struct{})
	go func() {
		defer close(served)
		serveAbortSwitch(sctx, p.serverConn, sa.ID(), sb.ID(), 64<<10, prelude, bFirst)
	}()
	defer func() { scancel(); <-served }()

	// A first moves data over the clean path (RTT samples, a grown
	// window) and drains, so that everything A has in flight later was
	// sent into the hole.
	_, err = sa.Write(make([]byte, 64<<10))
	require.NoError(t, err)
	select {
	case <-prelude:
	case <-ctx.Done():
		t.Fatal("A's first bytes never arrived")
	}
	eventually(t, 5*time.Second, func() bool { return c.ledger.Flight() == 0 }, "flight did not drain before the hole")

	hole.on.Store(true)
	done := make(chan error, 1)
	go func() { _, err := sa.Write(make([]byte, 8<<20)); done <- err }()
	// Stalled: A's tracked packets are the whole flight (nothing charged
	// and not yet tracked) and no further packet fits the window. Nothing
	// changes A's share from here: no ACK can come, resends keep their
	// records, and only ack-eliciting data would be charged.
	var stranded int
	eventually(t, 5*time.Second, func() bool {
		stranded = c.ledger.StreamBytes(sa.ID())
		flight := c.ledger.Flight()
		return stranded > 0 && int64(stranded) == flight && flight+int64(c.cfg.MaxPacketSize) > c.cc.Window()
	}, "A never filled the window")

	sa.CancelWrite(7)
	abortedAt := time.Now()
	require.Error(t, <-done)
	_, err = sb.Write([]byte("B's first bytes"))
	require.NoError(t, err)

	if release {
		require.Zero(t, c.ledger.StreamBytes(sa.ID()), "abort did not release A's flight")
		require.Positive(t, c.Stats().AbortReleasedBytes)
		select {
		case <-bFirst:
		case <-time.After(8 * rtt):
			t.Fatalf("B's first byte did not arrive within 8 RTTs of A's abort with the release on")
		}
		t.Logf("release on: B's first byte %v after A's abort (RTT %v)", time.Since(abortedAt), rtt)
	} else {
		require.Equal(t, stranded, c.ledger.StreamBytes(sa.ID()), "the switch did not keep A's flight")
		require.Zero(t, c.Stats().AbortReleasedBytes)
		select {
		case <-bFirst:
			t.Fatalf("B's first byte arrived %v after A's abort although A's flight was kept", time.Since(abortedAt))
		case <-time.After(8 * rtt):
		}
		// Let A's retransmissions through: acknowledging them is now the
		// only way their bytes leave flight, and then B goes.
		hole.on.Store(false)
		select {
		case <-bFirst:
		case <-ctx.Done():
			t.Fatal("B's first byte never arrived after the path recovered")
		}
		t.Logf("release off: B's first byte %v after A's abort (RTT %v)", time.Since(abortedAt), rtt)
		eventually(t, 5*time.Second, func() bool { return c.ledger.StreamBytes(sa.ID()) == 0 },
			"A's kept flight was never acknowledged")
		require.Zero(t, c.Stats().AbortReleasedBytes)
	}
	hole.on.Store(false)
	scancel()
	<-served
	requireConnUsable(t, p)
	require.Zero(t, c.ledger.Underflows())
	require.Zero(t, c.ledger.Violations())
}

// serveAbortSwitch accepts the test's streams on the server until ctx ends:
// it signals prelude once a's first preludeLen bytes arrived and bFirst at
// b's first byte, and drains everything else.
func serveAbortSwitch(ctx context.Context, sc *Conn, a, b uint64, preludeLen int, prelude, bFirst chan struct{}) {
	for {
		rs, err := sc.AcceptStream(ctx)
		if err != nil {
			return
		}
		go func() {
			buf := make([]byte, 64<<10)
			got := 0
			for {
				n, err := rs.ReadContext(ctx, buf)
				before := got
				got += n
				switch {
				case rs.ID() == a && before < preludeLen && got >= preludeLen:
					close(prelude)
				case rs.ID() == b && before == 0 && got > 0:
					close(bFirst)
				}
				if err != nil {
					return // EOF, A's reset or ctx
				}
			}
		}()
	}
}
