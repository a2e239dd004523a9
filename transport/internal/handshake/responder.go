package handshake

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// DefaultReplayCapacity is the default bound on initiator keys whose newest
// timestamp a Responder remembers.
const DefaultReplayCapacity = 1 << 16

// ResponderConfig configures a Responder.
type ResponderConfig struct {
	// Static is the responder's long-term key. Required.
	Static PrivateKey
	// Allow decides whether an authenticated initiator key may connect.
	// Default (nil): accept any initiator.
	Allow func(PublicKey) bool
	// UnderLoad reports whether the listener is overloaded. While it
	// returns true, initiations without a valid mac2 get a cookie reply and
	// cost no DH and no state. Default (nil): never under load.
	UnderLoad func() bool
	// Now is the wall clock for cookie secret rotation. Default time.Now.
	Now func() time.Time
	// Rand is the source of ephemeral keys, cookie secrets and nonces.
	// Default crypto/rand.Reader. A non-default reader is only read under
	// a mutex, so it need not be safe for concurrent use.
	Rand io.Reader
	// ReplayCapacity bounds how many initiator keys' newest timestamps are
	// remembered. Default DefaultReplayCapacity (about 5 MiB at most).
	ReplayCapacity int
	// Admit, when set, is the last check before any Diffie-Hellman: it is
	// called for every initiation whose mac1 verified (and, when underLoad,
	// whose mac2 verified too, so src is known to receive at its address)
	// with the source and the under-load decision. A non-nil error rejects
	// the initiation: Accept returns it wrapped and does no DH. Listeners
	// use it for per-source rate limits that a spoofer cannot exhaust for
	// someone else. Default (nil): admit all.
	Admit func(src netip.AddrPort, underLoad bool) error
}

// Responder answers initiations for one listener. It is safe for concurrent
// use.
//
// State: the cookie secret, and the newest accepted timestamp per
// authenticated initiator key (bounded by ReplayCapacity). Nothing else
// survives an Accept call; in particular a message failing mac1, or lacking
// mac2 while under load, leaves no trace.
type Responder struct {
	static    PrivateKey
	pub       PublicKey
	mac1Key   [32]byte
	cookieKey [32]byte

	allow     func(PublicKey) bool
	underLoad func() bool
	admit     func(netip.AddrPort, bool) error
	now       func() time.Time

	rnd lockedReader

	cookies cookieJar
	replay  replayTable
}

