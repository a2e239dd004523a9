package transport

// Path validation and the anti-amplification budget of an unvalidated path
// (RFC 9000 §8.2 and §9, in spirit; docs/protocol.md §7.4).
//
// Connection IDs, not addresses, identify a connection, so when the newest
// authenticated packet arrives from a new address (a NAT rebinding, or the
// peer moved) the connection follows it. But a packet's source address is
// not authenticated: an observer can re-send a copy of the peer's newest
// packet from a victim's address before the original arrives. So the new
// address is only a candidate until the peer proves it receives there:
//
//   - we send a PATH_CHALLENGE with 8 unpredictable bytes to it, and the
//     path is validated when a PATH_RESPONSE echoing them arrives from it;
//   - until then we send it at most amplificationFactor (3) times the bytes
//     we received from it, counted per packet on both sides (the budget),
//     and only path frames and ACKs: stream data, retransmissions and other
//     control frames wait the round trip validation takes;
//   - the challenge is sent again every 2×PTO, maxPathChallenges times in
//     all; when the last one expires unanswered the connection returns to
//     the last validated address (and counts a failure);
//   - a newest packet from the last validated address returns there at once.
//
// The client's validated address starts as the dialed one, the server's as
// the initiation's source (proved by the first authenticated packet, see
// Conn.addrValidated), so a client keeps the dialed address unless the
// server's move is validated, and a spoofed move costs at most 3× what the
// spoofer sent, and only until validation fails.
//
// A PATH_CHALLENGE is answered on the path it arrived from: the response
// goes to the challenge's source address if that is the validated address
// or the candidate (within the candidate's budget); a challenge from any
// other address (only a reordered older packet can carry one) is dropped
// unanswered and counted — the peer challenges again.

import (
	"crypto/rand"
	"net/netip"
	"sync"
	"time"

	"github.com/flightline/flightline/transport/internal/flight"
	"github.com/flightline/flightline/transport/internal/handshake"
	"github.com/flightline/flightline/transport/internal/monotime"
	"github.com/flightline/flightline/transport/internal/wire"
)

const (
	// amplificationFactor bounds what an unvalidated address is sent, as
	// a multiple of what was received from it (RFC 9000 §8).
	amplificationFactor = 3
	// maxPathChallenges is how many challenge timeouts (each 2×PTO, at
	// least minPathChallengeInterval) a candidate path gets before
	// validation fails: 3 × 2×PTO ≥ RFC 9000 §8.2.4's 3×PTO.
	maxPathChallenges = 3
	// minPathChallengeInterval keeps a tiny loopback PTO from failing a
	// path that is merely slower than the old one.
	minPathChallengeInterval = 10 * time.Millisecond
	// maxPendingPathResponses bounds the PATH_RESPONSEs waiting to be sent;
	// the oldest is dropped beyond it (the peer challenges again).
	maxPendingPathResponses = 4
)

// pathState is the connection's view of the peer's address. Its mutex is a
// leaf lock; Conn.peerAddr is stored only under it (after newConn).
type pathState struct {
	mu sync.Mutex
	// validated is the last address the peer proved it receives at.
	validated netip.AddrPort
	// probing: peerAddr is candidate, not yet validated.
	probing   bool
	candidate netip.AddrPort
	// gen counts candidates, so a packet built for one is not charged to
	// the next.
	gen       uint64
	challenge [wire.PathDataLen]byte
	// received and sent are the bytes received from and sent (reserved at
	// build time, before the datapath) to the candidate since it became
	// one: sent ≤ amplificationFactor × received always holds.
	received, sent uint64
	challengeDue   bool
	expiries       int
	nextAt         monotime.Time // next challenge timeout (probing only)

	responses []pathResponse // FIFO, at most maxPendingPathResponses

	stats pathStats
}

type pathResponse struct {
	data [wire.PathDataLen]byte
	addr netip.AddrPort
}

// pathStats are the path counters (see Stats).
type pathStats struct {
	validations, failures, abandoned       uint64
	challengesSent, responsesSent          uint64
	responsesDropped, amplificationLimited uint64
}

func (ps *pathState) init(peer netip.AddrPort) {
	ps.validated = peer
	ps.responses = make([]pathResponse, 0, maxPendingPathResponses)
}

// popResponseLocked removes the oldest queued response, keeping the
// backing array (at most maxPendingPathResponses, so the shift is cheap).
func (ps *pathState) popResponseLocked() {
	n := copy(ps.responses, ps.responses[1:])
	ps.responses = ps.responses[:n]
}

