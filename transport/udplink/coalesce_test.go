package udplink

import (
	"github.com/stretchr/testify/require"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/flightline/flightline/transport/link"
)

func TestCoalesce(t *testing.T) {
	a := netip.MustParseAddrPort("127.0.0.1:1000")
	b := netip.MustParseAddrPort("127.0.0.1:2000")
	type m struct {
		size int
		dst  netip.AddrPort
	}
	tests := []struct {
		name     string
		msgs     []m
		maxBytes int
		maxSegs  int
		want     []group
	}{
		{"empty", nil, 65507, 64, nil},
		{"single", []m{{100, a}}, 65507, 64, []group{{0, 1, 100}}},
		{"equal run", []m{{100, a}, {100, a}, {100, a}}, 65507, 64, []group{{0, 3, 100}}},
		{"short last closes group", []m{{100, a}, {100, a}, {50, a}, {100, a}}, 65507, 64,
			[]group{{0, 3, 100}, {3, 1, 100}}},
		{"longer breaks group", []m{{100, a}, {200, a}, {200, a}}, 65507, 64,
			[]group{{0, 1, 100}, {1, 2, 200}}},
		{"destination change", []m{{100, a}, {100, b}, {100, b}, {100, a}}, 65507, 64,
			[]group{{0, 1, 100}, {1, 2, 100}, {3, 1, 100}}},
		{"segment cap", []m{{10, a}, {10, a}, {10, a}, {10, a}, {10, a}}, 65507, 2,
			[]group{{0, 2, 10}, {2, 2, 10}, {4, 1, 10}}},
		{"byte cap", []m{{1000, a}, {1000, a}, {1000, a}, {1000, a}}, 2500, 64,
			[]group{{0, 2, 1000}, {2, 2, 1000}}},
		{"byte cap exact", []m{{1000, a}, {1000, a}, {500, a}}, 2500, 64,
			[]group{{0, 3, 1000}}},
		{"empty datagrams never coalesce", []m{{0, a}, {0, a}, {10, a}, {0, a}}, 65507, 64,
			[]group{{0, 1, 0}, {1, 1, 0}, {2, 1, 10}, {3, 1, 0}}},
		{"one byte run", []m{{1, a}, {1, a}}, 65507, 64, []group{{0, 2, 1}}},
		{"max packets", []m{{link.MaxPacketSize, a}, {link.MaxPacketSize, a}, {1, a}}, 65507, 64,
			[]group{{0, 3, link.MaxPacketSize}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs := make([]link.Message, len(tt.msgs))
			for i, x := range tt.msgs {
				msgs[i] = link.Message{Buf: make([]byte, x.size), Addr: x.dst}
			}
			got := coalesce(nil, msgs, tt.maxBytes, tt.maxSegs)
			require.Equal(t, tt.want, got)
			checkGroups(t, msgs, got, tt.maxBytes, tt.maxSegs)
		})
	}
}

// checkGroups asserts the invariants documented on group.
func checkGroups(t *testing.T, msgs []link.Message, groups []group, maxBytes, maxSegs int) {
	t.Helper()
	next := 0
	for _, g := range groups {
		require.Equal(t, next, g.start, "groups must tile msgs in order")
		require.GreaterOrEqual(t, g.n, 1)
		next += g.n
		if g.n == 1 {
			require.Equal(t, len(msgs[g.start].Buf), g.seg)
			continue
		}
		require.LessOrEqual(t, g.n, maxSegs)
		total := 0
		for k := 0; k < g.n; k++ {
			m := msgs[g.start+k]
			require.Equal(t, msgs[g.start].Addr, m.Addr)
			if k < g.n-1 {
				require.Equal(t, g.seg, len(m.Buf))
			} else {
				require.True(t, len(m.Buf) >= 1 && len(m.Buf) <= g.seg)
			}
			total += len(m.Buf)
		}
		require.LessOrEqual(t, total, maxBytes)
	}
	require.Equal(t, len(msgs), next)
}

func TestCoalesceRandomInvariants(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dsts := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("[::1]:2")}
	sizes := []int{0, 1, 7, 100, 1200, 1452}
	for iter := 0; iter < 2000; iter++ {
		msgs := make([]link.Message, rng.IntN(130))
		for i := range msgs {
			msgs[i] = link.Message{Buf: make([]byte, sizes[rng.IntN(len(sizes))]), Addr: dsts[rng.IntN(2)]}
			if rng.IntN(4) > 0 && i > 0 { // favour runs so groups form
				msgs[i] = msgs[i-1]
			}
		}
		maxBytes, maxSegs := 1+rng.IntN(70000), 1+rng.IntN(64)
		checkGroups(t, msgs, coalesce(nil, msgs, maxBytes, maxSegs), maxBytes, maxSegs)
	}
}
