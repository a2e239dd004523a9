package flight

import "github.com/flightline/flightline/transport/internal/monotime"

// Tracker is the sharded store of sent-packet records. It knows nothing about
// the flight counter: operations that remove records report the bytes they
// removed and the caller (the Ledger) releases them after every shard lock
// has been dropped.
//
// Records are striped by PN over a power-of-two number of shards, in
// blocks of 16 consecutive PNs ((pn>>4) & (shards-1)). Each shard has its own mutex, PN index, PN-ordered list
// and per-stream lists, so senders tracking consecutive PNs rarely contend.
//
// Lock order: shards are always locked in ascending index. Operations on one
// PN lock one shard; Refresh locks the old and the new PN's shards together;
// DropStream, Close, TakeOldest, TakeNewest and the checker lock all shards.
// No shard lock is ever held across a socket send or a congestion-controller
// call.
type Tracker struct {
	shards []shard
	mask   uint64
	// hook, when set by a test, is called at the interleaving points of
	// Refresh and of the all-shard sweeps (see hookEvent). Nil in production.
	hook func(hookEvent)
}

// hookEvent names an interleaving point for deterministic race tests.
type hookEvent struct {
	op    hookOp
	stage hookStage
	shard int // for stageBeforeLock: the shard about to be locked
}

type hookOp uint8

const (
	opRefresh hookOp = iota
	opSweep          // DropStream and Close
	opTake           // TakeOldest and TakeNewest
)

type hookStage uint8

const (
	stageBeforeLock hookStage = iota // about to lock shard
	stageLocked                      // every lock the operation needs is held
	stageUnlocked                    // all locks dropped, operation complete
)

// NewTracker returns an empty tracker. Only cfg.Shards is used.
func NewTracker(cfg Config) *Tracker {
	n := cfg.shards()
	t := &Tracker{shards: make([]shard, n), mask: uint64(n - 1)}
	for i := range t.shards {
		t.shards[i].idx.init(minTableSize)
		t.shards[i].streams.init(minTableSize)
	}
	return t
}

// stripeShift sets the stripe width: 2^stripeShift consecutive PNs share a
// shard. Striping by blocks rather than single PNs means an ACK range (which
// covers consecutive PNs) touches a couple of shards instead of all of them,
// and the sender (tracking the newest PNs) and the ACK processor (removing
// older ones) usually work in different shards.
const stripeShift = 4

func (t *Tracker) shardOf(pn uint64) int { return int((pn >> stripeShift) & t.mask) }

func (t *Tracker) fire(op hookOp, stage hookStage, shard int) {
	if t.hook != nil {
		t.hook(hookEvent{op: op, stage: stage, shard: shard})
	}
}

// lockAll locks every shard in ascending order.
func (t *Tracker) lockAll(op hookOp) {
	for i := range t.shards {
		t.fire(op, stageBeforeLock, i)
		t.shards[i].mu.Lock()
	}
	t.fire(op, stageLocked, -1)
}

func (t *Tracker) unlockAll(op hookOp) {
	for i := len(t.shards) - 1; i >= 0; i-- {
		t.shards[i].mu.Unlock()
	}
	t.fire(op, stageUnlocked, -1)
}

type trackResult uint8

const (
	tracked     trackResult = iota
	trackDup                // PN already tracked: caller bug
	trackClosed             // the tracker was closed: nothing tracked
)

// track records s. It never replaces a tracked record.
func (t *Tracker) track(s Sent, snap snapshot) trackResult {
	sh := &t.shards[t.shardOf(s.PN)]
	sh.mu.Lock()
	if sh.closed {
		sh.mu.Unlock()
		return trackClosed
	}
	r := sh.newRecordLocked()
	r.pn, r.stream, r.size = s.PN, s.Stream, s.Size
	if !sh.insertLocked(r) {
		sh.freeRecordLocked(r)
		sh.mu.Unlock()
		return trackDup
	}
	r.sentAt, r.firstSentAt, r.sends = s.SentAt, s.SentAt, 1
	r.snap = snap
	r.setPayload(s.Payload)
	sh.mu.Unlock()
	return tracked
}

