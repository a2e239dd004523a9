package transport

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flightline/flightline/internal/benchhook"
	"github.com/flightline/flightline/transport/internal/congestion"
	"github.com/flightline/flightline/transport/internal/flight"
	"github.com/flightline/flightline/transport/internal/handshake"
	"github.com/flightline/flightline/transport/internal/monotime"
	"github.com/flightline/flightline/transport/link"
)

// Conn is an authenticated, encrypted connection carrying many streams and
// short reliable messages.
//
// Goroutines: the endpoint's receive loop calls handlePacket (decrypt,
// frames, ACK processing); the connection's send loop (sendLoop) owns packet
// building, loss detection, retransmission, pacing and every timer;
// application goroutines call stream and connection methods, and send what
// they queued themselves when nothing is in flight and the loop is idle
// (sendNow). They meet in:
//
//   - sendMu, the ownership of the send state: whoever sends holds it, the
//     loop for each pass, an application goroutine for one inline fill.
//     It is taken before any other lock; the loop waits for it holding
//     nothing, application goroutines only TryLock it, and the receive loop
//     never takes it,
//   - the flight Ledger (sharded, lock-striped; its own rules, see
//     docs/invariants.md),
//   - ackMu (received-packet ranges), schedMu (streams with data to send),
//     ctrlMu (control frames to send), streamsMu (the stream table) — all
//     leaf locks except that Stream.mu may be held while taking schedMu,
//     ctrlMu or streamsMu, never the reverse.
//
// Only sendMu is held across a datapath send or a congestion-controller
// call, as the loop goroutine's ownership of the send state always was: the
// receive path and application goroutines never wait for it.
type Conn struct {
	ep       *Endpoint
	cfg      *Config
	localID  uint64
	remoteID uint64
	isClient bool
	peerKey  PublicKey
	suite    Suite

	peerAddr atomic.Pointer[netip.AddrPort]
	// addrValidated is set once the peer proved it receives at its address.
	// A client dialed the address itself. A server learns it from the
	// peer's first authenticated data packet: sealing one needs keys
	// derived from the handshake response sent to that address. Until
	// then the server's connection sends nothing (anti-amplification:
	// an initiation with a spoofed source must not make us send to a
	// victim more than the endpoint's one handshake response, which is
	// smaller than the initiation).
	addrValidated atomic.Bool
	// path validates the peer's new addresses and holds the unvalidated
	// one to its anti-amplification budget (path.go).
	path       pathState
	peerParams transportParams

	keys   *packetKeys // send half: holder of sendMu; receive half: receive loop (keyupdate.go)
	replay handshake.ReplayWindow

	nextPN atomic.Uint64
	ledger *flight.Ledger
	cc     congestion.Controller
	// markAppLimited is ledger.MarkAppLimited, handed to the controller in
	// every AckEvent (BBR marks the connection app-limited in ProbeRTT).
	markAppLimited func()
	// quantizer is cc if it bounds the pacer's burst (BBR), else nil.
	quantizer    congestion.Quantizer
	rtt          *congestion.RTT
	pacer        *congestion.Pacer // holder of sendMu only
	largestAcked atomic.Uint64     // valid when haveAcked
	haveAcked    atomic.Bool
	ackProgress  atomic.Uint64 // bumped on every ACK that acknowledges new packets

	ackMu sync.Mutex
	acks  ackState

	// lastAck is the newest ACK frame's ranges, ackSeq counts ACK frames:
	// an ACK can overtake the Track of the packets it acknowledges (they are
	// tracked after the datapath send returns), so the send loop replays
	// lastAck when ackSeq moved during its send.
	lastAckMu sync.Mutex
	lastAck   []flight.Range
	ackSeq    atomic.Uint64

	schedMu sync.Mutex
	active  []*Stream        // round-robin queue of streams with something to send
	inSched map[*Stream]bool // membership of active

	streamsMu         sync.Mutex
	streams           map[uint64]*Stream
	nextLocalStream   uint64 // next id this side opens
	localStreamsLimit uint64 // MAX_STREAMS from the peer: cumulative count we may open
	localOpened       uint64 // cumulative count of streams this side opened
	peerOpened        uint64 // streams the peer opened
	peerClosed        uint64 // of those, fully closed and forgotten
	peerStreamsLimit  uint64 // what we advertised
	acceptQ           chan *Stream
	openSig           signal

	ctrlMu sync.Mutex
	ctrl   controlQueue

	// Connection-level flow control.
	peerMaxData  atomic.Uint64 // MAX_DATA from the peer
	sentData     atomic.Uint64 // new stream bytes sent
	recvMaxData  atomic.Uint64 // what we advertised
	recvHighest  atomic.Uint64 // Σ highest received offsets (receive loop)
	recvConsumed atomic.Uint64 // Σ bytes the application read or that were discarded unread (onConsumed)
	// reasmCharged is what every stream's reassembly holds, in charged
	// bytes (chunks plus per-segment overhead, see stream_recv.go); the
	// connection closes above maxReassemblyCharge. reasmPeak is its
	// high-water mark.
	reasmCharged atomic.Int64
	reasmPeak    atomic.Int64

	messages msgQueue // received messages not yet taken by ReceiveMessage

	// sendMu guards send: the send loop holds it while it works, an
	// application goroutine while it sends inline (Conn.sendNow).
	sendMu sync.Mutex
	send   *sendState

	wake chan struct{}
	// ackTimer wakes the send loop when a delayed ACK falls due. The
	// receive path arms it when a packet creates the obligation (see
	// handlePacket); only that goroutine resets it.
	ackTimer *time.Timer
	closed   chan struct{}
	closeMu  sync.Mutex
	closeErr error
	ctx      context.Context
	cancel   context.CancelFunc
	loopDone chan struct{}
	// gracefulSig is signalled whenever packets are acknowledged, for Close.
	gracefulMu  sync.Mutex
	gracefulSig signal

	lastRecv atomic.Int64 // monotime of the last authenticated packet
	lastSent atomic.Int64

	stats connStats

	// testHooks lets tests interpose on the send loop deterministically.
	testHooks atomic.Pointer[connTestHooks]
}

