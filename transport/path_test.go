package transport

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/flightline/flightline/transport/internal/handshake"
	"github.com/flightline/flightline/transport/internal/wire"
	"github.com/flightline/flightline/transport/link"
	"github.com/flightline/flightline/transport/memlink"
	"github.com/stretchr/testify/require"
)

// natLink is the server's side of a memlink pair as a NAT and an off-path
// spoofer make it look. The client's datagrams arrive from src (a NAT
// rebinding changes it); single datagrams can be marked as coming from
// elsewhere (spoofing). What the server sends reaches the client only when
// addressed to where the client now is; everything else is dropped. Bytes
// are counted per address both ways, and for every watched address each
// datagram sent is checked against the anti-amplification budget: the
// running total sent must stay within 3× the running total received.
type natLink struct {
	link.Link
	mu         sync.Mutex
	src        netip.AddrPort
	spoof      map[string]netip.AddrPort
	reach      netip.AddrPort // where the client can be reached now
	real       netip.AddrPort // the client's memlink address (what memlink routes by)
	sent, recv map[netip.AddrPort]int
	watch      map[netip.AddrPort]bool
	violations []string
}

func newNATLink(l *memlink.Link, client netip.AddrPort) *natLink {
	return &natLink{
		Link: l, src: client, reach: client, real: client,
		spoof: make(map[string]netip.AddrPort),
		sent:  make(map[netip.AddrPort]int), recv: make(map[netip.AddrPort]int),
		watch: make(map[netip.AddrPort]bool),
	}
}

// rebind moves the client behind the NAT to addr: its datagrams now come
// from addr, and only datagrams to addr reach it.
func (l *natLink) rebind(addr netip.AddrPort) {
	l.mu.Lock()
	l.src, l.reach = addr, addr
	l.watch[addr] = true
	l.mu.Unlock()
}

func (l *natLink) from(pkt []byte, addr netip.AddrPort) {
	l.mu.Lock()
	l.spoof[string(pkt)] = addr
	l.watch[addr] = true
	l.mu.Unlock()
}

func (l *natLink) unwatch(addr netip.AddrPort) {
	l.mu.Lock()
	delete(l.watch, addr)
	l.mu.Unlock()
}

func (l *natLink) counts(addr netip.AddrPort) (sent, recv int, violations []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sent[addr], l.recv[addr], append([]string(nil), l.violations...)
}

func (l *natLink) ReadBatch(msgs []link.Message) (int, error) {
	n, err := l.Link.ReadBatch(msgs)
	l.mu.Lock()
	for i := range msgs[:n] {
		if a, ok := l.spoof[string(msgs[i].Buf)]; ok {
			msgs[i].Addr = a
		} else {
			msgs[i].Addr = l.src
		}
		l.recv[msgs[i].Addr] += len(msgs[i].Buf)
	}
	l.mu.Unlock()
	return n, err
}

func (l *natLink) WriteBatch(msgs []link.Message) (int, error) {
	l.mu.Lock()
	pass := make([]link.Message, 0, len(msgs))
	for _, m := range msgs {
		l.sent[m.Addr] += len(m.Buf)
		if l.watch[m.Addr] && l.sent[m.Addr] > 3*l.recv[m.Addr] {
			l.violations = append(l.violations, fmt.Sprintf("%v: sent %d > 3 × received %d",
				m.Addr, l.sent[m.Addr], l.recv[m.Addr]))
		}
		if m.Addr == l.reach {
			m.Addr = l.real // through the NAT
			pass = append(pass, m)
		}
	}
	l.mu.Unlock()
	if len(pass) > 0 {
		if _, err := l.Link.WriteBatch(pass); err != nil {
			return 0, err
		}
	}
	return len(msgs), nil
}

// pathEvents installs a test hook that reports the server conn's path
// changes on a channel.
type pathEv struct {
	kind pathEventKind
	addr netip.AddrPort
}

func pathEvents(c *Conn, also func(pathEv)) <-chan pathEv {
	ch := make(chan pathEv, 64)
	c.testHooks.Store(&connTestHooks{pathEvent: func(kind pathEventKind, addr netip.AddrPort) {
		ev := pathEv{kind, addr}
		if also != nil {
			also(ev)
		}
		select {
		case ch <- ev:
		default:
		}
	}})
	return ch
}

func waitPathEvent(t *testing.T, ctx context.Context, ch <-chan pathEv, kind pathEventKind) pathEv {
	t.Helper()
	for {
		select {
		case ev := <-ch:
			if ev.kind == kind {
				return ev
			}
		case <-ctx.Done():
			t.Fatalf("no path event %d: %v", kind, ctx.Err())
		}
	}
}

