package transport

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/flightline/flightline/transport/internal/handshake"
	"github.com/flightline/flightline/transport/link"
	"github.com/flightline/flightline/transport/memlink"
	"github.com/stretchr/testify/require"
)

// hostileLink wraps one end of a memlink pair for tests of what spoofers
// and floods do to an endpoint: ReadBatch also returns datagrams the test
// injects with any source address, and WriteBatch records what is sent to
// any address other than the memlink peer (those go nowhere else).
type hostileLink struct {
	*memlink.Link
	peer   netip.AddrPort // the memlink peer's address
	rx     chan rxMsg
	closed chan struct{}
	once   sync.Once

	mu       sync.Mutex
	cond     *sync.Cond
	injected int // datagrams injected
	consumed int // injected datagrams the reader has finished with
	inBatch  int // injected datagrams in the batch the reader holds
	sentTo   map[netip.AddrPort][][]byte
}

func newHostileLink(l *memlink.Link, peer netip.AddrPort) *hostileLink {
	h := &hostileLink{Link: l, peer: peer, rx: make(chan rxMsg, 4096), closed: make(chan struct{}), sentTo: map[netip.AddrPort][][]byte{}}
	h.cond = sync.NewCond(&h.mu)
	go h.pump()
	return h
}

// rxMsg is a datagram for the reader, from the memlink peer or injected.
type rxMsg struct {
	m        link.Message
	injected bool
}

func (h *hostileLink) pump() {
	msgs := make([]link.Message, 64)
	for i := range msgs {
		msgs[i].Buf = make([]byte, link.MaxPacketSize)
	}
	for {
		n, err := h.Link.ReadBatch(msgs)
		if err != nil {
			return
		}
		for i := range n {
			m := link.Message{Buf: append([]byte(nil), msgs[i].Buf...), Addr: msgs[i].Addr}
			select {
			case h.rx <- rxMsg{m: m}:
			case <-h.closed:
				return
			}
			msgs[i].Buf = msgs[i].Buf[:cap(msgs[i].Buf)]
		}
	}
}

// inject queues a datagram from any source address; it blocks while the
// receive queue is full (the reader is behind).
func (h *hostileLink) inject(b []byte, from netip.AddrPort) {
	h.mu.Lock()
	h.injected++
	h.mu.Unlock()
	select {
	case h.rx <- rxMsg{m: link.Message{Buf: append([]byte(nil), b...), Addr: from}, injected: true}:
	case <-h.closed:
	}
}

func (h *hostileLink) ReadBatch(msgs []link.Message) (int, error) {
	h.mu.Lock()
	h.consumed += h.inBatch // the reader is back: it handled its last batch
	h.inBatch = 0
	h.cond.Broadcast()
	h.mu.Unlock()
	var first rxMsg
	select {
	case first = <-h.rx:
	case <-h.closed:
		return 0, net.ErrClosed
	}
	n := 0
	add := func(r rxMsg) {
		msgs[n].Buf = msgs[n].Buf[:copy(msgs[n].Buf[:cap(msgs[n].Buf)], r.m.Buf)]
		msgs[n].Addr = r.m.Addr
		n++
		if r.injected {
			h.mu.Lock()
			h.inBatch++
			h.mu.Unlock()
		}
	}
	add(first)
	for n < len(msgs) {
		select {
		case m := <-h.rx:
			add(m)
		default:
			return n, nil
		}
	}
	return n, nil
}

// waitConsumed blocks until the reader has handled every injected datagram.
func (h *hostileLink) waitConsumed(t testing.TB) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		h.mu.Lock()
		for h.consumed < h.injected {
			h.cond.Wait()
		}
		h.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("receive loop did not consume the injected datagrams")
	}
}

func (h *hostileLink) WriteBatch(msgs []link.Message) (int, error) {
	var peer []link.Message
	h.mu.Lock()
	for _, m := range msgs {
		if m.Addr == h.peer {
			peer = append(peer, m)
			continue
		}
		h.sentTo[m.Addr] = append(h.sentTo[m.Addr], append([]byte(nil), m.Buf...))
	}
	h.mu.Unlock()
	if len(peer) > 0 {
		if _, err := h.Link.WriteBatch(peer); err != nil {
			return 0, err
		}
	}
	return len(msgs), nil
}