type connTestHooks struct {
	// beforeRefresh runs in the send loop after a resend went out and before
	// Ledger.Refresh re-registers it.
	beforeRefresh func(oldPN uint64)
	// pathEvent runs when the peer's address changes (path.go), under
	// path.mu: it must not call into the Conn.
	pathEvent func(kind pathEventKind, addr netip.AddrPort)
}

// controlQueue holds control frames waiting for the send loop.
type controlQueue struct {
	resets        []resetFrame
	stops         []stopFrame
	maxStreamData map[uint64]uint64
	maxData       bool
	maxStreams    bool
	ping          bool
	messages      [][]byte
	closeFrame    *closeFrame
}

type resetFrame struct{ id, code, finalSize uint64 }
type stopFrame struct{ id, code uint64 }
type closeFrame struct {
	code   uint64
	reason string
}

type connParams struct {
	localID, remoteID uint64
	isClient          bool
	peerKey           PublicKey
	suite             Suite
	session           *handshake.Session
	peer              netip.AddrPort
	peerParams        transportParams
}

func newConn(ep *Endpoint, p connParams) *Conn {
	cfg := ep.cfg
	c := &Conn{
		ep:         ep,
		cfg:        cfg,
		localID:    p.localID,
		remoteID:   p.remoteID,
		isClient:   p.isClient,
		peerKey:    p.peerKey,
		suite:      p.suite,
		peerParams: p.peerParams,
		keys:       newPacketKeys(p.session, cfg.keyLimits(p.suite)),
		ledger: flight.NewLedger(flight.Config{
			Check:  cfg.CheckInvariants,
			Strict: cfg.CheckInvariants,
			Logf:   cfg.Logf,
		}),
		rtt: congestion.NewRTT(0),
		// A burst of a full send batch lets one sendmmsg carry one GSO
		// super-datagram; the pacer still spaces the bursts at the rate.
		pacer:            congestion.NewPacer(link.IdealBatchSize * cfg.MaxPacketSize),
		inSched:          make(map[*Stream]bool),
		streams:          make(map[uint64]*Stream),
		acceptQ:          make(chan *Stream, cfg.MaxStreams),
		wake:             make(chan struct{}, 1),
		closed:           make(chan struct{}),
		loopDone:         make(chan struct{}),
		peerStreamsLimit: uint64(cfg.MaxStreams),
	}
	c.send = c.newSendState()
	c.ackTimer = time.NewTimer(time.Hour)
	c.ackTimer.Stop()
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.messages.init(DefaultMessageQueue)
	ccCfg := congestion.Config{MaxDatagramSize: cfg.MaxPacketSize, MaxWindow: 32 << 20}
	switch cfg.Congestion {
	case "fixed":
		c.cc = congestion.NewFixedRate(cfg.FixedRate, ccCfg)
	case "bbr":
		c.cc = congestion.NewBBR(congestion.BBRConfig{Config: ccCfg, Seed: p.localID})
	default:
		c.cc = congestion.NewCubic(ccCfg)
	}
	c.markAppLimited = c.ledger.MarkAppLimited // bound once: a method value per ACK would allocate
	c.quantizer, _ = c.cc.(congestion.Quantizer)
	if p.isClient {
		c.nextLocalStream = 0
	} else {
		c.nextLocalStream = 1
	}
	c.localStreamsLimit = p.peerParams.maxStreams
	c.peerMaxData.Store(p.peerParams.connWindow)
	c.recvMaxData.Store(cfg.ConnectionReceiveWindow)
	c.ctrl.maxStreamData = make(map[uint64]uint64)
	peer := p.peer
	c.peerAddr.Store(&peer)
	c.path.init(peer)
	c.addrValidated.Store(p.isClient)
	now := monotime.Now()
	c.lastRecv.Store(int64(now))
	c.lastSent.Store(int64(now))
	return c
}