// untrack removes pn if tracked and returns its size.
func (t *Tracker) untrack(pn uint64) (size int, ok bool) {
	sh := &t.shards[t.shardOf(pn)]
	sh.mu.Lock()
	r := sh.idx.get(pn)
	if r != nil {
		size = r.size
		sh.removeLocked(r)
		sh.freeRecordLocked(r)
	}
	sh.mu.Unlock()
	return size, r != nil
}

// ack removes every tracked record whose PN lies in ranges and appends it to
// out, grouped by shard and ascending by PN within a shard. It returns the
// bytes removed, which the caller must release.
//
// Each shard's PN list is walked once with a cursor over the ranges in
// ascending order, so an ACK touches only newly acked records and the holes
// below its largest range — not the records sent after it, and not ranges
// that were acked before (ACK frames repeat them). Ranges that are not
// strictly descending (bad input) restart the cursor instead of being missed.
func (t *Tracker) ack(ranges []Range, out []Acked) ([]Acked, int) {
	bytes := 0
	for si := range t.shards {
		sh := &t.shards[si]
		sh.mu.Lock()
		cur := sh.head
		for i := len(ranges) - 1; i >= 0 && sh.head != nil; i-- {
			rg := ranges[i]
			if rg.Smallest > rg.Largest {
				continue
			}
			if i < len(ranges)-1 && rg.Smallest <= ranges[i+1].Largest {
				cur = sh.head // not descending: start over
			}
			for cur != nil && cur.pn < rg.Smallest {
				cur = cur.next
			}
			for cur != nil && cur.pn <= rg.Largest {
				r := cur
				cur = cur.next
				out = append(out, Acked{
					PN: r.pn, Stream: r.stream, Size: r.size,
					SentAt: r.sentAt, FirstSentAt: r.firstSentAt, Sends: r.sends,
					snap: r.snap,
				})
				bytes += r.size
				sh.removeLocked(r)
				sh.freeRecordLocked(r)
			}
		}
		sh.mu.Unlock()
	}
	return out, bytes
}

type refreshResult uint8

const (
	refreshed   refreshResult = iota
	refreshGone               // removed meanwhile (ACK, abandon, DropStream, Close): no-op
	refreshSame               // newPN == oldPN: caller bug, refreshed in place
	refreshDup                // newPN already tracked: caller bug, flag cleared only
)

// refresh re-keys the record of oldPN under newPN after a retransmission, only
// if it is still tracked. It never inserts: a record that was removed while
// handed out was already released, and inserting it again would release its
// bytes a second time (the resurrection bug of freenet PR #4393).
//
// Both shards are locked together (ascending), so the record is never
// outside the tracker while it moves: a sweep (DropStream/Close), which
// holds all shards, sees it either under oldPN or under newPN.
func (t *Tracker) refresh(oldPN, newPN uint64, now monotime.Time, snap snapshot) refreshResult {
	a, b := t.shardOf(oldPN), t.shardOf(newPN)
	lo, hi := min(a, b), max(a, b)
	t.fire(opRefresh, stageBeforeLock, lo)
	t.shards[lo].mu.Lock()
	if hi != lo {
		t.fire(opRefresh, stageBeforeLock, hi)
		t.shards[hi].mu.Lock()
	}
	t.fire(opRefresh, stageLocked, -1)
	res := t.refreshLocked(oldPN, newPN, now, snap, &t.shards[a], &t.shards[b])
	if hi != lo {
		t.shards[hi].mu.Unlock()
	}
	t.shards[lo].mu.Unlock()
	t.fire(opRefresh, stageUnlocked, -1)
	return res
}

func (t *Tracker) refreshLocked(oldPN, newPN uint64, now monotime.Time, snap snapshot, from, to *shard) refreshResult {
	r := from.idx.get(oldPN)
	switch {
	case r == nil:
		return refreshGone
	case oldPN == newPN:
		r.sentAt, r.resending, r.snap = now, false, snap
		r.sends++
		return refreshSame
	case to.idx.get(newPN) != nil:
		r.resending = false
		return refreshDup
	}
	from.removeLocked(r)
	// The whole snapshot is replaced with the resend's: a resend is sampled
	// exactly like a first send (never old and new fields mixed).
	r.pn, r.sentAt, r.resending, r.snap = newPN, now, false, snap
	r.sends++
	to.insertLocked(r) // cannot fail: newPN checked absent under the same lock
	return refreshed
}

