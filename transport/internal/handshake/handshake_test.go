package handshake

import (
	"bytes"
	"encoding/binary"
	"errors"
	"github.com/stretchr/testify/require"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHandshakeSuccess(t *testing.T) {
	for _, suite := range []Suite{SuiteAESGCM, SuiteChaCha20Poly1305} {
		t.Run(suite.String(), func(t *testing.T) {
			f := newFixture(t, nil)
			ini := f.initiator(t, suite, []byte("client params"))
			msg := ini.Message()
			require.Len(t, msg, MinInitiationLen+len("client params"))

			res, resp, cookie, err := f.responder.Accept(msg, srcA, 0x2222, []byte("server params"))
			require.NoError(t, err)
			require.Nil(t, cookie)
			require.Len(t, resp, MinResponseLen+len("server params"))
			require.Equal(t, f.iStatic.Public(), res.Peer)
			require.Equal(t, uint64(0x1111), res.PeerConnID)
			require.Equal(t, []byte("client params"), res.Payload)
			require.Equal(t, suite, res.Session.Suite)

			id, ok := ReceiverConnID(resp)
			require.True(t, ok)
			require.Equal(t, uint64(0x1111), id)

			got, err := ini.Finish(resp)
			require.NoError(t, err)
			require.Equal(t, f.rStatic.Public(), got.Peer)
			require.Equal(t, uint64(0x2222), got.PeerConnID)
			require.Equal(t, []byte("server params"), got.Payload)
			require.Equal(t, suite, got.Session.Suite)
			requirePaired(t, got.Session, res.Session)

			_, err = ini.Finish(resp)
			require.ErrorIs(t, err, ErrFinished)
			_, err = ini.Retry()
			require.ErrorIs(t, err, ErrFinished)
		})
	}
}

func TestHandshakeEmptyAndMaxPayload(t *testing.T) {
	for _, n := range []int{0, MaxPayload} {
		f := newFixture(t, nil)
		p := bytes.Repeat([]byte{7}, n)
		ini := f.initiator(t, SuiteChaCha20Poly1305, p)
		res, resp, _, err := f.responder.Accept(ini.Message(), srcA, 1, p)
		require.NoError(t, err)
		require.Equal(t, p, res.Payload)
		got, err := ini.Finish(resp)
		require.NoError(t, err)
		require.Equal(t, p, got.Payload)
	}
}

func TestConfigErrors(t *testing.T) {
	k := mustKey(t, 9)
	cases := []struct {
		name string
		cfg  InitiatorConfig
		is   error
	}{
		{"no static", InitiatorConfig{Remote: k.Public()}, nil},
		{"no remote", InitiatorConfig{Static: k}, nil},
		{"bad suite", InitiatorConfig{Static: k, Remote: k.Public(), Suite: 9}, nil},
		{"payload too large", InitiatorConfig{Static: k, Remote: k.Public(), Payload: make([]byte, MaxPayload+1)}, ErrPayloadTooLarge},
		{"low-order remote", InitiatorConfig{Static: k, Remote: PublicKey{1}}, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewInitiator(tc.cfg)
			require.Error(t, err)
			if tc.is != nil {
				require.ErrorIs(t, err, tc.is)
			}
		})
	}
	_, err := NewResponder(ResponderConfig{})
	require.Error(t, err)
	_, err = NewResponder(ResponderConfig{Static: k, ReplayCapacity: -1})
	require.Error(t, err)

	f := newFixture(t, nil)
	ini := f.initiator(t, SuiteAESGCM, nil)
	_, _, _, err = f.responder.Accept(ini.Message(), srcA, 1, make([]byte, MaxPayload+1))
	require.ErrorIs(t, err, ErrPayloadTooLarge)
}

func TestDefaultSuite(t *testing.T) {
	f := newFixture(t, nil)
	ini := f.initiator(t, 0, nil)
	res, _, _, err := f.responder.Accept(ini.Message(), srcA, 1, nil)
	require.NoError(t, err)
	require.Equal(t, SuiteChaCha20Poly1305, res.Session.Suite)
}

