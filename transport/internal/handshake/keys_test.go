package handshake

import (
	"crypto/hmac"
	"encoding/base64"
	"github.com/stretchr/testify/require"
	"testing"
	"time"
)

func TestKeys(t *testing.T) {
	k, err := GenerateKey()
	require.NoError(t, err)
	require.Equal(t, byte(0), k[0]&7, "clamped low bits")
	require.Equal(t, byte(64), k[31]&192, "clamped high bits")
	require.False(t, k.IsZero())

	pk, err := ParsePrivateKey(k.String())
	require.NoError(t, err)
	require.Equal(t, k, pk)
	pub, err := ParsePublicKey(k.Public().String())
	require.NoError(t, err)
	require.Equal(t, k.Public(), pub)

	// Parsing clamps, so an unclamped key round-trips to the scalar X25519
	// actually uses (same public key).
	raw := [32]byte(k)
	raw[0] |= 7
	pk, err = ParsePrivateKey(base64.StdEncoding.EncodeToString(raw[:]))
	require.NoError(t, err)
	require.Equal(t, k, pk)

	for _, bad := range []string{"", "!!!", base64.StdEncoding.EncodeToString(make([]byte, 31)), base64.StdEncoding.EncodeToString(make([]byte, 33))} {
		_, err := ParsePrivateKey(bad)
		require.Error(t, err, bad)
		_, err = ParsePublicKey(bad)
		require.Error(t, err, bad)
	}
}

func TestSuiteNames(t *testing.T) {
	for _, s := range suites {
		got, err := ParseSuite(s.String())
		require.NoError(t, err)
		require.Equal(t, s, got)
	}
	_, err := ParseSuite("aes-128")
	require.Error(t, err)
	require.Equal(t, "suite(9)", Suite(9).String())
}

func TestTimestamp(t *testing.T) {
	a := makeTimestamp(time.Unix(10, 999_999_999))
	b := a.next()
	require.True(t, b.after(a))
	require.Equal(t, makeTimestamp(time.Unix(11, 0)), b)
	require.False(t, a.after(a))
}

func TestReceiverConnID(t *testing.T) {
	for _, m := range [][]byte{nil, {TypeInitiation, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}, {TypeResponse, 0}, {TypeCookieReply, 0, 0, 0, 1}} {
		_, ok := ReceiverConnID(m)
		require.False(t, ok)
	}
}

// kdf2 must be the Noise HKDF: HMAC-BLAKE2s with temp = HMAC(ck, ikm),
// out1 = HMAC(temp, 0x01), out2 = HMAC(temp, out1 || 0x02).
func TestKDFIsNoiseHKDF(t *testing.T) {
	ck := [32]byte{1, 2, 3}
	ikm := []byte("input key material")
	hm := func(key []byte, data ...[]byte) []byte {
		h := hmac.New(newBlake2s, key)
		for _, d := range data {
			h.Write(d)
		}
		return h.Sum(nil)
	}
	temp := hm(ck[:], ikm)
	out1 := hm(temp, []byte{1})
	out2 := hm(temp, out1, []byte{2})
	a, b := kdf2(&ck, ikm)
	require.Equal(t, out1, a[:])
	require.Equal(t, out2, b[:])
}
