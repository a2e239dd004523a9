package transport

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flightline/flightline/transport/internal/monotime"
)

// Stream is one bidirectional, ordered, reliable byte stream of a Conn. It
// is an io.ReadWriteCloser: Close finishes the send side (the peer reads
// io.EOF after the last byte); CancelWrite and CancelRead reset a direction
// and tell the peer at once.
//
// Locking: s.mu guards all fields below it. Lock order is s.mu before
// Conn.schedMu and Conn.ctrlMu; code holding a Conn lock never takes s.mu.
// Neither lock is held across a datapath send or a congestion-controller call.
type Stream struct {
	id   uint64
	conn *Conn

	// blockedSince is the monotonic time since when this stream has had data
	// ready but no congestion window to send it (0: not blocked). Read by the
	// send loop's window-wait check; written by the send loop only.
	blockedSince atomic.Int64
	// aborted is set before the stream's tracked packets are dropped, so a
	// packet the send loop was building concurrently is dropped too (see
	// Conn.track).
	aborted atomic.Bool
	// outstanding counts tracked packets of this stream not yet acknowledged.
	outstanding atomic.Int64

	mu sync.Mutex

	// Send side.
	sendBuf       []byte // written, not yet packetized: sendBuf[sendHead:]
	sendHead      int
	sendOffset    uint64 // stream offset of sendBuf[sendHead]
	maxSendData   uint64 // peer's MAX_STREAM_DATA
	finQueued     bool   // Close called; FIN goes after the buffered data
	finSent       bool
	sendErr       error // set once: local abort or peer STOP_SENDING
	writeSig      signal
	writeDeadline time.Time

	// Receive side.
	recv         recvBuffer
	finalSize    uint64
	haveFinal    bool
	recvErr      error  // peer reset or local CancelRead
	maxRecvData  uint64 // what we advertised
	readSig      signal
	readDeadline time.Time
	readDone     bool // io.EOF delivered
}

func newStream(c *Conn, id uint64) *Stream {
	s := &Stream{
		id:          id,
		conn:        c,
		maxSendData: c.peerParams.streamWindow,
		maxRecvData: c.cfg.StreamReceiveWindow,
	}
	s.recv.init(maxSegmentsFor(c.cfg.StreamReceiveWindow), &c.reasmCharged)
	return s
}

// ID returns the stream's identifier, unique within its connection.
func (s *Stream) ID() uint64 { return s.id }

// Conn returns the connection the stream belongs to.
func (s *Stream) Conn() *Conn { return s.conn }

// Write writes p to the stream, blocking while the send buffer is full.
func (s *Stream) Write(p []byte) (int, error) { return s.WriteContext(context.Background(), p) }

// WriteContext is Write bounded by ctx as well as the write deadline.
func (s *Stream) WriteContext(ctx context.Context, p []byte) (int, error) {
	limit := s.conn.cfg.StreamSendBuffer
	written := 0
	s.mu.Lock()
	for written < len(p) {
		if s.sendErr != nil {
			err := s.sendErr
			s.mu.Unlock()
			return written, err
		}
		if s.finQueued {
			s.mu.Unlock()
			return written, ErrClosed
		}
		pending := len(s.sendBuf) - s.sendHead
		if space := limit - pending; space > 0 {
			n := min(space, len(p)-written)
			if s.sendHead > 0 && s.sendHead >= len(s.sendBuf)/2 {
				// Compact so the buffer's capacity is reused.
				m := copy(s.sendBuf, s.sendBuf[s.sendHead:])
				s.sendBuf = s.sendBuf[:m]
				s.sendHead = 0
			}
			s.sendBuf = append(s.sendBuf, p[written:written+n]...)
			written += n
			s.mu.Unlock()
			s.conn.enqueue(s)
			s.conn.sendNow()
			s.mu.Lock()
			continue
		}
		ch, dl := s.writeSig.wait(), s.writeDeadline
		s.mu.Unlock()
		if err := waitFor(ctx, ch, dl); err != nil {
			return written, err
		}
		s.mu.Lock()
	}
	s.mu.Unlock()
	return written, nil
}

// Close finishes the send side: buffered data is delivered, then FIN. It does
// not wait for acknowledgement (Conn.Close does) and does not affect reading.
func (s *Stream) Close() error {
	s.mu.Lock()
	if s.sendErr != nil || s.finQueued {
		s.mu.Unlock()
		return nil
	}
	s.finQueued = true
	s.mu.Unlock()
	s.conn.enqueue(s)
	s.conn.sendNow()
	return nil
}

// CancelWrite abandons the send side: unsent data is discarded, in-flight
// packets stop counting against the congestion window at once, and the
// peer receives RESET_STREAM with code.
func (s *Stream) CancelWrite(code StreamErrorCode) {
	s.abortSend(code, nil, false)
}