// resendFailed clears the resending flag of pn if it is still tracked, so the
// record can be handed out again.
// tracked reports whether pn has a record (it may be removed the moment the
// lock drops; callers use it only to skip work that has become pointless).
func (t *Tracker) tracked(pn uint64) bool {
	sh := &t.shards[t.shardOf(pn)]
	sh.mu.Lock()
	ok := sh.idx.get(pn) != nil
	sh.mu.Unlock()
	return ok
}

func (t *Tracker) resendFailed(pn uint64) {
	sh := &t.shards[t.shardOf(pn)]
	sh.mu.Lock()
	if r := sh.idx.get(pn); r != nil {
		r.resending = false
	}
	sh.mu.Unlock()
}

// DropStream removes every record of stream id from all structures and
// returns their total size and count; the caller releases the bytes (the
// Ledger does). Records handed out for resend are removed too: a later
// Refresh of them is a no-op. Unknown or drained streams return 0; repeated
// calls are idempotent. Control is refused and returns 0.
//
// It locks ALL shards (ascending) for the sweep, not one at a time: a
// concurrent Refresh moves a record from its old PN's shard to its new PN's
// shard holding both locks. With a shard-at-a-time sweep, the sweep could
// pass the destination shard (still empty) and then reach the source shard
// after the record left it, missing the record — which would then keep the
// dropped stream's bytes in flight. Holding every lock makes the sweep and
// each move atomic with respect to each other.
func (t *Tracker) DropStream(id StreamID) (bytes int, packets int) {
	if id == Control {
		return 0, 0
	}
	t.lockAll(opSweep)
	for i := range t.shards {
		sh := &t.shards[i]
		sl := sh.streams.get(id)
		if sl == nil {
			continue
		}
		for r := sl.head; r != nil; {
			next := r.snext
			bytes += r.size
			packets++
			sh.removeLocked(r) // frees sl after the last record; not touched again
			sh.freeRecordLocked(r)
			r = next
		}
	}
	t.unlockAll(opSweep)
	return bytes, packets
}

// closeAll removes every record, marks the tracker closed (a later track is
// refused) and returns the bytes removed. Like DropStream it holds all
// shards, so no Refresh can move a record past it.
func (t *Tracker) closeAll() (bytes int) {
	t.lockAll(opSweep)
	for i := range t.shards {
		sh := &t.shards[i]
		for r := sh.head; r != nil; {
			next := r.next
			bytes += r.size
			sh.removeLocked(r)
			sh.freeRecordLocked(r)
			r = next
		}
		sh.closed = true
	}
	t.unlockAll(opSweep)
	return bytes
}

// Len returns the number of tracked records.
func (t *Tracker) Len() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += sh.n
		sh.mu.Unlock()
	}
	return n
}

// StreamBytes returns the bytes tracked for stream id.
func (t *Tracker) StreamBytes(id StreamID) int {
	b := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		if sl := sh.streams.get(id); sl != nil {
			b += sl.bytes
		}
		sh.mu.Unlock()
	}
	return b
}

// OldestSentAt returns the earliest send time of the records not handed out
// for resend (the RTO reference), or 0 if there are none. Per shard it reads
// the lowest-PN such record: PN order is send order because every send,
// including a retransmission, takes a new PN.
func (t *Tracker) OldestSentAt() monotime.Time {
	var oldest monotime.Time
	found := false
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		r := sh.head
		for r != nil && r.resending {
			r = r.next
		}
		if r != nil && (!found || r.sentAt < oldest) {
			oldest, found = r.sentAt, true
		}
		sh.mu.Unlock()
	}
	return oldest
}

// sumLocked returns Σ size and the count of tracked records. The caller
// holds every shard lock.
func (t *Tracker) sumLocked() (bytes, n int) {
	for i := range t.shards {
		bytes += t.shards[i].bytes
		n += t.shards[i].n
	}
	return bytes, n
}
