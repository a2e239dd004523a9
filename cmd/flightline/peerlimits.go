package main

import (
	"sync"
	"time"

	"github.com/flightline/flightline/transport"
)

// Defaults of listen's per-peer caps.
const (
	// defaultMaxStreamsPerPeer is how many transfers one peer (public key)
	// may have running at once, over all its connections. It is also each
	// connection's transport stream limit, so a sender on one connection
	// waits for a slot instead of being refused.
	defaultMaxStreamsPerPeer = 32
	// defaultMaxBytesPerPeer caps the announced sizes of one peer's running
	// transfers together: what one sender can make the receiver reserve
	// on disk at once.
	defaultMaxBytesPerPeer = 1 << 40
	// defaultHeaderTimeout is how long an accepted stream may take to
	// deliver its header before it is reset.
	defaultHeaderTimeout = 10 * time.Second
)

// peerLimits caps what one peer, identified by its authenticated public
// key, has in progress at once across all its connections: running
// transfers (a stream counts from accept, header or not) and the bytes their
// headers announced. A nil *peerLimits imposes no caps. Safe for concurrent
// use.
type peerLimits struct {
	maxStreams int
	maxBytes   uint64

	mu  sync.Mutex
	use map[transport.PublicKey]*peerUse
}

type peerUse struct {
	streams int
	bytes   uint64
}

func newPeerLimits(maxStreams int, maxBytes uint64) *peerLimits {
	return &peerLimits{maxStreams: maxStreams, maxBytes: maxBytes, use: make(map[transport.PublicKey]*peerUse)}
}

func (l *peerLimits) acquireStream(k transport.PublicKey) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.use[k]
	if u == nil {
		u = &peerUse{}
		l.use[k] = u
	}
	if u.streams >= l.maxStreams {
		return false
	}
	u.streams++
	return true
}

func (l *peerLimits) releaseStream(k transport.PublicKey) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.use[k]
	u.streams--
	if u.streams == 0 && u.bytes == 0 {
		delete(l.use, k)
	}
}

func (l *peerLimits) acquireBytes(k transport.PublicKey, n uint64) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.use[k] // held: acquireStream came first
	if n > l.maxBytes-u.bytes {
		return false
	}
	u.bytes += n
	return true
}

func (l *peerLimits) releaseBytes(k transport.PublicKey, n uint64) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.use[k].bytes -= n
}
