package transport

import (
	"context"
	"sync"
)

// msgQueue holds received messages until the application takes them. It
// is a bounded FIFO that allocates only for messages actually queued: a
// buffered channel of DefaultMessageQueue slots cost every connection 24 KiB
// up front (measured: 27 KiB of 72 KiB per idle connection), although most
// connections never receive a message.
//
// The queue is a ring that grows by doubling up to limit slots and no
// further: a peer that keeps it non-empty (pushing as fast as the
// application pops) reuses the same slots forever. Growing a slice by
// append and compacting only when empty, as it once did, let such a peer
// grow it without bound. An emptied ring bigger than minRingRetain slots is
// dropped, so a burst's backing array is given back.
//
// One goroutine pushes (the endpoint's receive loop, which checks room
// first); any number pop.
type msgQueue struct {
	mu    sync.Mutex
	limit int
	ring  [][]byte // len(ring) is the capacity; ring[head:head+n] (mod len) are queued
	head  int
	n     int
	ready signal // broadcast when a message is pushed
}

// minRingRetain is the largest ring kept after it empties.
const minRingRetain = 64

func (m *msgQueue) init(limit int) { m.limit = limit }

// room is how many more messages fit. Only pops happen concurrently with
// the single pusher, so room never shrinks between room and push.
func (m *msgQueue) room() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.limit - m.n
}

// push appends msg; the caller checked room.
func (m *msgQueue) push(msg []byte) {
	m.mu.Lock()
	if m.n == len(m.ring) {
		m.growLocked()
	}
	m.ring[(m.head+m.n)%len(m.ring)] = msg
	m.n++
	m.ready.broadcast()
	m.mu.Unlock()
}

// growLocked doubles the ring (at most to limit slots; a push beyond limit
// still succeeds, as the caller checked room, but cannot happen), keeping
// the queued order.
func (m *msgQueue) growLocked() {
	size := max(2*len(m.ring), 8)
	if size > m.limit {
		size = max(m.limit, m.n+1)
	}
	ring := make([][]byte, size)
	for i := range m.n {
		ring[i] = m.ring[(m.head+i)%len(m.ring)]
	}
	m.ring, m.head = ring, 0
}

// capacity is the ring's current slot count (tests).
func (m *msgQueue) capacity() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.ring)
}

// tryPop returns the oldest message, or false with a channel closed by the
// next push.
func (m *msgQueue) tryPop() ([]byte, <-chan struct{}, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.n > 0 {
		msg := m.ring[m.head]
		m.ring[m.head] = nil
		m.head = (m.head + 1) % len(m.ring)
		m.n--
		if m.n == 0 {
			m.head = 0
			if len(m.ring) > minRingRetain {
				m.ring = nil // a burst is over: give its backing array back
			}
		}
		return msg, nil, true
	}
	return nil, m.ready.wait(), false
}

// pop waits for a message until ctx ends or closed is closed; after closed,
// messages already queued are still returned.
func (m *msgQueue) pop(ctx context.Context, closed <-chan struct{}) ([]byte, bool, error) {
	for {
		msg, wait, ok := m.tryPop()
		if ok {
			return msg, true, nil
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-closed:
			if msg, _, ok := m.tryPop(); ok {
				return msg, true, nil
			}
			return nil, false, nil
		}
	}
}
