package testnet

import (
	"github.com/stretchr/testify/require"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// TestLossProgram runs the XDP loss program through BPF_PROG_TEST_RUN, with
// no traffic and no interface.
func TestLossProgram(t *testing.T) {
	RequirePrivileged(t)
	m, err := newU64Array("fltn_test", lossSlots)
	require.NoError(t, err)
	defer m.Close()
	prog, err := newLossProgram(m)
	require.NoError(t, err)
	defer prog.Close()
	frame := make([]byte, 64)
	for _, tc := range []struct {
		name      string
		loss      float64
		runs      int
		wantDrops int // -1: only check the fraction
	}{
		{"no loss", 0, 1000, 0},
		{"all lost", 1, 1000, 1000},
		{"30 percent", 0.3, 20000, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, slot := range []uint32{slotSeen, slotLost} {
				require.NoError(t, m.Put(slot, uint64(0)))
			}
			require.NoError(t, m.Put(uint32(slotThreshold), lossThreshold(tc.loss)))
			drops := 0
			for range tc.runs {
				ret, err := prog.Run(&ebpf.RunOptions{Data: frame})
				require.NoError(t, err)
				switch ret {
				case xdpDrop:
					drops++
				case xdpPass:
				default:
					t.Fatalf("unexpected verdict %d", ret)
				}
			}
			var seen, lost uint64
			require.NoError(t, m.Lookup(uint32(slotSeen), &seen))
			require.NoError(t, m.Lookup(uint32(slotLost), &lost))
			require.Equal(t, uint64(tc.runs), seen)
			require.Equal(t, uint64(drops), lost, "counter matches verdicts")
			if tc.wantDrops >= 0 {
				require.Equal(t, tc.wantDrops, drops)
			} else {
				require.InDelta(t, tc.loss, float64(drops)/float64(tc.runs), 0.02)
			}
		})
	}
}

// TestForwardProgram checks the tcx program's verdicts: redirect while an
// ifindex is set, drop (TC_ACT_SHOT) when it is 0.
func TestForwardProgram(t *testing.T) {
	RequirePrivileged(t)
	m, err := newU64Array("fltn_test", 1)
	require.NoError(t, err)
	defer m.Close()
	prog, err := newForwardProgram(m)
	require.NoError(t, err)
	defer prog.Close()
	frame := make([]byte, 64)
	require.NoError(t, m.Put(uint32(0), uint64(1))) // lo, which always exists
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame})
	require.NoError(t, err)
	require.Equal(t, uint32(7), ret, "TC_ACT_REDIRECT")
	require.NoError(t, m.Put(uint32(0), uint64(0)))
	ret, err = prog.Run(&ebpf.RunOptions{Data: frame})
	require.NoError(t, err)
	require.Equal(t, uint32(tcShot), ret)
}

// TestUserXDPCoexists attaches a test's own XDP program to A's and B's
// interfaces of an impaired network, as AF_XDP tests do: impairment lives in
// M, so nothing is in the way.
func TestUserXDPCoexists(t *testing.T) {
	n := New(t, Config{AtoB: Impairment{Loss: 0.0001}})
	for _, h := range []*Host{n.A, n.B} {
		prog, err := loadProgram("fltn_userpass", ebpf.XDP, asm.Instructions{
			asm.Mov.Imm(asm.R0, xdpPass), asm.Return(),
		})
		require.NoError(t, err)
		t.Cleanup(func() { _ = prog.Close() })
		require.NoError(t, h.Run(func() error {
			l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: h.Ifindex, Flags: link.XDPDriverMode})
			if err != nil {
				return err
			}
			t.Cleanup(func() { _ = l.Close() })
			return nil
		}))
	}
	exchange(t, n)
}