// NewResponder validates cfg and returns a Responder.
func NewResponder(cfg ResponderConfig) (*Responder, error) {
	if cfg.Static.IsZero() {
		return nil, fmt.Errorf("new responder: no static key")
	}
	if cfg.ReplayCapacity < 0 {
		return nil, fmt.Errorf("new responder: negative ReplayCapacity %d", cfg.ReplayCapacity)
	}
	if cfg.ReplayCapacity == 0 {
		cfg.ReplayCapacity = DefaultReplayCapacity
	}
	r := &Responder{
		static:    cfg.Static,
		pub:       cfg.Static.Public(),
		allow:     cfg.Allow,
		underLoad: cfg.UnderLoad,
		admit:     cfg.Admit,
		now:       cfg.Now,
		rnd:       lockedReader{r: cfg.Rand, lock: cfg.Rand != nil},
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.rnd.r == nil {
		r.rnd.r = rand.Reader
	}
	r.mac1Key = mac1Key(&r.pub)
	r.cookieKey = cookieKey(&r.pub)
	r.replay.init(cfg.ReplayCapacity)
	return r, nil
}

// PublicKey returns the responder's static public key.
func (r *Responder) PublicKey() PublicKey { return r.pub }

// lockedReader serialises reads from a caller-provided reader;
// crypto/rand.Reader is already safe for concurrent use and is not locked.
type lockedReader struct {
	mu   sync.Mutex
	r    io.Reader
	lock bool
}

func (l *lockedReader) Read(p []byte) (int, error) {
	if l.lock {
		l.mu.Lock()
		defer l.mu.Unlock()
	}
	return io.ReadFull(l.r, p)
}

// Accept handles one initiation received from src. localConnID is the
// connection ID the responder assigns (sent back as senderConnID) and payload
// the responder's application payload (at most MaxPayload bytes).
//
// On success exactly one of res (with response, to send back) and
// cookieReply (to send back instead, when under load) is non-nil. Errors:
// ErrMalformed, ErrMAC (wrong responder key or junk; checked before any DH),
// ErrDecrypt (the initiator does not hold the keys it claims), ErrNotAllowed,
// ErrReplay (timestamp not newer than the newest accepted from that key),
// ErrPayloadTooLarge, ErrMalformedPayload (authenticated, but the suite or
// payload framing is invalid), or the error of ResponderConfig.Admit. Callers should not tear down an existing session with
// the same peer until the new one has received an authenticated packet:
// an initiation replayed after its key fell out of the bounded replay table
// is accepted again, but its sender cannot use the resulting keys.
func (r *Responder) Accept(msg []byte, src netip.AddrPort, localConnID uint64, payload []byte) (res *Result, response []byte, cookieReply []byte, err error) {
	if len(payload) > MaxPayload {
		return nil, nil, nil, fmt.Errorf("accept: %w: %d bytes, max %d", ErrPayloadTooLarge, len(payload), MaxPayload)
	}
	if err := checkHeader(msg, TypeInitiation, MinInitiationLen, MaxInitiationLen); err != nil {
		return nil, nil, nil, fmt.Errorf("accept: %w", err)
	}
	mac1Off := len(msg) - 2*macSize
	mac2Off := len(msg) - macSize
	want := mac(r.mac1Key[:], msg[:mac1Off])
	if !macEqual(want[:], msg[mac1Off:mac2Off]) {
		return nil, nil, nil, fmt.Errorf("accept: %w (corrupted, or built for another responder key)", ErrMAC)
	}
	senderID := binary.BigEndian.Uint64(msg[initSenderOff:])

	loaded := r.underLoad != nil && r.underLoad()
	if loaded {
		ok, cookie, err := r.checkMAC2(msg[:mac2Off], msg[mac2Off:], src)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("accept: %w", err)
		}
		if !ok {
			reply, err := makeCookieReply(&r.cookieKey, &cookie, senderID, msg[mac1Off:mac2Off], &r.rnd)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("accept: %w", err)
			}
			return nil, nil, reply, nil
		}
	}
	if r.admit != nil {
		if err := r.admit(src, loaded); err != nil {
			return nil, nil, nil, fmt.Errorf("accept: %w", err)
		}
	}

	hs := newSymmetricState(msg[:initPrefixLen], &r.pub)
	defer hs.wipe()
	var ie PublicKey
	copy(ie[:], msg[initEphemeralOff:initStaticOff])
	// -> e
	hs.mixHash(ie[:])
	// -> es
	k, err := hs.mixDH(&r.static, &ie)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("accept: initiator ephemeral: %w", err)
	}
	// -> s
	sb, err := hs.decryptAndHash(&k, msg[initStaticOff:initPayloadOff])
	if err != nil {
		return nil, nil, nil, fmt.Errorf("accept: initiator static key: %w", err)
	}
	var is PublicKey
	copy(is[:], sb)
	// -> ss
	if k, err = hs.mixDH(&r.static, &is); err != nil {
		return nil, nil, nil, fmt.Errorf("accept: initiator static key: %w", err)
	}
	plain, err := hs.decryptAndHash(&k, msg[initPayloadOff:mac1Off])
	if err != nil {
		return nil, nil, nil, fmt.Errorf("accept: initiation payload: %w", err)
	}
	var ts timestamp
	copy(ts[:], plain)
	suite := Suite(plain[timestampSize])
	if !suite.valid() {
		return nil, nil, nil, fmt.Errorf("accept: %w: unknown suite %d", ErrMalformedPayload, uint8(suite))
	}
	peerPayload, err := parsePayload(plain[timestampSize+1:])
	if err != nil {
		return nil, nil, nil, fmt.Errorf("accept: %w: %w", ErrMalformedPayload, err)
	}
	if r.allow != nil && !r.allow(is) {
		return nil, nil, nil, fmt.Errorf("accept: %w: %s", ErrNotAllowed, is)
	}
	// Only now, with the initiator authenticated, may it touch state.
	if !r.replay.advance(is, ts) {
		return nil, nil, nil, fmt.Errorf("accept: %w from %s", ErrReplay, is)
	}

	resp, sess, err := r.respond(&hs, &ie, &is, senderID, localConnID, suite, payload)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("accept: %w", err)
	}
	return &Result{Session: sess, Peer: is, PeerConnID: senderID, Payload: peerPayload}, resp, nil, nil
}

// respond writes the response (<- e, ee, se) and derives the session.
func (r *Responder) respond(hs *symmetricState, ie, is *PublicKey, peerID, localID uint64, suite Suite, payload []byte) ([]byte, *Session, error) {
	eph, err := generateKey(&r.rnd)
	if err != nil {
		return nil, nil, fmt.Errorf("ephemeral: %w", err)
	}
	defer clear(eph[:])
	ephPub := eph.Public()
	msg := make([]byte, respPayloadOff, MinResponseLen+len(payload))
	msg[0] = TypeResponse
	binary.BigEndian.PutUint64(msg[respSenderOff:], localID)
	binary.BigEndian.PutUint64(msg[respReceiverOff:], peerID)
	copy(msg[respEphemeralOff:], ephPub[:])
	// Not a Noise token: the cleartext prefix (type, reserved, both conn
	// IDs) enters the transcript so the payload AEAD authenticates it.
	hs.mixHash(msg[:respEphemeralOff])
	// <- e
	hs.mixHash(ephPub[:])
	// <- ee
	if _, err := hs.mixDH(&eph, ie); err != nil {
		return nil, nil, fmt.Errorf("initiator ephemeral: %w", err)
	}
	// <- se
	k, err := hs.mixDH(&eph, is)
	if err != nil {
		return nil, nil, fmt.Errorf("initiator static key: %w", err)
	}
	plain := appendPayload(make([]byte, 0, respPlainFixed+len(payload)), payload)
	msg = hs.encryptAndHash(msg, &k, plain)
	clear(k[:])
	peerMAC1Key := mac1Key(is)
	mac1 := mac(peerMAC1Key[:], msg)
	msg = append(msg, mac1[:]...)
	msg = append(msg, make([]byte, macSize)...) // mac2: responders never hold cookies

	i2r, r2i := hs.split()
	sess, err := newSession(suite, &r2i, &i2r)
	clear(i2r[:])
	clear(r2i[:])
	if err != nil {
		return nil, nil, err
	}
	return msg, sess, nil
}

