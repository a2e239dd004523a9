package transport

// Key update and AEAD usage limits (docs/protocol.md §5.3).
//
// Each direction's traffic secret ratchets forward one generation per key
// update (handshake.TrafficSecret.Next); a data packet carries the low bit
// of its generation, the key phase, in its type byte. Either side may
// initiate an update once its current keys have sealed the configured
// number of packets and the previous update is confirmed; the peer follows
// when a packet of the next phase authenticates. Generations are counted
// per direction: this side's send generation and the peer's (our receive
// generation) move independently, and the only coupling is that a sender
// never lags behind the generation it receives (it "follows").
//
// Ownership: the send half (sendSecret, sealer, sendFirstPN) belongs to
// whoever holds Conn.sendMu; the receive half (cur, prev, next, nextSecret,
// curFirstPN, prevUntil, authFailures) to the endpoint's receive loop. They
// meet only through atomics: peerGen (published by the receiver, read by
// the sender to follow and to confirm) and the counters Stats reads.

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/flightline/flightline/transport/internal/handshake"
	"github.com/flightline/flightline/transport/internal/monotime"
	"github.com/flightline/flightline/transport/internal/wire"
)

// AEAD usage limits from RFC 9001 §6.6. flightline's packets (≤ 1452 bytes)
// are far smaller than the 2^16 bytes the AES-GCM analysis assumes, so
// these limits are conservative for it.
const (
	// aesGCMConfidentialityLimit is the number of packets one AES-GCM key
	// may seal. ChaCha20-Poly1305 has no practical confidentiality limit
	// (it exceeds 2^62 packets).
	aesGCMConfidentialityLimit = 1 << 23
	// aesGCMIntegrityLimit and chachaIntegrityLimit bound the packets that
	// may fail authentication over a connection's life, across all keys.
	aesGCMIntegrityLimit = 1 << 52
	chachaIntegrityLimit = 1 << 36
	// keyDiscardPTOs is how long, in PTOs after the first packet of a new
	// receive generation, the previous generation's key still opens
	// reordered packets (RFC 9001 §6.5).
	keyDiscardPTOs = 3
)

// ErrKeyLimit closes a connection that reached an AEAD usage limit: too
// many packets failed authentication (an attack, RFC 9001 §6.6 integrity
// limit), or the current key sealed its confidentiality limit because no
// key update could be confirmed.
var ErrKeyLimit = errors.New("flightline: AEAD usage limit reached")

// Reasons sent in the CONNECTION_CLOSE (code 1) when a limit is reached.
const (
	reasonIntegrityLimit       = "AEAD integrity limit reached"
	reasonConfidentialityLimit = "AEAD confidentiality limit reached"
)

// errKeyDiscarded reports a packet of the previous key generation that
// arrived after that key was discarded; it is dropped unopened.
var errKeyDiscarded = errors.New("previous key generation discarded")

// keyLimits are the per-connection key update thresholds.
type keyLimits struct {
	// interval is the number of packets sealed under one key after which
	// this side initiates a key update (as soon as the previous one is
	// confirmed).
	interval uint64
	// confidentiality is the most packets one key may seal (0: no limit).
	// The last one is reserved for CONNECTION_CLOSE.
	confidentiality uint64
	// integrity is the number of authentication failures a connection
	// tolerates; one more closes it.
	integrity uint64
}

// defaultKeyLimits returns the limits for suite with the configured update
// interval (Config.KeyUpdateInterval, already defaulted and range-checked).
func defaultKeyLimits(suite Suite, interval int) keyLimits {
	l := keyLimits{interval: uint64(interval), integrity: aesGCMIntegrityLimit}
	if suite == SuiteAESGCM {
		l.confidentiality = aesGCMConfidentialityLimit
	} else {
		l.integrity = chachaIntegrityLimit
	}
	return l
}

