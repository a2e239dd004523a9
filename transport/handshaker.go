package transport

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flightline/flightline/transport/internal/handshake"
	"github.com/flightline/flightline/transport/link"
)

// The endpoint's handshake side. Everything that costs a Diffie-Hellman runs
// here, on a small pool of workers, never on the receive loop:
//
//  1. the receive loop copies every handshake datagram (initiation,
//     response, cookie reply) into a bounded queue and goes back to data; a
//     full queue drops the datagram (counted): handshakes retry, data
//     delivery never waits for cryptography;
//  2. a worker takes it. An initiation is first checked against the
//     connection limits (no cryptography), then Responder.Accept checks
//     mac1, under load demands a cookie (mac2), and calls admit, which
//     applies the per-source token bucket to cookie-validated sources,
//     before any DH;
//  3. a completed responder handshake yields a *pending* connection: it is
//     registered for its connection ID but its send loop does not run and it
//     is not in the accept queue until the initiator proves it receives at
//     its address by sending an authenticated packet (Endpoint.Dial sends one
//     at once). Until then the endpoint has sent that address nothing but
//     the handshake response, which is smaller than the initiation, so it
//     cannot be used to amplify traffic towards a spoofed address, and a
//     flood of spoofed initiations cannot fill the accept queue. Pending
//     connections that do not prove their address within HandshakeTimeout
//     are dropped silently (counted).
//
// Locks: mu guards dials, the response cache, pending connections and the
// connection counts; the limiters have their own. mu may be taken while
// holding Endpoint.connsMu, never the reverse, and is never held across a
// send or a DH.
type handshaker struct {
	ep        *Endpoint
	cfg       *Config
	listening bool
	now       func() time.Time
	responder *handshake.Responder
	params    []byte // our transport parameters, sent in the handshake

	jobs      chan hsJob
	workersWG sync.WaitGroup
	bufs      sync.Pool // *[link.MaxPacketSize]byte
	beforeJob func()    // test hooks: run around each handled message
	afterJob  func()

	globalMu sync.Mutex
	global   tokenBucket // HandshakeRate: the "under load" trigger
	sources  *sourceLimiter
	logs     *logThrottle

	mu       sync.RWMutex
	dials    map[uint64]*dialState
	resp     respCache
	pending  map[uint64]*pendingConn
	npending atomic.Int32
	incoming int                     // listener-side connections held, pending included
	perSrc   map[netip.Prefix]int    // of those, per source prefix
	srcOf    map[uint64]netip.Prefix // listener-side connection → its source at handshake

	stats *endpointStats
}

// hsJob is one handshake datagram waiting for a worker.
type hsJob struct {
	typ  byte
	buf  *[link.MaxPacketSize]byte
	n    int
	from netip.AddrPort
}

// pendingConn is a responder-side connection whose initiator has not yet
// proved it receives at its address.
type pendingConn struct {
	c       *Conn
	created time.Time
}

// Handshake queue and pending-connection bounds.
const (
	// handshakeQueueLen bounds handshake datagrams waiting for a worker
	// (WireGuard uses the same depth). Beyond it they are dropped.
	handshakeQueueLen = 1024
	// maxPendingConns bounds responder-side connections whose initiator
	// has not proved its address yet. From half of it on, the listener is
	// under load: initiations need a cookie, which a spoofer cannot get, so
	// spoofed initiations alone cannot reach the bound.
	maxPendingConns = 1024
	// reapInterval is how often pending connections and idle rate-limit
	// entries are swept.
	reapInterval = time.Second
)

// connCodeBusy is the CONNECTION_CLOSE code a listener sends to a
// connection it completed but cannot hand to the application (the accept
// queue is full): SERVER_BUSY in docs/protocol.md §13.3.
const connCodeBusy = 2