// budgetLocked is what the candidate may still be sent.
func (ps *pathState) budgetLocked() uint64 {
	if limit := amplificationFactor * ps.received; limit > ps.sent {
		return limit - ps.sent
	}
	return 0
}

// pathInterval is how long one challenge waits for its response.
func (c *Conn) pathInterval() time.Duration {
	return max(2*c.pto(), minPathChallengeInterval)
}

// pathOnPacket runs for every authenticated packet once its frames parsed,
// before they are handled. newest: its number is the highest seen.
func (c *Conn) pathOnPacket(now monotime.Time, from netip.AddrPort, size int, newest bool) {
	ps := &c.path
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.probing && from == ps.candidate {
		ps.received += uint64(size)
		if ps.budgetLocked() > 0 {
			c.signalSend() // what waited for budget may fit now
		}
	}
	// Only the newest packet may move the connection: a reordered older
	// one (or a copy an observer re-sent from elsewhere, racing the
	// original) must not send us back to an address the peer left.
	if !newest || from == *c.peerAddr.Load() {
		return
	}
	addr := from // copied inside the branch: storing &from would move it to the heap on every packet
	if from == ps.validated {
		// Back on the proved address (the peer's packets raced a spoofed
		// copy, or it returned): no validation needed.
		ps.probing = false
		ps.gen++
		ps.stats.abandoned++
		c.peerAddr.Store(&addr)
		c.pathEvent(pathReturned, addr)
		c.signalSend()
		return
	}
	ps.probing, ps.candidate = true, from
	ps.gen++
	ps.received, ps.sent = uint64(size), 0
	rand.Read(ps.challenge[:]) // never fails (crypto/rand, Go ≥ 1.24)
	ps.challengeDue, ps.expiries = true, 0
	ps.nextAt = now.Add(c.pathInterval())
	c.peerAddr.Store(&addr)
	c.pathEvent(pathCandidate, addr)
	c.signalSend()
}

// pathOnChallenge queues the answer to a PATH_CHALLENGE from addr.
func (c *Conn) pathOnChallenge(data [wire.PathDataLen]byte, from netip.AddrPort) {
	ps := &c.path
	ps.mu.Lock()
	if len(ps.responses) == maxPendingPathResponses {
		ps.popResponseLocked()
		ps.stats.responsesDropped++
	}
	ps.responses = append(ps.responses, pathResponse{data: data, addr: from})
	ps.mu.Unlock()
	c.signalSend()
}

// pathOnResponse validates the candidate if a PATH_RESPONSE from it echoes
// its challenge. Any other response (late, for an abandoned candidate, or
// from elsewhere) is ignored: a response only proves that its sender
// received the challenge, and only the candidate's own proves the
// candidate.
func (c *Conn) pathOnResponse(data [wire.PathDataLen]byte, from netip.AddrPort) {
	ps := &c.path
	ps.mu.Lock()
	if !ps.probing || from != ps.candidate || data != ps.challenge {
		ps.mu.Unlock()
		return
	}
	ps.probing, ps.validated = false, ps.candidate
	ps.gen++
	ps.stats.validations++
	c.pathEvent(pathValidated, from)
	ps.mu.Unlock()
	c.signalSend() // stream data waited for the validation
}

// pathDeadline is the candidate's next challenge timeout (0: none).
func (c *Conn) pathDeadline() monotime.Time {
	ps := &c.path
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if !ps.probing {
		return 0
	}
	return ps.nextAt
}

// pathOnTimer re-sends the challenge when one timed out, and fails the
// validation (back to the validated address) after maxPathChallenges.
func (c *Conn) pathOnTimer(now monotime.Time) {
	ps := &c.path
	ps.mu.Lock()
	if !ps.probing || now < ps.nextAt {
		ps.mu.Unlock()
		return
	}
	ps.expiries++
	if ps.expiries < maxPathChallenges {
		ps.challengeDue = true
		ps.nextAt = now.Add(c.pathInterval())
		ps.mu.Unlock()
		return
	}
	ps.probing = false
	ps.gen++
	addr := ps.validated
	c.peerAddr.Store(&addr)
	ps.stats.failures++
	c.pathEvent(pathFailed, addr)
	ps.mu.Unlock()
	c.cfg.Logf("flightline: conn %x: path validation failed, back to %v", c.localID, addr)
}

// pathEventKind names a change of the peer's address, for tests.
type pathEventKind uint8

