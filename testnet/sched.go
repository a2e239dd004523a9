package testnet

import (
	"container/heap"
	"math/rand/v2"
	"time"
)

// Scheduling constants of the userspace hop.
const (
	// holdTimeout releases a frame held for reordering when no next frame
	// arrives to overtake it, so a quiet flow is not stalled.
	holdTimeout = 5 * time.Millisecond
	// maxRateDelay is the userspace rate limiter's queue: a frame that would
	// wait longer for the link is dropped, like tbf's latency 50ms.
	maxRateDelay = 50 * time.Millisecond
	// maxQueue bounds frames inside the hop (about 100 MB of 1500 B frames).
	maxQueue = 1 << 16
)

// frame is one frame inside the hop. data starts with the virtio-net header
// the AF_PACKET socket adds (vnetHdrLen bytes).
type frame struct {
	at   int64  // ns on the hop's clock when it may leave
	seq  uint64 // order of admission; ties in at leave in seq order
	data []byte
}

type frameHeap []*frame

func (h frameHeap) Len() int { return len(h) }
func (h frameHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h frameHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *frameHeap) Push(x any)   { *h = append(*h, x.(*frame)) }
func (h *frameHeap) Pop() any {
	old := *h
	f := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return f
}

// sched decides when each frame of one direction leaves the hop. It is plain
// data driven by explicit times (ns), so tests are deterministic; the hop
// goroutines call it under their mutex.
//
// Invariants: every admitted frame is in q, or is held, or was counted in
// HopDropped/RateDropped; frames leave in (at, seq) order.
type sched struct {
	imp      Impairment
	userRate bool // enforce imp.Rate here (no tbf)
	rng      *rand.Rand
	q        frameHeap
	seq      uint64
	held     *frame // frame waiting to be overtaken (Reorder)
	heldEnd  int64  // when held leaves even if nothing overtook it
	nextFree int64  // userspace rate: when the link is free again
	st       DirStats
}

func newSched(imp Impairment, userRate bool, dir int) *sched {
	s := &sched{}
	s.set(imp, userRate, dir)
	return s
}

// set changes the impairment and reseeds the decisions from imp.Seed.
func (s *sched) set(imp Impairment, userRate bool, dir int) {
	s.imp, s.userRate = imp, userRate
	s.rng = rand.New(rand.NewPCG(imp.Seed, uint64(dir)+0x9e3779b97f4a7c15))
}

func (s *sched) enqueue(f *frame) {
	f.seq = s.seq
	s.seq++
	heap.Push(&s.q, f)
}

// push admits a frame arriving at now.
func (s *sched) push(now int64, data []byte) {
	if s.q.Len() >= maxQueue {
		s.st.HopDropped++
		return
	}
	at := now + int64(s.imp.Delay)
	if s.imp.Jitter > 0 {
		at += s.rng.Int64N(int64(s.imp.Jitter))
	}
	if s.imp.Delay > 0 || s.imp.Jitter > 0 {
		s.st.Delayed++
	}
	f := &frame{at: at, data: data}
	dup := s.imp.Duplicate > 0 && s.rng.Float64() < s.imp.Duplicate
	switch {
	case s.held != nil:
		// f overtakes the held frame, which leaves right behind it.
		h := s.held
		s.held = nil
		s.enqueue(f)
		h.at = max(h.at, f.at)
		s.enqueue(h)
	case s.imp.Reorder > 0 && s.rng.Float64() < s.imp.Reorder:
		s.held, s.heldEnd = f, now+int64(holdTimeout)
		s.st.Reordered++
	default:
		s.enqueue(f)
	}
	if dup {
		s.st.Duplicated++
		s.enqueue(&frame{at: at, data: data}) // frames are never modified, so sharing data is safe
	}
}

// next returns when pop will next have something to do.
func (s *sched) next() (int64, bool) {
	t, ok := int64(0), false
	if s.held != nil {
		t, ok = s.heldEnd, true
	}
	if s.q.Len() > 0 {
		qt := s.q[0].at
		if s.userRate {
			qt = max(qt, s.nextFree)
		}
		if !ok || qt < t {
			t, ok = qt, true
		}
	}
	return t, ok
}

// pop appends to out every frame that may leave at now, in order.
func (s *sched) pop(now int64, out [][]byte) [][]byte {
	if s.held != nil && now >= s.heldEnd {
		s.enqueue(s.held) // keeps its own at, so it may still be delayed
		s.held = nil
	}
	for s.q.Len() > 0 && s.q[0].at <= now {
		f := s.q[0]
		if s.userRate && s.imp.Rate > 0 {
			depart := max(f.at, s.nextFree)
			if depart-f.at > int64(maxRateDelay) {
				heap.Pop(&s.q)
				s.st.RateDropped++
				continue
			}
			if depart > now {
				break
			}
			if depart > f.at {
				s.st.RateQueued++
			}
			bits := int64(len(f.data)-vnetHdrLen) * 8
			s.nextFree = depart + bits*int64(time.Second)/s.imp.Rate
		}
		heap.Pop(&s.q)
		out = append(out, f.data)
	}
	return out
}