func (c *Conn) start() { go c.sendLoop() }

// LocalID is the connection ID this side demultiplexes the connection's packets by.
func (c *Conn) LocalID() uint64 { return c.localID }

// RemotePublicKey is the peer's authenticated static key.
func (c *Conn) RemotePublicKey() PublicKey { return c.peerKey }

// RemoteAddr is the peer's current address.
func (c *Conn) RemoteAddr() netip.AddrPort { return *c.peerAddr.Load() }

// Context is cancelled when the connection closes.
func (c *Conn) Context() context.Context { return c.ctx }

// signalSend wakes the send loop without blocking.
func (c *Conn) signalSend() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// OpenStream opens a new bidirectional stream. It fails with
// ErrTooManyStreams when the peer's concurrent-stream limit is reached; use
// OpenStreamSync to wait for room instead.
func (c *Conn) OpenStream() (*Stream, error) {
	c.streamsMu.Lock()
	defer c.streamsMu.Unlock()
	return c.openStreamLocked()
}

// OpenStreamSync opens a stream, waiting for the peer to allow one.
func (c *Conn) OpenStreamSync(ctx context.Context) (*Stream, error) {
	for {
		c.streamsMu.Lock()
		s, err := c.openStreamLocked()
		if err != ErrTooManyStreams {
			c.streamsMu.Unlock()
			return s, err
		}
		ch := c.openSig.wait()
		c.streamsMu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.closed:
			return nil, c.err()
		}
	}
}

func (c *Conn) openStreamLocked() (*Stream, error) {
	select {
	case <-c.closed:
		return nil, c.err()
	default:
	}
	if c.localOpened >= c.localStreamsLimit {
		return nil, ErrTooManyStreams
	}
	id := c.nextLocalStream
	c.nextLocalStream += 2
	c.localOpened++
	s := newStream(c, id)
	c.streams[id] = s
	c.stats.streamsOpened.Add(1)
	return s, nil
}

// AcceptStream waits for the peer to open a stream.
func (c *Conn) AcceptStream(ctx context.Context) (*Stream, error) {
	select {
	case s := <-c.acceptQ:
		return s, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.closed:
		// Streams accepted before the close are still delivered.
		select {
		case s := <-c.acceptQ:
			return s, nil
		default:
		}
		return nil, c.err()
	}
}

// SendMessage queues a short message for reliable delivery. Messages are
// independent of streams and of each other's order.
func (c *Conn) SendMessage(p []byte) error {
	if len(p) > c.cfg.MaxMessageSize {
		return ErrMessageTooLarge
	}
	select {
	case <-c.closed:
		return c.err()
	default:
	}
	m := append([]byte(nil), p...)
	c.ctrlMu.Lock()
	c.ctrl.messages = append(c.ctrl.messages, m)
	c.ctrlMu.Unlock()
	c.sendNow()
	return nil
}

