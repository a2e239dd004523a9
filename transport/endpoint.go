package transport

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/flightline/flightline/transport/internal/handshake"
	"github.com/flightline/flightline/transport/internal/monotime"
	"github.com/flightline/flightline/transport/internal/wire"
	"github.com/flightline/flightline/transport/link"
)

// Endpoint owns one datapath (a link.Link) and every connection on it. One
// receive goroutine reads batches from the link and demultiplexes them by
// connection ID to connections, or hands handshake messages to the
// handshaker's workers (see handshaker).
type Endpoint struct {
	link      link.Link
	cfg       *Config
	listening bool
	hs        *handshaker

	connsMu sync.RWMutex
	conns   map[uint64]*Conn
	// closedConns sums the counters of removed connections; guarded by
	// connsMu so ConnSnapshot sees each connection live or summed, once.
	closedConns ClosedConnStats

	acceptQ chan *Conn
	txMu    sync.Mutex // serialises WriteBatch (links are single-writer)

	rs       recvState // receive loop scratch
	closed   chan struct{}
	recvDone chan struct{}
	once     sync.Once

	stats endpointStats
}

// acceptQueueLen is how many connections that proved their address may
// wait for Accept.
const acceptQueueLen = 64

// NewEndpoint runs flightline over l. A listening endpoint accepts
// connections (Accept); any endpoint can Dial.
func NewEndpoint(l link.Link, cfg *Config, listening bool) (*Endpoint, error) {
	return newEndpoint(l, cfg, listening, handshakerOptions{})
}

// newEndpoint is NewEndpoint with the handshaker's test seams (clock,
// workers, hooks).
func newEndpoint(l link.Link, cfg *Config, listening bool, opt handshakerOptions) (*Endpoint, error) {
	c, err := cfg.populate()
	if err != nil {
		return nil, err
	}
	e := &Endpoint{
		link:      l,
		cfg:       c,
		listening: listening,
		conns:     make(map[uint64]*Conn),
		acceptQ:   make(chan *Conn, acceptQueueLen),
		closed:    make(chan struct{}),
		recvDone:  make(chan struct{}),
	}
	e.hs, err = newHandshaker(e, c, listening, opt)
	if err != nil {
		return nil, fmt.Errorf("new endpoint: %w", err)
	}
	go e.recvLoop()
	go e.hs.reaper(e.closed)
	return e, nil
}

// PublicKey is the endpoint's static identity; dialers need it.
func (e *Endpoint) PublicKey() PublicKey { return e.cfg.PrivateKey.Public() }

// LocalAddr is the address the endpoint receives on.
func (e *Endpoint) LocalAddr() netip.AddrPort { return e.link.LocalAddr() }

// Link returns the datapath.
func (e *Endpoint) Link() link.Link { return e.link }

// Close closes every connection (telling peers that proved their address)
// and the datapath.
func (e *Endpoint) Close() error {
	e.once.Do(func() {
		e.connsMu.RLock()
		conns := make([]*Conn, 0, len(e.conns))
		for id, c := range e.conns {
			if !e.hs.isPending(id) {
				conns = append(conns, c)
			}
		}
		e.connsMu.RUnlock()
		for _, c := range conns {
			c.CloseWithError(0, "endpoint closed")
		}
		close(e.closed)
		e.link.Close()
		<-e.recvDone
		e.hs.close()
		// Connections that completed while the first round closed (the
		// receive loop and workers were still running) close now; every
		// connection left has a running send loop (hs.close started the
		// pending ones' teardown).
		e.connsMu.RLock()
		conns = conns[:0]
		for _, c := range e.conns {
			conns = append(conns, c)
		}
		e.connsMu.RUnlock()
		for _, c := range conns {
			c.CloseWithError(0, "endpoint closed")
		}
	})
	return nil
}

// Accept waits for an incoming connection.
func (e *Endpoint) Accept(ctx context.Context) (*Conn, error) {
	if !e.listening {
		return nil, errors.New("flightline: endpoint is not listening")
	}
	select {
	case c := <-e.acceptQ:
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-e.closed:
		return nil, ErrClosed
	}
}

func (e *Endpoint) writeBatch(msgs []link.Message) (int, error) {
	e.txMu.Lock()
	defer e.txMu.Unlock()
	return e.link.WriteBatch(msgs)
}

func (e *Endpoint) writeOne(b []byte, to netip.AddrPort) error {
	_, err := e.writeBatch([]link.Message{{Buf: b, Addr: to}})
	return err
}

func (e *Endpoint) removeConn(c *Conn) {
	// Final counters, read before taking connsMu: Stats calls the
	// controller, and no lock is held across a controller call.
	final := c.Stats()
	e.connsMu.Lock()
	if e.conns[c.localID] == c {
		delete(e.conns, c.localID)
		e.closedConns.Conns++
		addCounters(&e.closedConns.Stats, &final)
	}
	e.connsMu.Unlock()
	e.hs.forget(c.localID)
}

