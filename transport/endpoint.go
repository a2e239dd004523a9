package transport

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flightline/flightline/transport/internal/handshake"
	"github.com/flightline/flightline/transport/internal/monotime"
	"github.com/flightline/flightline/transport/internal/wire"
	"github.com/flightline/flightline/transport/link"
)

// Endpoint owns one datapath (a link.Link) and every connection on it. One
// receive goroutine reads batches from the link and demultiplexes them by
// connection ID to connections, or to the handshake for new ones.
type Endpoint struct {
	link      link.Link
	cfg       *Config
	listening bool
	responder *handshake.Responder
	params    []byte // our transport parameters, sent in the handshake

	connsMu sync.RWMutex
	conns   map[uint64]*Conn
	dials   map[uint64]*dialState
	resp    respCache

	acceptQ chan *Conn
	txMu    sync.Mutex // serialises WriteBatch (links are single-writer)
	limiter handshakeLimiter

	rs       recvState // receive loop scratch
	closed   chan struct{}
	recvDone chan struct{}
	once     sync.Once

	stats endpointStats
}

type endpointStats struct {
	dropShort, dropUnknownConn, dropHandshake, dropNotListening atomic.Uint64
	cookiesSent, handshakes                                     atomic.Uint64
}

// EndpointStats counts datagrams the endpoint dropped before any connection
// saw them, and handshake activity.
type EndpointStats struct {
	DroppedMalformed    uint64 // too short or unknown packet type
	DroppedUnknownConn  uint64 // data for a connection ID we do not have
	DroppedHandshake    uint64 // handshake messages that failed MAC, decryption, allowlist or replay checks
	DroppedNotListening uint64 // initiations to an endpoint that does not accept
	CookiesSent         uint64 // stateless retries demanded under load
	Handshakes          uint64 // connections established
}

// NewEndpoint runs flightline over l. A listening endpoint accepts
// connections (Accept); any endpoint can Dial.
func NewEndpoint(l link.Link, cfg *Config, listening bool) (*Endpoint, error) {
	c, err := cfg.populate()
	if err != nil {
		return nil, err
	}
	e := &Endpoint{
		link:      l,
		cfg:       c,
		listening: listening,
		params:    paramsFromConfig(c).append(nil),
		conns:     make(map[uint64]*Conn),
		dials:     make(map[uint64]*dialState),
		acceptQ:   make(chan *Conn, 64),
		closed:    make(chan struct{}),
		recvDone:  make(chan struct{}),
	}
	e.resp.entries = make(map[[32]byte]respEntry)
	e.limiter.init(c.HandshakeRate)
	var allow func(PublicKey) bool
	if c.AllowedPeers != nil {
		set := make(map[PublicKey]bool, len(c.AllowedPeers))
		for _, k := range c.AllowedPeers {
			set[k] = true
		}
		allow = func(k PublicKey) bool { return set[k] }
	}
	e.responder, err = handshake.NewResponder(handshake.ResponderConfig{
		Static:    c.PrivateKey,
		Allow:     allow,
		UnderLoad: e.limiter.underLoad,
	})
	if err != nil {
		return nil, fmt.Errorf("new endpoint: %w", err)
	}
	go e.recvLoop()
	return e, nil
}

// PublicKey is the endpoint's static identity; dialers need it.
func (e *Endpoint) PublicKey() PublicKey { return e.cfg.PrivateKey.Public() }

// LocalAddr is the address the endpoint receives on.
func (e *Endpoint) LocalAddr() netip.AddrPort { return e.link.LocalAddr() }

// Link returns the datapath.
func (e *Endpoint) Link() link.Link { return e.link }

// Stats returns the endpoint's drop and handshake counters.
func (e *Endpoint) Stats() EndpointStats {
	s := &e.stats
	return EndpointStats{
		DroppedMalformed:    s.dropShort.Load(),
		DroppedUnknownConn:  s.dropUnknownConn.Load(),
		DroppedHandshake:    s.dropHandshake.Load(),
		DroppedNotListening: s.dropNotListening.Load(),
		CookiesSent:         s.cookiesSent.Load(),
		Handshakes:          s.handshakes.Load(),
	}
}

