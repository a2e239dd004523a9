package handshake

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// InitiatorConfig configures one client-side handshake.
type InitiatorConfig struct {
	// Static is the initiator's long-term key. Required.
	Static PrivateKey
	// Remote is the responder's static public key. Required. A wrong key
	// makes the responder drop the initiation (mac1 fails) without reply.
	Remote PublicKey
	// ConnID is the initiator's connection ID; the responder echoes it as
	// receiverConnID in its response and cookie replies.
	ConnID uint64
	// Suite is the packet protection suite to use. Default
	// SuiteChaCha20Poly1305.
	Suite Suite
	// Payload is opaque data (transport parameters) for the responder, at
	// most MaxPayload bytes. It is encrypted but, unlike the response
	// payload, not forward secret: it is encrypted under keys derived from
	// DH(e, rs) and DH(s, rs), as in every Noise IK first message.
	Payload []byte
	// Now is the wall clock used for the initiation timestamp and cookie
	// expiry. Default time.Now.
	Now func() time.Time
	// Rand is the source of ephemeral keys. Default crypto/rand.Reader.
	Rand io.Reader

	// onSplit, when set (tests only: the test vectors), receives the final
	// transcript hash and the two Split() secrets of a successful Finish.
	onSplit func(h, i2r, r2i [32]byte)
}

// Initiator runs the client side of the handshake:
//
//	NewInitiator ──Message()──▶ send initiation
//	     │ ◀── cookie reply: HandleCookie, then Retry ──▶ resend
//	     │ ◀── timeout: Retry ──▶ resend
//	     ▼ ◀── response: Finish ──▶ *Result (Session ready)
//
// Each Retry draws a new ephemeral key and timestamp, so a response to an
// earlier initiation no longer decrypts (ErrDecrypt). An Initiator is not
// safe for concurrent use.
type Initiator struct {
	cfg       InitiatorConfig
	pub       PublicKey // of cfg.Static
	ss        [32]byte  // DH(s, rs), the same for every attempt
	mac1Key   [32]byte  // for messages to Remote
	cookieKey [32]byte  // opens Remote's cookie replies

	// Current attempt.
	eph    PrivateKey
	hs     symmetricState // after the initiation was written
	msg    []byte
	lastTS timestamp

	cookie       [cookieSize]byte
	cookieExpiry time.Time // zero: no cookie
	done         bool
}

// NewInitiator validates cfg and builds the first initiation (see Message).
func NewInitiator(cfg InitiatorConfig) (*Initiator, error) {
	if cfg.Static.IsZero() {
		return nil, fmt.Errorf("new initiator: no static key")
	}
	if cfg.Remote.IsZero() {
		return nil, fmt.Errorf("new initiator: no remote public key")
	}
	if cfg.Suite == 0 {
		cfg.Suite = SuiteChaCha20Poly1305
	}
	if !cfg.Suite.valid() {
		return nil, fmt.Errorf("new initiator: unknown suite %d", uint8(cfg.Suite))
	}
	if len(cfg.Payload) > MaxPayload {
		return nil, fmt.Errorf("new initiator: %w: %d bytes, max %d", ErrPayloadTooLarge, len(cfg.Payload), MaxPayload)
	}
	cfg.Payload = append([]byte(nil), cfg.Payload...)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	i := &Initiator{
		cfg:       cfg,
		pub:       cfg.Static.Public(),
		mac1Key:   mac1Key(&cfg.Remote),
		cookieKey: cookieKey(&cfg.Remote),
	}
	ss, err := dh(&cfg.Static, &cfg.Remote)
	if err != nil {
		return nil, fmt.Errorf("new initiator: remote key: %w", err)
	}
	i.ss = ss
	if _, err := i.Retry(); err != nil {
		return nil, fmt.Errorf("new initiator: %w", err)
	}
	return i, nil
}

// Message returns the current initiation. The slice belongs to the
// Initiator; it stays valid until the next Retry.
func (i *Initiator) Message() []byte { return i.msg }

// Retry builds a new initiation with a fresh ephemeral key and a newer
// timestamp, with mac2 set when a cookie that has not expired is held, and
// returns it (Message returns it too). Call it on timeout and after
// HandleCookie.
func (i *Initiator) Retry() ([]byte, error) {
	if i.done {
		return nil, ErrFinished
	}
	eph, err := generateKey(i.cfg.Rand)
	if err != nil {
		return nil, fmt.Errorf("ephemeral: %w", err)
	}
	ephPub := eph.Public()

	// Timestamps are strictly increasing per Initiator even if the clock
	// stalls or steps back, so a Retry is never rejected as a replay of
	// this Initiator's previous attempt.
	ts := makeTimestamp(i.cfg.Now())
	if !ts.after(i.lastTS) {
		ts = i.lastTS.next()
	}

	msg := make([]byte, initPayloadOff, MinInitiationLen+len(i.cfg.Payload))
	msg[0] = TypeInitiation
	binary.BigEndian.PutUint64(msg[initSenderOff:], i.cfg.ConnID)
	copy(msg[initEphemeralOff:], ephPub[:])
	hs := newSymmetricState(msg[:initPrefixLen], &i.cfg.Remote)

	// -> e
	hs.mixHash(ephPub[:])
	// -> es
	k, err := hs.mixDH(&eph, &i.cfg.Remote)
	if err != nil {
		return nil, fmt.Errorf("remote key: %w", err)
	}
	// -> s
	msg = hs.encryptAndHash(msg[:initStaticOff], &k, i.pub[:])
	// -> ss
	k = hs.mixKey(i.ss[:])
	// payload
	plain := make([]byte, 0, initPlainFixed+len(i.cfg.Payload))
	plain = append(plain, ts[:]...)
	plain = append(plain, byte(i.cfg.Suite))
	plain = appendPayload(plain, i.cfg.Payload)
	msg = hs.encryptAndHash(msg, &k, plain)
	clear(k[:])

	mac1 := mac(i.mac1Key[:], msg)
	msg = append(msg, mac1[:]...)
	var mac2 [macSize]byte
	if !i.cookieExpiry.IsZero() && i.cfg.Now().Before(i.cookieExpiry) {
		mac2 = mac(i.cookie[:], msg)
	}
	msg = append(msg, mac2[:]...)

	clear(i.eph[:])
	i.eph, i.hs, i.msg, i.lastTS = eph, hs, msg, ts
	return msg, nil
}