func TestWrongResponderKey(t *testing.T) {
	f := newFixture(t, nil)
	other := mustKey(t, 50)
	ini, err := NewInitiator(InitiatorConfig{Static: f.iStatic, Remote: other.Public(), Now: f.clock.Now})
	require.NoError(t, err)
	_, _, _, err = f.responder.Accept(ini.Message(), srcA, 1, nil)
	require.ErrorIs(t, err, ErrMAC)
	require.Contains(t, err.Error(), "another responder key")
	require.Equal(t, 0, f.responder.replay.len())
}

// A man in the middle that knows the responder's public key can compute
// mac1, but without the responder's private key it cannot produce a response
// the initiator accepts.
func TestImpostorResponder(t *testing.T) {
	f := newFixture(t, nil)
	ini := f.initiator(t, SuiteAESGCM, nil)
	impostorKey := mustKey(t, 60)
	impostor, err := NewResponder(ResponderConfig{Static: impostorKey})
	require.NoError(t, err)
	// The impostor pretends to be the real responder by using a
	// responder with its own key; mac1 of the initiation fails for it.
	_, _, _, err = impostor.Accept(ini.Message(), srcA, 1, nil)
	require.ErrorIs(t, err, ErrMAC)

	// Forge a response with the right layout and a valid mac1 (computable
	// from the initiator's public key) but keys the impostor made up.
	resp := make([]byte, MinResponseLen)
	resp[0] = TypeResponse
	copy(resp[respReceiverOff:], []byte{0, 0, 0, 0, 0, 0, 0x11, 0x11})
	pub := mustKey(t, 61).Public()
	copy(resp[respEphemeralOff:], pub[:])
	ipub := f.iStatic.Public()
	k := mac1Key(&ipub)
	m := mac(k[:], resp[:len(resp)-2*macSize])
	copy(resp[len(resp)-2*macSize:], m[:])
	_, err = ini.Finish(resp)
	require.ErrorIs(t, err, ErrDecrypt)
}

func TestAllowList(t *testing.T) {
	allowed := mustKey(t, 1).Public() // the fixture's initiator key
	f := newFixture(t, func(c *ResponderConfig) {
		c.Allow = func(k PublicKey) bool { return k != allowed }
	})
	ini := f.initiator(t, SuiteAESGCM, nil)
	_, _, _, err := f.responder.Accept(ini.Message(), srcA, 1, nil)
	require.ErrorIs(t, err, ErrNotAllowed)
	require.Equal(t, 0, f.responder.replay.len(), "rejected initiators leave no state")

	f = newFixture(t, func(c *ResponderConfig) {
		c.Allow = func(k PublicKey) bool { return k == allowed }
	})
	ini = f.initiator(t, SuiteAESGCM, nil)
	_, _, _, err = f.responder.Accept(ini.Message(), srcA, 1, nil)
	require.NoError(t, err)
}

func TestReplay(t *testing.T) {
	f := newFixture(t, nil)
	ini := f.initiator(t, SuiteChaCha20Poly1305, nil)
	msg := bytes.Clone(ini.Message())
	res, resp, _, err := f.responder.Accept(msg, srcA, 1, nil)
	require.NoError(t, err)

	_, _, _, err = f.responder.Accept(msg, srcA, 2, nil)
	require.ErrorIs(t, err, ErrReplay)
	_, _, _, err = f.responder.Accept(msg, srcB, 3, nil)
	require.ErrorIs(t, err, ErrReplay, "replay from another address")

	got, err := ini.Finish(resp)
	require.NoError(t, err)
	requirePaired(t, got.Session, res.Session)
}

func TestOlderTimestampRejected(t *testing.T) {
	f := newFixture(t, nil)
	older := f.initiator(t, SuiteAESGCM, nil) // timestamp T
	f.clock.Advance(ReorderWindow + time.Second)
	newer := f.initiator(t, SuiteAESGCM, nil) // beyond the reorder window

	_, _, _, err := f.responder.Accept(newer.Message(), srcA, 1, nil)
	require.NoError(t, err)
	_, _, _, err = f.responder.Accept(older.Message(), srcA, 2, nil)
	require.ErrorIs(t, err, ErrReplay)

	// The older initiator recovers by retrying: Retry's timestamp is the
	// current time.
	f.clock.Advance(time.Second)
	msg, err := older.Retry()
	require.NoError(t, err)
	_, _, _, err = f.responder.Accept(msg, srcA, 2, nil)
	require.NoError(t, err)
}

