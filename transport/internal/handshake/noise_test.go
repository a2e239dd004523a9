package handshake

import (
	"crypto/hmac"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/hkdf"
)

// TestHMACBlake2sMatchesStdlib: the allocation-free HMAC and HKDF compute
// exactly what crypto/hmac and x/crypto/hkdf over BLAKE2s compute.
func TestHMACBlake2sMatchesStdlib(t *testing.T) {
	var key [32]byte
	for i := range key {
		key[i] = byte(7*i + 3)
	}
	msg := make([]byte, 64)
	for i := range msg {
		msg[i] = byte(i)
	}
	for n := 0; n <= 64; n += 9 {
		for split := 0; split <= n; split += 5 {
			m := hmac.New(newBlake2s, key[:])
			m.Write(msg[:n])
			require.Equal(t, m.Sum(nil), func() []byte { h := hmacBlake2s(&key, msg[:split], msg[split:n]); return h[:] }(), "n=%d split=%d", n, split)
		}
	}
	for _, ikm := range [][]byte{nil, msg[:32]} {
		var want [64]byte
		_, err := io.ReadFull(hkdf.New(newBlake2s, ikm, key[:], nil), want[:])
		require.NoError(t, err)
		a, b := kdf2(&key, ikm)
		require.Equal(t, want[:32], a[:])
		require.Equal(t, want[32:], b[:])
	}
	long := make([]byte, 300)
	for i := range long {
		long[i] = byte(i * 13)
	}
	for _, n := range []int{0, 40, 256, 257, 300} { // stack buffer and fallback
		require.Equal(t, blake2s.Sum256(long[:n]), hashConcat(long[:n/3], long[n/3:n]), "n=%d", n)
	}
}