// Reasons an initiation is refused before any cryptography.
var (
	errMaxConnections = errors.New("Config.MaxConnections reached")
	errMaxPerSource   = errors.New("Config.MaxConnectionsPerSource reached for this source")
	errMaxPending     = errors.New("too many connections waiting for their address to be proved")
	errAcceptBacklog  = errors.New("accept queue full (the application is not calling Accept fast enough)")
	errRateLimited    = errors.New("per-source handshake rate exceeded while under load")
	errPendingExpired = errors.New("flightline: initiator never proved its address")
)

// handshakerOptions are the test seams of a handshaker; the zero value is
// production behaviour.
type handshakerOptions struct {
	now       func() time.Time // default time.Now
	workers   int              // default max(1, GOMAXPROCS/2), at most 8
	beforeJob func()           // runs before each handshake message is handled
	afterJob  func()           // runs after
}

func newHandshaker(e *Endpoint, cfg *Config, listening bool, opt handshakerOptions) (*handshaker, error) {
	h := &handshaker{
		ep:        e,
		cfg:       cfg,
		listening: listening,
		now:       opt.now,
		params:    paramsFromConfig(cfg).append(nil),
		jobs:      make(chan hsJob, handshakeQueueLen),
		beforeJob: opt.beforeJob,
		afterJob:  opt.afterJob,
		sources:   newSourceLimiter(SourceHandshakeRate, SourceHandshakeBurst, maxSourceBuckets),
		logs:      newLogThrottle(handshakeLogInterval, maxLogSources),
		dials:     make(map[uint64]*dialState),
		pending:   make(map[uint64]*pendingConn),
		perSrc:    make(map[netip.Prefix]int),
		srcOf:     make(map[uint64]netip.Prefix),
		stats:     &e.stats,
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.bufs.New = func() any { return new([link.MaxPacketSize]byte) }
	h.resp.entries = make(map[[32]byte]respEntry)
	h.global.reset(h.now(), float64(cfg.HandshakeRate))
	var allow func(PublicKey) bool
	if cfg.AllowedPeers != nil {
		set := make(map[PublicKey]bool, len(cfg.AllowedPeers))
		for _, k := range cfg.AllowedPeers {
			set[k] = true
		}
		allow = func(k PublicKey) bool { return set[k] }
	}
	var err error
	h.responder, err = handshake.NewResponder(handshake.ResponderConfig{
		Static:    cfg.PrivateKey,
		Allow:     allow,
		UnderLoad: h.underLoad,
		Admit:     h.admit,
		Now:       h.now,
	})
	if err != nil {
		return nil, err
	}
	workers := opt.workers
	if workers <= 0 {
		workers = min(max(1, runtime.GOMAXPROCS(0)/2), 8)
	}
	for range workers {
		h.workersWG.Go(h.worker)
	}
	return h, nil
}

// enqueue hands a handshake datagram to the workers without blocking: the
// receive loop's only handshake work is this copy.
func (h *handshaker) enqueue(typ byte, b []byte, from netip.AddrPort) {
	if len(b) > link.MaxPacketSize {
		h.stats.dropShort.Add(1)
		return
	}
	buf := h.bufs.Get().(*[link.MaxPacketSize]byte)
	n := copy(buf[:], b)
	select {
	case h.jobs <- hsJob{typ: typ, buf: buf, n: n, from: from}:
	default:
		h.bufs.Put(buf)
		h.stats.handshakeQueueDrops.Add(1)
		if h.logs.allow(h.now(), netip.Prefix{}, "queue") {
			h.cfg.Logf("flightline: handshake queue full (%d waiting): dropping handshake messages (counted in EndpointStats.HandshakeQueueDrops)", handshakeQueueLen)
		}
	}
}

// close stops the workers once the receive loop, the only producer, has
// exited, then drops the pending connections.
func (h *handshaker) close() {
	close(h.jobs)
	h.workersWG.Wait()
	h.mu.Lock()
	pending := make([]*Conn, 0, len(h.pending))
	for id, p := range h.pending {
		pending = append(pending, p.c)
		delete(h.pending, id)
	}
	h.npending.Store(0)
	h.mu.Unlock()
	for _, c := range pending {
		c.shutdown(ErrClosed)
		c.start() // runs teardown only: nothing was queued
	}
}

func (h *handshaker) worker() {
	for j := range h.jobs {
		h.handle(j.typ, j.buf[:j.n], j.from)
		h.bufs.Put(j.buf)
	}
}

// handle processes one handshake message.
func (h *handshaker) handle(typ byte, b []byte, from netip.AddrPort) {
	if h.beforeJob != nil {
		h.beforeJob()
	}
	switch typ {
	case handshake.TypeInitiation:
		h.handleInitiation(b, from)
	case handshake.TypeResponse:
		h.handleResponse(b, from)
	case handshake.TypeCookieReply:
		h.handleCookie(b)
	}
	if h.afterJob != nil {
		h.afterJob()
	}
}

// reaper sweeps pending connections and idle limiter entries until done.
func (h *handshaker) reaper(done <-chan struct{}) {
	t := time.NewTicker(reapInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			h.reap()
		case <-done:
			return
		}
	}
}