// sent returns the datagrams sent to a and their total size.
func (h *hostileLink) sent(a netip.AddrPort) ([][]byte, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, b := range h.sentTo[a] {
		n += len(b)
	}
	return append([][]byte(nil), h.sentTo[a]...), n
}

func (h *hostileLink) Close() error {
	h.once.Do(func() { close(h.closed) })
	return h.Link.Close()
}

// fakeClock is the handshaker's injected clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// hostileRig is a listener behind a hostileLink, with a fake handshake
// clock, one handshake worker, and a count of handled handshake messages.
type hostileRig struct {
	srv    *Endpoint
	hl     *hostileLink
	peer   *memlink.Link // the memlink end a legitimate client uses
	clock  *fakeClock
	jobs   chan struct{}
	logsMu sync.Mutex
	logs   []string
}

func newHostileRig(t testing.TB, scfg *Config, opt handshakerOptions) *hostileRig {
	t.Helper()
	a, b := memlink.NewPair(memlink.Config{Seed: 5})
	r := &hostileRig{hl: newHostileLink(a, b.LocalAddr()), peer: b, clock: newFakeClock(), jobs: make(chan struct{}, 1<<16)}
	scfg.Logf = func(format string, args ...any) {
		r.logsMu.Lock()
		r.logs = append(r.logs, format)
		r.logsMu.Unlock()
		if testing.Verbose() {
			t.Logf(format, args...)
		}
	}
	if opt.now == nil {
		opt.now = r.clock.now
	}
	opt.workers = 1
	opt.afterJob = func() {
		select {
		case r.jobs <- struct{}{}:
		default:
		}
	}
	srv, err := newEndpoint(r.hl, scfg, true, opt)
	require.NoError(t, err)
	r.srv = srv
	t.Cleanup(func() { srv.Close(); b.Close() })
	return r
}

// waitJobs waits until n more handshake messages were handled.
func (r *hostileRig) waitJobs(t testing.TB, n int) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for range n {
		select {
		case <-r.jobs:
		case <-timeout:
			t.Fatalf("handshake worker did not handle %d messages", n)
		}
	}
}

// logCount returns how many log lines start with prefix.
func (r *hostileRig) logCount(prefix string) int {
	r.logsMu.Lock()
	defer r.logsMu.Unlock()
	n := 0
	for _, l := range r.logs {
		if len(l) >= len(prefix) && l[:len(prefix)] == prefix {
			n++
		}
	}
	return n
}

// dialClient connects a legitimate client over the memlink pair.
func (r *hostileRig) dialClient(t testing.TB, ccfg *Config) (cli *Conn, srv *Conn) {
	t.Helper()
	cep, err := NewEndpoint(r.peer, ccfg, false)
	require.NoError(t, err)
	t.Cleanup(func() { cep.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var sc *Conn
	var serr error
	done := make(chan struct{})
	go func() { sc, serr = r.srv.Accept(ctx); close(done) }()
	cc, err := cep.Dial(ctx, r.hl.LocalAddr(), r.srv.PublicKey())
	require.NoError(t, err)
	<-done
	require.NoError(t, serr)
	return cc, sc
}

// rawInitiator is a hostile or hand-made client: a handshake.Initiator
// whose messages the test injects from an address of its choice.
func rawInitiator(t testing.TB, remote PublicKey, payload []byte) *handshake.Initiator {
	t.Helper()
	k, err := GenerateKey()
	require.NoError(t, err)
	in, err := handshake.NewInitiator(handshake.InitiatorConfig{Static: k, Remote: remote, ConnID: 0x5eed, Payload: payload})
	require.NoError(t, err)
	return in
}

// validParams are transport parameters a server accepts.
func validParams(t testing.TB) []byte {
	c, err := (&Config{}).populate()
	require.NoError(t, err)
	return paramsFromConfig(c).append(nil)
}
