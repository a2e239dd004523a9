package flight

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/flightline/flightline/transport/internal/monotime"
)

// Ledger is what a connection uses: the Tracker, the flight Counter, the
// charged-but-not-yet-tracked (pending) bytes and the checker.
//
// Send path: Charge(size) before the socket send (flight += size); after a
// successful send Track(Sent{...}) (flight unchanged); after a failed send
// ReleaseUnsent(pn, size). Every other release removes the record and
// releases exactly the Size it was tracked with: OnAck, abandon (DetectLost,
// TakeOldest), DropStream, Close. Retransmission keeps the record: it is
// handed out (DetectLost/TakeOldest/TakeNewest), resent under a new PN and
// re-keyed with Refresh, which never inserts.
//
// All methods are safe for concurrent use. No method holds a lock when it
// returns, and none calls out (to the socket, the congestion controller or
// Logf) while holding a shard lock: results go to caller-provided slices and
// the caller acts on them afterwards.
type Ledger struct {
	t       *Tracker
	flight  Counter
	pending Counter // maintained only with Check: nothing else needs it
	check   bool
	strict  bool
	logf    func(format string, args ...any)
	// checkMu makes the checker's read consistent. Charge changes flight and
	// pending without any shard lock (it has no PN yet), so locking all
	// shards alone cannot exclude a half-done Charge. With Check on, every
	// operation holds checkMu for reading for its whole duration and the
	// checker holds it for writing. Order: checkMu, then shards.
	checkMu    sync.RWMutex
	rate       sampler // delivery-rate state (sampler.go); its lock is a leaf
	underflows atomic.Uint64
	violations atomic.Uint64
}

// NewLedger returns an empty ledger. In _test builds Check and Strict are
// forced on; in -race builds Strict is.
func NewLedger(cfg Config) *Ledger {
	if forceTestChecks {
		cfg.Check, cfg.Strict = true, true
	}
	if raceEnabled {
		cfg.Strict = true
	}
	return newLedger(cfg)
}

func newLedger(cfg Config) *Ledger {
	return &Ledger{t: NewTracker(cfg), check: cfg.Check, strict: cfg.Strict, logf: cfg.Logf}
}

func (l *Ledger) enter() {
	if l.check {
		l.checkMu.RLock()
	}
}

func (l *Ledger) exit(op string) {
	if l.check {
		l.checkMu.RUnlock()
		l.verify(op)
	}
}

// verify checks flight == Σ Size(tracked) + pending in O(shards), using the
// per-shard byte sums, and panics on mismatch.
func (l *Ledger) verify(op string) {
	l.checkMu.Lock()
	for i := range l.t.shards {
		l.t.shards[i].mu.Lock()
	}
	tb, tn := l.t.sumLocked()
	f, p := l.flight.Load(), l.pending.Load()
	for i := len(l.t.shards) - 1; i >= 0; i-- {
		l.t.shards[i].mu.Unlock()
	}
	l.checkMu.Unlock()
	if f != int64(tb)+p {
		panic(fmt.Sprintf("flight: checker after %s: flight %d != tracked %d (%d records) + pending %d",
			op, f, tb, tn, p))
	}
}

// fault reports an accounting violation: a panic when Strict, otherwise a
// count and a log line. Callers invoke it after every lock is dropped.
func (l *Ledger) fault(ctr *atomic.Uint64, format string, args ...any) {
	ctr.Add(1)
	msg := fmt.Sprintf(format, args...)
	if l.strict {
		panic("flight: " + msg)
	}
	if l.logf != nil {
		l.logf("flight: %s", msg)
	}
}

func (l *Ledger) checkUnderflow(op string, flight, pending int64) {
	if flight < 0 {
		l.fault(&l.underflows, "%s: flight %d below zero (double release?)", op, flight)
	}
	if pending < 0 {
		l.fault(&l.underflows, "%s: pending %d below zero (tracked or released more than charged)", op, pending)
	}
}

// release releases n bytes of removed records and returns the new flight
// (0 if nothing was released). Called inside enter/exit; the caller reports
// an underflow with checkUnderflow after exit.
func (l *Ledger) release(n int) int64 {
	if n == 0 {
		return 0
	}
	return l.flight.Release(n)
}

// Flight returns the current flight size in wire bytes.
func (l *Ledger) Flight() int64 { return l.flight.Load() }