// CancelRead tells the peer to stop sending (STOP_SENDING with code) and
// discards buffered received data. Reads return a *StreamError. Everything
// received and not read, and everything that still arrives, is credited to
// the connection's flow-control window as if it had been read.
func (s *Stream) CancelRead(code StreamErrorCode) {
	s.mu.Lock()
	if s.recvErr != nil || s.readDone {
		s.mu.Unlock()
		return
	}
	s.recvErr = &StreamError{StreamID: s.id, Code: code}
	discarded := s.discardRecvLocked()
	s.readSig.broadcast()
	s.mu.Unlock()
	s.conn.onConsumed(s, discarded, 0)
	s.conn.queueStopSending(s.id, uint64(code))
	s.conn.maybeRemoveStream(s)
}

// discardRecvLocked drops the receive buffer once reading has failed
// (recvErr set) and returns the bytes to credit to the connection window:
// everything up to the highest offset received that the application did not
// read. Later arrivals are credited as they come (Conn.onStreamFrame and
// onResetStream), so each byte is credited once.
func (s *Stream) discardRecvLocked() uint64 {
	n := s.recv.highest - s.recv.readOffset
	s.recv.release()
	return n
}

// SetDeadline sets both read and write deadlines.
func (s *Stream) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

// SetReadDeadline makes blocked and future Reads return ErrDeadline after t.
func (s *Stream) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	s.readDeadline = t
	s.readSig.broadcast()
	s.mu.Unlock()
	return nil
}

// SetWriteDeadline makes blocked and future Writes return ErrDeadline after t.
func (s *Stream) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	s.writeDeadline = t
	s.writeSig.broadcast()
	s.mu.Unlock()
	return nil
}

// Read reads stream data in order. It returns io.EOF after the peer's FIN.
func (s *Stream) Read(p []byte) (int, error) { return s.ReadContext(context.Background(), p) }

// ReadContext is Read bounded by ctx as well as the read deadline.
func (s *Stream) ReadContext(ctx context.Context, p []byte) (int, error) {
	s.mu.Lock()
	for {
		if s.recvErr != nil {
			err := s.recvErr
			s.mu.Unlock()
			return 0, err
		}
		if s.recv.readable() {
			n := s.recv.read(p)
			update := s.recvWindowUpdateLocked()
			s.mu.Unlock()
			s.conn.onConsumed(s, uint64(n), update)
			return n, nil
		}
		if s.haveFinal && s.recv.readOffset == s.finalSize {
			first := !s.readDone
			s.readDone = true
			s.mu.Unlock()
			if first {
				s.conn.maybeRemoveStream(s)
			}
			return 0, io.EOF
		}
		if len(p) == 0 {
			s.mu.Unlock()
			return 0, nil
		}
		ch, dl := s.readSig.wait(), s.readDeadline
		s.mu.Unlock()
		if err := waitFor(ctx, ch, dl); err != nil {
			return 0, err
		}
		s.mu.Lock()
	}
}

// recvWindowUpdateLocked returns a new MAX_STREAM_DATA value to advertise
// once the application consumed half the window, else 0.
func (s *Stream) recvWindowUpdateLocked() uint64 {
	if s.haveFinal {
		return 0
	}
	window := s.conn.cfg.StreamReceiveWindow
	if s.maxRecvData-s.recv.readOffset < window/2 {
		s.maxRecvData = s.recv.readOffset + window
		return s.maxRecvData
	}
	return 0
}

// ReadFrom copies r into the stream until EOF and then closes the send side.
// If r fails, or produces nothing for Config.UpstreamInactivityTimeout, the
// stream is aborted (its in-flight bytes released, the peer told) and the
// error returned. The goroutine reading r exits when r.Read returns.
func (s *Stream) ReadFrom(r io.Reader) (int64, error) {
	return s.pipe(context.Background(), r, s.conn.cfg.UpstreamInactivityTimeout)
}

