package flight

import (
	"sync"

	"github.com/flightline/flightline/transport/internal/monotime"
	"github.com/flightline/flightline/transport/link"
)

// record is one tracked (= in flight) ack-eliciting packet. It lives in
// exactly one shard — the one selected by its current pn — and is linked into
// that shard's PN index, PN-ordered list and per-stream list. A record is
// released exactly once, by being removed from all three.
type record struct {
	pn          uint64
	stream      StreamID
	size        int // wire bytes charged; what every release path releases
	sentAt      monotime.Time
	firstSentAt monotime.Time
	sends       int
	snap        snapshot // delivery-rate state at sentAt; replaced whole on every (re)send
	// resending is set while the record is handed out for retransmission
	// (DetectLost/TakeOldest/TakeNewest) and cleared by Refresh or
	// ResendFailed. A resending record is never handed out again, but it
	// stays tracked and charged: "tracked iff in flight".
	resending bool
	// buf owns a copy of the payload. It is recycled with the record, so it
	// is never handed to a caller: readers copy out under the shard lock.
	buf          []byte
	prev, next   *record // shard PN list, ascending; next links the free list
	sprev, snext *record // stream list (unordered)
	sl           *streamList
}

// streamList heads the records of one stream within one shard.
type streamList struct {
	id         StreamID
	head, tail *record
	bytes      int
	n          int
	nextFree   *streamList
}

// shard is one stripe of the tracker. Every field is guarded by mu.
//
// Lock rules: mu is never held across a socket send, a congestion-controller
// call or a call into the Ledger's counters' owners; operations collect their
// results into caller-provided slices under mu and the caller acts after it
// is dropped. When several shards are locked they are locked in ascending
// index order.
type shard struct {
	mu      sync.Mutex
	idx     table[record]     // pn -> record
	streams table[streamList] // stream id -> records of that stream in this shard
	head    *record           // lowest pn
	tail    *record           // highest pn
	bytes   int               // Σ size of tracked records
	n       int               // number of tracked records
	closed  bool              // set by Close: Track releases instead of tracking
	free    *record           // recycled records (with their buffers)
	freeSL  *streamList       // recycled stream heads
	_       [64]byte          // keep neighbouring shards off this cache line
}

func (s *shard) newRecordLocked() *record {
	r := s.free
	if r == nil {
		return &record{}
	}
	s.free = r.next
	r.next = nil
	return r
}

// freeRecordLocked recycles a removed record. Its buffer is kept for reuse.
func (s *shard) freeRecordLocked(r *record) {
	buf := r.buf[:0]
	*r = record{buf: buf, next: s.free}
	s.free = r
}

func (r *record) setPayload(p []byte) {
	if cap(r.buf) < len(p) {
		r.buf = make([]byte, 0, max(len(p), link.MaxPacketSize))
	}
	r.buf = append(r.buf[:0], p...)
}

// insertLocked links r (with r.pn, r.stream, r.size set) into the index and
// both lists. It returns false, changing nothing, if r.pn is already tracked.
func (s *shard) insertLocked(r *record) bool {
	if s.idx.insert(r.pn, r) != nil {
		return false
	}
	// PN list: PNs are allocated monotonically, so r almost always goes at
	// the tail; concurrent senders may Track slightly out of order.
	p := s.tail
	for p != nil && p.pn > r.pn {
		p = p.prev
	}
	r.prev = p
	if p == nil {
		r.next = s.head
		s.head = r
	} else {
		r.next = p.next
		p.next = r
	}
	if r.next == nil {
		s.tail = r
	} else {
		r.next.prev = r
	}
	// Stream list.
	sl := s.streams.get(r.stream)
	if sl == nil {
		sl = s.freeSL
		if sl == nil {
			sl = &streamList{}
		} else {
			s.freeSL = sl.nextFree
			sl.nextFree = nil
		}
		sl.id = r.stream
		s.streams.insert(r.stream, sl)
	}
	r.sl = sl
	r.sprev = sl.tail
	r.snext = nil
	if sl.tail == nil {
		sl.head = r
	} else {
		sl.tail.snext = r
	}
	sl.tail = r
	sl.bytes += r.size
	sl.n++
	s.bytes += r.size
	s.n++
	return true
}

// removeLocked unlinks r from the index and both lists. The caller releases
// r.size (exactly once) and frees or re-inserts r.
func (s *shard) removeLocked(r *record) {
	if s.idx.remove(r.pn) != r {
		panic("flight: internal: record missing from its shard index")
	}
	if r.prev == nil {
		s.head = r.next
	} else {
		r.prev.next = r.next
	}
	if r.next == nil {
		s.tail = r.prev
	} else {
		r.next.prev = r.prev
	}
	r.prev, r.next = nil, nil
	sl := r.sl
	if r.sprev == nil {
		sl.head = r.snext
	} else {
		r.sprev.snext = r.snext
	}
	if r.snext == nil {
		sl.tail = r.sprev
	} else {
		r.snext.sprev = r.sprev
	}
	r.sprev, r.snext, r.sl = nil, nil, nil
	sl.bytes -= r.size
	sl.n--
	if sl.n == 0 {
		s.streams.remove(sl.id)
		*sl = streamList{nextFree: s.freeSL}
		s.freeSL = sl
	}
	s.bytes -= r.size
	s.n--
}
