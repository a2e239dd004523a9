package tcp

import (
	"context"
	"net"
	"sync"
)

// connSet is the connections one side holds. They all close together, when
// the side is done or when ctx ends, which is what unblocks every pending
// Read and Write at the deadline. One context registration serves the whole
// set, so a Scale run's held connections carry no per-connection callback
// in the memory it measures.
type connSet struct {
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
	stop   func() bool
}

func newConnSet(ctx context.Context) *connSet {
	cs := &connSet{}
	cs.stop = context.AfterFunc(ctx, cs.closeAll)
	return cs
}

// add adds c to the set. If the set is already closed, c is closed too and
// add reports false.
func (cs *connSet) add(c net.Conn) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		c.Close()
		return false
	}
	cs.conns = append(cs.conns, c)
	return true
}

// snapshot returns the connections added so far.
func (cs *connSet) snapshot() []net.Conn {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return append([]net.Conn(nil), cs.conns...)
}

// close closes every connection and any added later.
func (cs *connSet) close() {
	cs.stop()
	cs.closeAll()
}

func (cs *connSet) closeAll() {
	cs.mu.Lock()
	conns := cs.conns
	cs.conns, cs.closed = nil, true
	cs.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}