// checkMAC2 reports whether mac2 matches src's cookie under a current
// secret, and returns the current cookie for a cookie reply.
func (r *Responder) checkMAC2(msg, mac2 []byte, src netip.AddrPort) (bool, [cookieSize]byte, error) {
	cur, prev, hasPrev, err := r.cookies.secrets(r.now(), &r.rnd)
	if err != nil {
		return false, [cookieSize]byte{}, err
	}
	addr := addrBytes(src)
	cookie := mac(cur[:], addr)
	want := mac(cookie[:], msg)
	if macEqual(want[:], mac2) {
		return true, cookie, nil
	}
	if hasPrev {
		old := mac(prev[:], addr)
		want = mac(old[:], msg)
		if macEqual(want[:], mac2) {
			return true, cookie, nil
		}
	}
	return false, cookie, nil
}

// replayTable remembers, per initiator key, the newest accepted initiation
// timestamp and the other timestamps it accepted within ReorderWindow below
// it. An initiation is fresh if its timestamp is newer than the newest, or
// within the window and not accepted before: one client key may dial many
// connections at once (each Dial is its own Initiator), and their initiations
// can reach us out of order. A strictly monotonic check (WireGuard's, which
// has one handshake per peer) would reject the overtaken ones as replays and
// leave those dials retrying a message that can never be accepted. A replay
// of an accepted initiation is still rejected: within the window by the
// remembered set, beyond it by age.
//
// It is bounded with two generations: lookups consult both, inserts go to
// cur, and when cur holds capacity/2 keys it becomes old and the previous old
// generation is dropped. A key seen in either of the last two generations
// keeps its protection; the total is at most capacity entries, each holding
// at most maxReordered timestamps.
type replayTable struct {
	mu       sync.Mutex
	half     int
	cur, old map[PublicKey]*replayEntry
}

// ReorderWindow is how far below the newest accepted timestamp of a key an
// initiation may be and still be accepted (if it was not accepted before).
const ReorderWindow = 2 * time.Second

// maxReordered bounds the accepted timestamps remembered below the newest,
// per key. When it is full, an out-of-order initiation is rejected (its
// dialer retries with a fresh one, which is newer than everything).
const maxReordered = 64

type replayEntry struct {
	newest timestamp
	below  []timestamp // accepted, older than newest, within ReorderWindow of it
}

func (t *replayTable) init(capacity int) {
	t.half = max(capacity/2, 1)
	t.cur = make(map[PublicKey]*replayEntry)
}

// advance records ts for key and reports true if ts is fresh (see
// replayTable).
func (t *replayTable) advance(key PublicKey, ts timestamp) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, inCur := t.cur[key]
	if !inCur {
		e = t.old[key]
	}
	if e != nil && !e.accept(ts) {
		return false
	}
	if e == nil {
		e = &replayEntry{newest: ts}
	}
	if !inCur {
		if len(t.cur) >= t.half {
			t.old, t.cur = t.cur, make(map[PublicKey]*replayEntry, t.half)
		}
		t.cur[key] = e
	}
	return true
}

// accept records ts if it is fresh for e.
func (e *replayEntry) accept(ts timestamp) bool {
	if ts.after(e.newest) {
		e.below = append(e.below, e.newest)
		e.newest = ts
		e.prune()
		return true
	}
	if ts == e.newest || e.newest.nanosSince(ts) > int64(ReorderWindow) {
		return false
	}
	for _, b := range e.below {
		if b == ts {
			return false
		}
	}
	e.prune()
	if len(e.below) >= maxReordered {
		return false
	}
	e.below = append(e.below, ts)
	return true
}

// prune forgets accepted timestamps that fell out of the window: anything
// that old is rejected by age anyway.
func (e *replayEntry) prune() {
	e.below = slices.DeleteFunc(e.below, func(b timestamp) bool {
		return e.newest.nanosSince(b) > int64(ReorderWindow)
	})
	if len(e.below) > maxReordered { // keep the newest ones
		slices.SortFunc(e.below, func(a, b timestamp) int { return bytes.Compare(a[:], b[:]) })
		e.below = slices.Delete(e.below, 0, len(e.below)-maxReordered)
	}
}

// len returns the number of keys remembered (for tests).
func (t *replayTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.cur) + len(t.old)
}