// A real NAT rebinding in the middle of a transfer: the client's address
// changes and its old binding is gone. The server follows the newest
// packet to the new address, validates it (PATH_CHALLENGE answered by a
// PATH_RESPONSE from there), holds to the 3× budget until then, and the
// transfer completes intact.
func TestNATRebindingValidated(t *testing.T) {
	a, b := memlink.NewPair(memlink.Config{Seed: 21})
	nl := newNATLink(a, b.LocalAddr())
	scfg, ccfg := testConfig(t), testConfig(t)
	scfg.KeepAlive, ccfg.KeepAlive = -1, -1
	p := newPairOver(t, nl, b, scfg, ccfg)
	ctx := testCtx(t)
	sc := p.serverConn
	moved := netip.MustParseAddrPort("203.0.113.5:40000")
	events := pathEvents(sc, func(ev pathEv) {
		if ev.kind == pathValidated {
			nl.unwatch(ev.addr) // validated: no budget from now on
		}
	})

	want := randomData(21, 2<<20)
	s, err := sc.OpenStream()
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() {
		_, err := s.WriteContext(ctx, want)
		if err == nil {
			err = s.Close()
		}
		errc <- err
	}()
	// The client's first packet opens the stream on its side: the
	// server's data, read halfway, then the NAT rebinds.
	rs, err := p.clientConn.AcceptStream(ctx)
	require.NoError(t, err)
	got := make([]byte, len(want))
	half := len(want) / 2
	_, err = readFull(ctx, rs, got[:half])
	require.NoError(t, err)
	nl.rebind(moved)
	// The server learns of the move from the client's next packet (here a
	// message; keepalives or ACKs in real life): the server's packets to
	// the old binding are lost until then.
	require.NoError(t, p.clientConn.SendMessage([]byte("moved")))
	_, err = readFull(ctx, rs, got[half:])
	require.NoError(t, err, "server %+v\nclient %+v", sc.Stats(), p.clientConn.Stats())
	require.NoError(t, <-errc)
	require.Equal(t, want, got, "data corrupted across the rebinding")

	ev := waitPathEvent(t, ctx, events, pathValidated)
	require.Equal(t, moved, ev.addr)
	require.Equal(t, moved, sc.RemoteAddr())
	st := sc.Stats()
	require.Equal(t, uint64(1), st.PathValidations, "%+v", st)
	require.Zero(t, st.PathValidationFailures)
	require.NotZero(t, st.PathChallengesSent)
	require.NotZero(t, p.clientConn.Stats().PathResponsesSent)
	_, _, violations := nl.counts(moved)
	require.Empty(t, violations, "the unvalidated address got more than 3× what it sent")
}

// spoofSetup is a pair over a natLink whose real client can be muted (its
// datagrams dropped on the wire) while forged ones pass.
type spoofSetup struct {
	p     *pair
	nl    *natLink
	f     *forger
	muted atomic.Bool
	home  netip.AddrPort
	// forgedSet lets a forged datagram through the mute.
	forgedSet func(pkt []byte)
}

func newSpoofSetup(t *testing.T, seed uint64) *spoofSetup {
	a, b := memlink.NewPair(memlink.Config{Seed: seed})
	ss := &spoofSetup{nl: newNATLink(a, b.LocalAddr())}
	var forged sync.Map
	b.SetImpairment(memlink.Impairment{Drop: func(pkt []byte) bool {
		if !ss.muted.Load() {
			return false
		}
		_, ok := forged.Load(string(pkt))
		return !ok
	}})
	scfg, ccfg := testConfig(t), testConfig(t)
	scfg.KeepAlive, ccfg.KeepAlive = -1, -1
	ss.p = newPairOver(t, ss.nl, b, scfg, ccfg)
	ss.f = newForger(t, ss.p, b, a)
	ss.home = ss.p.serverConn.RemoteAddr()
	ss.forgedSet = func(pkt []byte) { forged.Store(string(pkt), true) }
	return ss
}