// pipe implements ReadFrom with an explicit inactivity limit (0: none).
func (s *Stream) pipe(ctx context.Context, r io.Reader, inactivity time.Duration) (int64, error) {
	type chunk struct {
		buf []byte
		err error
	}
	chunks := make(chan chunk, 4)
	free := make(chan []byte, 5)
	for range 5 {
		free <- make([]byte, 64<<10)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-stop:
				return
			}
			n, err := r.Read(buf)
			select {
			case chunks <- chunk{buf[:n], err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var total int64
	var timer *time.Timer
	var timeout <-chan time.Time
	if inactivity > 0 {
		timer = time.NewTimer(inactivity)
		defer timer.Stop()
		timeout = timer.C
	}
	for {
		select {
		case c := <-chunks:
			if len(c.buf) > 0 {
				n, err := s.WriteContext(ctx, c.buf)
				total += int64(n)
				if err != nil {
					return total, err
				}
			}
			free <- c.buf[:cap(c.buf)]
			if c.err == io.EOF {
				return total, s.Close()
			}
			if c.err != nil {
				s.abortSend(CodeUpstream, c.err, false)
				return total, s.sendError()
			}
			if timer != nil {
				timer.Reset(inactivity)
			}
		case <-timeout:
			s.abortSend(CodeUpstream, ErrUpstreamInactive, false)
			return total, s.sendError()
		case <-ctx.Done():
			s.abortSend(CodeCancelled, ctx.Err(), false)
			return total, ctx.Err()
		}
	}
}

func (s *Stream) sendError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sendErr
}

// abortSend is the single path by which a stream's send side fails: every
// abort site (CancelWrite, window-wait timeout, upstream stall or error,
// send failure, retransmit limit, peer STOP_SENDING, connection close) ends
// here. It marks the stream aborted, drops the stream's tracked packets from
// the flight ledger and releases their bytes exactly once (Ledger.DropStream),
// then queues RESET_STREAM so the peer learns at once. It reports whether this
// call did the abort (later calls are no-ops).
func (s *Stream) abortSend(code StreamErrorCode, cause error, remote bool) bool {
	s.mu.Lock()
	if s.sendErr != nil {
		s.mu.Unlock()
		return false
	}
	finished := s.finSent && len(s.sendBuf) == s.sendHead
	s.sendErr = &StreamError{StreamID: s.id, Code: code, Remote: remote, Err: cause}
	finalSize := s.sendOffset
	s.sendBuf, s.sendHead = nil, 0
	s.mu.Unlock()

	// Order matters: set aborted before dropping, so a packet of this
	// stream that the send loop tracks concurrently is dropped by the loop
	// itself (Conn.track re-checks the flag after tracking).
	s.aborted.Store(true)
	s.conn.releaseStream(s)
	// Wake blocked writers only now: a Write that returns the abort error
	// finds the stream's flight already released (waking them before the
	// release let a writer observe the stranded bytes).
	s.mu.Lock()
	s.writeSig.broadcast()
	s.mu.Unlock()
	if !(finished && s.outstanding.Load() == 0) || remote {
		s.conn.queueReset(s.id, uint64(code), finalSize)
	}
	s.conn.maybeRemoveStream(s)
	return true
}

// takeSendData copies the next bytes to send into dst (at most len(dst),
// bounded by stream and connection flow control). It reports the offset,
// byte count, whether this frame carries FIN, and whether more remains
// sendable afterwards. connCredit is the connection-level credit left.
func (s *Stream) takeSendData(dst []byte, connCredit uint64) (offset uint64, n int, fin, more, blocked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sendErr != nil || s.finSent {
		return 0, 0, false, false, false
	}
	pending := len(s.sendBuf) - s.sendHead
	credit := uint64(0)
	if s.maxSendData > s.sendOffset {
		credit = s.maxSendData - s.sendOffset
	}
	credit = min(credit, connCredit)
	n = min(pending, len(dst), int(min(credit, uint64(len(dst)))))
	offset = s.sendOffset
	copy(dst, s.sendBuf[s.sendHead:s.sendHead+n])
	s.sendHead += n
	s.sendOffset += uint64(n)
	if s.sendHead == len(s.sendBuf) {
		s.sendBuf, s.sendHead = s.sendBuf[:0], 0
	}
	rest := len(s.sendBuf) - s.sendHead
	if rest == 0 && s.finQueued {
		fin = true
		s.finSent = true
	}
	if n > 0 || fin {
		s.writeSig.broadcast()
	}
	blocked = rest > 0 && s.sendOffset >= s.maxSendData
	more = rest > 0 && !blocked
	return offset, n, fin, more, blocked
}

// peekSendOffset is the offset the next takeSendData starts at. Only the
// send loop takes data, so it stays valid until that call.
func (s *Stream) peekSendOffset() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sendOffset
}

// hasSendWork reports whether the stream has data (within the peer's stream
// window) or a bare FIN to send.
func (s *Stream) hasSendWork() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sendErr != nil || s.finSent {
		return false
	}
	if len(s.sendBuf) > s.sendHead {
		return s.sendOffset < s.maxSendData
	}
	return s.finQueued
}

// sendDone reports whether the send side is finished: FIN sent and every
// packet acknowledged, or aborted.
func (s *Stream) sendDone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sendErr != nil || (s.finSent && s.outstanding.Load() == 0)
}

// recvDone reports whether the receive side is finished.
func (s *Stream) recvDone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recvErr != nil || s.readDone
}

// abortAll fails both directions with err (connection closing). Tracked
// packets are released by the caller's Ledger.Close.
func (s *Stream) closeWithError(err error) {
	s.aborted.Store(true)
	s.mu.Lock()
	if s.sendErr == nil {
		s.sendErr = err
		s.sendBuf, s.sendHead = nil, 0
	}
	complete := s.haveFinal && uint64(s.recv.buffered) == s.finalSize-s.recv.readOffset
	if s.recvErr == nil && !s.readDone && !complete {
		s.recvErr = err
		s.recv.release()
	}
	// A stream whose data all arrived (FIN and no gaps) stays readable to
	// io.EOF: the peer's graceful close must not destroy delivered data.
	s.writeSig.broadcast()
	s.readSig.broadcast()
	s.mu.Unlock()
}

// blockedFor reports how long the stream has been waiting for window space.
func (s *Stream) blockedFor(now monotime.Time) time.Duration {
	b := s.blockedSince.Load()
	if b == 0 {
		return 0
	}
	return now.Sub(monotime.Time(b))
}
