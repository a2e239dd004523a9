package transport

// The send loop. One goroutine per connection owns everything that puts
// packets on the wire (the application's goroutine may borrow the job for
// one fill, see sendNow):
//
//  1. timers: idle timeout, loss detection (packet and time threshold),
//     tail-loss probe, retransmission timeout, keepalive, window-wait aborts;
//  2. packet building, in priority order: CONNECTION_CLOSE, retransmissions
//     (already in flight, so not limited by the congestion window), packets
//     whose send failed transiently, control frames, stream data (round robin
//     over streams, one stream per packet, limited by the congestion window
//     and flow control), messages, then a bare ACK if one is owed;
//  3. pacing: every packet, retransmissions and ACKs included, takes tokens
//     from the pacer; when the bucket is empty the loop sleeps until it refills;
//  4. flushing a batch through the datapath, then registering what was sent
//     with the flight ledger (Track / Refresh) or releasing what was not
//     (ReleaseUnsent / ResendFailed), then informing the congestion controller.
//
// Send fast path: whoever holds Conn.sendMu owns the send state. The loop
// holds it while it runs timers and fills, and releases it while it waits.
// An application goroutine that queued data (Write, Close, SendMessage)
// while nothing is in flight takes it with TryLock and runs the same fill
// itself — the packet leaves without a handoff to the loop goroutine — then
// re-arms the loop's timer (arm) so a probe or ACK deadline set by that send
// is honoured. Otherwise (packets in flight, or the lock busy) the loop is
// signalled instead, exactly as before, so nothing queued is left behind.
//
// Flight-size protocol (docs/invariants.md): a new ack-eliciting packet is
// charged before the datapath send and tracked after it succeeds; a failed
// send releases the charge exactly once. A retransmission is not charged
// again — its record stayed tracked and charged while it waited — and is
// re-keyed to its new packet number by Refresh, which never inserts.
// No ledger lock is held across the datapath send or a controller call.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/flightline/flightline/internal/benchhook"
	"github.com/flightline/flightline/transport/internal/congestion"
	"github.com/flightline/flightline/transport/internal/flight"
	"github.com/flightline/flightline/transport/internal/handshake"
	"github.com/flightline/flightline/transport/internal/monotime"
	"github.com/flightline/flightline/transport/internal/wire"
	"github.com/flightline/flightline/transport/link"
)

const (
	packetThreshold = 3 // RFC 9002 kPacketThreshold
	rtoProbePackets = 2 // packets retransmitted when the RTO fires
	windowWaitPTOs  = 8 // effective window-wait timeout is at least this many PTOs
	sendRetryDelay  = time.Millisecond
)

type packetKind uint8

const (
	kindNew       packetKind = iota // ack-eliciting, charged, tracked after send
	kindResend                      // retransmission of a tracked record
	kindUntracked                   // ACK-only or CONNECTION_CLOSE
)

// outPacket is one slot of the send batch.
type outPacket struct {
	wire  [link.MaxPacketSize]byte
	plain [link.MaxPacketSize]byte
	n     int // bytes of wire used

	kind    packetKind
	pn      uint64
	oldPN   uint64 // kindResend: the record's packet number
	charged int    // flight bytes charged (kindNew) or held by the record (kindResend)
	stream  flight.StreamID
	s       *Stream        // kindNew stream packets
	retx    int            // retransmittable plaintext bytes: plain[:retx]
	addr    netip.AddrPort // destination, chosen with the packet (path.go)
}

// unsent is the payload of a packet whose send failed transiently; it goes
// out again as a new packet.
type unsent struct {
	stream  flight.StreamID
	s       *Stream
	payload []byte
}