// Charge adds size to the flight before a socket send.
func (l *Ledger) Charge(size int) {
	l.enter()
	if l.flight.Add(size) == int64(size) && size > 0 {
		// Nothing was outstanding: the next tracked send starts a new
		// delivery-rate epoch. Only the holder of the send role charges, so
		// no other charge can be pending here.
		l.rate.mu.Lock()
		l.rate.idle = true
		l.rate.mu.Unlock()
	}
	if l.check {
		l.pending.Add(size)
	}
	l.exit("charge")
	if size < 0 {
		l.fault(&l.violations, "charge: negative size %d", size)
	}
}

// Track records a packet whose send succeeded; s.Size must be what was
// charged for it. Flight is unchanged. Tracking a PN that is already tracked
// is a violation (PNs are never reused): its charge is released instead. After
// Close the packet is not tracked and its charge is released.
func (l *Ledger) Track(s Sent) {
	l.enter()
	res := l.t.track(s, l.rate.take(s.SentAt, l.flight.Load()))
	var f, p int64
	if l.check {
		p = l.pending.Release(s.Size)
	}
	if res != tracked {
		f = l.flight.Release(s.Size)
	}
	l.exit("track")
	l.checkUnderflow("track", f, p)
	if res == trackDup {
		l.fault(&l.violations, "track: pn %d is already tracked; released the new charge of %d", s.PN, s.Size)
	}
	if s.Size < 0 {
		l.fault(&l.violations, "track: pn %d has negative size %d", s.PN, s.Size)
	}
}

// ReleaseUnsent releases the charge of a packet whose socket send failed.
// pn must not be tracked (a failed send never is); if it is, that is a
// violation and the record itself is removed and released instead, so the
// bytes are still released exactly once.
func (l *Ledger) ReleaseUnsent(pn uint64, size int) {
	l.enter()
	rsize, wasTracked := l.t.untrack(pn)
	var f, p int64
	if wasTracked {
		f = l.flight.Release(rsize)
	} else {
		if l.check {
			p = l.pending.Release(size)
		}
		f = l.flight.Release(size)
	}
	l.exit("release unsent")
	l.checkUnderflow("release unsent", f, p)
	if wasTracked {
		l.fault(&l.violations, "release unsent: pn %d is tracked; released its record (%d bytes) instead", pn, rsize)
	}
}

// OnAck removes and releases every tracked record in ranges (descending, as
// on the wire) and appends them to out. PNs that are not tracked — acked
// before, dropped, abandoned, superseded by a Refresh, or never tracked — are
// ignored.
func (l *Ledger) OnAck(ranges []Range, out []Acked) []Acked {
	out, _ = l.Ack(monotime.Now(), ranges, out)
	return out
}

// Ack is OnAck at time now, which also feeds the delivery-rate sampler and
// returns this ACK's rate sample (draft-ietf-ccwg-bbr-06 §"Delivery Rate
// Samples"). The sample is built after every shard lock is dropped.
func (l *Ledger) Ack(now monotime.Time, ranges []Range, out []Acked) ([]Acked, RateSample) {
	l.enter()
	n0 := len(out)
	out, b := l.t.ack(ranges, out)
	f := l.release(b)
	l.exit("ack")
	l.checkUnderflow("ack", f, 0)
	return out, l.rate.onAcked(now, out[n0:])
}

// MarkAppLimited records that the sender has nothing more to send although
// the congestion window and the pacer would allow it: packets sent until the
// data now in flight is delivered are tagged application-limited, so their
// low rate samples do not lower a bandwidth estimate.
func (l *Ledger) MarkAppLimited() { l.rate.markAppLimited(l.flight.Load()) }

// Sampler returns the delivery-rate counters.
func (l *Ledger) Sampler() SamplerState { return l.rate.state() }

// lostBytes sums what was handed out for resend and abandoned since the
// given lengths: the bytes a loss declaration removes from the pipe.
func lostBytes(resend []Resend, abandoned []Abandoned) int {
	n := 0
	for i := range resend {
		n += resend[i].Size
	}
	for i := range abandoned {
		n += abandoned[i].Size
	}
	return n
}

// DetectLost runs RFC 9002 loss detection. Lost records are handed out for
// resend (payload copied into arena) or, at the send limit, abandoned:
// removed, released and reported so the connection can fail their stream. It
// returns the next loss time (0 if none) for the loss timer.
func (l *Ledger) DetectLost(p LossParams, resend []Resend, arena []byte, abandoned []Abandoned) (
	[]Resend, []byte, []Abandoned, monotime.Time,
) {
	l.enter()
	r0, a0 := len(resend), len(abandoned)
	resend, arena, abandoned, next, b := l.t.detectLost(p, resend, arena, abandoned)
	l.rate.onLost(lostBytes(resend[r0:], abandoned[a0:]))
	f := l.release(b)
	l.exit("detect lost")
	l.checkUnderflow("detect lost", f, 0)
	return resend, arena, abandoned, next
}