// reap drops pending connections older than HandshakeTimeout: their
// initiator never proved its address. They go silently (no
// CONNECTION_CLOSE to an address that may be a victim's).
func (h *handshaker) reap() {
	now := h.now()
	h.sources.gc(now)
	var expired []*Conn
	h.mu.Lock()
	for id, p := range h.pending {
		if now.Sub(p.created) >= h.cfg.HandshakeTimeout {
			expired = append(expired, p.c)
			delete(h.pending, id)
			h.npending.Add(-1)
		}
	}
	h.mu.Unlock()
	for _, c := range expired {
		h.stats.pendingExpired.Add(1)
		c.shutdown(errPendingExpired)
		c.start() // runs teardown only: nothing was queued
	}
}

// underLoad is the Responder's trigger for demanding cookies: the global
// HandshakeRate bucket is empty, the worker queue is backing up, or many
// connections wait for their address to be proved.
func (h *handshaker) underLoad() bool {
	if len(h.jobs) >= handshakeQueueLen/8 || h.npending.Load() >= maxPendingConns/2 {
		return true
	}
	h.globalMu.Lock()
	defer h.globalMu.Unlock()
	r := float64(h.cfg.HandshakeRate)
	return !h.global.take(h.now(), r, r)
}

// admit is the Responder's last check before DH: under load, the
// initiation carried a valid cookie, and its source prefix must have a
// token.
func (h *handshaker) admit(src netip.AddrPort, underLoad bool) error {
	if underLoad && !h.sources.allow(h.now(), sourcePrefix(src)) {
		h.stats.rateLimited.Add(1)
		return errRateLimited
	}
	h.stats.initiationsProcessed.Add(1)
	return nil
}

// logf logs a line about src at most once per handshakeLogInterval per kind.
func (h *handshaker) logf(src netip.AddrPort, kind, format string, args ...any) {
	if h.logs.allow(h.now(), sourcePrefix(src), kind) {
		h.cfg.Logf(format, args...)
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

func (r *respCache) get(now time.Time, key [32]byte, from netip.AddrPort) []byte {
	en, ok := r.entries[key]
	if !ok || en.from != from || now.After(en.expires) {
		return nil
	}
	return en.resp
}

func (r *respCache) put(now time.Time, key [32]byte, en respEntry) {
	if len(r.entries) >= respCacheMax {
		for k, v := range r.entries {
			if now.After(v.expires) || len(r.entries) >= respCacheMax {
				delete(r.entries, k)
			}
		}
	}
	r.entries[key] = en
}

// reserve claims a listener-side connection slot for src before any
// cryptography; release gives it back if the handshake fails.
func (h *handshaker) reserve(src netip.Prefix) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.incoming >= h.cfg.MaxConnections:
		return errMaxConnections
	case h.perSrc[src] >= h.cfg.MaxConnectionsPerSource:
		return errMaxPerSource
	case len(h.pending) >= maxPendingConns:
		return errMaxPending
	case len(h.ep.acceptQ) == cap(h.ep.acceptQ):
		return errAcceptBacklog
	}
	h.incoming++
	h.perSrc[src]++
	return nil
}