// sendState is the send loop's private state.
type sendState struct {
	// batch and msgs are borrowed from batchPool only while the loop
	// builds and flushes packets (acquire/release): 64 packets of wire and
	// plaintext buffers are ~190 KiB, which an idle connection should not
	// hold. Nothing outlives a flush in them: the ledger copies payloads
	// and retryQ copies what it keeps.
	size  int
	pb    *packetBatch
	batch []outPacket
	msgs  []link.Message
	used  int // batch slots filled since acquire (release clears only those)

	resendQ     []flight.Resend
	resendArena []byte
	abandoned   []flight.Abandoned
	retryQ      []unsent
	replay      []flight.Range
	replayAcked []flight.Acked
	replayEv    congestion.AckEvent
	lossEv      congestion.LossEvent
	// appLimited is set by buildPacket when it stopped because there was
	// nothing to send although the window had room (not pacing, not the
	// window): the delivery-rate sampler is then marked app-limited.
	appLimited bool

	pacingAt     monotime.Time
	lossTime     monotime.Time
	lastProgress uint64 // ackProgress seen at the last loss detection
	probe        probeTimer
	retryAt      monotime.Time
	closeSent    bool
	done         bool // the loop has exited: nothing may be sent any more

	// timer wakes the loop at armed, the next deadline (0: not armed or
	// already fired). Only reset when the deadline changes.
	timer *time.Timer
	armed monotime.Time
}

func (c *Conn) newSendState() *sendState {
	bs := c.ep.link.BatchSize()
	if bs <= 0 || bs > link.IdealBatchSize {
		bs = link.IdealBatchSize
	}
	return &sendState{size: bs}
}

// packetBatch is the send loop's working memory for one batch.
type packetBatch struct {
	pkts [link.IdealBatchSize]outPacket
	msgs [link.IdealBatchSize]link.Message
}

// batchPool shares batches among all connections' send loops: only loops
// that are sending hold one.
var batchPool = sync.Pool{New: func() any { return new(packetBatch) }}

// acquire borrows a batch for st (no-op if it holds one).
func (st *sendState) acquire() {
	if st.pb == nil {
		st.pb = batchPool.Get().(*packetBatch)
		st.batch, st.msgs = st.pb.pkts[:st.size], st.pb.msgs[:st.size]
	}
}

// release returns st's batch, dropping its stream references so a pooled
// batch keeps no stream alive. Only the slots used since acquire can hold
// one (flush already cleared their messages): a one-packet send touches one
// slot, not all 64.
func (st *sendState) release() {
	if st.pb == nil {
		return
	}
	for i := range st.batch[:st.used] {
		st.batch[i].s = nil
	}
	batchPool.Put(st.pb)
	st.pb, st.batch, st.msgs, st.used = nil, nil, nil, 0
}

func (c *Conn) sendLoop() {
	defer c.teardown()
	st := c.send
	c.sendMu.Lock()
	st.timer = time.NewTimer(time.Hour) // armed for real by the first pass
	c.sendMu.Unlock()
	defer st.timer.Stop()
	defer c.ackTimer.Stop()
	fired := false
	for {
		c.sendMu.Lock()
		now := monotime.Now()
		if fired {
			st.armed = 0
		}
		select {
		case <-c.closed:
			c.sendClose(now, st)
			st.done = true
			c.sendMu.Unlock()
			return
		default:
		}
		c.onTimers(now, st)
		c.fill(now, st)
		c.arm(now, st)
		c.sendMu.Unlock()
		fired = false
		select {
		case <-c.wake:
		case <-st.timer.C:
			fired = true
		case <-c.ackTimer.C:
		case <-c.closed:
		}
	}
}

// sendNow sends what an application goroutine just queued, on that
// goroutine, when nothing is in flight and the send loop is idle: a request
// (or the answer to one) leaves without waking the loop and waiting for the
// scheduler to run it. Otherwise the loop is signalled and sends it on its
// next pass, as before: with packets in flight the loop is running on their
// ACKs anyway, and a bulk writer sending for itself would only contend with
// it for sendMu (BulkGoodputUDP lost ~10% that way).
//
// It runs the loop's ACK-progress step and fill, so the usual priorities,
// pacing, congestion window and flight accounting apply unchanged, and then
// re-arms the loop's timer for whatever deadline the send set (probe, pacing,
// ACK). Other timers stay with the loop.
func (c *Conn) sendNow() {
	if c.ledger.Flight() > 0 || !c.sendMu.TryLock() {
		c.signalSend()
		return
	}
	defer c.sendMu.Unlock()
	st := c.send
	if st.done || st.timer == nil {
		// The loop has exited, or not started yet (it arms on start).
		c.signalSend()
		return
	}
	select {
	case <-c.closed:
		c.signalSend()
		return
	default:
	}
	now := monotime.Now()
	c.onAckProgress(now, st)
	c.fill(now, st)
	c.arm(now, st)
}