// ReceiveMessage returns the next message from the peer.
func (c *Conn) ReceiveMessage(ctx context.Context) ([]byte, error) {
	m, ok, err := c.messages.pop(ctx, c.closed)
	switch {
	case ok:
		return m, nil
	case err != nil:
		return nil, err
	}
	return nil, c.err()
}

// schedule puts s on the send loop's round-robin queue and wakes the loop.
func (c *Conn) schedule(s *Stream) {
	c.enqueue(s)
	c.signalSend()
}

// sendQueued reports whether streams or messages wait to be sent: after an
// ACK opened the window, only they can have been held back by it (control
// frames are not window-limited and signal the loop when queued).
func (c *Conn) sendQueued() bool {
	c.schedMu.Lock()
	n := len(c.active)
	c.schedMu.Unlock()
	if n > 0 {
		return true
	}
	c.ctrlMu.Lock()
	n = len(c.ctrl.messages)
	c.ctrlMu.Unlock()
	return n > 0
}

// enqueue puts s on the round-robin queue. The caller makes sure it is
// sent: it signals the loop or calls sendNow.
func (c *Conn) enqueue(s *Stream) {
	c.schedMu.Lock()
	if !c.inSched[s] {
		c.inSched[s] = true
		c.active = append(c.active, s)
		// Time spent unscheduled (e.g. blocked by the peer's flow
		// control) is not time waiting for congestion window.
		s.blockedSince.Store(0)
	}
	c.schedMu.Unlock()
}

func (c *Conn) queueReset(id, code, finalSize uint64) {
	c.ctrlMu.Lock()
	c.ctrl.resets = append(c.ctrl.resets, resetFrame{id, code, finalSize})
	c.ctrlMu.Unlock()
	c.signalSend()
}

func (c *Conn) queueStopSending(id, code uint64) {
	c.ctrlMu.Lock()
	c.ctrl.stops = append(c.ctrl.stops, stopFrame{id, code})
	c.ctrlMu.Unlock()
	c.signalSend()
}

// releaseStream drops every tracked packet of s from the ledger, releasing
// their flight bytes exactly once, and wakes the send loop: the freed window
// is usable by other streams immediately.
//
// The benchmark's switch (internal/benchhook, never set in production) skips
// the drop to reproduce the reference design: the records stay tracked and
// counted in outstanding, so they are retransmitted, acknowledged or
// abandoned like any packet, and those paths release their bytes once.
func (c *Conn) releaseStream(s *Stream) {
	if benchhook.AbortReleaseDisabled() {
		c.signalSend()
		c.notifyGraceful()
		return
	}
	released := c.ledger.DropStream(s.id)
	s.outstanding.Store(0)
	if released > 0 {
		c.stats.abortReleasedBytes.Add(uint64(released))
	}
	c.signalSend()
	c.notifyGraceful()
}

// onConsumed returns n bytes of connection flow-control credit: bytes of s
// the application read, or bytes it will never read (RFC 9000 §4.5: data
// discarded by CancelRead, received after it, or covered by the peer's
// RESET_STREAM counts as consumed; crediting only reads once let six
// cancelled 3 MiB streams stall the connection for good). streamUpdate is a
// new MAX_STREAM_DATA for s to advertise (0: none).
func (c *Conn) onConsumed(s *Stream, n uint64, streamUpdate uint64) {
	if n == 0 && streamUpdate == 0 {
		return
	}
	consumed := c.recvConsumed.Add(n)
	queued := false
	c.ctrlMu.Lock()
	if streamUpdate > 0 {
		c.ctrl.maxStreamData[s.id] = streamUpdate
		queued = true
	}
	window := c.cfg.ConnectionReceiveWindow
	if c.recvMaxData.Load()-consumed < window/2 {
		c.recvMaxData.Store(consumed + window)
		c.ctrl.maxData = true
		queued = true
	}
	c.ctrlMu.Unlock()
	if queued {
		c.signalSend()
	}
}