// TestConcurrentDialsOutOfOrder: one client key dialling several
// connections at once; initiations overtaken in the network are accepted
// (within ReorderWindow), and replaying any accepted one is still rejected.
func TestConcurrentDialsOutOfOrder(t *testing.T) {
	f := newFixture(t, nil)
	var inits []*Initiator
	for range 5 {
		inits = append(inits, f.initiator(t, SuiteAESGCM, nil))
		f.clock.Advance(time.Millisecond)
	}
	for _, i := range []int{4, 1, 3, 0, 2} {
		_, _, _, err := f.responder.Accept(inits[i].Message(), srcA, uint64(i), nil)
		require.NoError(t, err, "initiation %d arriving out of order", i)
	}
	for i := range inits {
		_, _, _, err := f.responder.Accept(inits[i].Message(), srcA, uint64(i), nil)
		require.ErrorIs(t, err, ErrReplay, "replay of initiation %d", i)
	}
}

func TestReplayEntryBounds(t *testing.T) {
	base := makeTimestamp(time.Unix(1000, 0))
	at := func(d time.Duration) timestamp { return makeTimestamp(time.Unix(1000, 0).Add(d)) }
	e := &replayEntry{newest: at(ReorderWindow + time.Nanosecond)}
	require.False(t, e.accept(base), "just beyond the window")
	require.True(t, e.accept(base.next()), "exactly at the window's edge")
	e = &replayEntry{newest: at(time.Second)}
	for i := range maxReordered {
		require.True(t, e.accept(at(time.Duration(i)*time.Microsecond)), "reordered %d", i)
	}
	require.False(t, e.accept(at(time.Duration(maxReordered)*time.Microsecond)), "set full")
	require.True(t, e.accept(at(time.Second+1)), "newer is always fresh")
	require.False(t, e.accept(at(time.Second+1)), "exact replay of the newest")
	require.True(t, e.accept(at(3*time.Second)))
	require.Len(t, e.below, 2, "only 1s and 1s+1ns are within the window of 3s; the rest were pruned")
}

func TestTimestampNanosSince(t *testing.T) {
	a := makeTimestamp(time.Unix(100, 5))
	b := makeTimestamp(time.Unix(98, 999_999_999))
	require.EqualValues(t, 1_000_000_006, a.nanosSince(b))
	require.EqualValues(t, -1_000_000_006, b.nanosSince(a))
	var zero timestamp
	require.EqualValues(t, int64(math.MaxInt64), a.nanosSince(zero))
}

func TestRetryTimestampMonotone(t *testing.T) {
	f := newFixture(t, nil)
	ini := f.initiator(t, SuiteAESGCM, nil)
	first := bytes.Clone(ini.Message())
	f.clock.Advance(-time.Hour) // clock steps back
	second, err := ini.Retry()
	require.NoError(t, err)
	require.NotEqual(t, first[initEphemeralOff:initStaticOff], second[initEphemeralOff:initStaticOff], "new ephemeral")
	_, _, _, err = f.responder.Accept(first, srcA, 1, nil)
	require.NoError(t, err)
	_, _, _, err = f.responder.Accept(second, srcA, 1, nil)
	require.NoError(t, err, "retry with a stalled clock is still newer")
}

func TestStaleInitiator(t *testing.T) {
	f := newFixture(t, nil)
	ini := f.initiator(t, SuiteAESGCM, nil)
	old := bytes.Clone(ini.Message())
	_, err := ini.Retry()
	require.NoError(t, err)
	_, resp, _, err := f.responder.Accept(old, srcA, 1, nil)
	require.NoError(t, err)
	_, err = ini.Finish(resp)
	require.ErrorIs(t, err, ErrDecrypt)

	// The failed Finish did not disturb the current attempt.
	f.clock.Advance(time.Millisecond)
	res, resp, _, err := f.responder.Accept(ini.Message(), srcA, 1, nil)
	require.NoError(t, err)
	got, err := ini.Finish(resp)
	require.NoError(t, err)
	requirePaired(t, got.Session, res.Session)
}