// arm points the loop's timer at the next deadline. Resetting a timer is not
// free, and most passes leave the deadline where it was.
func (c *Conn) arm(now monotime.Time, st *sendState) {
	next := c.nextDeadline(now, st)
	if next == st.armed {
		return
	}
	st.armed = next
	st.timer.Reset(max(next.Sub(monotime.Now()), 0))
}

// idleTimeout is the smaller of ours and the peer's.
func (c *Conn) idleTimeout() time.Duration {
	d := c.cfg.IdleTimeout
	if p := c.peerParams.idleTimeout; p > 0 && p < d {
		d = p
	}
	return d
}

// pto is the tail-loss probe timeout (RFC 9002 §6.2.1). Unlike the RTO it
// has no large floor: a probe is cheap and recovers tail losses in about one
// RTT instead of a minimum-RTO stall.
func (c *Conn) pto() time.Duration {
	return c.rtt.PTO(c.cfg.MaxAckDelay)
}

func (c *Conn) ptoFor(int) time.Duration { return c.pto() }

func (c *Conn) rtoFor(backoff int) time.Duration {
	return c.rtt.RTO(c.cfg.MinRTO, c.cfg.MaxRTO, backoff)
}

// windowWaitTimeout scales the window-wait abort with the path's RTT.
func (c *Conn) windowWaitTimeout() time.Duration {
	return max(c.cfg.WindowWaitTimeout, windowWaitPTOs*c.pto())
}

// onTimers runs every timer-driven action that is due.
func (c *Conn) onTimers(now monotime.Time, st *sendState) {
	if now.Sub(monotime.Time(c.lastRecv.Load())) > c.idleTimeout() {
		c.shutdown(&ConnError{Err: ErrIdleTimeout})
		return
	}
	// Loss detection: on ACK progress or when the time threshold expires.
	if !c.onAckProgress(now, st) && st.lossTime != 0 && now >= st.lossTime {
		c.detectLost(now, st)
	}
	// Probe timeout: first a tail-loss probe (the newest packet, no
	// backoff, once per flight), then RTOs (oldest packets, exponential
	// backoff, controller collapse).
	if len(st.resendQ) == 0 {
		before := len(st.resendQ)
		switch st.probe.fire(now, c.outstanding(), c.ptoFor, c.rtoFor) {
		case probeTLP:
			st.resendQ, st.resendArena = c.ledger.TakeNewest(st.resendQ, st.resendArena)
			c.stats.tlps.Add(1)
		case probeRTO:
			// An RTO means no ACK progress for a whole timeout: every
			// tracked packet is presumed lost and resent (paced, at the
			// collapsed rate), so each RTO counts one retransmission
			// against every packet and a dead path reaches the limit
			// after MaxRetransmits backed-off timeouts.
			st.resendQ, st.resendArena, st.abandoned = c.ledger.TakeOldest(max(c.ledger.Len(), rtoProbePackets), c.cfg.MaxRetransmits+1, st.resendQ, st.resendArena, st.abandoned[:0])
			c.cc.OnRTO(now)
			c.stats.rtos.Add(1)
			c.handleAbandoned(st)
		}
		if st.probe.lastSent == now && len(st.resendQ) == before && c.outstanding() {
			// Everything is already queued for resend; probe instead.
			c.ctrlMu.Lock()
			c.ctrl.ping = true
			c.ctrlMu.Unlock()
		}
	}
	if ka := c.cfg.KeepAlive; ka > 0 && now.Sub(monotime.Time(c.lastSent.Load())) > ka {
		c.ctrlMu.Lock()
		c.ctrl.ping = true
		c.ctrlMu.Unlock()
	}
	c.pathOnTimer(now)
	c.checkWindowWait(now)
}