// Close closes every connection (telling peers) and the datapath.
func (e *Endpoint) Close() error {
	e.once.Do(func() {
		e.connsMu.RLock()
		conns := make([]*Conn, 0, len(e.conns))
		for _, c := range e.conns {
			conns = append(conns, c)
		}
		e.connsMu.RUnlock()
		for _, c := range conns {
			c.CloseWithError(0, "endpoint closed")
		}
		close(e.closed)
		e.link.Close()
		<-e.recvDone
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
	e.connsMu.Lock()
	if e.conns[c.localID] == c {
		delete(e.conns, c.localID)
	}
	e.connsMu.Unlock()
}

// newConnID returns a random connection ID not in use.
func (e *Endpoint) newConnIDLocked() uint64 {
	var b [8]byte
	for {
		rand.Read(b[:])
		id := binary.LittleEndian.Uint64(b[:])
		if _, used := e.conns[id]; used || id == 0 {
			continue
		}
		if _, used := e.dials[id]; used {
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
	case wire.TypeInitiation:
		e.handleInitiation(b, from)
	case wire.TypeResponse:
		e.handleResponse(b, from)
	case wire.TypeCookie:
		e.handleCookie(b)
	}
}

// --- responder side ---

// respEntry remembers the response to an accepted initiation so that a
// retransmitted initiation (the response was lost) gets the same response
// again instead of being rejected as a replay.
type respEntry struct {
	resp    []byte
	from    netip.AddrPort
	expires time.Time
}

type respCache struct {
	entries map[[32]byte]respEntry
}

const respCacheMax = 4096

func (r *respCache) get(key [32]byte, from netip.AddrPort) []byte {
	en, ok := r.entries[key]
	if !ok || en.from != from || time.Now().After(en.expires) {
		return nil
	}
	return en.resp
}

func (r *respCache) put(key [32]byte, en respEntry) {
	if len(r.entries) >= respCacheMax {
		now := time.Now()
		for k, v := range r.entries {
			if now.After(v.expires) || len(r.entries) >= respCacheMax {
				delete(r.entries, k)
			}
		}
	}
	r.entries[key] = en
}

func (e *Endpoint) handleInitiation(b []byte, from netip.AddrPort) {
	if !e.listening {
		e.stats.dropNotListening.Add(1)
		return
	}
	key := sha256.Sum256(b)
	if resp := e.resp.get(key, from); resp != nil {
		e.writeOne(resp, from)
		return
	}
	e.connsMu.Lock()
	localID := e.newConnIDLocked()
	e.connsMu.Unlock()
	res, resp, cookie, err := e.responder.Accept(b, from, localID, e.params)
	if err != nil {
		e.stats.dropHandshake.Add(1)
		return
	}
	if cookie != nil {
		e.stats.cookiesSent.Add(1)
		e.writeOne(cookie, from)
		return
	}
	c, err := e.connFromHandshake(res, localID, from, false)
	if err != nil {
		e.stats.dropHandshake.Add(1)
		return
	}
	select {
	case e.acceptQ <- c:
	default:
		e.stats.dropHandshake.Add(1) // accept queue full: the initiator retries
		return
	}
	e.connsMu.Lock()
	e.conns[localID] = c
	e.resp.put(key, respEntry{resp: resp, from: from, expires: time.Now().Add(e.cfg.HandshakeTimeout)})
	e.connsMu.Unlock()
	e.stats.handshakes.Add(1)
	c.start()
	e.writeOne(resp, from)
}

// connFromHandshake builds the connection a completed handshake describes,
// after capping the peer's transport parameters.
func (e *Endpoint) connFromHandshake(res *handshake.Result, localID uint64, from netip.AddrPort, isClient bool) (*Conn, error) {
	pp, err := parseParams(res.Payload)
	if err != nil {
		return nil, err
	}
	return newConn(e, connParams{
		localID:    localID,
		remoteID:   res.PeerConnID,
		isClient:   isClient,
		peerKey:    res.Peer,
		suite:      res.Session.Suite,
		session:    res.Session,
		peer:       from,
		peerParams: pp,
	}), nil
}

// --- initiator side ---

type dialState struct {
	mu   sync.Mutex
	init *handshake.Initiator
	addr netip.AddrPort
	msg  []byte // current initiation
	conn *Conn
	err  error
	done chan struct{}
}

// Dial opens a connection to the endpoint at addr whose static public key is
// remote. It fails with ErrHandshakeTimeout when no valid response arrives
// within Config.HandshakeTimeout (or ctx ends).
func (e *Endpoint) Dial(ctx context.Context, addr netip.AddrPort, remote PublicKey) (*Conn, error) {
	e.connsMu.Lock()
	localID := e.newConnIDLocked()
	init, err := handshake.NewInitiator(handshake.InitiatorConfig{
		Static:  e.cfg.PrivateKey,
		Remote:  remote,
		ConnID:  localID,
		Suite:   e.cfg.Suite,
		Payload: e.params,
	})
	if err != nil {
		e.connsMu.Unlock()
		return nil, fmt.Errorf("dial %v: %w", addr, err)
	}
	ds := &dialState{init: init, addr: addr, msg: init.Message(), done: make(chan struct{})}
	e.dials[localID] = ds
	e.connsMu.Unlock()
	defer func() {
		e.connsMu.Lock()
		delete(e.dials, localID)
		e.connsMu.Unlock()
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

func (e *Endpoint) dialFor(id uint64) *dialState {
	e.connsMu.RLock()
	defer e.connsMu.RUnlock()
	return e.dials[id]
}

func (e *Endpoint) handleResponse(b []byte, from netip.AddrPort) {
	id, ok := handshake.ReceiverConnID(b)
	if !ok {
		e.stats.dropShort.Add(1)
		return
	}
	ds := e.dialFor(id)
	if ds == nil {
		e.stats.dropHandshake.Add(1)
		return
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.conn != nil {
		return // duplicate response
	}
	res, err := ds.init.Finish(b)
	if err != nil {
		e.stats.dropHandshake.Add(1)
		return
	}
	c, err := e.connFromHandshake(res, id, from, true)
	if err != nil {
		e.stats.dropHandshake.Add(1)
		return
	}
	e.connsMu.Lock()
	e.conns[id] = c
	e.connsMu.Unlock()
	e.stats.handshakes.Add(1)
	c.start()
	// Confirm at once so the responder's connection learns our address is
	// live even if the application sends nothing yet.
	c.ctrlMu.Lock()
	c.ctrl.ping = true
	c.ctrlMu.Unlock()
	c.signalSend()
	ds.conn = c
	close(ds.done)
}

func (e *Endpoint) handleCookie(b []byte) {
	if len(b) < 12 {
		e.stats.dropShort.Add(1)
		return
	}
	id := binary.BigEndian.Uint64(b[4:12])
	ds := e.dialFor(id)
	if ds == nil {
		e.stats.dropHandshake.Add(1)
		return
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if err := ds.init.HandleCookie(b); err != nil {
		e.stats.dropHandshake.Add(1)
		return
	}
	msg, err := ds.init.Retry()
	if err != nil {
		return
	}
	ds.msg = msg
	e.writeOne(msg, ds.addr)
}

// handshakeLimiter is a token bucket of initiations per second. When it is
// empty the responder demands a cookie round trip, which costs it no state.
type handshakeLimiter struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	last   time.Time
}

func (l *handshakeLimiter) init(rate int) {
	l.rate = float64(rate)
	l.tokens = l.rate
	l.last = time.Now()
}

func (l *handshakeLimiter) underLoad() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.tokens = min(l.rate, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	if l.tokens < 1 {
		return true
	}
	l.tokens--
	return false
}