// packetKeys is a connection's packet protection across key updates.
type packetKeys struct {
	limits keyLimits

	// Send half: holder of Conn.sendMu only.
	sendSecret  *handshake.TrafficSecret
	sealer      *handshake.Sealer
	sendFirstPN uint64 // number of the first packet sealer sealed (valid once it sealed one)
	pingAsked   bool   // a PING was queued to get the due update confirmed (this generation)

	// Receive half: receive loop only.
	cur, next    *handshake.Opener
	prev         *handshake.Opener        // nil when discarded
	nextSecret   *handshake.TrafficSecret // next's secret, ratcheted on each update
	curFirstPN   uint64                   // first packet number cur opened (valid when cur.Gen() > 0)
	prevUntil    monotime.Time            // prev is discarded after this
	authFailures uint64                   // across all keys, for the integrity limit

	// Shared.
	peerGen   atomic.Uint64 // cur.Gen(): the peer's send generation as far as we authenticated it
	sendGen   atomic.Uint64 // sealer.Gen(), for Stats
	initiated atomic.Uint64 // updates this side initiated
	failures  atomic.Uint64 // authFailures, for Stats
	// sealedGen is the generation of the last packet sealed: the receiver
	// accepts the peer's next update only once this side sent a packet
	// under the current receive generation (errUpdateTooSoon).
	sealedGen atomic.Uint64
	// oldKeyOpens counts packets opened with the previous generation's key
	// (reordered across an update), for Stats.
	oldKeyOpens atomic.Uint64
}

// newPacketKeys takes over sess's generation-0 keys. It erases the receive
// secret once the next generation's is derived; the send secret is kept
// until this side moves on.
func newPacketKeys(sess *handshake.Session, limits keyLimits) *packetKeys {
	k := &packetKeys{
		limits:     limits,
		sendSecret: sess.SendSecret,
		sealer:     sess.Send,
		cur:        sess.Recv,
		nextSecret: sess.RecvSecret.Next(),
	}
	sess.RecvSecret.Erase()
	k.next = k.nextSecret.NewOpener()
	return k
}

// --- send half (caller holds Conn.sendMu) ---

// ready prepares the send key for the next packet: it follows the peer to a
// later generation, initiates an update when one is due and allowed, and
// reports whether a packet other than the final CONNECTION_CLOSE may still
// be sealed (ok). largestAcked/haveAcked are the largest packet number the
// peer acknowledged and whether it acknowledged any. ping asks the caller,
// once per generation, to make a packet ack-eliciting: an update that is
// due but unconfirmed waits for an ACK, and a side that sends only ACKs
// would otherwise never get one.
func (k *packetKeys) ready(largestAcked uint64, haveAcked bool) (ok, ping bool) {
	for k.sendSecret.Gen() < k.peerGen.Load() {
		k.stepSend() // the peer updated: follow (RFC 9001 §6.2)
	}
	if k.sealer.Sealed() >= k.limits.interval {
		if k.confirmed(largestAcked, haveAcked) {
			k.stepSend()
			k.initiated.Add(1)
		} else if !k.pingAsked {
			k.pingAsked, ping = true, true
		}
	}
	return k.limits.confidentiality == 0 || k.sealer.Sealed()+1 < k.limits.confidentiality, ping
}

// confirmed reports whether the current send generation is confirmed, the
// condition for initiating the next update (RFC 9001 §6.1): the peer
// acknowledged a packet sealed under it, and it authenticated a packet from
// the peer of that generation (so the peer sends under it too and will
// look for the next phase with the next key).
func (k *packetKeys) confirmed(largestAcked uint64, haveAcked bool) bool {
	return k.sealer.Sealed() > 0 && haveAcked && largestAcked >= k.sendFirstPN &&
		k.peerGen.Load() >= k.sendSecret.Gen()
}

// stepSend moves the send direction to the next generation and erases the
// old secret.
func (k *packetKeys) stepSend() {
	next := k.sendSecret.Next()
	k.sendSecret.Erase()
	k.sendSecret = next
	k.sealer = next.NewSealer()
	k.pingAsked = false
	k.sendGen.Store(next.Gen())
}

// seal appends packet pn's header (with the current key phase) and its
// sealed plaintext to dst. Call ready first.
func (k *packetKeys) seal(dst []byte, connID, pn uint64, plain []byte) []byte {
	if k.sealer.Sealed() == 0 {
		k.sendFirstPN = pn
	}
	b := wire.AppendDataHeader(dst, wire.DataHeader{ConnID: connID, PN: pn, KeyPhase: k.sendSecret.Phase()})
	k.sealedGen.Store(k.sendSecret.Gen())
	return k.sealer.Seal(b, b[:wire.DataHeaderLen], pn, plain)
}

// --- receive half (receive loop only) ---