func TestFinishWrongConnID(t *testing.T) {
	f := newFixture(t, nil)
	ini := f.initiator(t, SuiteAESGCM, nil)
	_, resp, _, err := f.responder.Accept(ini.Message(), srcA, 1, nil)
	require.NoError(t, err)
	resp[respReceiverOff+7] ^= 1
	_, err = ini.Finish(resp)
	require.ErrorIs(t, err, ErrMalformed)
}

func TestCookie(t *testing.T) {
	var load atomic.Bool
	load.Store(true)
	f := newFixture(t, func(c *ResponderConfig) { c.UnderLoad = load.Load })
	ini := f.initiator(t, SuiteAESGCM, []byte("p"))

	// Under load, no mac2: a cookie reply and no state.
	res, resp, reply, err := f.responder.Accept(ini.Message(), srcA, 1, nil)
	require.NoError(t, err)
	require.Nil(t, res)
	require.Nil(t, resp)
	require.Len(t, reply, CookieReplyLen)
	require.Equal(t, 0, f.responder.replay.len(), "no per-peer state before the cookie round trip")
	id, ok := ReceiverConnID(reply)
	require.True(t, ok)
	require.Equal(t, uint64(0x1111), id)

	// The same initiation again still gets only a cookie reply.
	_, _, reply2, err := f.responder.Accept(ini.Message(), srcA, 1, nil)
	require.NoError(t, err)
	require.NotNil(t, reply2)
	require.Equal(t, 0, f.responder.replay.len())

	require.NoError(t, ini.HandleCookie(reply))
	msg, err := ini.Retry()
	require.NoError(t, err)
	require.NotEqual(t, make([]byte, macSize), msg[len(msg)-macSize:], "mac2 set")

	// The cookie is bound to srcA.
	_, _, reply3, err := f.responder.Accept(msg, srcB, 1, nil)
	require.NoError(t, err)
	require.NotNil(t, reply3, "cookie from another address is not accepted")
	require.Equal(t, 0, f.responder.replay.len())

	res, resp, reply, err = f.responder.Accept(msg, srcA, 1, nil)
	require.NoError(t, err)
	require.Nil(t, reply)
	require.Equal(t, 1, f.responder.replay.len())
	got, err := ini.Finish(resp)
	require.NoError(t, err)
	requirePaired(t, got.Session, res.Session)
}

func TestCookieIPv4Mapped(t *testing.T) {
	f := newFixture(t, func(c *ResponderConfig) { c.UnderLoad = func() bool { return true } })
	ini := f.initiator(t, SuiteAESGCM, nil)
	_, _, reply, err := f.responder.Accept(ini.Message(), srcA, 1, nil)
	require.NoError(t, err)
	require.NoError(t, ini.HandleCookie(reply))
	msg, err := ini.Retry()
	require.NoError(t, err)
	mapped := netip.AddrPortFrom(netip.AddrFrom16(srcA.Addr().As16()), srcA.Port())
	res, _, _, err := f.responder.Accept(msg, mapped, 1, nil)
	require.NoError(t, err)
	require.NotNil(t, res)
}

func TestCookieExpiry(t *testing.T) {
	f := newFixture(t, func(c *ResponderConfig) { c.UnderLoad = func() bool { return true } })
	ini := f.initiator(t, SuiteAESGCM, nil)
	_, _, reply, err := f.responder.Accept(ini.Message(), srcA, 1, nil)
	require.NoError(t, err)
	require.NoError(t, ini.HandleCookie(reply))

	// Just under CookieLifetime later, and across one responder secret
	// rotation, the cookie still works.
	f.clock.Advance(CookieLifetime - time.Second)
	msg, err := ini.Retry()
	require.NoError(t, err)
	f.clock.Advance(2 * time.Second) // responder rotates its secret
	res, _, _, err := f.responder.Accept(msg, srcA, 1, nil)
	require.NoError(t, err)
	require.NotNil(t, res, "cookie under the previous secret accepted")

	// Once the initiator's cookie expired, Retry sends no mac2.
	msg, err = ini.Retry()
	require.NoError(t, err)
	require.Equal(t, make([]byte, macSize), msg[len(msg)-macSize:])

	// A mac2 under a secret older than two lifetimes is refused.
	_, _, reply, err = f.responder.Accept(msg, srcA, 1, nil)
	require.NoError(t, err)
	require.NoError(t, ini.HandleCookie(reply))
	msg, err = ini.Retry()
	require.NoError(t, err)
	f.clock.Advance(2*CookieLifetime + time.Second)
	res, _, reply, err = f.responder.Accept(msg, srcA, 1, nil)
	require.NoError(t, err)
	require.Nil(t, res)
	require.NotNil(t, reply)
}