// onAckProgress resets the probe timer and runs loss detection if ACKs
// acknowledged new packets since the last call. It reports whether they did.
func (c *Conn) onAckProgress(now monotime.Time, st *sendState) bool {
	progress := c.ackProgress.Load()
	if progress == st.lastProgress {
		return false
	}
	st.lastProgress = progress
	st.probe.onAckProgress()
	c.detectLost(now, st)
	return true
}

// outstanding reports whether any packet is in flight. For the holder of
// sendMu this is the same as Ledger.Len() > 0 — packets are charged and
// tracked only under sendMu, so no charge is pending — and it is one atomic
// load instead of a pass over every shard lock.
func (c *Conn) outstanding() bool { return c.ledger.Flight() > 0 }

// detectLost hands packets declared lost (RFC 9002 packet and time
// thresholds) to the resend queue and abandons those over the limit.
func (c *Conn) detectLost(now monotime.Time, st *sendState) {
	if !c.haveAcked.Load() {
		return
	}
	if !c.outstanding() {
		st.lossTime = 0 // nothing tracked, nothing to declare lost
		return
	}
	lossDelay := max(c.rtt.Smoothed(), c.rtt.Latest()) * 9 / 8
	lossDelay = max(lossDelay, time.Millisecond)
	before := len(st.resendQ)
	var next monotime.Time
	st.resendQ, st.resendArena, st.abandoned, next = c.ledger.DetectLost(flight.LossParams{
		Now:             now,
		LargestAcked:    c.largestAcked.Load(),
		HaveLargest:     true,
		PacketThreshold: packetThreshold,
		LossDelay:       lossDelay,
		MaxSends:        c.cfg.MaxRetransmits + 1,
	}, st.resendQ, st.resendArena, st.abandoned[:0])
	st.lossTime = next
	if lost := st.resendQ[before:]; len(lost) > 0 {
		bytes := 0
		var newest monotime.Time
		for i := range lost {
			bytes += lost[i].Size
			newest = max(newest, lost[i].SentAt)
		}
		c.stats.packetsLost.Add(uint64(len(lost)))
		sampled := c.ledger.Sampler()
		st.lossEv = congestion.LossEvent{
			Now: now, LostBytes: bytes, LostSentAt: newest, InFlight: c.ledger.Flight(),
			Packets: lost, TotalLost: sampled.Lost, TotalDelivered: sampled.Delivered,
		}
		c.cc.OnLoss(&st.lossEv)
		st.lossEv.Packets = nil // the resend queue moves on; hold no reference
	}
	c.handleAbandoned(st)
}

// handleAbandoned fails the streams whose packets hit the retransmit limit.
// The abandoned records are already removed and released by the ledger.
func (c *Conn) handleAbandoned(st *sendState) {
	for _, a := range st.abandoned {
		c.stats.packetsAbandoned.Add(1)
		if a.Stream == flight.Control {
			// Flow-control updates are idempotent: send current values again.
			c.ctrlMu.Lock()
			c.ctrl.maxData = true
			c.ctrl.maxStreams = true
			c.ctrlMu.Unlock()
			continue
		}
		if s := c.stream(a.Stream); s != nil {
			s.outstanding.Add(-1)
			s.abortSend(CodeRetransmitLimit, ErrRetransmitLimit, false)
		}
	}
	st.abandoned = st.abandoned[:0]
	c.notifyGraceful()
}

// checkWindowWait aborts streams that waited too long for window space.
func (c *Conn) checkWindowWait(now monotime.Time) {
	limit := c.windowWaitTimeout()
	var victims []*Stream
	c.schedMu.Lock()
	for _, s := range c.active {
		if d := s.blockedFor(now); d > limit {
			victims = append(victims, s)
		}
	}
	c.schedMu.Unlock()
	for _, s := range victims {
		c.stats.windowWaitAborts.Add(1)
		s.abortSend(CodeWindowWait, ErrWindowWaitTimeout, false)
	}
}