// A spoofed copy of the newest packet from a victim's address: the
// server moves to the victim only provisionally, sends it at most 3× what
// the victim's address "sent" (per datagram, counted on the wire) and
// none of the application's data, and returns to the validated address
// when its challenges go unanswered; the data then arrives intact.
func TestSpoofedMigrationBudgetAndRevert(t *testing.T) {
	ss := newSpoofSetup(t, 22)
	ctx := testCtx(t)
	sc := ss.p.serverConn
	exchange(t, ctx, ss.p, "warm up")
	victim := netip.MustParseAddrPort("198.51.100.20:53")
	events := pathEvents(sc, nil)

	// The real client goes quiet (as if its packets were slower than the
	// spoofer's copy); a copy of its newest packet arrives from the victim.
	ss.muted.Store(true)
	pkt := ss.f.seal(ss.f.pn(), wire.AppendPing(nil))
	ss.forgedSet(pkt)
	ss.nl.from(pkt, victim)
	ss.f.write(pkt)
	require.Equal(t, victim, waitPathEvent(t, ctx, events, pathCandidate).addr)

	// The application has plenty to send while the path is unvalidated.
	want := randomData(22, 256<<10)
	s, err := sc.OpenStream()
	require.NoError(t, err)
	_, err = s.WriteContext(ctx, want)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	require.Equal(t, ss.home, waitPathEvent(t, ctx, events, pathFailed).addr)
	require.Equal(t, ss.home, sc.RemoteAddr())
	sent, recv, violations := ss.nl.counts(victim)
	require.Empty(t, violations)
	require.Equal(t, len(pkt), recv)
	require.NotZero(t, sent, "the victim's address was never challenged")
	require.LessOrEqual(t, sent, 3*recv)
	st := sc.Stats()
	require.Equal(t, uint64(1), st.PathValidationFailures, "%+v", st)
	require.Zero(t, st.PathValidations)

	// Back home, the data flows once the client is heard again.
	ss.muted.Store(false)
	rs, err := ss.p.clientConn.AcceptStream(ctx)
	require.NoError(t, err)
	got := make([]byte, len(want))
	_, err = readFull(ctx, rs, got)
	require.NoError(t, err)
	require.Equal(t, want, got)
	sent2, _, _ := ss.nl.counts(victim)
	require.Equal(t, sent, sent2, "sent to the victim after the revert")
}

// The budget is exact: a spoofed 34-byte PING from the victim allows 102
// bytes. The server spends it on challenges (each a sealed 42-byte packet
// at least) until the next would not fit, and sends no more, though its
// challenge timer asks for one more challenge before validation fails.
func TestUnvalidatedPathBudgetExact(t *testing.T) {
	ss := newSpoofSetup(t, 23)
	ctx := testCtx(t)
	sc := ss.p.serverConn
	exchange(t, ctx, ss.p, "warm up")
	victim := netip.MustParseAddrPort("198.51.100.21:53")
	events := pathEvents(sc, nil)

	ss.muted.Store(true)
	pkt := ss.f.seal(ss.f.pn(), wire.AppendPing(nil))
	require.Equal(t, wire.DataHeaderLen+1+handshake.Overhead, len(pkt))
	ss.forgedSet(pkt)
	ss.nl.from(pkt, victim)
	ss.f.write(pkt)
	waitPathEvent(t, ctx, events, pathFailed)

	sent, recv, violations := ss.nl.counts(victim)
	require.Empty(t, violations)
	budget := 3 * recv
	challengePkt := wire.DataHeaderLen + wire.PathFrameLen + handshake.Overhead
	require.LessOrEqual(t, sent, budget)
	require.Greater(t, sent+challengePkt, budget, "budget left unused: %d of %d sent", sent, budget)
	st := sc.Stats()
	require.Less(t, st.PathChallengesSent, uint64(maxPathChallenges), "%+v", st)
	require.NotZero(t, st.PathAmplificationLimited)
	ss.muted.Store(false)
	exchange(t, ctx, ss.p, "still works")
}

// The peer's newest packet from the validated address ends a spoofed
// move at once (no need to wait for the challenges to fail).
func TestSpoofedMigrationEndsOnPeerReturn(t *testing.T) {
	ss := newSpoofSetup(t, 24)
	ctx := testCtx(t)
	sc := ss.p.serverConn
	exchange(t, ctx, ss.p, "warm up")
	victim := netip.MustParseAddrPort("198.51.100.22:53")
	events := pathEvents(sc, nil)
	pkt := ss.f.seal(ss.f.pn(), wire.AppendPing(nil))
	ss.nl.from(pkt, victim)
	ss.f.write(pkt)
	require.Equal(t, victim, waitPathEvent(t, ctx, events, pathCandidate).addr)
	// The real client's next packet (newer) arrives from home.
	require.NoError(t, ss.p.clientConn.SendMessage([]byte("here")))
	require.Equal(t, ss.home, waitPathEvent(t, ctx, events, pathReturned).addr)
	require.Equal(t, ss.home, sc.RemoteAddr())
	exchange(t, ctx, ss.p, "after")
	sent, recv, violations := ss.nl.counts(victim)
	require.Empty(t, violations)
	require.LessOrEqual(t, sent, 3*recv)
	require.Equal(t, uint64(1), sc.Stats().PathValidationsAbandoned)
}

