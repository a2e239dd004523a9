package transport

// The receive path. The endpoint's receive loop calls handlePacket for every
// datagram addressed to this connection's ID, in arrival order, from one
// goroutine. A packet changes connection state only after it decrypted
// under the connection's keys, passed the replay window, and all of its
// frames parsed; anything else is dropped and counted.

import (
	"errors"
	"net/netip"
	"time"

	"github.com/flightline/flightline/transport/internal/congestion"
	"github.com/flightline/flightline/transport/internal/flight"
	"github.com/flightline/flightline/transport/internal/monotime"
	"github.com/flightline/flightline/transport/internal/wire"
)

// recvState is receive-loop-private scratch, reused for every packet.
type recvState struct {
	parser wire.Parser
	frame  wire.Frame
	ranges []flight.Range
	acked  []flight.Acked
	from   netip.AddrPort      // source of the packet being handled
	ackEv  congestion.AckEvent // reused: passing a fresh one to the controller would allocate per ACK
}

var (
	errFlowControl = errors.New("flow control limit exceeded")
	errStreamLimit = errors.New("stream limit exceeded")
	errFinalSize   = errors.New("final size changed")
	errBadStream   = errors.New("frame for a stream that was never opened")
	errAckUnsent   = errors.New("ACK for a packet never sent")
)

// handlePacket processes one datagram whose header names this connection.
func (c *Conn) handlePacket(now monotime.Time, hdr wire.DataHeader, pkt []byte, from netip.AddrPort) {
	select {
	case <-c.closed:
		return
	default:
	}
	rs := &c.ep.rs
	if !c.replay.Check(hdr.PN) {
		// Duplicate or too old: dropped and counted, before decryption,
		// and nothing else. Anyone can write a header with a packet number
		// we have seen, so this path must not change state (it once forced
		// an immediate ACK, letting an on-path observer make us send one
		// packet per forged 33-byte datagram). No ACK is owed: packet
		// numbers are never reused, a peer that lost our ACK retransmits
		// under a new number, and every ACK repeats the received ranges.
		c.stats.dropDuplicate.Add(1)
		return
	}
	plain, ok := c.openPacket(now, hdr, pkt)
	if !ok {
		return
	}
	// Validate every frame before acting on any.
	eliciting, messages := false, 0
	rs.parser.Reset(plain)
	for {
		ok, err := rs.parser.Next(&rs.frame)
		if err != nil {
			// The packet authenticated, so the peer sent it: a protocol
			// violation, not noise (docs/protocol.md, "Frames"). Frames
			// are not self-delimiting, so nothing after the bad one can be
			// read; dropping the packet would only make the peer resend
			// it until its stream failed, with no reason given.
			c.stats.dropMalformed.Add(1)
			c.stats.protocolErrors.Add(1)
			c.cfg.Logf("flightline: conn %x: closing: %v", c.localID, err)
			c.CloseWithErrorAsync(1, err.Error())
			return
		}
		if !ok {
			break
		}
		if rs.frame.Type.AckEliciting() {
			eliciting = true
		}
		if rs.frame.Type == wire.FrameMessage {
			messages++
		}
	}
	if messages > 0 && messages > c.messages.room() {
		// Not acknowledged, so the peer retransmits: backpressure, not loss.
		c.stats.dropMessageQueue.Add(1)
		return
	}
	c.replay.Mark(hdr.PN)
	if !c.addrValidated.Load() {
		// The peer's first authenticated packet proves its address:
		// whatever waited may go out now.
		c.addrValidated.Store(true)
		c.signalSend()
	}
	c.stats.packetsReceived.Add(1)
	c.stats.bytesReceived.Add(uint64(len(pkt)))
	c.lastRecv.Store(int64(now))

	// Record the packet for acknowledgement before its frames reach the
	// application: a reader woken by this packet may answer at once (on
	// another P, or inline via sendNow), and its answer must carry the ACK
	// for this packet. Recorded afterwards, the answer would miss it and a
	// separate ACK-only packet would follow the next request. If a frame
	// turns out to be a protocol violation the connection closes anyway.
	c.ackMu.Lock()
	largest, seen := c.acks.largest()
	newest := !seen || hdr.PN > largest
	c.acks.insert(hdr.PN)
	armAck := c.acks.onPacket(hdr.PN, now, eliciting, c.cfg.MaxAckDelay)
	immediate := c.acks.immediate
	c.ackMu.Unlock()
	// The newest authenticated packet from a new address moves the
	// connection there, as an unvalidated candidate (path.go).
	c.pathOnPacket(now, from, len(pkt), newest)
	rs.from = from

	rs.parser.Reset(plain)
	for {
		ok, _ := rs.parser.Next(&rs.frame)
		if !ok {
			break
		}
		if err := c.handleFrame(now, rs, &rs.frame); err != nil {
			c.stats.protocolErrors.Add(1)
			c.cfg.Logf("flightline: conn %x: closing: %v", c.localID, err)
			c.CloseWithErrorAsync(1, err.Error())
			return
		}
	}
	switch {
	case immediate:
		c.signalSend()
	case armAck:
		// An ACK is owed within MaxAckDelay. Do not wake the send loop
		// for it: the application's answer usually carries it sooner
		// (RFC 9000 §13.2.1), and waking the loop ahead of the reader
		// that is about to answer only delays the answer. The ACK timer
		// wakes the loop if the deadline comes first.
		c.ackTimer.Reset(c.cfg.MaxAckDelay)
	}
}