// nextDeadline is the earliest instant the loop has something to do.
func (c *Conn) nextDeadline(now monotime.Time, st *sendState) monotime.Time {
	next := monotime.Time(c.lastRecv.Load()).Add(c.idleTimeout() + time.Millisecond)
	consider := func(t monotime.Time) {
		if t != 0 && t < next {
			next = t
		}
	}
	consider(st.lossTime)
	consider(c.pathDeadline())
	consider(st.probe.deadline(c.outstanding(), c.ptoFor, c.rtoFor))
	if ka := c.cfg.KeepAlive; ka > 0 {
		consider(monotime.Time(c.lastSent.Load()).Add(ka + time.Millisecond))
	}
	if st.pacingAt > now {
		consider(st.pacingAt)
	}
	if st.retryAt > now {
		consider(st.retryAt)
	}
	// Delayed ACKs have their own timer (Conn.ackTimer); considering the
	// deadline here as well means a wake that races it cannot lose it.
	c.ackMu.Lock()
	consider(c.acks.ackDeadline)
	c.ackMu.Unlock()
	// Window-wait: wake when the longest-blocked stream would time out.
	limit := c.windowWaitTimeout()
	c.schedMu.Lock()
	for _, s := range c.active {
		if b := s.blockedSince.Load(); b != 0 {
			consider(monotime.Time(b).Add(limit + time.Millisecond))
		}
	}
	c.schedMu.Unlock()
	if next < now {
		next = now
	}
	return next
}

// fill builds and flushes batches until nothing more may be sent now.
func (c *Conn) fill(now monotime.Time, st *sendState) {
	st.acquire()
	defer st.release()
	for {
		n := 0
		st.appLimited = false
		for n < len(st.batch) && c.buildPacket(now, st, &st.batch[n]) {
			n++
		}
		st.used = max(st.used, n)
		if st.appLimited {
			// Out of data with room in the window and the pacer: the
			// delivery-rate samples of what is sent until the current
			// flight is delivered say nothing about the path's capacity
			// (draft-ietf-ccwg-bbr-06 "Detecting application-limited
			// phases").
			c.ledger.MarkAppLimited()
			c.cc.OnAppLimited(now, c.ledger.Flight())
		}
		if n == 0 {
			return
		}
		c.flush(now, st, st.batch[:n])
		if n < len(st.batch) {
			return
		}
		now = monotime.Now()
	}
}

// maxPlain is the plaintext capacity of one packet.
func (c *Conn) maxPlain() int {
	return min(c.cfg.MaxPacketSize, int(c.peerParams.maxPacketSize)) - wire.DataHeaderLen - handshake.Overhead
}