func TestHandleCookieErrors(t *testing.T) {
	f := newFixture(t, func(c *ResponderConfig) { c.UnderLoad = func() bool { return true } })
	ini := f.initiator(t, SuiteAESGCM, nil)
	_, _, reply, err := f.responder.Accept(ini.Message(), srcA, 1, nil)
	require.NoError(t, err)

	wrongID := bytes.Clone(reply)
	wrongID[cookieReceiverOff] ^= 1
	require.ErrorIs(t, ini.HandleCookie(wrongID), ErrMalformed)

	// A reply to an earlier attempt (different mac1) does not decrypt.
	_, err = ini.Retry()
	require.NoError(t, err)
	require.ErrorIs(t, ini.HandleCookie(reply), ErrDecrypt)
	require.True(t, ini.cookieExpiry.IsZero(), "no cookie stored")
}

// Every bit flip and every truncation of every message type must fail
// cleanly, and must leave the responder without per-peer state.
func TestForgedMessages(t *testing.T) {
	f := newFixture(t, func(c *ResponderConfig) { c.UnderLoad = func() bool { return false } })
	ini := f.initiator(t, SuiteAESGCM, []byte("abc"))
	init := bytes.Clone(ini.Message())

	fc := newFixture(t, func(c *ResponderConfig) { c.UnderLoad = func() bool { return true } })
	cini := fc.initiator(t, SuiteAESGCM, nil)
	_, _, cookieReply, err := fc.responder.Accept(cini.Message(), srcA, 1, nil)
	require.NoError(t, err)

	// Responses come from a second responder so f's replay table stays
	// empty until the end.
	r2, err := NewResponder(ResponderConfig{Static: f.rStatic})
	require.NoError(t, err)
	_, resp, _, err := r2.Accept(init, srcA, 1, []byte("xyz"))
	require.NoError(t, err)

	// mutations calls fn with every single-bit flip of msg[:flipLen], every
	// truncation of msg and msg with a byte appended.
	mutations := func(msg []byte, flipLen int, fn func(m []byte)) {
		for bit := 0; bit < flipLen*8; bit++ {
			m := bytes.Clone(msg)
			m[bit/8] ^= 1 << (bit % 8)
			fn(m)
		}
		for n := 0; n < len(msg); n++ {
			fn(bytes.Clone(msg[:n]))
		}
		fn(append(bytes.Clone(msg), 0))
	}

	t.Run("initiation", func(t *testing.T) {
		// mac2 is only looked at under load; see the next case.
		mutations(init, len(init)-macSize, func(m []byte) {
			if _, _, _, err := f.responder.Accept(m, srcA, 1, nil); err == nil {
				t.Fatalf("forged initiation accepted: %x", m)
			}
		})
		require.Equal(t, 0, f.responder.replay.len())
	})
	t.Run("initiation mac2 under load", func(t *testing.T) {
		for bit := 0; bit < macSize*8; bit++ {
			m := bytes.Clone(init)
			m[len(m)-macSize+bit/8] ^= 1 << (bit % 8)
			res, _, reply, err := fc.responder.Accept(m, srcA, 1, nil)
			require.NoError(t, err)
			require.Nil(t, res)
			require.NotNil(t, reply)
		}
		require.Equal(t, 0, fc.responder.replay.len())
	})
	t.Run("response", func(t *testing.T) {
		// mac2 of a response is always zero and not checked: responders
		// never hold cookies.
		mutations(resp, len(resp)-macSize, func(m []byte) {
			if _, err := ini.Finish(m); err == nil {
				t.Fatalf("forged response accepted: %x", m)
			}
		})
	})
	t.Run("cookie reply", func(t *testing.T) {
		mutations(cookieReply, len(cookieReply), func(m []byte) {
			require.Error(t, cini.HandleCookie(m))
		})
		require.True(t, cini.cookieExpiry.IsZero())
	})
	// The genuine messages still work after all that.
	_, resp, _, err = f.responder.Accept(init, srcA, 1, nil)
	require.NoError(t, err)
	_, err = ini.Finish(resp)
	require.NoError(t, err)
	require.NoError(t, cini.HandleCookie(cookieReply))
}