// newConnID returns a random connection ID not in use by a connection or a
// dial.
func (e *Endpoint) newConnID() uint64 {
	e.connsMu.RLock()
	defer e.connsMu.RUnlock()
	var b [8]byte
	for {
		rand.Read(b[:])
		id := binary.LittleEndian.Uint64(b[:])
		if _, used := e.conns[id]; used || id == 0 {
			continue
		}
		if e.hs.dialFor(id) != nil {
			continue
		}
		return id
	}
}

func (e *Endpoint) recvLoop() {
	defer close(e.recvDone)
	bs := max(e.link.BatchSize(), 1)
	msgs := make([]link.Message, bs)
	for i := range msgs {
		msgs[i].Buf = make([]byte, link.MaxPacketSize)
	}
	for {
		n, err := e.link.ReadBatch(msgs)
		if err != nil {
			select {
			case <-e.closed:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			e.cfg.Logf("flightline: receive: %v", err)
			time.Sleep(time.Millisecond) // bounded backoff on persistent datapath errors
			continue
		}
		now := monotime.Now()
		for i := range n {
			e.handleDatagram(now, msgs[i].Buf, msgs[i].Addr)
			msgs[i].Buf = msgs[i].Buf[:cap(msgs[i].Buf)]
		}
		if n < len(msgs) {
			// The datapath is probably drained, so the next read will
			// find nothing and park. Let the goroutines this batch woke
			// (a reader about to answer a request) run first: the answer
			// then goes out before, not after, that empty read.
			runtime.Gosched()
		}
	}
}

func (e *Endpoint) handleDatagram(now monotime.Time, b []byte, from netip.AddrPort) {
	t, err := wire.PacketType(b)
	if err != nil {
		e.stats.dropShort.Add(1)
		return
	}
	switch t {
	case wire.TypeData:
		hdr, err := wire.ParseDataHeader(b)
		if err != nil || len(b) < wire.DataHeaderLen+handshake.Overhead {
			e.stats.dropShort.Add(1)
			return
		}
		e.connsMu.RLock()
		c := e.conns[hdr.ConnID]
		e.connsMu.RUnlock()
		if c == nil {
			e.stats.dropUnknownConn.Add(1)
			return
		}
		c.handlePacket(now, hdr, b, from)
		// The first authenticated packet of a listener-side connection
		// proves its initiator receives at its address.
		if e.hs.isPending(hdr.ConnID) && c.stats.packetsReceived.Load() > 0 {
			e.hs.validated(c)
		}
	case wire.TypeInitiation, wire.TypeResponse, wire.TypeCookie:
		e.hs.enqueue(t, b, from)
	default:
		e.stats.dropShort.Add(1)
	}
}

// Dial opens a connection to the endpoint at addr whose static public key is
// remote. It fails with ErrHandshakeTimeout when no valid response arrives
// within Config.HandshakeTimeout (or ctx ends).
func (e *Endpoint) Dial(ctx context.Context, addr netip.AddrPort, remote PublicKey) (*Conn, error) {
	localID := e.newConnID()
	init, err := handshake.NewInitiator(handshake.InitiatorConfig{
		Static:  e.cfg.PrivateKey,
		Remote:  remote,
		ConnID:  localID,
		Suite:   e.cfg.Suite,
		Payload: e.hs.params,
	})
	if err != nil {
		return nil, fmt.Errorf("dial %v: %w", addr, err)
	}
	ds := &dialState{init: init, addr: addr, msg: init.Message(), done: make(chan struct{})}
	h := e.hs
	h.mu.Lock()
	h.dials[localID] = ds
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.dials, localID)
		h.mu.Unlock()
	}()

	ctx, cancel := context.WithTimeout(ctx, e.cfg.HandshakeTimeout)
	defer cancel()
	backoff := 200 * time.Millisecond
	for {
		ds.mu.Lock()
		msg := ds.msg
		ds.mu.Unlock()
		if err := e.writeOne(msg, addr); err != nil && !transientSendError(err) {
			return nil, fmt.Errorf("dial %v: send initiation: %w", addr, err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ds.done:
			t.Stop()
			return ds.conn, ds.err
		case <-t.C:
			backoff = min(backoff*2, 2*time.Second)
		case <-ctx.Done():
			t.Stop()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("dial %v: %w", addr, ErrHandshakeTimeout)
			}
			return nil, fmt.Errorf("dial %v: %w", addr, ctx.Err())
		case <-e.closed:
			t.Stop()
			return nil, ErrClosed
		}
	}
}