// The client keeps the dialed address unless the server's move is
// validated: a spoofed copy of the server's newest packet from elsewhere
// moves it only until its challenges go unanswered (within the 3× budget
// meanwhile), while a real move of the server (its packets now come from,
// and reach it at, a new address) is validated and followed.
func TestClientKeepsDialedAddressUnlessValidated(t *testing.T) {
	a, b := memlink.NewPair(memlink.Config{Seed: 25})
	dialed := a.LocalAddr()
	nl := newNATLink(b, dialed) // the client's view of the server
	var muted atomic.Bool
	var forged sync.Map
	a.SetImpairment(memlink.Impairment{Drop: func(pkt []byte) bool {
		_, ok := forged.Load(string(pkt))
		return muted.Load() && !ok
	}})
	scfg, ccfg := testConfig(t), testConfig(t)
	scfg.KeepAlive, ccfg.KeepAlive = -1, -1
	p := newPairOver(t, a, nl, scfg, ccfg)
	ctx := testCtx(t)
	cc := p.clientConn
	exchange(t, ctx, p, "warm up")
	events := pathEvents(cc, func(ev pathEv) {
		if ev.kind == pathValidated {
			nl.unwatch(ev.addr)
		}
	})

	// Spoofed: a copy of the server's newest packet from elsewhere.
	spoofed := netip.MustParseAddrPort("192.0.2.50:443")
	f := &forger{t: t, c: p.serverConn, l: a, to: b}
	muted.Store(true)
	pkt := f.seal(f.pn(), wire.AppendPing(nil))
	forged.Store(string(pkt), true)
	nl.from(pkt, spoofed)
	f.write(pkt)
	require.Equal(t, spoofed, waitPathEvent(t, ctx, events, pathCandidate).addr)
	require.Equal(t, dialed, waitPathEvent(t, ctx, events, pathFailed).addr)
	require.Equal(t, dialed, cc.RemoteAddr())
	sent, recv, violations := nl.counts(spoofed)
	require.Empty(t, violations)
	require.NotZero(t, sent)
	require.LessOrEqual(t, sent, 3*recv)
	muted.Store(false)
	exchange(t, ctx, p, "still dialed")

	// Real: the server's address changes; its next packet comes from there.
	moved := netip.MustParseAddrPort("192.0.2.60:443")
	nl.rebind(moved)
	require.NoError(t, p.serverConn.SendMessage([]byte("moved")))
	require.Equal(t, moved, waitPathEvent(t, ctx, events, pathValidated).addr)
	require.Equal(t, moved, cc.RemoteAddr())
	exchange(t, ctx, p, "after the move")
	st := cc.Stats()
	require.Equal(t, uint64(1), st.PathValidations, "%+v", st)
	require.Equal(t, uint64(1), st.PathValidationFailures)
	require.NotZero(t, p.serverConn.Stats().PathResponsesSent)
	_, _, violations = nl.counts(moved)
	require.Empty(t, violations)
}

// A PATH_CHALLENGE is answered on the path it arrived from. A copy of the
// client's newest packet, carrying a challenge, arrives from a victim's
// address: the server answers it there (within the budget), not on the
// validated address, so nothing at all goes to the validated address
// while the server probes the victim's.
func TestPathChallengeAnsweredOnItsPath(t *testing.T) {
	ss := newSpoofSetup(t, 26)
	ctx := testCtx(t)
	sc := ss.p.serverConn
	exchange(t, ctx, ss.p, "warm up")
	victim := netip.MustParseAddrPort("198.51.100.23:53")
	var homeAtCandidate, homeAtFailed atomic.Int64
	events := pathEvents(sc, func(ev pathEv) {
		sent, _, _ := ss.nl.counts(ss.home)
		switch ev.kind {
		case pathCandidate:
			homeAtCandidate.Store(int64(sent))
		case pathFailed:
			homeAtFailed.Store(int64(sent))
		}
	})
	ss.muted.Store(true)
	pkt := ss.f.seal(ss.f.pn(), wire.AppendPathChallenge(nil, [8]byte{1, 2, 3, 4, 5, 6, 7, 8}))
	ss.forgedSet(pkt)
	ss.nl.from(pkt, victim)
	ss.f.write(pkt)
	waitPathEvent(t, ctx, events, pathCandidate)
	waitPathEvent(t, ctx, events, pathFailed)
	require.Equal(t, homeAtCandidate.Load(), homeAtFailed.Load(), "sent to the validated address while probing")
	st := sc.Stats()
	require.Equal(t, uint64(1), st.PathResponsesSent, "%+v", st)
	sent, recv, violations := ss.nl.counts(victim)
	require.Empty(t, violations)
	require.LessOrEqual(t, sent, 3*recv)
	ss.muted.Store(false)
	exchange(t, ctx, ss.p, "after")
}