func TestReplayTableBounded(t *testing.T) {
	tab := replayTable{}
	tab.init(8)
	keys := make([]PublicKey, 20)
	for i := range keys {
		keys[i][0] = byte(i + 1)
	}
	ts := makeTimestamp(time.Unix(100, 0))
	for i, k := range keys {
		require.True(t, tab.advance(k, ts))
		require.LessOrEqual(t, tab.len(), 8, "after %d inserts", i+1)
	}
	// The newest keys are still protected.
	require.False(t, tab.advance(keys[19], ts))
	require.False(t, tab.advance(keys[16], ts))
	// An evicted key is forgotten.
	require.True(t, tab.advance(keys[0], ts))
	// Updating a known key does not evict.
	require.True(t, tab.advance(keys[0], ts.next()))
	require.False(t, tab.advance(keys[0], ts.next()))
}

func TestAcceptConcurrent(t *testing.T) {
	f := newFixture(t, nil)
	const n = 8
	inis := make([]*Initiator, n)
	for j := range inis {
		ini, err := NewInitiator(InitiatorConfig{Static: mustKey(t, byte(100+j)), Remote: f.rStatic.Public(), ConnID: uint64(j)})
		require.NoError(t, err)
		inis[j] = ini
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for j := range inis {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, resp, _, err := f.responder.Accept(inis[j].Message(), srcA, uint64(j), nil)
			if err == nil {
				_, err = inis[j].Finish(resp)
			}
			errs[j] = err
		}()
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	require.Equal(t, n, f.responder.replay.len())
}

// remac recomputes mac1 (and zeroes mac2) of a handshake message for the
// receiver whose static public key is to: anyone can, since the key is
// public. An on-path attacker rewriting cleartext fields does exactly this.
func remac(msg []byte, to PublicKey, rewrite func([]byte)) []byte {
	out := bytes.Clone(msg)
	rewrite(out)
	off := len(out) - 2*macSize
	k := mac1Key(&to)
	m := mac(k[:], out[:off])
	copy(out[off:], m[:])
	clear(out[off+macSize:])
	return out
}

// The connection IDs in the cleartext prefix of both handshake messages are
// part of the Noise transcript: an on-path rewrite of either ID, even with
// mac1 recomputed, fails decryption instead of yielding a session bound to
// an ID its peer never chose.
func TestConnIDRewriteRejected(t *testing.T) {
	f := newFixture(t, nil)
	i := f.initiator(t, SuiteChaCha20Poly1305, []byte("params"))
	rPub := f.rStatic.Public()

	forged := remac(i.Message(), rPub, func(m []byte) { binary.BigEndian.PutUint64(m[initSenderOff:], 0x2222) })
	_, _, _, err := f.responder.Accept(forged, srcA, 0x9999, nil)
	require.ErrorIs(t, err, ErrDecrypt, "initiation with a rewritten sender ID")

	res, resp, _, err := f.responder.Accept(i.Message(), srcA, 0x9999, nil)
	require.NoError(t, err)
	require.Equal(t, uint64(0x1111), res.PeerConnID)

	iPub := f.iStatic.Public()
	forged = remac(resp, iPub, func(m []byte) { binary.BigEndian.PutUint64(m[respSenderOff:], 0x7777) })
	_, err = i.Finish(forged)
	require.ErrorIs(t, err, ErrDecrypt, "response with a rewritten sender ID")

	// The untouched response still completes the handshake.
	got, err := i.Finish(resp)
	require.NoError(t, err)
	require.Equal(t, uint64(0x9999), got.PeerConnID)
}