func (h *handshaker) releaseLocked(src netip.Prefix) {
	h.incoming--
	if h.perSrc[src]--; h.perSrc[src] <= 0 {
		delete(h.perSrc, src)
	}
}

func (h *handshaker) release(src netip.Prefix) {
	h.mu.Lock()
	h.releaseLocked(src)
	h.mu.Unlock()
}

// forget releases the slot of a listener-side connection that ended.
func (h *handshaker) forget(localID uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	src, ok := h.srcOf[localID]
	if !ok {
		return
	}
	delete(h.srcOf, localID)
	h.releaseLocked(src)
}

// connCounts returns the listener-side connections held and how many of
// them wait for their address to be proved.
func (h *handshaker) connCounts() (incoming, pending int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.incoming, len(h.pending)
}

func (h *handshaker) handleInitiation(b []byte, from netip.AddrPort) {
	if !h.listening {
		h.stats.dropNotListening.Add(1)
		return
	}
	key := sha256.Sum256(b)
	h.mu.Lock()
	resp := h.resp.get(h.now(), key, from)
	h.mu.Unlock()
	if resp != nil {
		// A retransmitted initiation: same response, no new state. It is
		// never larger than the initiation it answers.
		h.ep.writeOne(resp, from)
		return
	}
	src := sourcePrefix(from)
	if err := h.reserve(src); err != nil {
		h.stats.connsRefused.Add(1)
		h.logf(from, "refused", "flightline: refusing connection from %v: %v", from, err)
		return
	}
	localID := h.ep.newConnID()
	res, resp, cookie, err := h.responder.Accept(b, from, localID, h.params)
	if err != nil || cookie != nil {
		h.release(src)
	}
	switch {
	case err != nil:
		h.initiationFailed(from, err)
		return
	case cookie != nil:
		h.stats.cookiesSent.Add(1)
		h.ep.writeOne(cookie, from)
		return
	}
	c, err := h.connFromHandshake(res, localID, from, false)
	if err != nil {
		h.release(src)
		h.stats.malformedPayload.Add(1)
		h.stats.dropHandshake.Add(1)
		h.logf(from, "payload", "flightline: handshake from %v (key %s) rejected: %v", from, res.Peer, err)
		return
	}
	now := h.now()
	h.ep.connsMu.Lock()
	h.ep.conns[localID] = c
	h.mu.Lock()
	h.srcOf[localID] = src
	h.pending[localID] = &pendingConn{c: c, created: now}
	h.npending.Add(1)
	h.resp.put(now, key, respEntry{resp: resp, from: from, expires: now.Add(h.cfg.HandshakeTimeout)})
	h.mu.Unlock()
	h.ep.connsMu.Unlock()
	h.stats.handshakes.Add(1)
	h.ep.writeOne(resp, from)
}

// initiationFailed counts (and, for a failure worth an operator's
// attention, logs at most once per source and interval) a rejected
// initiation. Nothing is ever sent back.
func (h *handshaker) initiationFailed(from netip.AddrPort, err error) {
	if errors.Is(err, errRateLimited) {
		return // counted by admit
	}
	h.stats.dropHandshake.Add(1)
	switch {
	case errors.Is(err, handshake.ErrMalformedPayload):
		h.stats.malformedPayload.Add(1)
		h.logf(from, "payload", "flightline: handshake from %v rejected: %v", from, err)
	case errors.Is(err, handshake.ErrNotAllowed):
		h.logf(from, "allow", "flightline: handshake from %v rejected: %v", from, err)
	}
}