// buildPacket fills p with the next packet to send. It returns false when
// nothing may be sent now (nothing to do, pacing, or window).
func (c *Conn) buildPacket(now monotime.Time, st *sendState, p *outPacket) bool {
	if !c.addrValidated.Load() {
		return false // anti-amplification: see Conn.addrValidated
	}
	rate := c.cc.PacingRate()
	full := c.cfg.MaxPacketSize
	if st.pacingAt > now {
		return false
	}
	if c.quantizer != nil {
		c.pacer.SetQuantum(c.quantizer.SendQuantum())
	}
	if c.pacer.Budget(now, rate) < full {
		st.pacingAt = c.pacer.NextSendTime(now, full, rate)
		return false
	}
	st.pacingAt = 0
	if !c.keysReady() {
		return false
	}
	if ok, handled := c.buildPathPacket(now, p); handled {
		return ok // path frames, or an unvalidated path's budget (path.go)
	}
	room := c.maxPlain()
	plain := p.plain[:0]
	p.kind, p.s, p.stream, p.charged = kindNew, nil, flight.Control, 0

	// Drop queued resends whose record is gone (acknowledged after all,
	// abandoned, or its stream dropped): after a spurious RTO that could be
	// a whole window of pointless, pacing-limited retransmissions.
	for len(st.resendQ) > 0 && !c.ledger.Tracked(st.resendQ[0].PN) {
		st.resendQ = st.resendQ[1:]
		c.stats.resendsSkipped.Add(1)
	}
	if len(st.resendQ) == 0 {
		st.resendQ, st.resendArena = st.resendQ[:0], st.resendArena[:0]
	}
	switch {
	case len(st.resendQ) > 0:
		r := st.resendQ[0]
		st.resendQ = st.resendQ[1:]
		plain = append(plain, r.Payload...)
		p.kind, p.oldPN, p.charged, p.stream = kindResend, r.PN, r.Size, r.Stream
		c.stats.retransmits.Add(1)
	case len(st.retryQ) > 0 && now >= st.retryAt:
		u := st.retryQ[0]
		st.retryQ = st.retryQ[1:]
		plain = append(plain, u.payload...)
		p.stream, p.s = u.stream, u.s
	default:
		plain = c.appendControl(plain, room)
		if len(plain) == 0 && c.windowOpen() {
			plain = c.appendStreamData(now, st, p, plain, room)
			if len(plain) == 0 {
				plain = c.appendMessages(plain, room)
			}
			// Nothing to send with the window open: app-limited (stream
			// flow control blocking counts as app-limited too; the peer's
			// window, not the path, is the limit).
			st.appLimited = len(plain) == 0 && len(st.retryQ) == 0
		}
	}
	p.retx = len(plain)
	c.ackMu.Lock()
	if c.acks.pending() && (p.retx > 0 || c.acks.owed(now)) && len(plain)+c.acks.frameLen(now) <= room {
		plain = c.acks.appendFrame(plain, now)
	}
	c.ackMu.Unlock()
	if len(plain) == 0 {
		return false
	}
	if len(plain) > room {
		// Every frame is sized against room before it is appended, so this
		// is our bug, never the peer's doing: close the connection instead
		// of sealing past the wire buffer (which panicked the process).
		reason := fmt.Sprintf("internal error: %d-byte payload exceeds room %d", len(plain), room)
		c.cfg.Logf("flightline: conn %x: closing: %s", c.localID, reason)
		c.CloseWithErrorAsync(1, reason)
		return false
	}
	if p.retx == 0 {
		p.kind = kindUntracked
	}
	p.pn = c.nextPN.Add(1) - 1
	b := c.keys.seal(p.wire[:0], c.remoteID, p.pn, plain)
	p.n = len(b)
	c.pacer.OnSent(now, p.n, rate)
	if p.kind == kindNew {
		p.charged = p.n
		c.ledger.Charge(p.n)
	}
	return true
}

// windowOpen reports whether a new full packet fits the congestion window.
// When it does not, streams waiting to send are marked window-blocked.
func (c *Conn) windowOpen() bool {
	if c.ledger.Flight()+int64(c.cfg.MaxPacketSize) <= c.cc.Window() {
		return true
	}
	now := int64(monotime.Now())
	c.schedMu.Lock()
	for _, s := range c.active {
		s.blockedSince.CompareAndSwap(0, now)
	}
	c.schedMu.Unlock()
	return false
}

// appendStreamData appends one stream's next frame (round robin).
func (c *Conn) appendStreamData(now monotime.Time, st *sendState, p *outPacket, plain []byte, room int) []byte {
	credit := uint64(0)
	if m, s := c.peerMaxData.Load(), c.sentData.Load(); m > s {
		credit = m - s
	}
	for tries := 0; ; tries++ {
		c.schedMu.Lock()
		if len(c.active) == 0 || tries > len(c.active) {
			c.schedMu.Unlock()
			return plain
		}
		s := c.active[0]
		copy(c.active, c.active[1:])
		c.active = c.active[:len(c.active)-1]
		c.schedMu.Unlock()

		// Copy the data straight from the stream buffer into the packet,
		// behind room for the largest header it could need; then write the
		// header right in front of the data and pad any gap (PADDING frames
		// are zero bytes the parser skips). One copy instead of two.
		free := room - len(plain)
		hdrMax := wire.StreamOverhead(s.id, s.peekSendOffset(), free)
		dataAt := len(plain) + hdrMax
		off, n, fin, more, _ := s.takeSendData(p.plain[dataAt:dataAt+free-hdrMax], credit)
		c.schedMu.Lock()
		if more {
			c.active = append(c.active, s)
		} else {
			delete(c.inSched, s)
		}
		c.schedMu.Unlock()
		if !more && s.hasSendWork() {
			c.schedule(s) // data arrived between take and unschedule
		}
		if n == 0 && !fin {
			continue
		}
		s.blockedSince.Store(0)
		c.sentData.Add(uint64(n))
		p.stream, p.s = s.id, s
		var hdrBuf [24]byte
		hdr := wire.AppendStreamHeader(hdrBuf[:0], s.id, off, n, fin)
		start := dataAt - len(hdr)
		clear(p.plain[len(plain):start])
		copy(p.plain[start:], hdr)
		return p.plain[:dataAt+n]
	}
}

