package transport

import "sync/atomic"

type endpointStats struct {
	dropShort, dropUnknownConn, dropHandshake, dropNotListening atomic.Uint64
	cookiesSent, handshakes                                     atomic.Uint64
	handshakeQueueDrops, rateLimited, initiationsProcessed      atomic.Uint64
	malformedPayload, connsRefused, acceptQueueFull             atomic.Uint64
	pendingExpired                                              atomic.Uint64
}

// EndpointStats counts datagrams the endpoint dropped before any connection
// saw them, and handshake activity. A rejected handshake message is counted
// in one of the Dropped*, HandshakeQueueDrops, HandshakesRateLimited or
// ConnectionsRefused counters (a duplicate of a response already processed
// is ignored uncounted).
type EndpointStats struct {
	DroppedMalformed    uint64 // too short or unknown packet type
	DroppedUnknownConn  uint64 // data for a connection ID we do not have
	DroppedHandshake    uint64 // handshake messages that failed MAC, decryption, allowlist, replay or payload checks
	DroppedNotListening uint64 // initiations to an endpoint that does not accept
	CookiesSent         uint64 // stateless retries demanded under load
	// Handshakes counts handshakes completed: dialled connections when the
	// response arrived, listener-side ones when the response was sent (they
	// reach Accept only once their initiator proved its address).
	Handshakes uint64

	// HandshakeQueueDrops counts handshake messages dropped because the
	// bounded queue in front of the handshake workers was full.
	HandshakeQueueDrops uint64
	// HandshakesRateLimited counts initiations with a valid cookie dropped
	// under load by the per-source token bucket (SourceHandshakeRate,
	// SourceHandshakeBurst), before any DH.
	HandshakesRateLimited uint64
	// InitiationsProcessed counts initiations that passed the MAC, cookie
	// and rate checks and so cost the listener Diffie-Hellman work: the
	// measure of what a flood can make it compute.
	InitiationsProcessed uint64
	// HandshakesMalformedPayload counts handshakes from authenticated peers
	// whose payload was unusable (unknown suite, bad framing, malformed
	// transport parameters); also in DroppedHandshake. Each source is
	// logged at most once a minute.
	HandshakesMalformedPayload uint64
	// ConnectionsRefused counts initiations dropped before any cryptography
	// because Config.MaxConnections, Config.MaxConnectionsPerSource, the
	// bound on connections waiting for address proof, or the accept queue
	// was full. The dialer retries until its HandshakeTimeout.
	ConnectionsRefused uint64
	// AcceptQueueFull counts connections closed (code 2, "server busy")
	// because the accept queue was full when they proved their address.
	AcceptQueueFull uint64
	// PendingExpired counts listener-side connections dropped because
	// their initiator never proved it receives at its address (typically a
	// spoofed source) within HandshakeTimeout.
	PendingExpired uint64
}

// Stats returns the endpoint's drop and handshake counters.
func (e *Endpoint) Stats() EndpointStats {
	s := &e.stats
	return EndpointStats{
		DroppedMalformed:           s.dropShort.Load(),
		DroppedUnknownConn:         s.dropUnknownConn.Load(),
		DroppedHandshake:           s.dropHandshake.Load(),
		DroppedNotListening:        s.dropNotListening.Load(),
		CookiesSent:                s.cookiesSent.Load(),
		Handshakes:                 s.handshakes.Load(),
		HandshakeQueueDrops:        s.handshakeQueueDrops.Load(),
		HandshakesRateLimited:      s.rateLimited.Load(),
		InitiationsProcessed:       s.initiationsProcessed.Load(),
		HandshakesMalformedPayload: s.malformedPayload.Load(),
		ConnectionsRefused:         s.connsRefused.Load(),
		AcceptQueueFull:            s.acceptQueueFull.Load(),
		PendingExpired:             s.pendingExpired.Load(),
	}
}