// CloseWithErrorAsync is CloseWithError without waiting for the send loop,
// for use on the receive path.
func (c *Conn) CloseWithErrorAsync(code uint64, reason string) {
	c.ctrlMu.Lock()
	if c.ctrl.closeFrame == nil {
		c.ctrl.closeFrame = &closeFrame{code: code, reason: reason}
	}
	c.ctrlMu.Unlock()
	c.shutdown(&ConnError{Code: code, Reason: reason})
}

func (c *Conn) handleFrame(now monotime.Time, rs *recvState, f *wire.Frame) error {
	switch f.Type {
	case wire.FramePing, wire.FrameDataBlocked, wire.FrameStreamDataBlocked:
		return nil
	case wire.FrameAck:
		return c.onAck(now, rs, f)
	case wire.FrameStream:
		return c.onStreamFrame(f)
	case wire.FrameResetStream:
		return c.onResetStream(f)
	case wire.FrameStopSending:
		s, err := c.streamForFrame(f.StreamID)
		if s != nil {
			s.abortSend(StreamErrorCode(f.ErrorCode), nil, true)
		}
		return err
	case wire.FrameMaxData:
		for {
			cur := c.peerMaxData.Load()
			if f.Max <= cur || c.peerMaxData.CompareAndSwap(cur, f.Max) {
				break
			}
		}
		c.signalSend()
		return nil
	case wire.FrameMaxStreamData:
		s, err := c.streamForFrame(f.StreamID)
		if s != nil {
			s.mu.Lock()
			s.maxSendData = max(s.maxSendData, f.Max)
			s.mu.Unlock()
			if s.hasSendWork() {
				c.schedule(s)
			}
		}
		return err
	case wire.FrameMaxStreams:
		c.streamsMu.Lock()
		if f.Max > c.localStreamsLimit {
			c.localStreamsLimit = min(f.Max, 1<<60) // QUIC's bound on stream counts
			c.openSig.broadcast()
		}
		c.streamsMu.Unlock()
		return nil
	case wire.FrameMessage:
		c.messages.push(append([]byte(nil), f.Data...)) // room checked before
		return nil
	case wire.FramePathChallenge:
		c.pathOnChallenge(f.PathData, rs.from)
		return nil
	case wire.FramePathResponse:
		c.pathOnResponse(f.PathData, rs.from)
		return nil
	case wire.FrameConnectionClose:
		c.shutdown(&ConnError{Code: f.ErrorCode, Reason: string(f.Reason), Remote: true, Err: ErrPeerClosed})
		return nil
	}
	return nil
}

// onAck removes newly acknowledged packets from the ledger (releasing their
// flight bytes), feeds the RTT estimator and the controller, and wakes the
// send loop: released window is usable at once.
func (c *Conn) onAck(now monotime.Time, rs *recvState, f *wire.Frame) error {
	if len(f.Ranges) == 0 {
		return nil
	}
	largest := f.Ranges[0].Largest
	if largest >= c.nextPN.Load() {
		return errAckUnsent
	}
	rs.ranges = rs.ranges[:0]
	for _, r := range f.Ranges {
		rs.ranges = append(rs.ranges, flight.Range{Smallest: r.Smallest, Largest: r.Largest})
	}
	// Publish the ranges before applying them: the send loop replays the
	// latest ACK for packets it tracked after this ACK overtook them.
	c.lastAckMu.Lock()
	c.lastAck = append(c.lastAck[:0], rs.ranges...)
	c.lastAckMu.Unlock()
	c.ackSeq.Add(1)
	rs.acked = c.applyAck(now, rs.ranges, rs.acked[:0], ackDelayDuration(f.AckDelay), true, &rs.ackEv)
	return nil
}