// maybeRemoveStream forgets a stream once both directions are finished, and
// lets the peer open another one if it was theirs.
func (c *Conn) maybeRemoveStream(s *Stream) {
	if !s.sendDone() || !s.recvDone() {
		return
	}
	c.streamsMu.Lock()
	if c.streams[s.id] != s {
		c.streamsMu.Unlock()
		return
	}
	delete(c.streams, s.id)
	local := (s.id%2 == 0) == c.isClient
	if !local {
		c.peerClosed++
	}
	c.streamsMu.Unlock()
	if !local {
		c.ctrlMu.Lock()
		c.ctrl.maxStreams = true
		c.ctrlMu.Unlock()
		c.signalSend()
	}
	c.schedMu.Lock()
	if c.inSched[s] {
		delete(c.inSched, s)
		for i, x := range c.active {
			if x == s {
				c.active = append(c.active[:i], c.active[i+1:]...)
				break
			}
		}
	}
	c.schedMu.Unlock()
}

func (c *Conn) notifyGraceful() {
	c.gracefulMu.Lock()
	c.gracefulSig.broadcast()
	c.gracefulMu.Unlock()
}

// err returns why the connection closed.
func (c *Conn) err() error {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closeErr == nil {
		return ErrClosed
	}
	return c.closeErr
}

// Close closes the connection gracefully: it waits (bounded by ctx-less
// default of 5 s, see CloseContext) until every stream's data is sent and
// acknowledged, then tells the peer and releases everything.
func (c *Conn) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.CloseContext(ctx)
}

// CloseContext is Close bounded by ctx; when ctx ends first the connection
// is closed anyway, abandoning unacknowledged data.
func (c *Conn) CloseContext(ctx context.Context) error {
	for !c.drained() {
		c.gracefulMu.Lock()
		ch := c.gracefulSig.wait()
		c.gracefulMu.Unlock()
		if c.drained() {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			c.CloseWithError(0, "closed before drain")
			return nil
		case <-c.closed:
			return nil
		}
	}
	c.CloseWithError(0, "")
	return nil
}

// drained reports whether nothing stream-related remains to send or ack.
func (c *Conn) drained() bool {
	select {
	case <-c.closed:
		return true
	default:
	}
	c.streamsMu.Lock()
	streams := make([]*Stream, 0, len(c.streams))
	for _, s := range c.streams {
		streams = append(streams, s)
	}
	c.streamsMu.Unlock()
	for _, s := range streams {
		s.mu.Lock()
		busy := s.sendErr == nil && (len(s.sendBuf) > s.sendHead || (s.finQueued && !s.finSent))
		s.mu.Unlock()
		if busy {
			return false
		}
	}
	c.ctrlMu.Lock()
	busy := len(c.ctrl.messages) > 0 || len(c.ctrl.resets) > 0
	c.ctrlMu.Unlock()
	return !busy && c.ledger.Len() == 0
}

// CloseWithError closes the connection at once, telling the peer code and
// reason. Streams fail with a *ConnError. It returns after the send loop has
// sent CONNECTION_CLOSE and released every tracked packet.
func (c *Conn) CloseWithError(code uint64, reason string) error {
	c.ctrlMu.Lock()
	if c.ctrl.closeFrame == nil {
		c.ctrl.closeFrame = &closeFrame{code: code, reason: reason}
	}
	c.ctrlMu.Unlock()
	c.shutdown(&ConnError{Code: code, Reason: reason})
	<-c.loopDone
	return nil
}

// shutdown marks the connection closed with err, once. The send loop notices,
// flushes a queued CONNECTION_CLOSE and runs teardown. It never blocks, so
// the send loop itself and the receive loop may call it.
func (c *Conn) shutdown(err error) {
	c.closeMu.Lock()
	if c.closeErr != nil {
		c.closeMu.Unlock()
		return
	}
	c.closeErr = err
	c.closeMu.Unlock()
	close(c.closed)
	c.cancel()
	c.signalSend()
}

// teardown runs on the send loop as it exits, so no packet can be tracked
// after the ledger is closed: connection close is a release path for every
// packet still tracked.
func (c *Conn) teardown() {
	err := c.err()
	c.streamsMu.Lock()
	streams := make([]*Stream, 0, len(c.streams))
	for _, s := range c.streams {
		streams = append(streams, s)
	}
	c.openSig.broadcast()
	c.streamsMu.Unlock()
	for _, s := range streams {
		s.closeWithError(err)
	}
	c.ledger.Close()
	for _, s := range streams {
		s.outstanding.Store(0)
	}
	c.notifyGraceful()
	c.ep.removeConn(c)
	close(c.loopDone)
}