// mac1 of the current initiation: the additional data of a cookie reply.
func (i *Initiator) mac1() []byte {
	return i.msg[len(i.msg)-2*macSize : len(i.msg)-macSize]
}

// HandleCookie validates a cookie reply to the current initiation and stores
// the cookie for CookieLifetime. The next Retry then carries mac2. A cookie
// reply for an older attempt, another connection ID or forged by someone who
// did not see the initiation fails (ErrMalformed or ErrDecrypt) and changes
// nothing.
func (i *Initiator) HandleCookie(msg []byte) error {
	if i.done {
		return ErrFinished
	}
	c, err := openCookieReply(&i.cookieKey, msg, i.cfg.ConnID, i.mac1())
	if err != nil {
		return fmt.Errorf("handle cookie: %w", err)
	}
	i.cookie, i.cookieExpiry = c, i.cfg.Now().Add(CookieLifetime)
	return nil
}

// Finish processes the responder's response to the current initiation and
// returns the established session. Errors: ErrMalformed (size, type,
// connection ID), ErrMAC (not built for our static key), ErrDecrypt (not a
// response to the current attempt, or not from the holder of Remote),
// ErrFinished. A failed Finish leaves the Initiator unchanged, so a forged
// response cannot break a handshake in progress.
func (i *Initiator) Finish(resp []byte) (*Result, error) {
	if i.done {
		return nil, ErrFinished
	}
	if err := checkHeader(resp, TypeResponse, MinResponseLen, MaxResponseLen); err != nil {
		return nil, fmt.Errorf("finish: %w", err)
	}
	if id := binary.BigEndian.Uint64(resp[respReceiverOff:]); id != i.cfg.ConnID {
		return nil, fmt.Errorf("finish: %w: response for connection %#x, ours is %#x", ErrMalformed, id, i.cfg.ConnID)
	}
	macOff := len(resp) - 2*macSize
	ourMAC1Key := mac1Key(&i.pub)
	want := mac(ourMAC1Key[:], resp[:macOff])
	if !macEqual(want[:], resp[macOff:macOff+macSize]) {
		return nil, fmt.Errorf("finish: %w", ErrMAC)
	}

	hs := i.hs // work on a copy: commit only on success
	var re PublicKey
	copy(re[:], resp[respEphemeralOff:respPayloadOff])
	// The response's cleartext prefix (type, reserved, both conn IDs) is
	// in the transcript, so a rewritten ID fails the payload AEAD below.
	hs.mixHash(resp[:respEphemeralOff])
	// <- e
	hs.mixHash(re[:])
	// <- ee
	if _, err := hs.mixDH(&i.eph, &re); err != nil {
		return nil, fmt.Errorf("finish: responder ephemeral: %w", err)
	}
	// <- se
	k, err := hs.mixDH(&i.cfg.Static, &re)
	if err != nil {
		return nil, fmt.Errorf("finish: responder ephemeral: %w", err)
	}
	plain, err := hs.decryptAndHash(&k, resp[respPayloadOff:macOff])
	clear(k[:])
	if err != nil {
		return nil, fmt.Errorf("finish: response payload: %w", err)
	}
	payload, err := parsePayload(plain)
	if err != nil {
		return nil, fmt.Errorf("finish: %w", err)
	}
	i2r, r2i := hs.split()
	if i.cfg.onSplit != nil {
		i.cfg.onSplit(hs.h, i2r, r2i)
	}
	sess, err := newSession(i.cfg.Suite, &i2r, &r2i)
	clear(i2r[:])
	clear(r2i[:])
	hs.wipe()
	if err != nil {
		return nil, fmt.Errorf("finish: %w", err)
	}
	i.done = true
	clear(i.eph[:])
	i.hs.wipe()
	return &Result{
		Session:    sess,
		Peer:       i.cfg.Remote,
		PeerConnID: binary.BigEndian.Uint64(resp[respSenderOff:]),
		Payload:    payload,
	}, nil
}

// Result is a completed handshake.
type Result struct {
	// Session protects the connection's packets.
	Session *Session
	// Peer is the other side's static public key.
	Peer PublicKey
	// PeerConnID is the connection ID the peer chose: put it in packets
	// sent to the peer.
	PeerConnID uint64
	// Payload is the peer's application payload (a copy).
	Payload []byte
}