// applyAck removes acknowledged packets from the ledger (releasing their
// flight bytes exactly once — a record already gone releases nothing),
// feeds the RTT estimator (sample) and the controller, and wakes the send
// loop: released window is usable at once. It runs on the receive loop for
// every ACK frame and on the send loop when it replays an ACK that overtook
// the tracking of the packets it acknowledges. ev is the caller's reusable
// controller event. The ledger builds the ACK's delivery-rate sample after
// dropping its locks; the controller is called with no ledger lock held.
func (c *Conn) applyAck(now monotime.Time, ranges []flight.Range, acked []flight.Acked, ackDelay time.Duration, sample bool, ev *congestion.AckEvent) []flight.Acked {
	largest := ranges[0].Largest
	acked, rate := c.ledger.Ack(now, ranges, acked)
	for {
		cur := c.largestAcked.Load()
		if (c.haveAcked.Load() && largest <= cur) || c.largestAcked.CompareAndSwap(cur, largest) {
			break
		}
	}
	c.haveAcked.Store(true)
	if len(acked) == 0 {
		return acked
	}
	bytes := 0
	var largestSentAt monotime.Time
	var lastStream flight.StreamID = flight.Control
	var lastS *Stream
	for i := range acked {
		a := &acked[i]
		bytes += a.Size
		largestSentAt = max(largestSentAt, a.SentAt)
		if sample && a.PN == largest {
			// Packet numbers are never reused, so the sample is unambiguous
			// (Karn's problem does not arise): SentAt is this number's send.
			c.rtt.Update(now.Sub(a.SentAt), ackDelay, c.peerMaxAckDelay())
		}
		if a.Stream != flight.Control {
			if a.Stream != lastStream {
				lastStream, lastS = a.Stream, c.stream(a.Stream)
			}
			if lastS != nil && lastS.outstanding.Add(-1) == 0 {
				c.maybeRemoveStream(lastS)
			}
		}
	}
	c.stats.bytesAcked.Add(uint64(bytes))
	flight := c.ledger.Flight()
	*ev = congestion.AckEvent{
		Now: now, AckedBytes: bytes, LargestSentAt: largestSentAt, RTT: c.rtt,
		InFlight: flight, Sample: rate, MarkAppLimited: c.markAppLimited,
	}
	c.cc.OnAck(ev)
	c.ackProgress.Add(1)
	if flight > 0 || c.sendQueued() {
		// Loss detection has packets to look at, or the window this ACK
		// opened has something waiting for it. Otherwise (everything
		// acknowledged, nothing queued: a request/response exchange) the
		// loop has nothing to do now; the next send picks the progress up
		// (onAckProgress) and a stale probe deadline only costs a pass.
		c.signalSend()
	}
	c.notifyGraceful()
	return acked
}

func ackDelayDuration(micros uint64) time.Duration {
	return time.Duration(min(micros, uint64(time.Hour/time.Microsecond))) * time.Microsecond
}

// peerMaxAckDelay bounds the ack delay the peer may claim. Both sides use the
// configured value; an honest peer never exceeds it.
func (c *Conn) peerMaxAckDelay() time.Duration { return c.cfg.MaxAckDelay }

