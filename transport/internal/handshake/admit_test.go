package handshake

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

// Admit runs after mac1 (and, under load, mac2) and before any DH: junk
// never reaches it, its under-load flag is the UnderLoad decision, and its
// error rejects the initiation without touching the replay state, so the
// same initiation is accepted once admitted.
func TestAdmitBeforeDH(t *testing.T) {
	type call struct {
		src    netip.AddrPort
		loaded bool
	}
	var calls []call
	var refuse error
	loaded := false
	f := newFixture(t, func(c *ResponderConfig) {
		c.UnderLoad = func() bool { return loaded }
		c.Admit = func(src netip.AddrPort, underLoad bool) error {
			calls = append(calls, call{src, underLoad})
			return refuse
		}
	})
	in := f.initiator(t, SuiteAESGCM, nil)
	msg := in.Message()

	// A corrupted mac1 never reaches Admit.
	bad := append([]byte(nil), msg...)
	bad[len(bad)-2*macSize] ^= 1
	_, _, _, err := f.responder.Accept(bad, srcA, 7, nil)
	require.ErrorIs(t, err, ErrMAC)
	require.Empty(t, calls)

	// Refused: the error comes back, nothing else happened.
	refuse = errors.New("limited")
	_, _, _, err = f.responder.Accept(msg, srcA, 7, nil)
	require.ErrorIs(t, err, refuse)
	require.Equal(t, []call{{srcA, false}}, calls)

	// Under load without mac2: a cookie reply, Admit not called.
	loaded = true
	_, _, cookie, err := f.responder.Accept(msg, srcA, 7, nil)
	require.NoError(t, err)
	require.NotNil(t, cookie)
	require.Len(t, calls, 1)
	require.NoError(t, in.HandleCookie(cookie))
	msg, err = in.Retry()
	require.NoError(t, err)

	// With mac2, Admit sees the under-load flag; admitted, it is accepted.
	refuse = nil
	res, resp, _, err := f.responder.Accept(msg, srcA, 7, nil)
	require.NoError(t, err)
	require.NotNil(t, res)
	require.NotNil(t, resp)
	require.Equal(t, call{srcA, true}, calls[1])
}

// A payload that decrypts but does not parse is ErrMalformedPayload, which
// is also ErrMalformed.
func TestMalformedPayloadError(t *testing.T) {
	require.ErrorIs(t, ErrMalformedPayload, ErrMalformed)
}
