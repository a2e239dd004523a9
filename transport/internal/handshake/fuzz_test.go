package handshake

import (
	"bytes"
	"github.com/stretchr/testify/require"
	"testing"
)

// The fuzz targets rebuild their parties from fixed seeds on every run, so
// the valid messages in the seed corpus (testdata/fuzz) stay valid and each
// input is judged against fresh state.

func fuzzResponder(t testing.TB, underLoad bool) *Responder {
	r, err := NewResponder(ResponderConfig{
		Static: mustKey(t, 2), Now: newFakeClock().Now, Rand: seededRand(3),
		UnderLoad: func() bool { return underLoad },
	})
	require.NoError(t, err)
	return r
}

func fuzzInitiator(t testing.TB) *Initiator {
	f := &fixture{clock: newFakeClock(), iStatic: mustKey(t, 1), rStatic: mustKey(t, 2)}
	return f.initiator(t, SuiteAESGCM, []byte("params"))
}

// validMessages returns an initiation, the response to it and a cookie
// reply to it, all as fuzzInitiator and fuzzResponder produce them.
func validMessages(t testing.TB) (init, resp, cookie []byte) {
	init = fuzzInitiator(t).Message()
	_, resp, _, err := fuzzResponder(t, false).Accept(init, srcA, 0x2222, []byte("server"))
	require.NoError(t, err)
	_, _, cookie, err = fuzzResponder(t, true).Accept(init, srcA, 0x2222, nil)
	require.NoError(t, err)
	return init, resp, cookie
}

func FuzzAccept(f *testing.F) {
	init, resp, cookie := validMessages(f)
	f.Add(init, false)
	f.Add(init, true)
	f.Add(resp, false)
	f.Add(cookie, false)
	f.Fuzz(func(t *testing.T, msg []byte, underLoad bool) {
		r := fuzzResponder(t, underLoad)
		res, out, reply, err := r.Accept(msg, srcA, 7, []byte("p"))
		if err != nil {
			if res != nil || out != nil || reply != nil {
				t.Fatalf("error %v with non-nil results", err)
			}
			if r.replay.len() != 0 {
				t.Fatalf("failed Accept left state")
			}
			return
		}
		if (res == nil) == (reply == nil) {
			t.Fatalf("want exactly one of result and cookie reply")
		}
		if reply != nil {
			if len(reply) != CookieReplyLen || r.replay.len() != 0 {
				t.Fatalf("bad cookie reply %x or state kept", reply)
			}
			return
		}
		if id, ok := ReceiverConnID(out); !ok || id != res.PeerConnID {
			t.Fatalf("response receiver ID %d, want %d", id, res.PeerConnID)
		}
		if _, _, _, err := r.Accept(msg, srcA, 7, nil); err == nil {
			t.Fatalf("same initiation accepted twice")
		}
	})
}

func FuzzFinish(f *testing.F) {
	_, resp, cookie := validMessages(f)
	f.Add(resp)
	f.Add(cookie)
	f.Add(resp[:MinResponseLen-1])
	f.Fuzz(func(t *testing.T, msg []byte) {
		ini := fuzzInitiator(t)
		res, err := ini.Finish(msg)
		if err != nil {
			if res != nil {
				t.Fatalf("error with result")
			}
			return
		}
		if !bytes.Equal(msg[:len(msg)-macSize], resp[:len(resp)-macSize]) {
			t.Fatalf("Finish accepted a response the responder did not write: %x", msg)
		}
	})
}

func FuzzHandleCookie(f *testing.F) {
	_, resp, cookie := validMessages(f)
	f.Add(cookie)
	f.Add(resp)
	f.Fuzz(func(t *testing.T, msg []byte) {
		ini := fuzzInitiator(t)
		if err := ini.HandleCookie(msg); err != nil {
			if !ini.cookieExpiry.IsZero() {
				t.Fatalf("failed HandleCookie stored a cookie")
			}
			return
		}
		if !bytes.Equal(msg, cookie) {
			// Producing another valid reply needs the cookie key and
			// an XChaCha20-Poly1305 forgery; the fuzzer has neither.
			t.Fatalf("unexpected cookie reply accepted: %x", msg)
		}
	})
}

// fuzzSessions returns a matching pair with fixed keys.
func fuzzSessions(t testing.TB, suite Suite) (a, b *Session) {
	s1, s2 := [32]byte{1}, [32]byte{2}
	a, err := newSession(suite, &s1, &s2)
	require.NoError(t, err)
	b, err = newSession(suite, &s2, &s1)
	require.NoError(t, err)
	return a, b
}

func FuzzOpen(f *testing.F) {
	for _, s := range suites {
		a, _ := fuzzSessions(f, s)
		f.Add(uint8(s), uint64(9), []byte("hdr"), a.Send.Seal(nil, []byte("hdr"), 9, []byte("hello")))
		f.Add(uint8(s), uint64(0), []byte{}, a.Send.Seal(nil, nil, 0, nil))
	}
	f.Add(uint8(1), uint64(1), []byte{}, []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, suite uint8, pn uint64, aad, ct []byte) {
		s := Suite(suite%2 + 1)
		a, b := fuzzSessions(t, s)
		pt, err := b.Recv.Open(nil, aad, pn, ct)
		if err != nil {
			if err != ErrDecrypt || pt != nil {
				t.Fatalf("Open: %v, %x", err, pt)
			}
			return
		}
		if again := a.Send.Seal(nil, aad, pn, pt); !bytes.Equal(again, ct) {
			t.Fatalf("opened %x but resealing gives %x", ct, again)
		}
	})
}