// appendControl appends queued control frames that fit.
func (c *Conn) appendControl(plain []byte, room int) []byte {
	// Read the stream limit first: ctrlMu and streamsMu are both leaf locks
	// and are never held together.
	c.streamsMu.Lock()
	streamLimit := c.peerClosed + uint64(c.cfg.MaxStreams)
	c.streamsMu.Unlock()
	c.ctrlMu.Lock()
	defer c.ctrlMu.Unlock()
	q := &c.ctrl
	for len(q.resets) > 0 && len(plain)+32 <= room {
		r := q.resets[0]
		q.resets = q.resets[1:]
		plain = wire.AppendResetStream(plain, r.id, r.code, r.finalSize)
	}
	for len(q.stops) > 0 && len(plain)+24 <= room {
		r := q.stops[0]
		q.stops = q.stops[1:]
		plain = wire.AppendStopSending(plain, r.id, r.code)
	}
	for id, max := range q.maxStreamData {
		if len(plain)+24 > room {
			break
		}
		plain = wire.AppendMaxStreamData(plain, id, max)
		delete(q.maxStreamData, id)
	}
	if q.maxData && len(plain)+16 <= room {
		plain = wire.AppendMaxData(plain, c.recvMaxData.Load())
		q.maxData = false
	}
	if q.maxStreams && len(plain)+16 <= room {
		plain = wire.AppendMaxStreams(plain, streamLimit)
		q.maxStreams = false
	}
	if q.ping && len(plain) == 0 {
		plain = wire.AppendPing(plain)
	}
	q.ping = false
	return plain
}

// appendMessages appends queued messages (a packet of messages carries
// nothing else, so the receiver can refuse it whole when its queue is full).
func (c *Conn) appendMessages(plain []byte, room int) []byte {
	c.ctrlMu.Lock()
	defer c.ctrlMu.Unlock()
	for len(c.ctrl.messages) > 0 {
		m := c.ctrl.messages[0]
		if len(plain)+wire.MessageOverhead(len(m)) > room {
			break
		}
		plain = wire.AppendMessage(plain, m)
		c.ctrl.messages[0] = nil
		c.ctrl.messages = c.ctrl.messages[1:]
	}
	return plain
}

// flush sends a batch and settles every packet's flight accounting.
func (c *Conn) flush(now monotime.Time, st *sendState, batch []outPacket) {
	for i := range batch {
		st.msgs[i] = link.Message{Buf: batch[i].wire[:batch[i].n], Addr: batch[i].addr}
	}
	seq := c.ackSeq.Load()
	sent, err := c.ep.writeBatch(st.msgs[:len(batch)])
	if sent > 0 {
		c.lastSent.Store(int64(now))
	}
	for i := range batch {
		p := &batch[i]
		if i < sent {
			c.onSent(now, st, p)
			continue
		}
		c.onSendFailed(now, st, p, err, i == sent)
	}
	clear(st.msgs[:len(batch)])
	if sent > 0 && c.ackSeq.Load() != seq {
		// An ACK arrived while the batch was in the datapath and may have
		// acknowledged packets that were not tracked yet (and so released
		// nothing). Replay it now that they are; records already removed
		// release nothing, so nothing is released twice. Without this the
		// packets would look lost (below the largest acknowledged) and be
		// retransmitted spuriously.
		c.lastAckMu.Lock()
		st.replay = append(st.replay[:0], c.lastAck...)
		c.lastAckMu.Unlock()
		if len(st.replay) > 0 {
			st.replayAcked = c.applyAck(now, st.replay, st.replayAcked[:0], 0, false, &st.replayEv)
		}
	}
}

