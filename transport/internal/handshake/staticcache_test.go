package handshake

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStaticCacheBoundedAndWiped(t *testing.T) {
	var c staticCache
	c.init(8)
	keys := make([]PublicKey, 20)
	var first *[32]byte
	for i := range keys {
		keys[i][0] = byte(i + 1)
		v := [32]byte{byte(i + 1), 0xaa}
		c.put(&keys[i], &v)
		if i == 0 {
			first = c.cur[keys[0]]
		}
		require.LessOrEqual(t, c.len(), 8, "after %d inserts", i+1)
	}
	require.Equal(t, [32]byte{}, *first, "an evicted entry is wiped")
	var got [32]byte
	require.False(t, c.get(&keys[0], &got), "evicted")
	require.True(t, c.get(&keys[19], &got))
	require.Equal(t, [32]byte{20, 0xaa}, got)
	require.True(t, c.get(&keys[16], &got), "the previous generation is still consulted")

	var off staticCache
	off.init(-1)
	off.put(&keys[0], &got)
	require.False(t, off.get(&keys[0], &got), "disabled")
}

// TestAcceptUsesStaticCache: the second handshake from a key takes the
// static-static DH from the cache (a poisoned entry makes it fail), and
// both complete with working sessions.
func TestAcceptUsesStaticCache(t *testing.T) {
	f := newFixture(t, nil)
	ini := f.initiator(t, SuiteAESGCM, nil)
	res, resp, _, err := f.responder.Accept(ini.Message(), srcA, 1, nil)
	require.NoError(t, err)
	got, err := ini.Finish(resp)
	require.NoError(t, err)
	requirePaired(t, got.Session, res.Session)
	require.Equal(t, 1, f.responder.ssCache.len())

	f.clock.Advance(time.Millisecond)
	ini = f.initiator(t, SuiteAESGCM, nil)
	res, resp, _, err = f.responder.Accept(ini.Message(), srcA, 2, nil)
	require.NoError(t, err, "cache hit")
	got, err = ini.Finish(resp)
	require.NoError(t, err)
	requirePaired(t, got.Session, res.Session)

	is := f.iStatic.Public()
	f.responder.ssCache.put(&is, &[32]byte{1})
	f.clock.Advance(time.Millisecond)
	ini = f.initiator(t, SuiteAESGCM, nil)
	_, _, _, err = f.responder.Accept(ini.Message(), srcA, 3, nil)
	require.ErrorIs(t, err, ErrDecrypt, "the cached value is what Accept uses")
}

// TestStaticCacheOnlyAuthenticated: an initiator that is not allowed, or
// whose initiation is a replay, adds nothing; with the cache disabled
// handshakes still work.
func TestStaticCacheOnlyAuthenticated(t *testing.T) {
	f := newFixture(t, func(c *ResponderConfig) { c.Allow = func(PublicKey) bool { return false } })
	_, _, _, err := f.responder.Accept(f.initiator(t, SuiteAESGCM, nil).Message(), srcA, 1, nil)
	require.ErrorIs(t, err, ErrNotAllowed)
	require.Equal(t, 0, f.responder.ssCache.len())

	f = newFixture(t, func(c *ResponderConfig) { c.StaticCacheCapacity = -1 })
	ini := f.initiator(t, SuiteChaCha20Poly1305, nil)
	res, resp, _, err := f.responder.Accept(ini.Message(), srcA, 1, nil)
	require.NoError(t, err)
	got, err := ini.Finish(resp)
	require.NoError(t, err)
	requirePaired(t, got.Session, res.Session)
	require.Equal(t, 0, f.responder.ssCache.len())
}
