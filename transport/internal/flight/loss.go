package flight

import (
	"cmp"
	"slices"

	"github.com/flightline/flightline/transport/internal/monotime"
)

// Retransmission hands records out, it does not remove them: a record handed
// out for resend stays tracked and stays charged until it is released by ACK,
// abandon, DropStream or Close ("tracked iff in flight"). Removing it for the
// duration of the resend would open a gap in which DropStream cannot see it
// (its bytes would never be released) and would force the caller to
// re-insert it afterwards (which resurrects records removed meanwhile).

// handOutLocked marks r as resending and appends a copy of its payload to
// arena. The caller holds r's shard lock; the copy is taken under it because
// the record's buffer is recycled as soon as an ACK removes the record.
func handOutLocked(r *record, resend []Resend, arena []byte) ([]Resend, []byte) {
	r.resending = true
	start := len(arena)
	arena = append(arena, r.buf...)
	end := len(arena)
	return append(resend, Resend{
		PN: r.pn, Stream: r.stream, Size: r.size, Sends: r.sends, SentAt: r.sentAt,
		Payload:    arena[start:end:end],
		TxInFlight: r.snap.txInFlight, LostBefore: r.snap.lost, AppLimited: r.snap.appLimited,
	}), arena
}

func abandonLocked(sh *shard, r *record, abandoned []Abandoned) []Abandoned {
	abandoned = append(abandoned, Abandoned{PN: r.pn, Stream: r.stream, Size: r.size})
	sh.removeLocked(r)
	sh.freeRecordLocked(r)
	return abandoned
}

func byResendPN(a, b Resend) int       { return cmp.Compare(a.PN, b.PN) }
func byAbandonedPN(a, b Abandoned) int { return cmp.Compare(a.PN, b.PN) }

func maxSendsOr(n int) int {
	if n <= 0 {
		return DefaultMaxSends
	}
	return n
}

// detectLost implements RFC 9002 6.1 over records below LargestAcked that are
// not already handed out. Lost records are handed out for resend, or
// abandoned (removed; bytes returned for release) once Sends >= MaxSends. It
// returns the earliest time a remaining record will cross the time threshold
// (0 if none). Results are appended in ascending PN order. Shards are
// scanned one at a time: records only move between shards by Refresh, which
// is applied to handed-out records, which this scan skips anyway.
func (t *Tracker) detectLost(p LossParams, resend []Resend, arena []byte, abandoned []Abandoned) (
	[]Resend, []byte, []Abandoned, monotime.Time, int,
) {
	if !p.HaveLargest {
		return resend, arena, abandoned, 0, 0
	}
	thr := p.PacketThreshold
	if thr == 0 {
		thr = DefaultPacketThreshold
	}
	maxSends := maxSendsOr(p.MaxSends)
	lostSendTime := p.Now.Add(-p.LossDelay)
	r0, a0 := len(resend), len(abandoned)
	var lossTime monotime.Time
	haveLoss := false
	bytes := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for r := sh.head; r != nil && r.pn < p.LargestAcked; {
			next := r.next
			switch {
			case r.resending:
			case p.LargestAcked-r.pn >= thr || r.sentAt <= lostSendTime:
				if r.sends >= maxSends {
					bytes += r.size
					abandoned = abandonLocked(sh, r, abandoned)
				} else {
					resend, arena = handOutLocked(r, resend, arena)
				}
			default:
				if lt := r.sentAt.Add(p.LossDelay); !haveLoss || lt < lossTime {
					lossTime, haveLoss = lt, true
				}
			}
			r = next
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(resend[r0:], byResendPN)
	slices.SortFunc(abandoned[a0:], byAbandonedPN)
	return resend, arena, abandoned, lossTime, bytes
}

// takeOldest examines up to n of the lowest-PN records not already handed
// out (the RTO/PTO retransmission): each is handed out for resend, or
// abandoned once Sends >= maxSends (both count towards n). It holds all
// shards to pick the global oldest consistently.
func (t *Tracker) takeOldest(n, maxSends int, resend []Resend, arena []byte, abandoned []Abandoned) (
	[]Resend, []byte, []Abandoned, int,
) {
	if n <= 0 {
		return resend, arena, abandoned, 0
	}
	maxSends = maxSendsOr(maxSends)
	bytes := 0
	var cur [MaxShards]*record
	t.lockAll(opTake)
	for i := range t.shards {
		cur[i] = nextIdle(t.shards[i].head)
	}
	for taken := 0; taken < n; taken++ {
		best := -1
		for i := range t.shards {
			if cur[i] != nil && (best < 0 || cur[i].pn < cur[best].pn) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		r := cur[best]
		cur[best] = nextIdle(r.next)
		if r.sends >= maxSends {
			bytes += r.size
			abandoned = abandonLocked(&t.shards[best], r, abandoned)
		} else {
			resend, arena = handOutLocked(r, resend, arena)
		}
	}
	t.unlockAll(opTake)
	return resend, arena, abandoned, bytes
}

// nextIdle returns the first record from r on (in PN order) that is not
// handed out.
func nextIdle(r *record) *record {
	for r != nil && r.resending {
		r = r.next
	}
	return r
}

// takeNewest hands out the highest-PN record not already handed out (the
// tail loss probe), if any.
func (t *Tracker) takeNewest(resend []Resend, arena []byte) ([]Resend, []byte) {
	t.lockAll(opTake)
	var best *record
	for i := range t.shards {
		r := t.shards[i].tail
		for r != nil && r.resending {
			r = r.prev
		}
		if r != nil && (best == nil || r.pn > best.pn) {
			best = r
		}
	}
	if best != nil {
		resend, arena = handOutLocked(best, resend, arena)
	}
	t.unlockAll(opTake)
	return resend, arena
}