// open authenticates and decrypts data packet pkt (header hdr) in place.
// The key is chosen by the phase bit and the packet number (RFC 9001 §6.3,
// §6.5): the current phase opens with the current key; the other phase
// with the previous key if the packet is older than the first one of the
// current generation, else with the next key. Key state changes only after
// a packet authenticated: a next-phase packet that fails changes nothing
// (it is counted), one that opens makes the next key current and keeps the
// old one for keyDiscardPTOs × pto() for reordered packets (pto is only
// called then). It returns errIntegrityLimit once more packets failed than
// the limit allows, and errUpdateTooSoon for an update the peer cannot have
// had confirmed.
func (k *packetKeys) open(now monotime.Time, hdr wire.DataHeader, pkt []byte, pto func() time.Duration) ([]byte, error) {
	if k.prev != nil && now.After(k.prevUntil) {
		k.prev = nil
	}
	aad, ct := pkt[:wire.DataHeaderLen], pkt[wire.DataHeaderLen:]
	var o *handshake.Opener
	switch gen := k.cur.Gen(); {
	case uint64(hdr.KeyPhase) == gen&1:
		o = k.cur
	case gen > 0 && hdr.PN < k.curFirstPN:
		if k.prev == nil {
			return nil, errKeyDiscarded
		}
		o = k.prev
	default:
		o = k.next
	}
	plain, err := o.Open(ct[:0], aad, hdr.PN, ct)
	if err != nil {
		k.authFailures++
		k.failures.Store(k.authFailures)
		if k.authFailures > k.limits.integrity {
			return nil, errIntegrityLimit
		}
		return nil, err
	}
	if o == k.prev {
		k.oldKeyOpens.Add(1)
	}
	if o == k.next {
		if g := k.cur.Gen(); g > 0 && k.sealedGen.Load() < g {
			return nil, errUpdateTooSoon
		}
		k.prev, k.prevUntil = k.cur, now.Add(keyDiscardPTOs*pto())
		k.cur, k.curFirstPN = k.next, hdr.PN
		old := k.nextSecret
		k.nextSecret = old.Next()
		old.Erase()
		k.next = k.nextSecret.NewOpener()
		k.peerGen.Store(k.cur.Gen())
	}
	return plain, nil
}

var errIntegrityLimit = errors.New(reasonIntegrityLimit)

// errUpdateTooSoon is an authenticated packet of a second key update before
// this side sent anything under the first: the peer cannot have had the
// first confirmed (RFC 9001 §6.2, KEY_UPDATE_ERROR). Refusing it also
// bounds how often a peer can make the shared receive loop derive keys: at
// most once per packet this side sends.
var errUpdateTooSoon = errors.New("key update before the previous one was confirmed")

// openPacket opens a data packet for the receive path: a packet that does
// not authenticate (or needs a discarded key) is a counted drop; one that
// breaks an AEAD limit or the key update rules also closes the connection.
func (c *Conn) openPacket(now monotime.Time, hdr wire.DataHeader, pkt []byte) ([]byte, bool) {
	plain, err := c.keys.open(now, hdr, pkt, c.pto)
	switch err {
	case nil:
		return plain, true
	case errIntegrityLimit:
		c.stats.dropDecrypt.Add(1)
		c.closeKeyLimit(reasonIntegrityLimit)
	case errUpdateTooSoon:
		c.stats.protocolErrors.Add(1)
		c.cfg.Logf("flightline: conn %x: closing: %v", c.localID, err)
		c.CloseWithErrorAsync(1, err.Error())
	default:
		c.stats.dropDecrypt.Add(1)
	}
	return nil, false
}

// closeKeyLimit closes the connection because an AEAD limit was reached:
// CONNECTION_CLOSE code 1 with reason, and ErrKeyLimit for local callers.
func (c *Conn) closeKeyLimit(reason string) {
	c.ctrlMu.Lock()
	first := c.ctrl.closeFrame == nil
	if first {
		c.ctrl.closeFrame = &closeFrame{code: 1, reason: reason}
	}
	c.ctrlMu.Unlock()
	if first {
		c.cfg.Logf("flightline: conn %x: closing: %s", c.localID, reason)
	}
	c.shutdown(&ConnError{Code: 1, Reason: reason, Err: ErrKeyLimit})
}

// keysReady runs the send half's key update step before a packet is built
// (caller holds sendMu). It returns false, and closes the connection, when
// the current key reached its confidentiality limit without an update: the
// one packet left is the CONNECTION_CLOSE.
func (c *Conn) keysReady() bool {
	have := c.haveAcked.Load() // before largestAcked: valid once have is set
	ok, ping := c.keys.ready(c.largestAcked.Load(), have)
	if ping {
		c.ctrlMu.Lock()
		c.ctrl.ping = true
		c.ctrlMu.Unlock()
	}
	if ok {
		return true
	}
	c.closeKeyLimit(reasonConfidentialityLimit)
	return false
}
