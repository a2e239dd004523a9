package handshake

import (
	"bytes"
	"github.com/stretchr/testify/require"
	"testing"
)

var suites = []Suite{SuiteAESGCM, SuiteChaCha20Poly1305}

func TestSealOpen(t *testing.T) {
	for _, suite := range suites {
		t.Run(suite.String(), func(t *testing.T) {
			a, b, err := NewSessionPair(suite)
			require.NoError(t, err)
			require.Equal(t, Overhead, a.Send.Overhead())
			require.Equal(t, Overhead, b.Recv.Overhead())
			requirePaired(t, a, b)

			hdr := []byte{4, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 42}
			msg := []byte("payload bytes")
			ct := a.Send.Seal(nil, hdr, 42, msg)
			require.Len(t, ct, len(msg)+Overhead)

			cases := []struct {
				name string
				hdr  []byte
				pn   uint64
				ct   []byte
			}{
				{"tampered header", flip(hdr, 0), 42, ct},
				{"tampered ciphertext", hdr, 42, flip(ct, 3)},
				{"tampered tag", hdr, 42, flip(ct, len(ct)-1)},
				{"wrong pn", hdr, 43, ct},
				{"truncated", hdr, 42, ct[:len(ct)-1]},
				{"shorter than tag", hdr, 42, ct[:Overhead-1]},
				{"empty", hdr, 42, nil},
			}
			for _, tc := range cases {
				_, err := b.Recv.Open(nil, tc.hdr, tc.pn, tc.ct)
				require.ErrorIs(t, err, ErrDecrypt, tc.name)
			}
			// Own direction's opener does not open what we sealed.
			_, err = a.Recv.Open(nil, hdr, 42, ct)
			require.ErrorIs(t, err, ErrDecrypt)

			pt, err := b.Recv.Open(nil, hdr, 42, ct)
			require.NoError(t, err)
			require.Equal(t, msg, pt)
		})
	}
}

func TestSealOpenInPlace(t *testing.T) {
	a, b, err := NewSessionPair(SuiteAESGCM)
	require.NoError(t, err)
	buf := make([]byte, 100, 100+Overhead)
	for i := range buf {
		buf[i] = byte(i)
	}
	want := bytes.Clone(buf)
	ct := a.Send.Seal(buf[:0], nil, 7, buf)
	require.True(t, &ct[0] == &buf[0], "sealed in place")
	pt, err := b.Recv.Open(ct[:0], nil, 7, ct)
	require.NoError(t, err)
	require.Equal(t, want, pt)
}

// The nonce is IV XOR pn: distinct packet numbers, including ones that
// differ only in high bits, give distinct ciphertexts.
func TestNonceUsesWholePN(t *testing.T) {
	a, b, err := NewSessionPair(SuiteChaCha20Poly1305)
	require.NoError(t, err)
	msg := make([]byte, 32)
	seen := map[string]bool{}
	for _, pn := range []uint64{0, 1, 1 << 32, 1 << 63, 1<<64 - 1} {
		ct := a.Send.Seal(nil, nil, pn, msg)
		require.False(t, seen[string(ct)], "pn %d", pn)
		seen[string(ct)] = true
		_, err := b.Recv.Open(nil, nil, pn, ct)
		require.NoError(t, err)
	}
}

func TestSealOpenZeroAllocs(t *testing.T) {
	for _, suite := range suites {
		a, b, err := NewSessionPair(suite)
		require.NoError(t, err)
		hdr := make([]byte, 17)
		pt := make([]byte, 1400)
		ct := make([]byte, 0, 1400+Overhead)
		out := make([]byte, 0, 1400)
		pn := uint64(0)
		allocs := testing.AllocsPerRun(100, func() {
			pn++
			c := a.Send.Seal(ct[:0], hdr, pn, pt)
			if _, err := b.Recv.Open(out[:0], hdr, pn, c); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Recv.Open(out[:0], hdr, pn+1, c); err == nil {
				t.Fatal("opened with wrong pn")
			}
		})
		require.Equal(t, 0.0, allocs, suite.String())
	}
}

func TestNewSessionPairBadSuite(t *testing.T) {
	_, _, err := NewSessionPair(0)
	require.Error(t, err)
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x80
	return c
}

func TestReplayWindow(t *testing.T) {
	type step struct {
		pn   uint64
		want bool // Check result; accepted packets are then marked
	}
	const W = ReplayWindowSize
	cases := []struct {
		name  string
		steps []step
	}{
		{"in order", []step{{0, true}, {1, true}, {2, true}, {3, true}}},
		{"duplicate", []step{{0, true}, {0, false}, {5, true}, {5, false}, {0, false}}},
		{"out of order within window", []step{{10, true}, {7, true}, {9, true}, {8, true}, {7, false}, {11, true}}},
		{"oldest in window", []step{{W + 100, true}, {101, true}, {100, false}, {101, false}}},
		{"too old", []step{{5000, true}, {5000 - W, false}, {5000 - W + 1, true}}},
		{"large jump clears bitmap", []step{
			{1, true}, {2, true}, {1 << 40, true}, {1<<40 - 1, true}, {1<<40 - W, false},
			{1<<40 - W + 1, true}, {1<<40 - W + 1, false}, {1 << 40, false},
		}},
		{"jump of exactly one ring", []step{
			{63, true}, {63 + replayWords*64, true}, {63 + replayWords*64 - 64, true}, {63 + replayWords*64 - 1, true},
		}},
		{"word boundary", []step{{63, true}, {64, true}, {128, true}, {65, true}, {64, false}, {127, true}}},
		{"max pn", []step{{1<<64 - 1, true}, {1<<64 - 1, false}, {1<<64 - 2, true}, {0, false}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var w ReplayWindow
			for i, s := range tc.steps {
				got := w.Check(s.pn)
				require.Equal(t, s.want, got, "step %d pn %d", i, s.pn)
				if got {
					w.Mark(s.pn)
					require.False(t, w.Check(s.pn), "step %d pn %d marked", i, s.pn)
				}
			}
		})
	}
}

// Differential test against a naive model: a set of seen packet numbers
// and the rule "accept iff unseen and top-pn < window".
func TestReplayWindowModel(t *testing.T) {
	rng := seededRand(77)
	var w ReplayWindow
	seen := map[uint64]bool{}
	var top uint64
	var buf [8]byte
	base := uint64(0)
	for i := 0; i < 200000; i++ {
		if _, err := rng.Read(buf[:]); err != nil {
			t.Fatal(err)
		}
		r := uint64(buf[0])<<16 | uint64(buf[1])<<8 | uint64(buf[2])
		var pn uint64
		switch buf[3] % 8 {
		case 0: // jump ahead
			base += r % 5000
			pn = base
		case 1: // far behind
			pn = base - min(base, r%6000)
		default: // near the front
			pn = base - min(base, r%300) + r%50
		}
		want := !seen[pn] && (pn > top || top-pn < ReplayWindowSize)
		got := w.Check(pn)
		if got != want {
			t.Fatalf("op %d pn %d top %d: Check=%v, model %v", i, pn, top, got, want)
		}
		if got {
			w.Mark(pn)
			seen[pn] = true
			top = max(top, pn)
		}
	}
}