const (
	pathCandidate pathEventKind = iota // moved to an unvalidated address
	pathValidated                      // the candidate answered its challenge
	pathFailed                         // unanswered: back to the validated address
	pathReturned                       // the peer came back from the validated address
)

// pathEvent reports a path change to the test hook, if any. It runs under
// path.mu, so that nothing is sent under the new state before the hook
// returned; the hook must not call into the Conn.
func (c *Conn) pathEvent(kind pathEventKind, addr netip.AddrPort) {
	if h := c.testHooks.Load(); h != nil && h.pathEvent != nil {
		h.pathEvent(kind, addr)
	}
}

// buildPathPacket runs first in buildPacket, holding sendMu. It chooses the
// packet's destination (p.addr) and, when path frames are waiting or the
// destination is an unvalidated candidate, builds the packet itself:
// handled reports that, and ok whether a packet was built. A candidate
// gets path frames and ACKs only, sized so the whole sealed packet fits
// its budget; with nothing of those to send (or no budget) nothing goes
// out, and everything else waits for validation.
func (c *Conn) buildPathPacket(now monotime.Time, p *outPacket) (ok, handled bool) {
	ps := &c.path
	ps.mu.Lock()
	// Drop responses that cannot go on the path their challenge came from.
	for len(ps.responses) > 0 {
		a := ps.responses[0].addr
		if a == ps.validated || (ps.probing && a == ps.candidate) {
			break
		}
		ps.popResponseLocked()
		ps.stats.responsesDropped++
	}
	var dst netip.AddrPort
	switch {
	case len(ps.responses) > 0:
		dst = ps.responses[0].addr
	case ps.probing:
		dst = ps.candidate
	default:
		p.addr = *c.peerAddr.Load() // == validated
		ps.mu.Unlock()
		return false, false
	}
	p.addr = dst
	room := c.maxPlain()
	limited := ps.probing && dst == ps.candidate
	if limited {
		budget := int(min(ps.budgetLocked(), uint64(c.cfg.MaxPacketSize)))
		room = min(room, budget-wire.DataHeaderLen-handshake.Overhead)
	}
	plain := p.plain[:0]
	for len(ps.responses) > 0 && ps.responses[0].addr == dst && len(plain)+wire.PathFrameLen <= room {
		plain = wire.AppendPathResponse(plain, ps.responses[0].data)
		ps.popResponseLocked()
		ps.stats.responsesSent++
	}
	if ps.probing && dst == ps.candidate && ps.challengeDue && len(plain)+wire.PathFrameLen <= room {
		plain = wire.AppendPathChallenge(plain, ps.challenge)
		ps.challengeDue = false
		ps.stats.challengesSent++
	}
	gen := ps.gen
	ps.mu.Unlock()

	c.ackMu.Lock()
	if c.acks.pending() && (len(plain) > 0 || c.acks.owed(now)) && room > 0 && len(plain)+c.acks.frameLen(now) <= room {
		plain = c.acks.appendFrame(plain, now)
	}
	c.ackMu.Unlock()
	if len(plain) == 0 {
		if limited {
			ps.mu.Lock()
			ps.stats.amplificationLimited++
			ps.mu.Unlock()
		}
		return false, limited
	}
	p.kind, p.s, p.stream, p.charged, p.retx = kindUntracked, nil, flight.Control, 0, 0
	p.pn = c.nextPN.Add(1) - 1
	b := c.keys.seal(p.wire[:0], c.remoteID, p.pn, plain)
	p.n = len(b)
	c.pacer.OnSent(now, p.n, c.cc.PacingRate())
	ps.mu.Lock()
	if limited && ps.gen == gen {
		ps.sent += uint64(p.n)
	}
	ps.mu.Unlock()
	return true, true
}

// pathCloseAddr is where a CONNECTION_CLOSE of n bytes goes: the current
// address if it is validated or its budget allows n more bytes (charged),
// else the validated address.
func (c *Conn) pathCloseAddr(n int) netip.AddrPort {
	ps := &c.path
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if !ps.probing {
		return *c.peerAddr.Load()
	}
	if ps.budgetLocked() >= uint64(n) {
		ps.sent += uint64(n)
		return ps.candidate
	}
	return ps.validated
}

// pathStatsSnapshot copies the path counters for Stats.
func (c *Conn) pathStatsSnapshot() pathStats {
	c.path.mu.Lock()
	defer c.path.mu.Unlock()
	return c.path.stats
}
