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
// One goroutine pushes (the endpoint's receive loop, which checks room
// first); any number pop.
type msgQueue struct {
	mu    sync.Mutex
	limit int
	head  int
	q     [][]byte
	ready signal // broadcast when a message is pushed
}

func (m *msgQueue) init(limit int) { m.limit = limit }

// room is how many more messages fit. Only pops happen concurrently with
// the single pusher, so room never shrinks between room and push.
func (m *msgQueue) room() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.limit - (len(m.q) - m.head)
}

// push appends msg; the caller checked room.
func (m *msgQueue) push(msg []byte) {
	m.mu.Lock()
	if m.head > 0 && m.head == len(m.q) {
		clear(m.q)
		m.q, m.head = m.q[:0], 0
	}
	m.q = append(m.q, msg)
	m.ready.broadcast()
	m.mu.Unlock()
}

// tryPop returns the oldest message, or false with a channel closed by the
// next push.
func (m *msgQueue) tryPop() ([]byte, <-chan struct{}, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.head < len(m.q) {
		msg := m.q[m.head]
		m.q[m.head] = nil
		m.head++
		if m.head == len(m.q) {
			m.q, m.head = m.q[:0], 0
			if cap(m.q) > 64 {
				m.q = nil // a burst is over: give its backing array back
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