// onSent registers a packet that reached the datapath.
func (c *Conn) onSent(now monotime.Time, st *sendState, p *outPacket) {
	c.stats.packetsSent.Add(1)
	c.stats.bytesSent.Add(uint64(p.n))
	switch p.kind {
	case kindNew:
		if p.s != nil {
			// Counted before Track: an ACK may remove the record as soon
			// as it is tracked, and decrements must not run first.
			p.s.outstanding.Add(1)
		}
		c.ledger.Track(flight.Sent{PN: p.pn, Stream: p.stream, Size: p.charged, SentAt: now, Payload: p.plain[:p.retx]})
		if s := p.s; s != nil {
			// The stream may have been aborted while this packet was being
			// built; its DropStream could not see a packet not yet tracked,
			// so drop again now (idempotent; releases just this packet).
			// Not when the benchmark keeps aborted flight (releaseStream).
			if s.aborted.Load() && !benchhook.AbortReleaseDisabled() {
				c.ledger.DropStream(s.id)
				s.outstanding.Store(0)
			}
		}
	case kindResend:
		if h := c.testHooks.Load(); h != nil && h.beforeRefresh != nil {
			h.beforeRefresh(p.oldPN)
		}
		// Refresh never inserts: if an ACK, abandon or DropStream removed
		// the record while the resend was out, it stays removed.
		if !c.ledger.Refresh(p.oldPN, p.pn, now) {
			c.stats.refreshMisses.Add(1)
		}
	case kindUntracked:
		return
	}
	st.probe.onSent(now)
	c.cc.OnSent(now, p.n, c.ledger.Flight())
}

// onSendFailed settles a packet the datapath did not take. first marks the
// packet the error belongs to; later ones were never attempted.
func (c *Conn) onSendFailed(now monotime.Time, st *sendState, p *outPacket, err error, first bool) {
	c.stats.sendErrors.Add(1)
	switch p.kind {
	case kindNew:
		// Charged before the send, never tracked: release exactly once.
		c.ledger.ReleaseUnsent(p.pn, p.charged)
		// Flow-control credit stays consumed: the same bytes, at the same
		// offsets, go out again from retryQ (or the stream is aborted).
		if first && !transientSendError(err) && p.s != nil {
			// A stream whose data cannot be sent fails; the connection lives on.
			p.s.abortSend(CodeSendFailed, errors.Join(ErrSendFailed, err), false)
			break
		}
		st.retryQ = append(st.retryQ, unsent{stream: p.stream, s: p.s, payload: append([]byte(nil), p.plain[:p.retx]...)})
		st.retryAt = now.Add(sendRetryDelay)
	case kindResend:
		c.ledger.ResendFailed(p.oldPN)
	case kindUntracked:
		c.ackMu.Lock()
		c.acks.immediate = true
		c.ackMu.Unlock()
	}
	if errors.Is(err, net.ErrClosed) {
		c.shutdown(&ConnError{Err: err})
	}
}

// transientSendError reports errors worth retrying the same packet for.
func transientSendError(err error) bool {
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.ENOBUFS) ||
		errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
}

// sendClose flushes a queued CONNECTION_CLOSE once.
func (c *Conn) sendClose(now monotime.Time, st *sendState) {
	c.ctrlMu.Lock()
	cf := c.ctrl.closeFrame
	c.ctrlMu.Unlock()
	if cf == nil || st.closeSent {
		return
	}
	st.closeSent = true
	st.acquire()
	defer st.release()
	p := &st.batch[0]
	reason := cf.reason
	if len(reason) > 256 {
		reason = reason[:256]
	}
	plain := wire.AppendConnectionClose(p.plain[:0], cf.code, reason)
	pn := c.nextPN.Add(1) - 1
	b := c.keys.seal(p.wire[:0], c.remoteID, pn, plain)
	st.msgs[0] = link.Message{Buf: b, Addr: c.pathCloseAddr(len(b))}
	c.ep.writeBatch(st.msgs[:1])
	st.msgs[0] = link.Message{}
}
