package memlink

import "github.com/flightline/flightline/transport/internal/monotime"

// delayed is a packet waiting in a direction's delay queue.
type delayed struct {
	p   *pbuf
	at  monotime.Time // delivery time
	seq uint64        // insertion order, breaks ties so equal times are FIFO
}

// delayHeap is a binary min-heap on (at, seq). Hand-written rather than
// container/heap to avoid boxing every element in an interface.
type delayHeap []delayed

func (h delayHeap) less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}

func (h *delayHeap) push(x delayed) {
	*h = append(*h, x)
	s := *h
	for i := len(s) - 1; i > 0; {
		parent := (i - 1) / 2
		if !s.less(i, parent) {
			break
		}
		s[i], s[parent] = s[parent], s[i]
		i = parent
	}
}

func (h *delayHeap) pop() delayed {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s[last] = delayed{}
	s = s[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(s) && s.less(l, m) {
			m = l
		}
		if r < len(s) && s.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}