// TakeOldest hands out up to n of the oldest records not already handed out
// (RTO), abandoning those with Sends >= maxSends (0 means DefaultMaxSends).
func (l *Ledger) TakeOldest(n int, maxSends int, resend []Resend, arena []byte, abandoned []Abandoned) (
	[]Resend, []byte, []Abandoned,
) {
	l.enter()
	r0, a0 := len(resend), len(abandoned)
	resend, arena, abandoned, b := l.t.takeOldest(n, maxSends, resend, arena, abandoned)
	// An RTO presumes everything it takes lost (RFC 6298 §5.4).
	l.rate.onLost(lostBytes(resend[r0:], abandoned[a0:]))
	f := l.release(b)
	l.exit("take oldest")
	l.checkUnderflow("take oldest", f, 0)
	return resend, arena, abandoned
}

// TakeNewest hands out the newest record not already handed out (tail loss
// probe), if any.
func (l *Ledger) TakeNewest(resend []Resend, arena []byte) ([]Resend, []byte) {
	l.enter()
	resend, arena = l.t.takeNewest(resend, arena)
	l.exit("take newest")
	return resend, arena
}

// Refresh re-keys a handed-out record under newPN after its payload was
// resent (sentAt = now, Sends+1, no longer resending, and a complete new
// delivery-rate snapshot taken now) and reports whether the
// record was still tracked. It never inserts: if an ACK, abandon, DropStream
// or Close removed the record meanwhile, its bytes were already released and
// Refresh is a no-op returning false. Flight is unchanged either way.
func (l *Ledger) Refresh(oldPN, newPN uint64, now monotime.Time) bool {
	l.enter()
	res := l.t.refresh(oldPN, newPN, now, l.rate.take(now, l.flight.Load()))
	l.exit("refresh")
	switch res {
	case refreshSame:
		l.fault(&l.violations, "refresh: new pn %d equals old pn", newPN)
	case refreshDup:
		l.fault(&l.violations, "refresh: new pn %d is already tracked; pn %d not re-keyed", newPN, oldPN)
	}
	return res == refreshed || res == refreshSame
}

// ResendFailed clears the resending flag of pn after the resend's socket
// send failed, so the record can be handed out again. No-op if pn is gone.
func (l *Ledger) ResendFailed(pn uint64) {
	l.enter()
	l.t.resendFailed(pn)
	l.exit("resend failed")
}

// DropStream removes and releases every record of stream id (the stream
// aborted) and returns the bytes released. See Tracker.DropStream.
func (l *Ledger) DropStream(id StreamID) int {
	l.enter()
	b, _ := l.t.DropStream(id)
	f := l.release(b)
	l.exit("drop stream")
	l.checkUnderflow("drop stream", f, 0)
	return b
}

// Close removes and releases every record and returns the bytes released.
// Later Tracks release their charge instead of tracking. Charges not yet
// tracked stay in flight until their Track or ReleaseUnsent.
func (l *Ledger) Close() int {
	l.enter()
	b := l.t.closeAll()
	f := l.release(b)
	l.exit("close")
	l.checkUnderflow("close", f, 0)
	return b
}

// Len returns the number of tracked records.
func (l *Ledger) Len() int { return l.t.Len() }

// Tracked reports whether pn is still tracked. A sender checks it before
// putting a queued resend on the wire: if an ACK, abandon or DropStream
// removed the record meanwhile, the resend is pointless (its Refresh would
// return false anyway). Read-only: it never changes accounting.
func (l *Ledger) Tracked(pn uint64) bool { return l.t.tracked(pn) }

// OldestSentAt returns the send time of the oldest record not handed out for
// resend, or 0 if there is none.
func (l *Ledger) OldestSentAt() monotime.Time { return l.t.OldestSentAt() }

// StreamBytes returns the bytes tracked for stream id.
func (l *Ledger) StreamBytes(id StreamID) int { return l.t.StreamBytes(id) }

// Underflows returns how many times flight or pending went below zero
// (non-Strict only; Strict panics).
func (l *Ledger) Underflows() uint64 { return l.underflows.Load() }

// Violations returns how many API misuses were found and repaired (tracking a
// tracked PN, ReleaseUnsent of a tracked PN, Refresh onto a tracked PN,
// negative sizes). Non-Strict only; Strict panics.
func (l *Ledger) Violations() uint64 { return l.violations.Load() }