// validated is called by the receive loop after a pending connection
// processed an authenticated packet: its initiator receives at its address.
// The connection starts sending and goes to the accept queue.
func (h *handshaker) validated(c *Conn) {
	h.mu.Lock()
	_, ok := h.pending[c.localID]
	if ok {
		delete(h.pending, c.localID)
		h.npending.Add(-1)
	}
	h.mu.Unlock()
	if !ok {
		return
	}
	c.start()
	select {
	case <-c.closed:
		return // a protocol error in its first packet: teardown only
	default:
	}
	select {
	case h.ep.acceptQ <- c:
	default:
		h.stats.acceptQueueFull.Add(1)
		h.logf(c.RemoteAddr(), "refused", "flightline: closing connection from %v: %v", c.RemoteAddr(), errAcceptBacklog)
		c.CloseWithErrorAsync(connCodeBusy, "server busy: accept queue full")
	}
}

// isPending reports whether the connection with that ID waits for its
// address proof. Cheap when none does: the receive loop calls it for every
// data packet.
func (h *handshaker) isPending(id uint64) bool {
	if h.npending.Load() == 0 {
		return false
	}
	h.mu.RLock()
	_, ok := h.pending[id]
	h.mu.RUnlock()
	return ok
}

// connFromHandshake builds the connection a completed handshake describes,
// after capping the peer's transport parameters.
func (h *handshaker) connFromHandshake(res *handshake.Result, localID uint64, from netip.AddrPort, isClient bool) (*Conn, error) {
	pp, err := parseParams(res.Payload)
	if err != nil {
		return nil, fmt.Errorf("transport parameters: %w", err)
	}
	return newConn(h.ep, connParams{
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

func (h *handshaker) dialFor(id uint64) *dialState {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.dials[id]
}

func (h *handshaker) handleResponse(b []byte, from netip.AddrPort) {
	id, ok := handshake.ReceiverConnID(b)
	if !ok {
		h.stats.dropShort.Add(1)
		return
	}
	ds := h.dialFor(id)
	if ds == nil {
		h.stats.dropHandshake.Add(1)
		return
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.conn != nil {
		return // duplicate response
	}
	res, err := ds.init.Finish(b)
	if err != nil {
		h.stats.dropHandshake.Add(1)
		return
	}
	// The connection starts at the address we dialed, not the response's
	// source: an authenticated response can still arrive from elsewhere
	// (a multihomed server answering from another address, or a copy an
	// on-path party replayed from an address of its choosing), and only
	// the dialed address is one we chose. The peer moving later is the
	// connection's path validation's business.
	c, err := h.connFromHandshake(res, id, ds.addr, true)
	if err != nil {
		// The responder authenticated but sent parameters we cannot use:
		// the dial fails with the reason instead of timing out.
		h.stats.dropHandshake.Add(1)
		h.stats.malformedPayload.Add(1)
		ds.err = fmt.Errorf("dial %v: handshake response: %w", ds.addr, err)
		close(ds.done)
		return
	}
	h.ep.connsMu.Lock()
	h.ep.conns[id] = c
	h.ep.connsMu.Unlock()
	h.stats.handshakes.Add(1)
	c.start()
	// Confirm at once: this authenticated packet proves to the responder
	// that we receive at our address, which its connection waits for
	// before it is accepted or sends anything.
	c.ctrlMu.Lock()
	c.ctrl.ping = true
	c.ctrlMu.Unlock()
	c.signalSend()
	ds.conn = c
	close(ds.done)
}

func (h *handshaker) handleCookie(b []byte) {
	if len(b) < 12 {
		h.stats.dropShort.Add(1)
		return
	}
	id := binary.BigEndian.Uint64(b[4:12])
	ds := h.dialFor(id)
	if ds == nil {
		h.stats.dropHandshake.Add(1)
		return
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.conn != nil || ds.err != nil {
		return
	}
	if err := ds.init.HandleCookie(b); err != nil {
		h.stats.dropHandshake.Add(1)
		return
	}
	msg, err := ds.init.Retry()
	if err != nil {
		return
	}
	ds.msg = msg
	h.ep.writeOne(msg, ds.addr)
}