// onStreamFrame delivers stream data into the stream's reassembly buffer,
// enforcing stream and connection flow control and the final size.
func (c *Conn) onStreamFrame(f *wire.Frame) error {
	s, err := c.streamForFrame(f.StreamID)
	if s == nil {
		// A stream we already closed: stale retransmission, ignore.
		return err
	}
	end := f.Offset + uint64(len(f.Data))
	s.mu.Lock()
	if end > s.maxRecvData {
		s.mu.Unlock()
		return errFlowControl
	}
	if s.haveFinal && end > s.finalSize {
		s.mu.Unlock()
		return errFinalSize
	}
	if f.Fin {
		if (s.haveFinal && s.finalSize != end) || end < s.recv.highest {
			s.mu.Unlock()
			return errFinalSize
		}
		s.haveFinal, s.finalSize = true, end
	}
	var grew, discarded uint64
	if s.recvErr != nil {
		// Reading was cancelled: account for flow control, keep nothing,
		// and give the bytes back to the connection window at once.
		if end > s.recv.highest {
			grew = end - s.recv.highest
			s.recv.highest = end
		}
		discarded = grew
	} else {
		grew, err = s.recv.insert(f.Offset, f.Data)
		if err != nil {
			s.mu.Unlock()
			return err
		}
		if grew < uint64(len(f.Data)) && end <= s.recv.highest {
			// Some or all of these bytes had already arrived: a spurious
			// or duplicated retransmission.
			c.stats.dupStreamBytes.Add(uint64(len(f.Data)) - grew)
		}
	}
	if s.recv.readable() || (s.haveFinal && s.recv.readOffset == s.finalSize) {
		s.readSig.broadcast()
	}
	s.mu.Unlock()
	if grew > 0 && c.recvHighest.Add(grew) > c.recvMaxData.Load() {
		return errFlowControl
	}
	if err := c.checkReassembly(); err != nil {
		return err
	}
	c.onConsumed(s, discarded, 0)
	return nil
}

// checkReassembly enforces the connection's reassembly memory bound after
// a stream frame was buffered, and keeps the high-water mark.
func (c *Conn) checkReassembly() error {
	v := c.reasmCharged.Load()
	for {
		peak := c.reasmPeak.Load()
		if v <= peak || c.reasmPeak.CompareAndSwap(peak, v) {
			break
		}
	}
	if v > maxReassemblyCharge(c.cfg.ConnectionReceiveWindow) {
		return errReassemblyMemory
	}
	return nil
}

// onResetStream ends the peer's sending on a stream. The final size counts
// against connection flow control, and every byte up to it that the
// application will now never read counts as consumed (RFC 9000 §4.5).
func (c *Conn) onResetStream(f *wire.Frame) error {
	s, err := c.streamForFrame(f.StreamID)
	if s == nil {
		return err
	}
	s.mu.Lock()
	if f.FinalSize < s.recv.highest || (s.haveFinal && s.finalSize != f.FinalSize) || f.FinalSize > s.maxRecvData {
		s.mu.Unlock()
		return errFinalSize
	}
	grew := f.FinalSize - s.recv.highest
	s.recv.highest = f.FinalSize
	s.haveFinal, s.finalSize = true, f.FinalSize
	var discarded uint64
	switch {
	case s.recvErr == nil && !s.readDone:
		s.recvErr = &StreamError{StreamID: s.id, Code: StreamErrorCode(f.ErrorCode), Remote: true}
		discarded = s.discardRecvLocked() // includes grew
	case s.recvErr != nil:
		discarded = grew // reading failed earlier: credited up to the old highest then
	}
	s.readSig.broadcast()
	s.mu.Unlock()
	if grew > 0 && c.recvHighest.Add(grew) > c.recvMaxData.Load() {
		return errFlowControl
	}
	c.onConsumed(s, discarded, 0)
	c.maybeRemoveStream(s)
	return nil
}

// stream looks up a live stream.
func (c *Conn) stream(id uint64) *Stream {
	c.streamsMu.Lock()
	defer c.streamsMu.Unlock()
	return c.streams[id]
}

// streamForFrame returns the stream a peer frame refers to, opening peer
// streams implicitly (and every lower-numbered one, as QUIC does). It returns
// (nil, nil) for streams already closed and forgotten, and an error for ids
// that violate the protocol.
func (c *Conn) streamForFrame(id uint64) (*Stream, error) {
	c.streamsMu.Lock()
	defer c.streamsMu.Unlock()
	if s := c.streams[id]; s != nil {
		return s, nil
	}
	local := (id%2 == 0) == c.isClient
	if local {
		if id >= c.nextLocalStream {
			return nil, errBadStream
		}
		return nil, nil
	}
	idx := id / 2
	if idx < c.peerOpened {
		return nil, nil
	}
	if idx >= c.peerClosed+c.peerStreamsLimit {
		return nil, errStreamLimit
	}
	parity := id % 2
	var s *Stream
	for c.peerOpened <= idx {
		sid := c.peerOpened*2 + parity
		c.peerOpened++
		s = newStream(c, sid)
		c.streams[sid] = s
		c.stats.streamsAccepted.Add(1)
		select {
		case c.acceptQ <- s:
		default:
			// Cannot happen: the queue holds MaxStreams and the peer may
			// not have more open. Refuse the stream rather than block.
			delete(c.streams, sid)
			return nil, errStreamLimit
		}
	}
	return s, nil
}
